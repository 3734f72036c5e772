//! Revoked sessions: what a logout writes and every local verification reads.
//!
//! [`Revocations`] is the seam: record a session as revoked until a time, ask whether
//! one is, load many at once. The request path only ever asks, and an answer never
//! waits for I/O. [`LocalRevocations`], the default, is this instance's memory; a store
//! shared by a fleet of instances plugs in behind the same interface (it keeps a local
//! copy that answers, and feeds it from the fleet in the background).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::SharedClock;
use crate::util::recent_set::RecentSet;

/// Where revoked sessions are remembered.
pub(crate) trait Revocations: Send + Sync + 'static {
    /// Records that the session `member_session_id` is revoked, to be refused until
    /// `until` (wall clock) at least.
    fn revoke(&self, member_session_id: &str, until: SystemTime);

    /// Whether the session `member_session_id` is revoked now.
    fn is_revoked(&self, member_session_id: &str) -> bool;

    /// Records many revocations at once (a store's contents, loaded at start).
    #[allow(
        dead_code,
        reason = "the seam for a store shared by a fleet, which loads through it"
    )]
    fn load(&self, revoked: &mut dyn Iterator<Item = (String, SystemTime)>);
}

/// The revocations this instance has seen, in memory: at most `capacity` sessions,
/// the oldest forgotten first when full. An entry lives until its time has passed both
/// on the wall clock and in real time (the clock's monotonic reading), so no step of
/// the wall clock shortens it.
pub(crate) struct LocalRevocations {
    clock: SharedClock,
    revoked: RecentSet<String>,
}

impl LocalRevocations {
    /// Room for `capacity` sessions.
    pub(crate) fn new(clock: SharedClock, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            clock,
            // Each entry carries its own lifetime.
            revoked: RecentSet::new(capacity, Duration::ZERO),
        })
    }
}

impl Revocations for LocalRevocations {
    fn revoke(&self, member_session_id: &str, until: SystemTime) {
        let now = self.clock.read();
        let lifetime = until.duration_since(now.wall).unwrap_or_default();
        self.revoked
            .insert_for(member_session_id.to_owned(), now, lifetime);
    }

    fn is_revoked(&self, member_session_id: &str) -> bool {
        self.revoked.contains(member_session_id, self.clock.read())
    }

    fn load(&self, revoked: &mut dyn Iterator<Item = (String, SystemTime)>) {
        for (member_session_id, until) in revoked {
            self.revoke(&member_session_id, until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, MockClock};

    #[test]
    fn revoked_until_the_time_given_on_both_clocks() {
        let mock = MockClock::new();
        let revocations = LocalRevocations::new(SharedClock(Arc::new(mock.clone())), 10);
        let hour = Duration::from_secs(3600);
        revocations.revoke("ms-1", mock.now() + hour);
        let mut loaded = [("ms-2".to_owned(), mock.now() + 2 * hour)].into_iter();
        revocations.load(&mut loaded);
        assert!(revocations.is_revoked("ms-1") && revocations.is_revoked("ms-2"));
        assert!(!revocations.is_revoked("ms-3"));
        // The wall clock jumps ahead (a slow clock corrected): no time passed.
        mock.set(mock.now() + 3 * hour);
        assert!(revocations.is_revoked("ms-1"));
        mock.advance(hour);
        assert!(!revocations.is_revoked("ms-1"));
        assert!(revocations.is_revoked("ms-2"));
        mock.advance(hour);
        assert!(!revocations.is_revoked("ms-2"));
        // A time already past records nothing that lasts.
        revocations.revoke("ms-4", mock.now() - hour);
        assert!(!revocations.is_revoked("ms-4"));
    }
}
