//! Revocations shared by a fleet of instances through Redis (feature `redis`).
//!
//! Every instance keeps its own copy ([`LocalRevocations`]), which alone answers
//! requests: **nothing on the request path touches Redis**. A background thread of its
//! own (with its own Tokio runtime, so no application runtime going away or sitting
//! idle can stop it) keeps the copy in step with the fleet:
//!
//! 1. subscribes to the project's channel, *then* loads the sorted set of live
//!    revocations (so that nothing published between the two is missed), and applies
//!    each message as it arrives;
//! 2. publishes this instance's revocations (a logout, a session Stytch said is gone)
//!    from a bounded outbox: added to the set and published on the channel;
//! 3. after a lost connection, reconnects (backing off up to 5 s), resubscribes and
//!    reloads: a revocation published while it was cut off is applied all the same.
//!
//! The set is scored by the time until which each session must be refused: now +
//! `max_token_age` + leeway is enough, as a JWT older than that is sent to Stytch,
//! which knows the session is gone. While an instance cannot hear the fleet, it
//! accepts a JWT revoked elsewhere until it is that old (the single-instance window);
//! [`revocation_feed_max_staleness`](crate::StytchAuthBuilder::revocation_feed_max_staleness)
//! makes it ask Stytch instead, past a staleness of the feed.

mod message;
mod sync;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::clock::SharedClock;
use crate::diagnostics::Diagnostics;
use crate::metrics::Metrics;
use crate::revocation::{LocalRevocations, RevocationStatus, Revocations};
use crate::timestamp::saturating_add;

pub(crate) use message::Keys;
use message::Revocation;

/// Revocations waiting to be published, at most (the oldest go first when full).
const OUTBOX_CAPACITY: usize = 10_000;

/// How to reach the fleet.
#[derive(Clone)]
pub(crate) struct FleetSettings {
    /// `redis://`, `rediss://` (TLS), or `redis+unix://`; credentials in the URL.
    pub(crate) url: String,
    pub(crate) keys: Keys,
    /// How long the fleet refuses a revoked session: `max_token_age` + leeway.
    pub(crate) ttl: Duration,
    /// Past this long without the feed, JWTs are confirmed with Stytch.
    pub(crate) max_staleness: Option<Duration>,
    /// Each Redis command's (and connection's) deadline.
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for FleetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetSettings")
            .field("url", &crate::client::redacted_url(&self.url))
            .field("keys", &self.keys)
            .field("ttl", &self.ttl)
            .field("max_staleness", &self.max_staleness)
            .finish()
    }
}

/// Whether `url` is one the Redis client can use (checked when the layer is built).
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", crate::client::redacted_url(url)))
}

/// What the background thread and the request path share.
pub(crate) struct Shared {
    local: Arc<LocalRevocations>,
    clock: SharedClock,
    outbox: std::sync::Mutex<std::collections::VecDeque<Revocation>>,
    /// Wakes the thread when the outbox has something.
    outbox_ready: tokio::sync::Notify,
    /// Monotonic milliseconds (since `origin`) the feed was last known whole:
    /// subscribed, loaded, answering. 0: never.
    heard_at: AtomicU64,
    origin: Instant,
    /// The first load is done (`warm_up` waits for it).
    loaded: tokio::sync::watch::Sender<bool>,
    /// The thread is told to stop (the layer was dropped).
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    diagnostics: Arc<Diagnostics>,
    max_staleness: Option<Duration>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(
            self.clock
                .monotonic()
                .saturating_duration_since(self.origin)
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
        .max(1)
    }

    /// The feed is whole now.
    fn heard(&self) {
        self.heard_at.store(self.now_ms(), Ordering::Release);
    }

    /// Whether the feed has been silent for longer than the staleness allowed (only
    /// with [`FleetSettings::max_staleness`]).
    fn stale(&self) -> bool {
        let Some(max) = self.max_staleness else {
            return false;
        };
        let heard = self.heard_at.load(Ordering::Acquire);
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        heard == 0 || self.now_ms().saturating_sub(heard) > max_ms
    }
}

/// Revocations kept in step with a fleet through Redis.
pub(crate) struct FleetRevocations {
    shared: Arc<Shared>,
    ttl: Duration,
}

impl FleetRevocations {
    /// Starts the background thread for `settings`, feeding `local`.
    pub(crate) fn start(
        settings: FleetSettings,
        local: Arc<LocalRevocations>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        diagnostics: Arc<Diagnostics>,
    ) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(Shared {
            local,
            origin: clock.monotonic(),
            clock,
            outbox: std::sync::Mutex::new(std::collections::VecDeque::new()),
            outbox_ready: tokio::sync::Notify::new(),
            heard_at: AtomicU64::new(0),
            loaded: tokio::sync::watch::Sender::new(false),
            stopping: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            metrics,
            diagnostics,
            max_staleness: settings.max_staleness,
        });
        let ttl = settings.ttl;
        sync::spawn(settings, Arc::clone(&shared))?;
        Ok(Arc::new(Self { shared, ttl }))
    }

    /// Waits until the fleet's revocations were loaded once, at most `bound`: `false`
    /// when they were not (Redis unreachable: the instance starts without them).
    pub(crate) async fn loaded(&self, bound: Duration) -> bool {
        let mut loaded = self.shared.loaded.subscribe();
        tokio::time::timeout(bound, loaded.wait_for(|done| *done))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn publish(&self, revocation: Revocation) {
        let mut outbox = self
            .shared
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if outbox.len() >= OUTBOX_CAPACITY {
            outbox.pop_front();
            self.shared.metrics.revocation_unpublished();
            self.shared.diagnostics.revocation_outbox_full();
        }
        outbox.push_back(revocation);
        drop(outbox);
        self.shared.outbox_ready.notify_one();
    }
}

