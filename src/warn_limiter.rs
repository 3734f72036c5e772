//! Warnings about a condition that can repeat on every request, logged at most once a
//! minute each.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// in the last minute, for one caller only when several ask at once.
    pub(crate) fn allow(&self, now: u64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        now >= last.saturating_add(EVERY_SECS)
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
        // A clock stepped back does not log again before a minute past the last one.
        assert!(!limiter.allow(900));
        assert!(limiter.allow(1_120));
    }
}
