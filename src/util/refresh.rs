//! One cached value, fetched again as its owner's rules say: the mechanism behind the
//! JWKS and the RBAC policies.
//!
//! A [`Refresher`] holds the last value fetched, stamped with the time it was fetched
//! (lock-free reads), and the time of the last failed fetch. Fetches are shared
//! (single flight), and decided inside the shared call, which reads the value again
//! first: a caller that looked just before another fetch completed gets that fetch's
//! value instead of starting a second one, and a fetch decided on just before another
//! failed asks its owner's gate again (so a failure's backoff holds for every caller).
//! When to fetch, how long a value may be served, and how long a failure holds are the
//! owner's decisions: the JWKS (refresh interval, cooldowns, forced refreshes for an
//! unknown `kid`) and the policy cache (TTL, refresh ahead, grace) each keep theirs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use super::single_flight::SingleFlight;
use crate::clock::{SharedClock, unix_seconds};

/// A value with the time it was fetched.
#[derive(Debug)]
pub(crate) struct Stamped<T> {
    pub(crate) value: T,
    pub(crate) fetched_at: SystemTime,
}

/// Why a fetch gave no value: the fetch's own error, or none when it was not made (its
/// gate said no, or its task was dropped with its runtime).
#[derive(Debug)]
pub(crate) enum Failed<E> {
    NotFetched,
    Error(Arc<E>),
}

impl<E> Clone for Failed<E> {
    fn clone(&self) -> Self {
        match self {
            Failed::NotFetched => Failed::NotFetched,
            Failed::Error(error) => Failed::Error(Arc::clone(error)),
        }
    }
}

/// What a fetch gave.
pub(crate) type Fetched<T, E> = Result<Arc<Stamped<T>>, Failed<E>>;

/// Called with the value replaced and its replacement, when one is stored.
pub(crate) type OnReplace<T> = Box<dyn Fn(&T, &T) + Send + Sync>;

/// The last value fetched, shared fetches, and the last failure.
pub(crate) struct Refresher<T, E> {
    clock: SharedClock,
    current: ArcSwapOption<Stamped<T>>,
    flight: SingleFlight<(), Fetched<T, E>>,
    /// Unix seconds of the last failed fetch (0: none since the last success).
    last_failure: AtomicU64,
    on_replace: Option<OnReplace<T>>,
}

