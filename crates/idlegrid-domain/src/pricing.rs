//! Speed and price: the tiers a customer picks from, what work costs, what device owners earn.
//!
//! Work is measured by the coordinator, never claimed by a device: each app turns a chunk into
//! **work** in *reference core-seconds* — the seconds one core of the reference device
//! ([`REFERENCE_BENCHMARK`]) would spend on it. A device twice as fast does the same work in
//! half the time and earns the same for it, as BOINC's benchmark-normalised credit does; it
//! earns more per hour only by being faster.
//!
//! Money is counted in whole **micro-credits** ([`Credits`]); no floating point reaches the
//! books. A job's price is quoted before it runs, held from the customer's balance, and each
//! validated result is charged from that hold, so the final charge never exceeds the quote.

use serde::{Deserialize, Serialize};

/// Benchmark score (SHA-256 MB/s on one core, as the worker measures it) of the reference
/// device whose core-seconds work is counted in.
pub const REFERENCE_BENCHMARK: f64 = 1000.0;

/// Share of what a customer pays for a result that goes to the device's owner, in percent; the
/// rest is the platform's fee.
pub const OWNER_SHARE_PERCENT: i64 = 70;

/// Micro-credits per credit.
pub const MICROS: i64 = 1_000_000;

/// An amount of money in micro-credits (1 credit = 1,000,000).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Credits(pub i64);

impl Credits {
    /// Parses a decimal amount of credits, e.g. `12.5` or `0.000001`.
    pub fn parse(text: &str) -> Result<Credits, String> {
        let bad = || format!("{text:?} is not an amount of credits (e.g. 12.5)");
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !fraction.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        if fraction.len() > 6 {
            return Err(format!(
                "{text:?} has more than 6 decimals (the smallest amount is 0.000001)"
            ));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let fraction: i64 = format!("{fraction:0<6}").parse().map_err(|_| bad())?;
        let micros = whole
            .checked_mul(MICROS)
            .and_then(|w| w.checked_add(fraction))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        Ok(Credits(if negative { -micros } else { micros }))
    }
}

impl std::fmt::Display for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:06}",
            abs / MICROS as u64,
            abs % MICROS as u64
        )
    }
}

/// An account of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    /// A customer's spendable balance.
    Customer(crate::TenantId),
    /// What is held for a job: its quote, less what its results were charged.
    Job(crate::JobId),
    /// A device owner's earnings.
    Owner(i64),
    /// A device owner's earnings held back while their results are unverified: results
    /// accepted without an independent party's agreement. They move to [`Account::Owner`]
    /// once held long enough, and are forfeited if the owner is caught forging first.
    Held(i64),
    /// The platform's fees.
    PlatformFee,
    /// Credit the platform gave away (opening credit); negative.
    PlatformGrants,
    /// Money paid in from outside; negative.
    ExternalDeposits,
    /// Held earnings of owners caught forging, kept by the platform.
    PlatformForfeits,
    /// Earnings paid out to owners outside the grid (an operator settled their payout).
    Payouts,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Customer(t) => write!(f, "customer:{}", t.0),
            Account::Job(j) => write!(f, "job:{}", j.0),
            Account::Owner(o) => write!(f, "owner:{o}"),
            Account::Held(o) => write!(f, "held:{o}"),
            Account::PlatformFee => f.write_str("platform:fee"),
            Account::PlatformGrants => f.write_str("platform:grants"),
            Account::ExternalDeposits => f.write_str("external:deposits"),
            Account::PlatformForfeits => f.write_str("platform:forfeits"),
            Account::Payouts => f.write_str("external:payouts"),
        }
    }
}

/// The speed/price trade-off a customer picks for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Cheapest: runs when faster tiers leave devices idle, large chunks, backup copies of clear
    /// stragglers only (`schedule::backups`).
    Economy,
    /// The default.
    #[default]
    Standard,
    /// Runs first, small chunks across many devices, backup copies of stragglers and of its
    /// slow tail.
    Fast,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 3] = [Tier::Economy, Tier::Standard, Tier::Fast];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Economy => "economy",
            Tier::Standard => "standard",
            Tier::Fast => "fast",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Scheduling rank: devices are offered higher ranks first.
    pub fn rank(self) -> u8 {
        match self {
            Tier::Economy => 0,
            Tier::Standard => 1,
            Tier::Fast => 2,
        }
    }

    /// What the customer pays per reference core-hour of validated work, in micro-credits.
    pub fn price_per_core_hour(self) -> Credits {
        Credits(match self {
            Tier::Economy => 10_000,
            Tier::Standard => 20_000,
            Tier::Fast => 40_000,
        })
    }

    /// How many chunks per device slot the grid aims for: more chunks spread a job wider and
    /// even out slow devices, fewer cost less overhead.
    pub fn chunks_per_slot(self) -> f64 {
        match self {
            Tier::Economy => 1.0,
            Tier::Standard => 2.0,
            Tier::Fast => 4.0,
        }
    }
}

