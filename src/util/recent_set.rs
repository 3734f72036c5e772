//! [`RecentSet`]: the most recently added keys, each remembered for a limited time.
//!
//! Holds the logout denylist and the credentials Stytch said are gone. When full, the
//! *oldest* entry goes first. A general-purpose cache is the wrong tool here: its
//! eviction favours entries that are read, and a denylist entry is typically never
//! read again, so a full cache may evict the session logged out a moment ago and let
//! its JWT verify again. Time comes from the caller (the injected clock).
//!
//! A key is forgotten only once `ttl` has passed on both of the clock's readings: the
//! monotonic one, so that a wall clock stepping forward (a slow clock corrected by
//! NTP) does not forget a logout early, and the wall one, so that a wall clock
//! stepping back keeps it too.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::clock::Reading;

/// At most `capacity` keys, each for `ttl` (or its own lifetime) after it was (last)
/// added.
pub(crate) struct RecentSet<K> {
    state: Mutex<State<K>>,
    capacity: usize,
    ttl: Duration,
}

struct State<K> {
    /// Key → (sequence number of its latest insert, when, for how long).
    added: HashMap<K, (u64, Reading, Duration)>,
    /// Inserts, oldest first. A key added again appears again; its older occurrence
    /// is stale (its sequence number no longer matches) and is skipped.
    order: VecDeque<(K, u64)>,
    next: u64,
}

impl<K: Hash + Eq + Clone> RecentSet<K> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                added: HashMap::new(),
                order: VecDeque::new(),
                next: 0,
            }),
            capacity: crate::util::bounded_cache::capacity(capacity),
            ttl,
        }
    }

    /// Adds `key` at `now`, forgetting expired keys and, when full, the oldest.
    pub(crate) fn insert(&self, key: K, now: Reading) {
        let _ = self.insert_for(key, now, self.ttl);
    }

    /// Adds `key` at `now` for `lifetime` (instead of the set's `ttl`), forgetting
    /// expired keys and, when full, the oldest. Returns how many keys were forgotten
    /// before their time for want of room (zero while the capacity suffices).
    pub(crate) fn insert_for(&self, key: K, now: Reading, lifetime: Duration) -> usize {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let seq = state.next;
        state.next += 1;
        state.added.insert(key.clone(), (seq, now, lifetime));
        state.order.push_back((key, seq));
        // Full: first forget every expired key, wherever it is in the order (keys live
        // for different times), and only then the oldest live ones.
        if state.added.len() > self.capacity {
            state
                .added
                .retain(|_, &mut (_, at, lifetime)| !expired(at, lifetime, now));
        }
        let mut evicted_live = 0;
        while let Some((front, front_seq)) = state.order.front() {
            match state.added.get(front) {
                Some(&(latest, at, lifetime)) if latest == *front_seq => {
                    let live = !expired(at, lifetime, now);
                    if live && state.added.len() <= self.capacity {
                        break;
                    }
                    evicted_live += usize::from(live);
                    state.added.remove(front);
                }
                // Stale: the key was added again later (or already forgotten).
                _ => {}
            }
            state.order.pop_front();
        }
        // A key added again and again leaves stale occurrences behind a live front.
        if state.order.len() > self.capacity.saturating_mul(2).saturating_add(16) {
            let added = &state.added;
            state
                .order
                .retain(|(k, seq)| added.get(k).is_some_and(|(latest, ..)| latest == seq));
        }
        evicted_live
    }

    /// Whether `key` was added less than its lifetime before `now` (by either reading).
    pub(crate) fn contains<Q>(&self, key: &Q, now: Reading) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .added
            .get(key)
            .is_some_and(|&(_, at, lifetime)| !expired(at, lifetime, now))
    }

    /// How many keys are held (expired ones included until an insert past the
    /// capacity forgets them).
    #[cfg(any(test, feature = "metrics"))]
    pub(crate) fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        #[cfg(test)]
        assert!(state.order.len() <= 2 * self.capacity + 17);
        state.added.len()
    }
}

