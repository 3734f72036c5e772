//! One cached RBAC value (the project policy, or an organization's custom roles):
//! refreshed in the background in the last tenth of its TTL, waited for once past it,
//! served stale during a bounded grace only while refreshes fail. The fetching itself
//! is [`Refresher`]'s.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::SharedClock;
use crate::util::refresh::{Refresher, Stamped};

/// After a failed fetch, no new attempt for this long (unless nothing usable is cached
/// and the previous attempt is older).
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// A failed fetch counts as "refreshes are failing" (the last value then decides during
/// the grace, without waiting) for this long; after a quieter spell, the next request
/// waits for a new attempt.
const FAILING_FOR: Duration = Duration::from_secs(60);

/// The age from which a value is refreshed in the background while still served:
/// the last tenth of its TTL (30 s of the default 300 s).
pub(crate) fn refresh_ahead(ttl: Duration) -> Duration {
    ttl - ttl / 10
}

/// How long before `now` `stamped` was fetched; `Duration::MAX` (due, and past any
/// grace) when the clock stepped back further than that (see [`crate::clock::age`]).
pub(crate) fn age<T>(stamped: &Stamped<T>, now: SystemTime) -> Duration {
    crate::clock::age(stamped.fetched_at, now).unwrap_or(Duration::MAX)
}

/// A fetch that gave nothing (it failed, or was not made: already counted and logged).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotFetched;

/// One cached value with TTL, stale-while-revalidate, grace and single-flight refresh.
pub(crate) struct Slot<T> {
    values: Arc<Refresher<T, NotFetched>>,
}

impl<T: Send + Sync + 'static> Slot<T> {
    /// An empty slot whose fetches are waited for at most `deadline` by callers that
    /// join them.
    pub(crate) fn new(clock: SharedClock, deadline: Duration) -> Self {
        Self {
            values: Arc::new(Refresher::new(clock, deadline)),
        }
    }

    /// The value if usable now (fetching it, or refreshing it in the background when
    /// due); `None` when nothing usable can be had.
    pub(crate) async fn get<F, Fut>(
        &self,
        now: SystemTime,
        ttl: Duration,
        grace: Duration,
        fetch: F,
    ) -> Option<Arc<Stamped<T>>>
    where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let seen = self.values.current();
        let max_age = ttl.saturating_add(grace);
        let within_grace = |current: &Arc<Stamped<T>>| age(current, now) < max_age;
        if let Some(current) = seen.clone() {
            let age = age(&current, now);
            if age < ttl {
                // Refreshed ahead, in the background, so that a busy service never
                // waits for it.
                if age >= refresh_ahead(ttl) {
                    self.spawn_refresh(seen, fetch);
                }
                return Some(current);
            }
            // Past its TTL while refreshes are failing: the last value decides during
            // the grace, and attempts go on in the background (after the backoff).
            if age < max_age && self.values.failed_within(FAILING_FOR) {
                self.spawn_refresh(seen, fetch);
                return Some(current);
            }
        }
        if self.backing_off() && !self.values.in_flight() {
            // A fetch may have succeeded since `seen` was loaded.
            return self.values.current().filter(within_grace);
        }
        // Past its TTL (after a quiet spell, say) with refreshes working: this request
        // waits for the refresh rather than decide with a value older than the TTL. If
        // that refresh fails, the last value decides during the grace.
        match self.refresh(seen, fetch).await {
            Ok(value) => Some(value),
            Err(_) => self.values.current().filter(within_grace),
        }
    }

    /// Runs `f` on the value if it was fetched less than `fresh_for` before `now`
    /// ([`refresh_ahead`] of the TTL: not yet due for its refresh), without waiting or
    /// fetching.
    pub(crate) fn with_fresh<R>(
        &self,
        now: SystemTime,
        fresh_for: Duration,
        f: impl FnOnce(&Stamped<T>) -> R,
    ) -> Option<R> {
        self.values
            .with_current(|current| current.filter(|c| age(c, now) < fresh_for).map(f))
    }

    /// Whether the last fetch failed less than [`RETRY_BACKOFF`] ago: no new attempt
    /// yet.
    fn backing_off(&self) -> bool {
        self.values.failed_within(RETRY_BACKOFF)
    }

    /// What is left of the backoff after the last failed fetch.
    pub(crate) fn backoff_left(&self) -> Duration {
        self.values.failure_window_left(RETRY_BACKOFF)
    }

    /// Refreshes in the background, unless a fetch is in flight or a failed one is
    /// less than [`RETRY_BACKOFF`] old.
    fn spawn_refresh<F, Fut>(&self, seen: Option<Arc<Stamped<T>>>, fetch: F)
    where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        if self.backing_off() {
            return;
        }
        let values = Arc::clone(&self.values);
        self.values.spawn_fetch(
            seen,
            move || !values.failed_within(RETRY_BACKOFF),
            fallible(fetch),
        );
    }

    /// Fetches, unless the value changed since the caller saw `seen` (then that newer
    /// value is the answer), or another refresh failed since this one was decided on
    /// (a background refresh spawned just before): no new attempt during the backoff.
    async fn refresh<F, Fut>(
        &self,
        seen: Option<Arc<Stamped<T>>>,
        fetch: F,
    ) -> Result<Arc<Stamped<T>>, NotFetched>
    where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let values = Arc::clone(&self.values);
        self.values
            .fetch(
                seen,
                move || !values.failed_within(RETRY_BACKOFF),
                fallible(fetch),
            )
            .await
            .map_err(|_| NotFetched)
    }
}

