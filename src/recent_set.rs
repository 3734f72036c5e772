//! [`RecentSet`]: the most recently added keys, each remembered for a limited time.
//!
//! Holds the logout denylist and the credentials Stytch said are gone. When full, the
//! *oldest* entry goes first. A general-purpose cache is the wrong tool here: its
//! eviction favours entries that are read, and a denylist entry is typically never
//! read again, so a full cache may evict the session logged out a moment ago and let
//! its JWT verify again. Time comes from the caller (the injected clock).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// At most `capacity` keys, each for `ttl` after it was (last) added.
pub(crate) struct RecentSet<K> {
    state: Mutex<State<K>>,
    capacity: usize,
    ttl: Duration,
}

struct State<K> {
    /// Key → (sequence number of its latest insert, when).
    added: HashMap<K, (u64, SystemTime)>,
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
            capacity: crate::bounded_cache::capacity(capacity),
            ttl,
        }
    }

    /// Adds `key` at `now`, forgetting expired keys and, when full, the oldest.
    pub(crate) fn insert(&self, key: K, now: SystemTime) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        let seq = state.next;
        state.next += 1;
        state.added.insert(key.clone(), (seq, now));
        state.order.push_back((key, seq));
        while let Some((front, front_seq)) = state.order.front() {
            match state.added.get(front) {
                Some(&(latest, at)) if latest == *front_seq => {
                    let expired = now.duration_since(at).unwrap_or(Duration::ZERO) >= self.ttl;
                    if !expired && state.added.len() <= self.capacity {
                        break;
                    }
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
                .retain(|(k, seq)| added.get(k).is_some_and(|(latest, _)| latest == seq));
        }
    }

    /// Whether `key` was added less than `ttl` before `now`.
    pub(crate) fn contains<Q>(&self, key: &Q, now: SystemTime) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .added
            .get(key)
            .is_some_and(|&(_, at)| now.duration_since(at).unwrap_or(Duration::ZERO) < self.ttl)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(state.order.len() <= 2 * self.capacity + 17);
        state.added.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
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