/// Whether a key added `at` for `lifetime` is forgotten at `now`: the lifetime has
/// passed by the monotonic reading and by the wall clock (unknown, so not passed, when
/// it stepped back before `at`).
fn expired(at: Reading, lifetime: Duration, now: Reading) -> bool {
    let real = now.mono.saturating_duration_since(at.mono);
    let wall = now.wall.duration_since(at.wall).unwrap_or(Duration::ZERO);
    real >= lifetime && wall >= lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Instant, SystemTime};

    const HOUR: Duration = Duration::from_secs(3600);

    /// A reading `secs` into a run whose wall clock never stepped.
    fn at(secs: u64) -> Reading {
        stepped(secs, secs)
    }

    /// A reading `real` seconds into a run, with the wall clock reading `wall`.
    fn stepped(real: u64, wall: u64) -> Reading {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        Reading {
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(wall),
            mono: origin + Duration::from_secs(real),
        }
    }

    #[test]
    fn when_full_the_oldest_go_first_and_the_newest_stay() {
        let set = RecentSet::new(100, HOUR);
        for i in 0..10_000u32 {
            set.insert(i.to_string(), at(1));
            // The key just added is always there, however many came before.
            assert!(set.contains(i.to_string().as_str(), at(1)), "{i}");
        }
        assert_eq!(set.len(), 100);
        assert!((9_900..10_000).all(|i| set.contains(i.to_string().as_str(), at(1))));
        assert!(!set.contains("9899", at(1)));
        assert!(!set.contains("0", at(1)));
    }

    #[test]
    fn keys_expire_after_the_ttl_by_the_given_time() {
        let set = RecentSet::new(100, HOUR);
        set.insert("a".to_string(), at(1_000));
        assert!(set.contains("a", at(1_000 + 3_599)));
        assert!(!set.contains("a", at(1_000 + 3_600)));
        // Expired keys are dropped on the next insert.
        set.insert("b".to_string(), at(10_000));
        assert_eq!(set.len(), 1);
    }

    /// A logout recorded while the wall clock was two hours behind is remembered for
    /// its hour of real time once NTP corrects the clock a minute later; a wall clock
    /// stepped back keeps it too.
    #[test]
    fn keys_outlive_wall_clock_steps_in_either_direction() {
        let set = RecentSet::new(100, HOUR);
        let behind = 100_000 - 7_200;
        set.insert("a".to_string(), stepped(0, behind));
        assert!(
            set.contains("a", stepped(60, 100_060)),
            "forgotten when corrected"
        );
        // Inserts after the correction do not drop it either.
        set.insert("b".to_string(), stepped(70, 100_070));
        assert!(set.contains("a", stepped(70, 100_070)));
        assert!(set.contains("a", stepped(3_599, 103_599)));
        assert!(
            !set.contains("a", stepped(3_600, 103_600)),
            "an hour has passed"
        );
        // Stepped back by a day, an hour later: the wall clock says no time passed.
        set.insert("c".to_string(), stepped(10_000, 200_000));
        assert!(set.contains("c", stepped(13_600, 200_000 - 86_400 + 3_600)));
    }

    /// Keys of different lifetimes: when full, the expired ones go first wherever they
    /// are; a live key forgotten for want of room is counted.
    #[test]
    fn when_full_expired_keys_go_before_live_ones_and_live_losses_are_counted() {
        let set = RecentSet::new(3, HOUR);
        assert_eq!(set.insert_for("long".to_string(), at(0), HOUR), 0);
        assert_eq!(
            set.insert_for("short-1".to_string(), at(0), Duration::from_secs(10)),
            0
        );
        assert_eq!(
            set.insert_for("short-2".to_string(), at(0), Duration::from_secs(10)),
            0
        );
        // At 20 s both short keys have expired: room without losing the long one.
        assert_eq!(set.insert_for("a".to_string(), at(20), HOUR), 0);
        assert_eq!(set.insert_for("b".to_string(), at(20), HOUR), 0);
        assert!(set.contains("long", at(20)));
        // Full of live keys: the oldest live one goes, and is counted.
        assert_eq!(set.insert_for("c".to_string(), at(20), HOUR), 1);
        assert!(!set.contains("long", at(20)));
        assert!(set.contains("c", at(20)));
    }

    #[test]
    fn a_key_added_again_is_remembered_from_its_latest_insert() {
        let set = RecentSet::new(3, HOUR);
        set.insert("a".to_string(), at(1));
        set.insert("b".to_string(), at(1));
        set.insert("a".to_string(), at(1));
        set.insert("c".to_string(), at(1));
        set.insert("d".to_string(), at(1));
        // "b" was the oldest live insert; "a" was renewed after it.
        assert!(!set.contains("b", at(1)));
        assert!(set.contains("a", at(1)) && set.contains("c", at(1)) && set.contains("d", at(1)));
        for _ in 0..1_000 {
            set.insert("a".to_string(), at(1));
        }
        assert_eq!(set.len(), 3, "stale occurrences are compacted");
        assert!(set.contains("c", at(1)) && set.contains("d", at(1)));
    }
}
