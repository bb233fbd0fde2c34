//! Exponential backoff with jitter, so a worker fleet retrying against a coordinator that was
//! away does not hammer it in lockstep when it comes back.

use rand::Rng;
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(10);

/// Delays that double from 200 ms up to 10 s; each is randomised within its upper half.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    ceiling: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { ceiling: FIRST }
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.ceiling = FIRST;
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(MAX);
        let half = ceiling / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(100) && first <= FIRST);
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= MAX));
        assert!(delays.last().unwrap() >= &(MAX / 2));
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST);
    }
}
