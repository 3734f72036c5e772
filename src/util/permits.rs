//! A cap on calls in flight whose permits are leases: a permit counts until it is
//! dropped or its lease ends, whichever comes first.
//!
//! A call holds its permit until it ends, whether or not anyone still waits for it. A
//! call started on a runtime that then sits idle never ends (its task is never polled
//! again): with a plain semaphore its permit would be held forever, and with a cap of
//! one every other call refused. A lease lasts as long as a call may (the deadline
//! callers wait for it, real time, as the HTTP client's timeouts), after which the
//! permit no longer counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// At most `capacity` leases at a time.
pub(crate) struct Permits {
    capacity: usize,
    lease: Duration,
    /// Lease id → when it ends.
    held: Mutex<HashMap<u64, Instant>>,
    next_id: AtomicU64,
}

/// A held permit; dropping it gives it back.
pub(crate) struct Permit {
    permits: Arc<Permits>,
    id: u64,
}

impl Permits {
    /// `capacity` permits (at least one), each leased for `lease`.
    pub(crate) fn new(capacity: usize, lease: Duration) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            lease,
            held: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A permit, unless `capacity` leases are running.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let now = Instant::now();
        let mut held = self.lock();
        if held.len() >= self.capacity {
            // Leases that ended no longer count (their calls are stuck, or gone).
            held.retain(|_, ends| now < *ends);
        }
        if held.len() >= self.capacity {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        held.insert(id, now + self.lease);
        Some(Permit {
            permits: Arc::clone(self),
            id,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.permits.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn permits_are_capped_and_leases_end() {
        let permits = Permits::new(2, Duration::from_secs(10));
        let a = permits.try_acquire().expect("one");
        let _b = permits.try_acquire().expect("two");
        assert!(permits.try_acquire().is_none(), "capped");
        drop(a);
        let _c = permits.try_acquire().expect("given back");
        assert!(permits.try_acquire().is_none());
        // Both leases end: the permits count no longer.
        tokio::time::advance(Duration::from_secs(10)).await;
        let _d = permits.try_acquire().expect("an ended lease");
        let _e = permits.try_acquire().expect("another");
        assert!(permits.try_acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_permit_dropped_after_its_lease_frees_nothing_else() {
        let permits = Permits::new(1, Duration::from_secs(10));
        let stuck = permits.try_acquire().expect("one");
        tokio::time::advance(Duration::from_secs(10)).await;
        let fresh = permits
            .try_acquire()
            .expect("the ended lease no longer counts");
        // The stuck call ends at last: the fresh lease still counts.
        drop(stuck);
        assert!(permits.try_acquire().is_none());
        drop(fresh);
        assert!(permits.try_acquire().is_some());
    }
}