/// `fetch`, its `None` as [`NotFetched`].
fn fallible<T, F, Fut>(
    fetch: F,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<T, NotFetched>> + Send>>
+ Clone
+ Send
+ 'static
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    move || Box::pin(async move { fetch().await.ok_or(NotFetched) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TTL: Duration = Duration::from_secs(300);
    const GRACE: Duration = Duration::from_secs(900);

    fn answering(value: Option<u32>) -> impl FnOnce() -> std::future::Ready<Option<u32>> + Clone {
        move || std::future::ready(value)
    }

    /// A mock clock, the same clock shared, and a slot holding `1` fetched at its time.
    async fn slot_with_one() -> (MockClock, SharedClock, Arc<Slot<u32>>) {
        let mock = MockClock::new();
        let clock = SharedClock(Arc::new(mock.clone()));
        let slot = Arc::new(Slot::<u32>::new(clock.clone(), Duration::from_secs(10)));
        let got = slot.get(clock.now(), TTL, GRACE, answering(Some(1))).await;
        assert_eq!(got.map(|s| s.value), Some(1));
        (mock, clock, slot)
    }

    /// After a quiet spell past the TTL, with Stytch answering, the request waits for
    /// the new value instead of deciding with the old one.
    #[tokio::test]
    async fn past_the_ttl_the_refresh_is_waited_for() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(Duration::from_secs(1_000));
        let got = slot.get(clock.now(), TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(2));
    }

    /// While refreshes fail, the last value decides during the grace, without waiting
    /// for a new attempt in the backoff; past the grace, nothing does.
    #[tokio::test]
    async fn past_the_ttl_while_refreshes_fail_the_last_value_decides_within_the_grace() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(TTL + Duration::from_secs(1));
        // The first request past the TTL tries, fails, and falls back.
        let got = slot.get(clock.now(), TTL, GRACE, answering(None)).await;
        assert_eq!(got.map(|s| s.value), Some(1));
        // The next ones do not try again during the backoff.
        let got = slot
            .get(clock.now(), TTL, GRACE, || async {
                panic!("fetched during the backoff")
            })
            .await;
        assert_eq!(got.map(|s| s.value), Some(1));
        mock.advance(GRACE);
        let got = slot.get(clock.now(), TTL, GRACE, answering(None)).await;
        assert!(got.is_none(), "decided with a value past TTL + grace");
    }

    /// A failure long past (before a quiet spell) does not count as "refreshes are
    /// failing": the next request waits for a new attempt instead of deciding with a
    /// value far older than the TTL.
    #[tokio::test]
    async fn an_old_failure_does_not_make_a_stale_value_decide() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(TTL + Duration::from_secs(1));
        let got = slot.get(clock.now(), TTL, GRACE, answering(None)).await;
        assert_eq!(
            got.map(|s| s.value),
            Some(1),
            "the failed attempt's fallback"
        );
        mock.advance(Duration::from_secs(600));
        let got = slot.get(clock.now(), TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(2), "waited for the new attempt");
    }

    /// In the last tenth of the TTL the value is still served at once, and refreshed
    /// in the background; the synchronous path leaves that window to `get`.
    #[tokio::test]
    async fn refreshed_ahead_in_the_last_tenth_of_the_ttl() {
        let (mock, clock, slot) = slot_with_one().await;
        mock.advance(Duration::from_secs(269));
        assert_eq!(
            slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value),
            Some(1)
        );
        mock.advance(Duration::from_secs(2));
        assert_eq!(
            slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value),
            None
        );
        let got = slot.get(clock.now(), TTL, GRACE, answering(Some(2))).await;
        assert_eq!(got.map(|s| s.value), Some(1), "served at once");
        for _ in 0..100 {
            if slot.with_fresh(clock.now(), refresh_ahead(TTL), |s| s.value) == Some(2) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the background refresh did not land");
    }

    /// A refresh decided on before another one failed (a background refresh spawned
    /// just before) does not fetch during the backoff.
    #[tokio::test]
    async fn a_refresh_decided_on_before_a_failure_waits_for_the_backoff() {
        let clock = SharedClock(Arc::new(MockClock::new()));
        let slot = Arc::new(Slot::<u32>::new(clock, Duration::from_secs(10)));
        assert!(slot.refresh(None, || async { None }).await.is_err());
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let late = slot
            .refresh(None, move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Some(1)
            })
            .await;
        assert!(late.is_err());
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            0,
            "fetched during the backoff"
        );
    }
}
