//! Revoked sessions: what a logout writes and every local verification reads.
//!
//! [`Revocations`] is the seam: record a session as revoked until a time, ask about
//! one, load many at once. The request path only ever asks, and an answer never waits
//! for I/O. [`LocalRevocations`], the default, is this instance's memory; a store shared
//! by a fleet of instances wraps it (its copy answers; the fleet feeds it in the
//! background) behind the same interface.
//!
//! The memory is bounded by time and count. An entry is needed only while JWTs issued
//! before the revocation could still be trusted locally: `max_token_age` (+ leeway)
//! after it. When the count bound forces out an entry younger than its time, the layer
//! can no longer tell which session it was: every JWT issued before that moment is
//! then [`RevocationStatus::Unknown`] (confirmed with Stytch instead of trusted
//! locally), the loss is counted and warned about. Nothing revoked is ever let in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::clock::{SharedClock, unix_seconds};
use crate::diagnostics::Diagnostics;
use crate::metrics::Metrics;
use crate::util::recent_set::RecentSet;

/// What the revocations say about a session's JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevocationStatus {
    /// Not revoked, as far as is known: trust the JWT locally.
    Live,
    /// Revoked: refuse it.
    Revoked,
    /// Cannot tell (an entry that might be this session's was lost, or a fleet's feed
    /// is too stale to trust): ask Stytch.
    Unknown,
}

/// Where revoked sessions are remembered.
pub(crate) trait Revocations: Send + Sync + 'static {
    /// Records that the session `member_session_id` is revoked, to be refused on this
    /// instance until `until` (wall clock) at least, and (for a fleet's store) tells
    /// the fleet.
    fn revoke(&self, member_session_id: &str, until: SystemTime);

    /// What is known of the session `member_session_id`, for a JWT issued at
    /// `issued_at` (unix seconds).
    fn status(&self, member_session_id: &str, issued_at: u64) -> RevocationStatus;

    /// Records many revocations at once (a store's contents, loaded at start), without
    /// telling anyone.
    #[allow(
        dead_code,
        reason = "the seam for a store shared by a fleet, which loads through it"
    )]
    fn load(&self, revoked: &mut dyn Iterator<Item = (String, SystemTime)>);

    /// Whether the session is revoked (whatever its JWTs' age).
    fn is_revoked(&self, member_session_id: &str) -> bool {
        self.status(member_session_id, u64::MAX) == RevocationStatus::Revoked
    }
}

/// Told of what must not stay trusted in a cache of verified tokens.
pub(crate) struct RevocationHooks {
    /// A session was revoked: forget its tokens.
    pub(crate) revoked: Box<dyn Fn(&str) + Send + Sync>,
    /// Some tokens may no longer be trusted: check every one again.
    pub(crate) distrust: Box<dyn Fn() + Send + Sync>,
}

impl RevocationHooks {
    /// Hooks that do nothing (no cache).
    pub(crate) fn none() -> Self {
        Self {
            revoked: Box::new(|_| {}),
            distrust: Box::new(|| {}),
        }
    }
}

/// The revocations this instance knows of, in memory: at most `capacity` sessions. An
/// entry lives until its time has passed both on the wall clock and in real time (the
/// clock's monotonic reading), so no step of the wall clock shortens it.
pub(crate) struct LocalRevocations {
    clock: SharedClock,
    revoked: RecentSet<String>,
    /// Unix seconds: JWTs issued before are [`RevocationStatus::Unknown`] (0: none).
    distrust_before: AtomicU64,
    leeway_secs: u64,
    hooks: RevocationHooks,
    metrics: Arc<Metrics>,
    diagnostics: Arc<Diagnostics>,
}

