//! Coalescing of identical concurrent calls: one outbound request, one shared answer.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;

/// Runs at most one future per key at a time; concurrent callers with the same key
/// await the same result.
///
/// The work runs in its own task, so it completes (and leaves the table) even when
/// every caller has gone away: the table only ever holds calls in progress.
pub(crate) struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
    /// Callers that joined a call in progress instead of starting one.
    joined: AtomicU64,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
            joined: AtomicU64::new(0),
        }
    }

    /// Joins the call in progress for `key`, or starts `make()` as that call.
    /// `None` when the call's task panicked or its runtime shut down, or when there is
    /// no Tokio runtime to run it on (a caller outside one).
    ///
    /// The call is in the table before its work is spawned, and leaves it only once the
    /// work finished, panicked or was dropped with its runtime: whoever sees an effect
    /// of the work and then asks [`in_flight`](Self::in_flight) finds the call in
    /// progress, or the work over.
    pub(crate) async fn run<F, Fut>(&self, key: K, make: F) -> Option<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.join_or_start(key, make).await
    }

    /// Whether a call for `key` is in progress.
    pub(crate) fn in_flight(&self, key: &K) -> bool {
        self.lock().contains_key(key)
    }

    /// How many callers so far joined a call in progress instead of starting one.
    pub(crate) fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    fn join_or_start<F, Fut>(&self, key: K, make: F) -> Flight<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (flight, done, work) = {
            let mut flights = self.lock();
            if let Some(flight) = flights.get(&key) {
                self.joined.fetch_add(1, Ordering::Relaxed);
                return flight.clone();
            }
            // Before the insert: a `make` that panics leaves nothing behind.
            let work = make();
            let (done, answer) = tokio::sync::oneshot::channel();
            let flight = async move { answer.await.ok() }.boxed().shared();
            flights.insert(key.clone(), flight.clone());
            (flight, done, work)
        };
        // The call is in the table before its work is spawned, and the table is not
        // locked while spawning: a runtime that is shutting down drops the task at
        // once, and the guard below then takes the lock.
        let leave = Leave {
            table: Arc::downgrade(&self.flights),
            key,
        };
        let task = async move {
            // Dropped when the work ends, panics, or is dropped with its runtime: a
            // call that can no longer finish must not stay in the table (and its
            // callers then get `None`, as `done` is dropped too).
            let leave = leave;
            let value = work.await;
            drop(leave);
            let _ = done.send(value);
        };
        // Outside a runtime the task is dropped unrun, which ends the call the same way.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(task);
        }
        flight
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Flight<V>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a call from the table when dropped.
struct Leave<K: Hash + Eq, V: Clone> {
    table: Weak<Mutex<HashMap<K, Flight<V>>>>,
    key: K,
}

impl<K: Hash + Eq, V: Clone> Drop for Leave<K, V> {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            table
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A caller outside any Tokio runtime (a plain executor) gets `None` at once,
    /// instead of a panic, and leaves nothing in the table.
    #[test]
    fn outside_a_runtime_the_call_ends_without_an_answer() {
        let sf = SingleFlight::<u32, u32>::new();
        let mut call = std::pin::pin!(sf.run(1, || async { 7 }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert_eq!(call.as_mut().poll(&mut cx), std::task::Poll::Ready(None));
        assert!(!sf.in_flight(&1));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<&'static str, usize>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut joins = Vec::new();
        for _ in 0..50 {
            let (sf, runs, gate) = (sf.clone(), runs.clone(), gate.clone());
            joins.push(tokio::spawn(async move {
                sf.run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    42
                })
                .await
            }));
        }
        // Every caller joins before the work finishes (or the test fails, rather than
        // wait forever for callers that each started their own work).
        for _ in 0..1000 {
            if sf.joined() == 49 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(sf.joined(), 49, "callers that joined the call in progress");
        gate.notify_one();
        for j in joins {
            assert_eq!(j.await.unwrap(), Some(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(sf.joined(), 49);
        assert!(!sf.in_flight(&"k"), "finished calls leave the table");
        // A later call runs again.
        assert_eq!(sf.run("k", || async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn different_keys_run_separately_and_abandoned_calls_finish() {
        let sf = SingleFlight::<u32, u32>::new();
        assert_eq!(sf.run(1, || async { 1 }).await, Some(1));
        assert_eq!(sf.run(2, || async { 2 }).await, Some(2));
        // Start a call and drop the caller: the work still finishes and leaves.
        let fut = sf.run(3, || async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            3
        });
        drop(fut);
        assert!(
            !sf.in_flight(&3),
            "a dropped, never-polled caller starts nothing"
        );
        // A caller polled once (the call starts), then dropped before the work ends.
        let gate = Arc::new(tokio::sync::Notify::new());
        let work_gate = Arc::clone(&gate);
        let mut pending = Box::pin(sf.run(4, || async move {
            work_gate.notified().await;
            4
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(pending.as_mut().poll(&mut cx).is_pending());
        drop(pending);
        assert!(sf.in_flight(&4), "the work goes on without its caller");
        gate.notify_one();
        for _ in 0..1000 {
            if !sf.in_flight(&4) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!sf.in_flight(&4), "finished work leaves the table");
    }

    /// On a runtime that has shut down, `tokio::spawn` drops the task at once, on the
    /// calling thread: the guard that then takes the table's lock must not find it held
    /// by the caller (a deadlock).
    #[test]
    fn a_call_on_a_runtime_that_shut_down_yields_none_without_deadlock() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let sf = SingleFlight::<u8, u8>::new();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            let handle = runtime.handle().clone();
            drop(runtime);
            let got = handle.block_on(sf.run(0, || async { 1 }));
            let _ = tx.send((got, sf.in_flight(&0)));
        });
        let (got, in_flight) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the call returned (no deadlock)");
        assert_eq!(got, None);
        assert!(!in_flight, "a call that never ran stays in the table");
    }

    #[tokio::test]
    async fn panicking_work_yields_none_and_leaves_the_table() {
        let sf = SingleFlight::<u8, u8>::new();
        let got = sf.run(0, || async { panic!("boom") }).await;
        assert_eq!(got, None);
        assert!(!sf.in_flight(&0), "a panicked call stays in the table");
        assert_eq!(sf.run(0, || async { 1 }).await, Some(1));
    }

    /// A `StytchAuth` can outlive the runtime that started a call (a static shared by
    /// `#[tokio::test]`s, each with its own runtime): the call must not stay in the
    /// table, answering `None` to every later caller.
    #[test]
    fn work_dropped_with_its_runtime_leaves_the_table() {
        let sf = SingleFlight::<u8, u8>::new();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        first.block_on(async {
            let call = sf.run(0, std::future::pending::<u8>);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(5), call)
                    .await
                    .is_err()
            );
            assert!(sf.in_flight(&0));
        });
        drop(first);
        assert!(!sf.in_flight(&0), "a call dropped with its runtime stays");
        let second = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        assert_eq!(second.block_on(sf.run(0, || async { 2 })), Some(2));
    }
}
