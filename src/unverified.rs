//! The budget of calls to Stytch for credentials that prove nothing.
//!
//! A validly signed but stale JWT proves that Stytch issued it; a session token this
//! instance has never seen proves nothing: anyone can make up tokens of a plausible
//! shape, and each distinct one costs a `sessions/authenticate` call. Such calls get a
//! budget of their own, a rate (a token bucket on the injected clock's monotonic
//! reading) and a cap on calls in flight, apart from `max_concurrent_authentications`,
//! so that a flood of made-up tokens can neither take the permits of members whose JWTs
//! need renewing nor spend the project's Stytch rate limit (after which Stytch's 429
//! would stop every call). A token Stytch confirmed once is remembered (by a keyed
//! hash, never the token itself) and no longer counts as unverified.

use std::hash::BuildHasher as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::util::permits::{Permit, Permits};

/// Why an unverified credential's call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The rate was spent: this long until the next call may be made.
    Rate(Duration),
    /// The cap on unverified calls in flight was reached.
    InFlight,
}

/// The settings of the budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnverifiedSettings {
    /// Calls per second (and the burst: one second's worth); 0 makes none.
    pub(crate) per_second: u32,
    /// Calls in flight at once.
    pub(crate) concurrent: usize,
    /// Session tokens remembered as confirmed.
    pub(crate) remembered: usize,
}

/// Calls for unverified credentials: a rate, a cap in flight, and the tokens Stytch
/// confirmed.
pub(crate) struct UnverifiedBudget {
    per_second: u32,
    bucket: Mutex<Bucket>,
    permits: Arc<Permits>,
    confirmed: quick_cache::sync::Cache<u64, ()>,
    hasher: foldhash::quality::RandomState,
}

struct Bucket {
    /// Calls that may be made now (at most `per_second`).
    tokens: f64,
    /// When `tokens` was last refilled; `None` before the first call.
    refilled: Option<Instant>,
}

impl UnverifiedBudget {
    /// A budget whose permits are leased for `lease` (see [`Permits`]).
    pub(crate) fn new(settings: UnverifiedSettings, lease: Duration) -> Self {
        Self {
            per_second: settings.per_second,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(settings.per_second),
                refilled: None,
            }),
            permits: Permits::new(settings.concurrent, lease),
            confirmed: crate::util::bounded_cache::new(settings.remembered),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// Whether Stytch confirmed `token` (recently enough to be remembered).
    pub(crate) fn is_confirmed(&self, token: &str) -> bool {
        self.confirmed.get(&self.hasher.hash_one(token)).is_some()
    }

    /// How many confirmed tokens are remembered (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) fn confirmed(&self) -> usize {
        self.confirmed.len()
    }

    /// Remembers that Stytch confirmed `token`.
    pub(crate) fn confirm(&self, token: &str) {
        self.confirmed.insert(self.hasher.hash_one(token), ());
    }

    /// A permit for one call at the monotonic reading `now`, or why not. The permit is
    /// held until the call ends.
    pub(crate) fn admit(&self, now: Instant) -> Result<Permit, Refused> {
        // In flight first: a refused call must not spend the rate.
        let permit = self.permits.try_acquire().ok_or(Refused::InFlight)?;
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = f64::from(self.per_second);
        if let Some(last) = bucket.refilled {
            let passed = now.saturating_duration_since(last).as_secs_f64();
            bucket.tokens = (bucket.tokens + passed * rate).min(rate);
        }
        bucket.refilled = Some(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(permit);
        }
        let wait = if rate > 0.0 {
            Duration::from_secs_f64((1.0 - bucket.tokens) / rate)
        } else {
            Duration::from_secs(1)
        };
        Err(Refused::Rate(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(per_second: u32, concurrent: usize) -> UnverifiedBudget {
        UnverifiedBudget::new(
            UnverifiedSettings {
                per_second,
                concurrent,
                remembered: 100,
            },
            Duration::from_secs(10),
        )
    }

    #[test]
    fn the_rate_allows_a_seconds_worth_then_refills_with_time() {
        let budget = budget(5, 100);
        let t0 = Instant::now();
        let permits: Vec<_> = (0..5)
            .map(|_| budget.admit(t0).expect("within the rate"))
            .collect();
        assert!(matches!(budget.admit(t0), Err(Refused::Rate(_))));
        drop(permits);
        assert!(
            matches!(budget.admit(t0), Err(Refused::Rate(_))),
            "permits are not the rate"
        );
        let later = t0 + Duration::from_millis(200);
        assert!(
            budget.admit(later).is_ok(),
            "one more after a fifth of a second"
        );
        assert!(budget.admit(later).is_err());
        // Idle for long: at most one second's worth.
        let much_later = t0 + Duration::from_secs(3600);
        let burst = (0..10).filter(|_| budget.admit(much_later).is_ok()).count();
        assert_eq!(burst, 5);
    }

    #[test]
    fn calls_in_flight_are_capped_apart_from_the_rate() {
        let budget = budget(100, 2);
        let t0 = Instant::now();
        let a = budget.admit(t0).expect("one");
        let _b = budget.admit(t0).expect("two");
        assert_eq!(budget.admit(t0).err(), Some(Refused::InFlight));
        drop(a);
        assert!(budget.admit(t0).is_ok());
    }

    #[test]
    fn a_zero_rate_admits_nothing() {
        let budget = budget(0, 2);
        let t0 = Instant::now();
        assert!(matches!(budget.admit(t0), Err(Refused::Rate(_))));
        assert!(matches!(
            budget.admit(t0 + Duration::from_secs(100)),
            Err(Refused::Rate(_))
        ));
    }

    #[test]
    fn confirmed_tokens_are_remembered_by_hash() {
        let budget = budget(1, 1);
        assert!(!budget.is_confirmed("token-a"));
        budget.confirm("token-a");
        assert!(budget.is_confirmed("token-a"));
        assert!(!budget.is_confirmed("token-b"));
    }
}