impl<T, E> Refresher<T, E>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Nothing fetched yet; callers that join a fetch wait for it at most `deadline`
    /// (see [`SingleFlight`]).
    pub(crate) fn new(clock: SharedClock, deadline: Duration) -> Self {
        Self {
            clock,
            current: ArcSwapOption::empty(),
            flight: SingleFlight::new(deadline),
            last_failure: AtomicU64::new(0),
            on_replace: None,
        }
    }

    /// Calls `on_replace` with the old and the new value whenever a fetched value
    /// replaces another.
    pub(crate) fn on_replace(mut self, on_replace: OnReplace<T>) -> Self {
        self.on_replace = Some(on_replace);
        self
    }

    /// The value fetched last, if any.
    pub(crate) fn current(&self) -> Option<Arc<Stamped<T>>> {
        self.current.load_full()
    }

    /// Runs `f` on the value fetched last, without a reference count.
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(Option<&Stamped<T>>) -> R) -> R {
        f(self.current.load().as_deref())
    }

    /// The age of `stamped` now; `None` when the clock stepped back further than a
    /// minute before its fetch (see [`crate::clock::age`]).
    pub(crate) fn age(&self, stamped: &Stamped<T>) -> Option<Duration> {
        crate::clock::age(stamped.fetched_at, self.clock.now())
    }

    /// Whether the last fetch failed (a success resets it) less than `window` ago.
    pub(crate) fn failed_within(&self, window: Duration) -> bool {
        crate::clock::within(
            self.last_failure.load(Ordering::Acquire),
            window,
            self.clock.unix_seconds(),
        )
    }

    /// What is left now of `window` after the last failed fetch.
    pub(crate) fn failure_window_left(&self, window: Duration) -> Duration {
        let now = self.clock.unix_seconds();
        let last = self.last_failure.load(Ordering::Acquire);
        if crate::clock::within(last, window, now) {
            window.saturating_sub(Duration::from_secs(now.saturating_sub(last)))
        } else {
            Duration::ZERO
        }
    }

    /// Whether a fetch is in progress (within its deadline).
    pub(crate) fn in_flight(&self) -> bool {
        self.flight.in_flight(&())
    }

    /// How many callers joined a fetch in progress instead of starting one.
    #[cfg(test)]
    pub(crate) fn joined(&self) -> u64 {
        self.flight.joined()
    }

    /// Fetches with `fetch`, unless the value changed since the caller saw `seen` (then
    /// that newer value is the answer) or `gate`, asked inside the shared call, says
    /// not to ([`Failed::NotFetched`]). Joins the fetch in progress. A value fetched
    /// is stored, and a failure stamped, before the answer is shared.
    pub(crate) async fn fetch<G, F, Fut>(
        self: &Arc<Self>,
        seen: Option<Arc<Stamped<T>>>,
        gate: G,
        fetch: F,
    ) -> Fetched<T, E>
    where
        G: FnOnce() -> bool + Clone + Send + 'static,
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let this = Arc::clone(self);
        self.flight
            .run((), move || async move {
                let now = this.current.load_full();
                // A fetch that completed since this caller looked is as fresh as a new
                // one: use it instead of asking again.
                if let Some(now) = now
                    && !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &now))
                {
                    return Ok(now);
                }
                if !gate() {
                    return Err(Failed::NotFetched);
                }
                let fetched = fetch().await;
                this.store(fetched)
            })
            .await
            .unwrap_or(Err(Failed::NotFetched))
    }

    /// [`fetch`](Self::fetch) in the background, unless a fetch is in flight or there
    /// is no runtime to run it on.
    pub(crate) fn spawn_fetch<G, F, Fut>(
        self: &Arc<Self>,
        seen: Option<Arc<Stamped<T>>>,
        gate: G,
        fetch: F,
    ) where
        G: FnOnce() -> bool + Clone + Send + 'static,
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.in_flight() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let this = Arc::clone(self);
            runtime.spawn(async move {
                let _ = this.fetch(seen, gate, fetch).await;
            });
        }
    }

    fn store(&self, fetched: Result<T, E>) -> Fetched<T, E> {
        let now = self.clock.now();
        match fetched {
            Ok(value) => {
                let stamped = Arc::new(Stamped {
                    value,
                    fetched_at: now,
                });
                let previous = self.current.swap(Some(Arc::clone(&stamped)));
                self.last_failure.store(0, Ordering::Release);
                if let (Some(on_replace), Some(previous)) = (&self.on_replace, previous) {
                    on_replace(&previous.value, &stamped.value);
                }
                Ok(stamped)
            }
            Err(error) => {
                self.last_failure
                    .store(unix_seconds(now).max(1), Ordering::Release);
                Err(Failed::Error(Arc::new(error)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use std::sync::atomic::AtomicUsize;

    fn refresher() -> (MockClock, Arc<Refresher<u32, &'static str>>) {
        let mock = MockClock::new();
        let clock = SharedClock(Arc::new(mock.clone()));
        (
            mock,
            Arc::new(Refresher::new(clock, Duration::from_secs(10))),
        )
    }

    fn open() -> bool {
        true
    }

    #[tokio::test]
    async fn a_fetch_is_stored_and_a_failure_stamped() {
        let (mock, r) = refresher();
        let got = r.fetch(None, open, || async { Ok(7) }).await;
        assert_eq!(got.ok().map(|s| s.value), Some(7));
        assert_eq!(r.current().map(|s| s.value), Some(7));
        let seen = r.current();
        let got = r.fetch(seen.clone(), open, || async { Err("down") }).await;
        assert!(matches!(got, Err(Failed::Error(e)) if *e == "down"));
        assert_eq!(
            r.current().map(|s| s.value),
            Some(7),
            "the last value stays"
        );
        assert!(r.failed_within(Duration::from_secs(5)));
        mock.advance(Duration::from_secs(3));
        assert_eq!(
            r.failure_window_left(Duration::from_secs(5)),
            Duration::from_secs(2)
        );
        mock.advance(Duration::from_secs(2));
        assert!(!r.failed_within(Duration::from_secs(5)));
        // A success clears the failure.
        let _ = r.fetch(seen, open, || async { Ok(8) }).await;
        assert!(!r.failed_within(Duration::from_secs(600)));
    }

    /// A caller that saw an older value gets the newer one without a fetch; a closed
    /// gate (asked inside the shared call) fetches nothing.
    #[tokio::test]
    async fn newer_values_are_shared_and_the_gate_is_asked_inside() {
        let (_, r) = refresher();
        let old = r.fetch(None, open, || async { Ok(1) }).await.ok();
        let _ = r.fetch(old.clone(), open, || async { Ok(2) }).await;
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&fetches);
        let got = r
            .fetch(old, open, move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(3)
            })
            .await;
        assert_eq!(got.ok().map(|s| s.value), Some(2));
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
        let got = r.fetch(r.current(), || false, || async { Ok(4) }).await;
        assert!(matches!(got, Err(Failed::NotFetched)));
        assert_eq!(r.current().map(|s| s.value), Some(2));
    }

    #[tokio::test]
    async fn a_replaced_value_is_shown_with_its_replacement() {
        let (_, r) = refresher();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let r = Arc::new(
            Arc::try_unwrap(r)
                .ok()
                .expect("one owner")
                .on_replace(Box::new(move |old, new| {
                    log.lock().unwrap().push((*old, *new))
                })),
        );
        let first = r.fetch(None, open, || async { Ok(1) }).await.ok();
        let _ = r.fetch(first, open, || async { Ok(2) }).await;
        assert_eq!(*seen.lock().unwrap(), [(1, 2)]);
    }
}
