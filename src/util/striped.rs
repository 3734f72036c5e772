//! Counters that many threads bump at once, without a cache line that every core
//! writes: each thread adds to its own stripe (a cache-line-padded block of counters),
//! and a read sums the stripes.
//!
//! One `AtomicU64` bumped by every request is a cache line that every core must own in
//! turn: with requests served on N cores at once, each increment waits for the line
//! to travel from the core that wrote it last, and the cost of an increment grows with
//! N (`benches/counters.rs`). Here a thread adds to the stripe of its *slot*: slots are
//! small integers handed out on a thread's first add, lowest free first, and given
//! back when the thread exits (as the `thread_local` crate recycles its thread ids),
//! so the threads alive at once hold distinct slots 0, 1, 2, …. With at least as many
//! stripes as threads that add (the default: twice the available parallelism, up to
//! [`MAX_STRIPES`]), no two threads share a stripe, and an add costs one uncontended
//! atomic add whatever the number of threads. More threads than stripes share some:
//! still correct (the adds are atomic), with contention only among those sharing.
//!
//! A read sums every stripe: cheap next to what it serves (a snapshot, a publication
//! at most once a second), never on the request path.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_utils::CachePadded;

/// At most this many stripes per counter set (256 × 128 bytes = 32 KB on x86-64).
pub(crate) const MAX_STRIPES: usize = 256;

/// `N` counters, striped by thread.
pub(crate) struct Striped<const N: usize> {
    stripes: Box<[CachePadded<[AtomicU64; N]>]>,
    /// `stripes.len() - 1` (a power of two minus one).
    mask: usize,
}

impl<const N: usize> Striped<N> {
    /// Twice the available parallelism in stripes (a power of two, at most
    /// [`MAX_STRIPES`]): the runtime's workers, and room for other threads.
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_stripes(cores.saturating_mul(2))
    }

    /// `stripes` stripes, rounded up to a power of two, 1 to [`MAX_STRIPES`].
    pub(crate) fn with_stripes(stripes: usize) -> Self {
        let stripes = stripes.clamp(1, MAX_STRIPES).next_power_of_two();
        Self {
            stripes: (0..stripes)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            mask: stripes - 1,
        }
    }

    /// Adds `n` to counter `counter` (below `N`) in this thread's stripe; returns that
    /// stripe's value of the counter before the add.
    #[inline]
    pub(crate) fn add(&self, counter: usize, n: u64) -> u64 {
        let stripe = &self.stripes[thread_slot() & self.mask];
        stripe[counter].fetch_add(n, Ordering::Relaxed)
    }

    /// Counter `counter`, summed over the stripes.
    pub(crate) fn sum(&self, counter: usize) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| stripe[counter].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// How many stripes there are.
    #[cfg(any(test, feature = "__internals"))]
    pub(crate) fn stripes(&self) -> usize {
        self.stripes.len()
    }
}

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A slot no thread holds.
const UNASSIGNED: usize = usize::MAX;

thread_local! {
    /// This thread's slot (`UNASSIGNED` before its first add). Read on every add:
    /// const-initialized and without a destructor, so reading it is one load.
    static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
    /// Gives the slot back when the thread exits.
    static RELEASE: Release = const { Release(Cell::new(UNASSIGNED)) };
}

/// The slots: the next never handed out, and those given back (lowest first).
struct Slots {
    next: usize,
    free: BinaryHeap<Reverse<usize>>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    next: 0,
    free: BinaryHeap::new(),
});

fn slots() -> std::sync::MutexGuard<'static, Slots> {
    SLOTS.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Release(Cell<usize>);

impl Drop for Release {
    fn drop(&mut self) {
        let slot = self.0.get();
        if slot != UNASSIGNED {
            slots().free.push(Reverse(slot));
        }
    }
}

/// This thread's slot: distinct from the slots of every other live thread.
#[inline]
pub(crate) fn thread_slot() -> usize {
    let slot = SLOT.get();
    if slot != UNASSIGNED { slot } else { assign() }
}

/// Hands this thread the lowest free slot.
#[cold]
#[inline(never)]
fn assign() -> usize {
    let slot = {
        let mut slots = slots();
        match slots.free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                slots.next += 1;
                slots.next - 1
            }
        }
    };
    // A thread adding while it exits (its thread-locals being destroyed) gives the
    // slot back at once and keeps it: another thread may then share its stripe.
    if RELEASE.try_with(|release| release.0.set(slot)).is_err() {
        slots().free.push(Reverse(slot));
    }
    SLOT.set(slot);
    slot
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_the_adds_of_every_thread() {
        let counters = Arc::new(Striped::<3>::with_stripes(4));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let counters = Arc::clone(&counters);
                s.spawn(move || {
                    for _ in 0..1_000 {
                        counters.add(0, 1);
                        counters.add(2, 3);
                    }
                });
            }
        });
        assert_eq!(
            (counters.sum(0), counters.sum(1), counters.sum(2)),
            (8_000, 0, 24_000)
        );
    }

    #[test]
    fn stripes_are_a_power_of_two_within_bounds() {
        assert_eq!(Striped::<1>::with_stripes(0).stripes(), 1);
        assert_eq!(Striped::<1>::with_stripes(3).stripes(), 4);
        assert_eq!(Striped::<1>::with_stripes(10_000).stripes(), MAX_STRIPES);
        assert!(Striped::<1>::new().stripes() >= 2);
    }

    /// Threads alive at once hold distinct slots; a slot given back by an exited
    /// thread is handed out again (so slots stay small and stripes unshared).
    #[test]
    fn live_threads_hold_distinct_slots_and_exited_threads_give_theirs_back() {
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let live: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let barrier = Arc::clone(&barrier);
                    s.spawn(move || {
                        let slot = thread_slot();
                        assert_eq!(thread_slot(), slot, "a thread keeps its slot");
                        // All four hold theirs at once.
                        barrier.wait();
                        slot
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut distinct = live.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{live:?}");
        // Those four have exited: their slots are free again (other tests' threads
        // may take some meanwhile, so only check that the slot is a small one).
        let again = std::thread::spawn(thread_slot).join().unwrap();
        assert!(again < 64, "{again}");
    }
}