impl LocalRevocations {
    /// Room for `capacity` sessions; `leeway_secs` is the clock leeway JWTs get.
    pub(crate) fn new(
        clock: SharedClock,
        capacity: usize,
        leeway_secs: u64,
        hooks: RevocationHooks,
        metrics: Arc<Metrics>,
        diagnostics: Arc<Diagnostics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            clock,
            // Each entry carries its own lifetime.
            revoked: RecentSet::new(capacity, Duration::ZERO),
            distrust_before: AtomicU64::new(0),
            leeway_secs,
            hooks,
            metrics,
            diagnostics,
        })
    }

    /// How many revoked sessions are held (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Records a revocation (from this instance or the fleet), and forgets the
    /// session's cached tokens.
    pub(crate) fn record(&self, member_session_id: &str, until: SystemTime) {
        let now = self.clock.read();
        let lifetime = until.duration_since(now.wall).unwrap_or_default();
        let lost = self
            .revoked
            .insert_for(member_session_id.to_owned(), now, lifetime);
        if lost > 0 {
            // Some revoked session is no longer known: every JWT issued before now
            // (with the leeway a JWT issued ahead of our clock gets) goes to Stytch.
            let before = unix_seconds(now.wall).saturating_add(self.leeway_secs);
            self.distrust_before.fetch_max(before, Ordering::AcqRel);
            self.metrics.revocations_lost(lost);
            self.diagnostics.revocations_lost(lost);
            (self.hooks.distrust)();
        }
        (self.hooks.revoked)(member_session_id);
    }
}

impl LocalRevocations {
    /// Every cached token must be checked again (the revocations it was checked
    /// against may no longer be trusted).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn check_all_again(&self) {
        (self.hooks.distrust)();
    }
}

impl Revocations for LocalRevocations {
    fn revoke(&self, member_session_id: &str, until: SystemTime) {
        self.record(member_session_id, until);
    }

    fn status(&self, member_session_id: &str, issued_at: u64) -> RevocationStatus {
        if self.revoked.contains(member_session_id, self.clock.read()) {
            RevocationStatus::Revoked
        } else if issued_at < self.distrust_before.load(Ordering::Acquire) {
            RevocationStatus::Unknown
        } else {
            RevocationStatus::Live
        }
    }

    fn load(&self, revoked: &mut dyn Iterator<Item = (String, SystemTime)>) {
        for (member_session_id, until) in revoked {
            self.record(&member_session_id, until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, MockClock};
    use std::sync::Mutex;

    fn local(capacity: usize) -> (MockClock, Arc<LocalRevocations>, Arc<Mutex<Vec<String>>>) {
        let mock = MockClock::new();
        let clock = SharedClock(Arc::new(mock.clone()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (revoked, distrusted) = (Arc::clone(&seen), Arc::clone(&seen));
        let hooks = RevocationHooks {
            revoked: Box::new(move |id| revoked.lock().unwrap().push(id.to_owned())),
            distrust: Box::new(move || distrusted.lock().unwrap().push("*".into())),
        };
        let revocations = LocalRevocations::new(
            clock.clone(),
            capacity,
            5,
            hooks,
            Arc::new(Metrics::default()),
            Arc::new(Diagnostics::new(clock)),
        );
        (mock, revocations, seen)
    }

    #[test]
    fn revoked_until_the_time_given_on_both_clocks() {
        let (mock, revocations, seen) = local(10);
        let hour = Duration::from_secs(3600);
        revocations.revoke("ms-1", mock.now() + hour);
        let mut loaded = [("ms-2".to_owned(), mock.now() + 2 * hour)].into_iter();
        revocations.load(&mut loaded);
        assert!(revocations.is_revoked("ms-1") && revocations.is_revoked("ms-2"));
        assert_eq!(revocations.status("ms-3", 0), RevocationStatus::Live);
        assert_eq!(*seen.lock().unwrap(), ["ms-1", "ms-2"], "the cache is told");
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

    /// When the count bound forces out a revocation still needed, no JWT issued
    /// before that moment is trusted locally any more (never let in); later ones are.
    #[test]
    fn a_lost_revocation_sends_older_jwts_to_stytch() {
        let (mock, revocations, seen) = local(2);
        let now = unix_seconds(mock.now());
        let until = mock.now() + Duration::from_secs(300);
        revocations.revoke("ms-1", until);
        revocations.revoke("ms-2", until);
        assert_eq!(
            revocations.status("ms-9", now - 100),
            RevocationStatus::Live
        );
        revocations.revoke("ms-3", until);
        assert!(!revocations.is_revoked("ms-1"), "the oldest went");
        assert_eq!(
            revocations.status("ms-1", now - 100),
            RevocationStatus::Unknown
        );
        assert_eq!(
            revocations.status("ms-9", now + 5 - 1),
            RevocationStatus::Unknown
        );
        assert_eq!(revocations.status("ms-9", now + 5), RevocationStatus::Live);
        assert_eq!(
            revocations.status("ms-3", now - 100),
            RevocationStatus::Revoked
        );
        assert!(
            seen.lock().unwrap().contains(&"*".to_owned()),
            "the cache was told"
        );
    }
}
