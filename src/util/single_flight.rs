//! Coalescing of identical concurrent calls: one outbound request, one shared answer.
//!
//! The work runs in its own task, on the runtime of the caller that started it, so it
//! completes (and leaves the table) even when every caller has gone away: the table
//! only holds calls in progress.
//!
//! One `StytchAuth` may serve several runtimes, and a call belongs to the runtime it
//! was started on. Two things can then happen to it that its callers on other runtimes
//! must survive:
//!
//! * **Its runtime shuts down**: the task is dropped, and the call ends without an
//!   answer. A caller that joined it makes the call itself (once).
//! * **Its runtime sits idle** (a current-thread runtime kept for a later `block_on`):
//!   the task is never polled again. Every call has a deadline, its start plus the
//!   flight's `deadline` (real time, as the HTTP client's own timeouts): a caller that
//!   joined it waits until then, then makes the call itself, and a caller that comes
//!   after the deadline does not join it. (The caller that started a call runs on its
//!   runtime, which is driven while it waits: it needs no deadline.)

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

/// Why a call ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The work panicked.
    Panicked,
    /// The work was dropped unfinished: its runtime shut down (or there was none).
    Abandoned,
    /// The deadline passed first (for a caller that joined the call).
    Stuck,
}

type Flight<V> = Shared<BoxFuture<'static, Result<V, Ended>>>;

struct Entry<V: Clone> {
    /// Tells this call apart from a later one for the same key.
    id: u64,
    flight: Flight<V>,
    deadline: Instant,
}

type Table<K, V> = Mutex<HashMap<K, Entry<V>>>;

