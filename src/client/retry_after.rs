//! Stytch's "not yet": after a 429 (or a 503 with `Retry-After`), no call of that kind
//! until the time it asked for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{ClientError, MAX_BACKOFF};
use crate::clock::STEP_BACK;

/// Until when (unix milliseconds) Stytch asked not to be called; shared by every call
/// of one kind, so that a rate limit stops them all rather than each in turn.
#[derive(Debug, Default)]
pub(crate) struct RetryAfter {
    until_ms: AtomicU64,
}

impl RetryAfter {
    /// The error for a call not made at `now_ms` because Stytch asked to wait; `None`
    /// when calls may be made. A deadline further away than any backoff (by more than
    /// [`STEP_BACK`]) means the clock stepped back: calls may be made.
    pub(crate) fn refusal(&self, now_ms: u64) -> Option<ClientError> {
        let left_ms = self.left_ms(now_ms);
        (left_ms > 0).then(|| ClientError::backing_off(Duration::from_secs(left_ms.div_ceil(1000))))
    }

    /// What is left at `now_ms` of the wait Stytch asked for (zero when calls may be
    /// made).
    pub(crate) fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.left_ms(now_ms))
    }

    /// Milliseconds left of the wait at `now_ms`; 0 when there is none, or when the
    /// clock stepped back (further away than any backoff by more than [`STEP_BACK`]).
    fn left_ms(&self, now_ms: u64) -> u64 {
        left_of(self.until_ms.load(Ordering::Acquire), now_ms)
    }

    /// Records a failed call's answer at `now_ms`: a rate limit starts the wait, or
    /// extends it. A later answer never shortens a wait Stytch asked for (a 429 with
    /// `Retry-After: 60`, then one without the header); a deadline left by a clock
    /// that has since stepped back is replaced.
    pub(crate) fn observe(&self, error: &ClientError, now_ms: u64) {
        let Some(wait) = error.rate_limited_for() else {
            return;
        };
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let until = now_ms.saturating_add(wait_ms);
        let _ = self
            .until_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (now_ms.saturating_add(left_of(current, now_ms)) < until).then_some(until)
            });
    }
}

/// Milliseconds left at `now_ms` of a wait that ends at `until_ms`; 0 when it is over,
/// or when it ends further away than any backoff by more than [`STEP_BACK`] (the
/// clock stepped back since it was recorded).
fn left_of(until_ms: u64, now_ms: u64) -> u64 {
    let left_ms = until_ms.saturating_sub(now_ms);
    if u128::from(left_ms) <= (MAX_BACKOFF + STEP_BACK).as_millis() {
        left_ms
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::ApiError;
    use http::StatusCode;

    fn rate_limited(retry_after: Option<Duration>) -> ClientError {
        ClientError::Api(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error_type: "too_many_requests".into(),
            error_message: "slow down".into(),
            request_id: None,
            retry_after,
        })
    }

    #[test]
    fn a_rate_limit_stops_calls_until_its_retry_after() {
        let backoff = RetryAfter::default();
        assert!(backoff.refusal(10_000).is_none(), "never limited");
        backoff.observe(&rate_limited(Some(Duration::from_secs(3))), 10_000);
        let refused = backoff.refusal(10_500).expect("within the wait");
        assert_eq!(refused.rate_limited_for(), Some(Duration::from_secs(3)));
        assert_eq!(backoff.remaining(10_500), Duration::from_millis(2_500));
        assert!(backoff.refusal(12_999).is_some());
        assert!(backoff.refusal(13_000).is_none(), "over");
        assert_eq!(backoff.remaining(13_000), Duration::ZERO);
        // Without Retry-After: one second.
        backoff.observe(&rate_limited(None), 20_000);
        assert!(backoff.refusal(20_000).is_some());
        assert!(backoff.refusal(20_999).is_some());
        assert!(backoff.refusal(21_000).is_none());
        // Other failures start no wait.
        backoff.observe(&ClientError::transport("reset"), 30_000);
        assert!(backoff.refusal(30_000).is_none());
    }

    /// A 429 with `Retry-After: 60` followed by one without the header (1 s) keeps the
    /// 60 s wait; a longer one extends it.
    #[test]
    fn a_later_answer_never_shortens_the_wait() {
        let backoff = RetryAfter::default();
        backoff.observe(&rate_limited(Some(Duration::from_secs(60))), 100_000);
        backoff.observe(&rate_limited(None), 100_500);
        assert!(backoff.refusal(101_500).is_some(), "shortened to 1 s");
        assert!(backoff.refusal(159_999).is_some());
        assert!(backoff.refusal(160_000).is_none());
        backoff.observe(&rate_limited(Some(Duration::from_secs(5))), 200_000);
        backoff.observe(&rate_limited(Some(Duration::from_secs(30))), 201_000);
        assert_eq!(backoff.remaining(201_000), Duration::from_secs(30));
    }

    /// A deadline recorded before the clock stepped back (it lies further ahead than
    /// any backoff) does not keep a new rate limit from being recorded.
    #[test]
    fn a_rate_limit_after_a_step_back_is_recorded() {
        let backoff = RetryAfter::default();
        backoff.observe(&rate_limited(Some(Duration::from_secs(60))), 10_000_000);
        let stepped = 10_000_000 - 3_600_000;
        assert!(backoff.refusal(stepped).is_none());
        backoff.observe(&rate_limited(Some(Duration::from_secs(5))), stepped);
        assert_eq!(backoff.remaining(stepped), Duration::from_secs(5));
    }

    #[test]
    fn a_clock_stepped_back_past_any_backoff_ends_the_wait() {
        let backoff = RetryAfter::default();
        backoff.observe(&rate_limited(Some(Duration::from_secs(60))), 1_000_000);
        // Read just before the answer was recorded: still waiting.
        assert!(backoff.refusal(1_000_000 - 1).is_some());
        assert!(backoff.refusal(1_000_000 - 60_000).is_some());
        assert!(
            backoff.refusal(1_000_000 - 60_001).is_none(),
            "stepped back"
        );
        assert_eq!(backoff.remaining(1_000_000 - 60_001), Duration::ZERO);
    }
}