/// The per-result prices of a job, fixed when its quote is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rates {
    /// Micro-credits the customer pays per reference core-hour of validated work.
    pub price_per_core_hour: Credits,
    /// Micro-credits a device's owner earns per reference core-hour of validated work.
    pub owner_per_core_hour: Credits,
}

impl Rates {
    /// The rates of a tier.
    pub fn of(tier: Tier) -> Rates {
        let price = tier.price_per_core_hour();
        Rates {
            price_per_core_hour: price,
            owner_per_core_hour: Credits(price.0 * OWNER_SHARE_PERCENT / 100),
        }
    }

    /// What `work` reference core-seconds cost the customer, rounded up to a micro-credit.
    pub fn charge(&self, work_ms: i64) -> Credits {
        Credits(per_ms(self.price_per_core_hour.0, work_ms))
    }

    /// What `work` reference core-seconds earn an owner, rounded up to a micro-credit.
    pub fn earning(&self, work_ms: i64) -> Credits {
        Credits(per_ms(self.owner_per_core_hour.0, work_ms))
    }
}

/// `rate` per hour times `ms` milliseconds, rounded up (the same formula the databases'
/// ledger triggers apply).
fn per_ms(rate: i64, ms: i64) -> i64 {
    let product = i128::from(rate) * i128::from(ms.max(0));
    ((product + 3_599_999) / 3_600_000) as i64
}

/// A job's price before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    /// The tier priced.
    pub tier: Tier,
    /// Total work, in reference core-milliseconds, counting every replica.
    pub work_ms: i64,
    /// The most the job will be charged.
    pub price: Credits,
    /// Rates the results are charged and paid at.
    pub rates: Rates,
}

/// Prices a job of `work_ms` (one copy) cut into at most `chunks` chunks, each run `copies`
/// times at most, for `tier`. Each result is charged its own work rounded up to a micro-credit,
/// so the quote allows one micro-credit of rounding per chunk: charging every result of the
/// job never exceeds it.
pub fn quote(tier: Tier, work_ms: i64, chunks: u64, copies: u32) -> Quote {
    let rates = Rates::of(tier);
    let copies = i64::from(copies.max(1));
    let rounding = i64::try_from(chunks).unwrap_or(i64::MAX / 4);
    Quote {
        tier,
        work_ms: work_ms.max(0) * copies,
        price: Credits((rates.charge(work_ms).0 + rounding) * copies),
        rates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_parse_and_print_exactly() {
        assert_eq!(Credits::parse("12.5"), Ok(Credits(12_500_000)));
        assert_eq!(Credits::parse("0.000001"), Ok(Credits(1)));
        assert_eq!(Credits::parse("-3"), Ok(Credits(-3_000_000)));
        assert_eq!(Credits::parse(".5"), Ok(Credits(500_000)));
        assert!(
            Credits::parse("1.0000001")
                .unwrap_err()
                .contains("6 decimals")
        );
        assert!(Credits::parse("abc").is_err());
        assert!(Credits::parse("").is_err());
        assert!(Credits::parse("99999999999999999").is_err());
        assert_eq!(Credits(12_500_000).to_string(), "12.500000");
        assert_eq!(Credits(-1).to_string(), "-0.000001");
    }

    #[test]
    fn tiers_cost_more_for_speed() {
        let [economy, standard, fast] = Tier::ALL.map(|t| t.price_per_core_hour());
        assert!(economy < standard && standard < fast);
        assert_eq!(Tier::parse("fast"), Some(Tier::Fast));
        assert_eq!(Tier::parse("FAST"), None);
        assert!(Tier::Fast.rank() > Tier::Economy.rank());
    }

    #[test]
    fn charging_every_result_never_exceeds_the_quote() {
        let chunks = [1, 999, 3_600_000, 7_777_777];
        let q = quote(Tier::Standard, chunks.iter().sum(), chunks.len() as u64, 2);
        let charged: i64 = chunks.iter().map(|w| q.rates.charge(*w).0 * 2).sum();
        assert!(charged <= q.price.0, "{charged} > {}", q.price.0);
        assert!(q.price.0 - charged <= 2 * chunks.len() as i64);
        // One core-hour at standard costs 0.02 credits, and owners get 70% of it.
        assert_eq!(q.rates.charge(3_600_000), Credits(20_000));
        assert_eq!(q.rates.earning(3_600_000), Credits(14_000));
        // A millisecond of work still costs something (rounded up).
        assert_eq!(q.rates.charge(1), Credits(1));
    }
}