impl Drop for FleetRevocations {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.stop.notify_waiters();
        self.shared.outbox_ready.notify_one();
    }
}

impl Revocations for FleetRevocations {
    fn revoke(&self, member_session_id: &str, until: SystemTime) {
        self.shared.local.record(member_session_id, until);
        // The fleet needs it only while such JWTs could be trusted locally.
        let fleet_until = until.min(saturating_add(self.shared.clock.now(), self.ttl));
        self.publish(Revocation {
            member_session_id: member_session_id.to_owned(),
            until_ms: crate::clock::unix_millis(fleet_until),
        });
    }

    fn status(&self, member_session_id: &str, issued_at: u64) -> RevocationStatus {
        match self.shared.local.status(member_session_id, issued_at) {
            // Cannot hear the fleet for too long: not trusted locally.
            RevocationStatus::Live if self.shared.stale() => RevocationStatus::Unknown,
            status => status,
        }
    }

    fn load(&self, revoked: &mut dyn Iterator<Item = (String, SystemTime)>) {
        self.shared.local.load(revoked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, MockClock};
    use crate::revocation::RevocationHooks;

    /// A store whose thread never reaches Redis (nothing listens on port 9): what the
    /// request path sees does not depend on it.
    fn store(max_staleness: Option<Duration>) -> (MockClock, Arc<FleetRevocations>) {
        let mock = MockClock::new();
        let clock = SharedClock(Arc::new(mock.clone()));
        let metrics = Arc::new(Metrics::default());
        let diagnostics = Arc::new(Diagnostics::new(clock.clone()));
        let local = LocalRevocations::new(
            clock.clone(),
            100,
            5,
            RevocationHooks::none(),
            Arc::clone(&metrics),
            Arc::clone(&diagnostics),
        );
        let settings = FleetSettings {
            url: "redis://127.0.0.1:9".into(),
            keys: Keys::new("axum-stytch:", "project-test-1"),
            ttl: Duration::from_secs(305),
            max_staleness,
            timeout: Duration::from_millis(100),
        };
        let store = FleetRevocations::start(settings, local, clock, metrics, diagnostics)
            .expect("the thread");
        (mock, store)
    }

    fn outbox(store: &FleetRevocations) -> Vec<Revocation> {
        store
            .shared
            .outbox
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    /// A revocation is refused here at once, and queued for the fleet with at most
    /// the fleet's time (max_token_age + leeway), whatever Redis does.
    #[test]
    fn a_revocation_is_local_at_once_and_queued_for_the_fleet() {
        let (mock, store) = store(None);
        let now = mock.now();
        store.revoke("ms-1", now + Duration::from_secs(3600));
        assert!(store.is_revoked("ms-1"));
        let queued = outbox(&store);
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].member_session_id, "ms-1");
        assert_eq!(queued[0].until(), now + Duration::from_secs(305));
        // The instance's own entry lasts the hour it was given.
        mock.advance(Duration::from_secs(400));
        assert!(store.is_revoked("ms-1"));
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_counts_it() {
        let (mock, store) = store(None);
        let until = mock.now() + Duration::from_secs(60);
        for i in 0..=OUTBOX_CAPACITY {
            store.publish(Revocation {
                member_session_id: format!("ms-{i}"),
                until_ms: crate::clock::unix_millis(until),
            });
        }
        let queued = outbox(&store);
        assert_eq!(queued.len(), OUTBOX_CAPACITY);
        assert_eq!(queued[0].member_session_id, "ms-1");
        assert_eq!(store.shared.metrics.snapshot(0).revocations_unpublished, 1);
    }

    /// Off by default: a silent feed changes nothing locally. With a maximum
    /// staleness, a feed never heard (or silent for longer) makes every JWT not known
    /// to be revoked unknown: confirmed with Stytch.
    #[test]
    fn only_the_strict_choice_distrusts_a_silent_feed() {
        let (mock, relaxed) = store(None);
        mock.advance(Duration::from_secs(3600));
        assert_eq!(relaxed.status("ms-1", 0), RevocationStatus::Live);
        let (mock, strict) = store(Some(Duration::from_secs(10)));
        assert_eq!(
            strict.status("ms-1", 0),
            RevocationStatus::Unknown,
            "never heard"
        );
        strict.shared.heard();
        assert_eq!(strict.status("ms-1", 0), RevocationStatus::Live);
        mock.advance(Duration::from_secs(10));
        assert_eq!(strict.status("ms-1", 0), RevocationStatus::Live);
        mock.advance(Duration::from_secs(1));
        assert_eq!(strict.status("ms-1", 0), RevocationStatus::Unknown);
        strict.revoke("ms-2", mock.now() + Duration::from_secs(60));
        assert_eq!(strict.status("ms-2", 0), RevocationStatus::Revoked);
    }

    #[test]
    fn debug_hides_the_password() {
        let settings = FleetSettings {
            url: "rediss://user:hunter2@redis.example.com:6380".into(),
            keys: Keys::new("p:", "project-test-1"),
            ttl: Duration::from_secs(1),
            max_staleness: None,
            timeout: Duration::from_secs(1),
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(check_url("not a url").is_err());
        let refused = check_url("redis://user:hunter2@").unwrap_err();
        assert!(!refused.contains("hunter2"), "{refused}");
    }
}
