//! How fast accounts may be signed up for: per address and over all callers (new customers get
//! free opening credit, so sign-up is where it would leak).

use std::net::IpAddr;
use std::num::NonZeroU32;

/// Accounts one address may make an hour.
pub const PER_ADDRESS_PER_HOUR: u32 = 3;
/// Accounts the whole grid takes an hour.
pub const PER_HOUR: u32 = 100;

/// Sign-ups limited per address and over all callers.
pub struct SignupLimits {
    per_address: governor::DefaultKeyedRateLimiter<IpAddr>,
    overall: governor::DefaultDirectRateLimiter,
}

impl Default for SignupLimits {
    fn default() -> Self {
        let per_hour =
            |n: u32| governor::Quota::per_hour(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        SignupLimits {
            per_address: governor::RateLimiter::keyed(per_hour(PER_ADDRESS_PER_HOUR)),
            overall: governor::RateLimiter::direct(per_hour(PER_HOUR)),
        }
    }
}

impl SignupLimits {
    /// Admits one sign-up from `address` (IPv6 addresses by their /64, which one subscriber
    /// usually holds whole), or says why not.
    pub fn admit(&self, address: IpAddr) -> Result<(), &'static str> {
        let key = match address {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            IpAddr::V6(v6) => IpAddr::V4(
                v6.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ),
            v4 => v4,
        };
        self.per_address
            .check_key(&key)
            .map_err(|_| "too many sign-ups from your address; try again in an hour")?;
        self.overall
            .check()
            .map_err(|_| "too many sign-ups on this grid right now; try again later")
    }

    /// Forgets addresses idle long enough.
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_a_few_accounts_and_a_v6_subnet_counts_as_one() {
        let limits = SignupLimits::default();
        let home: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..PER_ADDRESS_PER_HOUR {
            assert!(limits.admit(home).is_ok());
        }
        assert!(limits.admit(home).is_err());
        assert!(limits.admit("203.0.113.8".parse().unwrap()).is_ok());
        for i in 0..PER_ADDRESS_PER_HOUR {
            let a: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            assert!(limits.admit(a).is_ok());
        }
        let another_in_the_subnet: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert!(limits.admit(another_in_the_subnet).is_err());
    }
}