/// Runs at most one future per key at a time; concurrent callers with the same key
/// await the same result (see the module docs for deadlines and runtimes).
pub(crate) struct SingleFlight<K, V: Clone> {
    flights: Arc<Table<K, V>>,
    /// Callers that joined a call in progress instead of starting one.
    joined: AtomicU64,
    next_id: AtomicU64,
    /// How long after its start a call is waited for by callers that joined it.
    deadline: Duration,
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Calls whose callers wait for them at most `deadline` after they start.
    pub(crate) fn new(deadline: Duration) -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
            joined: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            deadline,
        }
    }

    /// Joins the call in progress for `key`, or starts `make()` as that call; once
    /// more (a new call, or one started since) when a joined call ended without an
    /// answer or passed its deadline. `None` when the call's task panicked or its
    /// runtime shut down, or when there is no Tokio runtime to run it on (a caller
    /// outside one).
    ///
    /// The call is in the table before its work is spawned, and leaves it only once the
    /// work finished, panicked or was dropped with its runtime (or a later call took
    /// its place after its deadline): whoever sees an effect of the work and then asks
    /// [`in_flight`](Self::in_flight) finds the call in progress, or the work over.
    pub(crate) async fn run<F, Fut>(&self, key: K, make: F) -> Option<V>
    where
        F: FnOnce() -> Fut + Clone,
        Fut: Future<Output = V> + Send + 'static,
    {
        // Without a runtime there is nothing to run the work on.
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        match self.attempt(&runtime, key.clone(), make.clone()).await {
            (_, Ok(value)) => Some(value),
            // A call of another runtime that went away or sits idle: make it here.
            (Role::Joined, Err(Ended::Abandoned | Ended::Stuck)) => {
                self.attempt(&runtime, key, make).await.1.ok()
            }
            // Our own call panicked, or our own runtime dropped it.
            (_, Err(_)) => None,
        }
    }

    /// One call: joined (until its deadline) or started (and awaited).
    async fn attempt<F, Fut>(
        &self,
        runtime: &tokio::runtime::Handle,
        key: K,
        make: F,
    ) -> (Role, Result<V, Ended>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        match self.join_or_start(runtime, key.clone(), make) {
            Joined::Started(flight) => (Role::Started, flight.await),
            Joined::Joined {
                flight,
                id,
                deadline,
            } => match tokio::time::timeout_at(deadline, flight).await {
                Ok(answer) => (Role::Joined, answer),
                Err(_) => {
                    self.forget(&key, id);
                    (Role::Joined, Err(Ended::Stuck))
                }
            },
        }
    }

    /// Whether a call for `key` is in progress (within its deadline).
    pub(crate) fn in_flight(&self, key: &K) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|entry| Instant::now() < entry.deadline)
    }

    /// How many callers so far joined a call in progress instead of starting one.
    pub(crate) fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }

    fn join_or_start<F, Fut>(&self, runtime: &tokio::runtime::Handle, key: K, make: F) -> Joined<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (flight, id, done, work) = {
            let mut flights = self.lock();
            let now = Instant::now();
            if let Some(entry) = flights.get(&key)
                && now < entry.deadline
            {
                self.joined.fetch_add(1, Ordering::Relaxed);
                return Joined::Joined {
                    flight: entry.flight.clone(),
                    id: entry.id,
                    deadline: entry.deadline,
                };
            }
            // Before the insert: a `make` that panics leaves nothing behind.
            let work = make();
            let (done, answer) = tokio::sync::oneshot::channel();
            let flight = async move { answer.await.unwrap_or(Err(Ended::Abandoned)) }
                .boxed()
                .shared();
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            // Replaces a call past its deadline (stuck on an idle runtime).
            flights.insert(
                key.clone(),
                Entry {
                    id,
                    flight: flight.clone(),
                    deadline: now + self.deadline,
                },
            );
            (flight, id, done, work)
        };
        // The call is in the table before its work is spawned, and the table is not
        // locked while spawning: a runtime that is shutting down drops the task at
        // once, and the guard below then takes the lock.
        let leave = Leave {
            table: Arc::downgrade(&self.flights),
            key,
            id,
        };
        let task = async move {
            // Dropped when the work ends, panics, or is dropped with its runtime: a
            // call that can no longer finish must not stay in the table (and its
            // callers then learn why, from `done`).
            let leave = leave;
            let value = std::panic::AssertUnwindSafe(work).catch_unwind().await;
            drop(leave);
            let _ = done.send(value.map_err(|_| Ended::Panicked));
        };
        runtime.spawn(task);
        Joined::Started(flight)
    }

    /// Removes the call `id` for `key`, if it is still the one in the table.
    fn forget(&self, key: &K, id: u64) {
        remove(&self.flights, key, id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a caller started the call it waited for, or joined it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Started,
    Joined,
}

/// A caller's part in a call, and what to await.
enum Joined<V: Clone> {
    Started(Flight<V>),
    Joined {
        flight: Flight<V>,
        id: u64,
        deadline: Instant,
    },
}

fn remove<K: Hash + Eq, V: Clone>(table: &Table<K, V>, key: &K, id: u64) {
    let mut flights = table.lock().unwrap_or_else(PoisonError::into_inner);
    if flights.get(key).is_some_and(|entry| entry.id == id) {
        flights.remove(key);
    }
}

/// Removes a call from the table when dropped (unless a later call took its place).
struct Leave<K: Hash + Eq, V: Clone> {
    table: Weak<Table<K, V>>,
    key: K,
    id: u64,
}

impl<K: Hash + Eq, V: Clone> Drop for Leave<K, V> {
    fn drop(&mut self) {
        if let Some(table) = self.table.upgrade() {
            remove(&table, &self.key, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const MINUTE: Duration = Duration::from_secs(60);

    /// A caller outside any Tokio runtime (a plain executor) gets `None` at once,
    /// instead of a panic, and leaves nothing in the table.
    #[test]
    fn outside_a_runtime_the_call_ends_without_an_answer() {
        let sf = SingleFlight::<u32, u32>::new(MINUTE);
        let mut call = std::pin::pin!(sf.run(1, || async { 7 }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert_eq!(call.as_mut().poll(&mut cx), std::task::Poll::Ready(None));
        assert!(!sf.in_flight(&1));
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let sf = Arc::new(SingleFlight::<&'static str, usize>::new(MINUTE));
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
        let sf = SingleFlight::<u32, u32>::new(MINUTE);
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
            let sf = SingleFlight::<u8, u8>::new(MINUTE);
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
        let sf = SingleFlight::<u8, u8>::new(MINUTE);
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
        let sf = SingleFlight::<u8, u8>::new(MINUTE);
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

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// Polls `fut` once on `runtime`: the call starts (or is joined), and stays pending.
    fn poll_once<F: Future + Unpin>(runtime: &tokio::runtime::Runtime, fut: &mut F) {
        runtime.block_on(std::future::poll_fn(|_| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(std::pin::Pin::new(&mut *fut).poll(&mut cx).is_pending());
            std::task::Poll::Ready(())
        }));
    }

    /// A call started on runtime A and joined from runtime B: when A shuts down, B
    /// makes the call itself instead of ending without an answer.
    #[test]
    fn a_joiner_makes_the_call_when_the_starters_runtime_shuts_down() {
        let sf = Arc::new(SingleFlight::<u8, u8>::new(MINUTE));
        let a = current_thread();
        let mut started = Box::pin(sf.run(0, std::future::pending::<u8>));
        poll_once(&a, &mut started);
        assert!(sf.in_flight(&0));
        let b = current_thread();
        let mut joined = Box::pin(sf.run(0, || async { 5 }));
        poll_once(&b, &mut joined);
        assert_eq!(sf.joined(), 1);
        drop(started);
        drop(a);
        assert_eq!(b.block_on(joined), Some(5));
        assert!(!sf.in_flight(&0));
    }

    /// A call whose runtime sits idle never ends: a caller that joined it gives up at
    /// its deadline and makes the call itself; a caller after the deadline does not
    /// join it at all.
    #[test]
    fn a_call_stuck_on_an_idle_runtime_is_given_up_at_its_deadline() {
        // A deadline no pause of a loaded machine reaches between the two calls.
        let sf = Arc::new(SingleFlight::<u8, u8>::new(Duration::from_secs(1)));
        let idle = current_thread();
        let other = current_thread();
        let mut stuck = Box::pin(sf.run(0, || async { 1 }));
        // Started (in the table, its task spawned on `idle`), never run.
        poll_once(&idle, &mut stuck);
        assert_eq!(other.block_on(sf.run(0, || async { 2 })), Some(2));
        assert_eq!(sf.joined(), 1, "joined the stuck call first");
        assert_eq!(other.block_on(sf.run(0, || async { 3 })), Some(3));
        assert_eq!(sf.joined(), 1, "the stuck call is no longer joined");
        // The stuck call's task runs at last: it does not remove a later call.
        let mut later = Box::pin(sf.run(0, std::future::pending::<u8>));
        poll_once(&other, &mut later);
        assert_eq!(idle.block_on(stuck), Some(1));
        assert!(sf.in_flight(&0), "the later call is still in the table");
    }
}
