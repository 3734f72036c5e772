//! Warnings about a condition that can repeat on every request, logged at most once a
//! minute each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The interval between two warnings of one kind.
const EVERY_SECS: u64 = 60;

/// When one kind of warning was last logged.
#[derive(Debug, Default)]
pub(crate) struct WarnLimiter {
    /// Unix seconds of the last warning (0: never).
    last: AtomicU64,
}

impl WarnLimiter {
    /// A limiter that has logged nothing yet (for a `static`).
    pub(crate) const fn new() -> Self {
        Self {
            last: AtomicU64::new(0),
        }
    }

    /// Whether to log the warning at `now` (unix seconds): true when none was logged
    /// in the last minute, for one caller only when several ask at once. A last
    /// warning stamped more than [`STEP_BACK`](crate::clock::STEP_BACK) ahead of `now` means the clock stepped
    /// back (a forward jump corrected): it ends the minute rather than silence the
    /// warning until the clock is back past it, as [`crate::clock::within`] does.
    pub(crate) fn allow(&self, now: u64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        !crate::clock::within(last, Duration::from_secs(EVERY_SECS), now)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_once_a_minute() {
        let limiter = WarnLimiter::default();
        assert!(limiter.allow(1_000));
        assert!(!limiter.allow(1_000));
        assert!(!limiter.allow(1_059));
        assert!(limiter.allow(1_060));
        // A clock read just before the last warning was stamped does not log again.
        assert!(!limiter.allow(1_000));
        assert!(limiter.allow(1_120));
    }

    /// A forward jump that was corrected (the last warning stamped an hour ahead of
    /// the clock) must not silence the warning for that hour.
    #[test]
    fn a_stamp_from_a_corrected_forward_jump_does_not_silence_warnings() {
        let limiter = WarnLimiter::default();
        assert!(
            limiter.allow(10_000 + 3_600),
            "logged while the clock was ahead"
        );
        assert!(limiter.allow(10_000), "the clock corrected: logs again");
        assert!(!limiter.allow(10_030), "then once a minute again");
        assert!(limiter.allow(10_060));
        // A stamp up to a minute ahead is a clock read racing the stamp, not a step.
        let limiter = WarnLimiter::default();
        assert!(limiter.allow(5_000));
        assert!(!limiter.allow(4_940));
        assert!(limiter.allow(4_939));
    }
}
