//! Publication through the `metrics` crate's facade (feature `metrics`): the names,
//! their labels and descriptions, and when they are published (see the parent
//! module's docs). README's "Metrics" table lists the same names.
//!
//! Labels take values from fixed sets only (a method, a [`Reason`], a cache, an
//! endpoint, a result class): never a token, an id, a URL or an error message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};

use super::{Metrics, MetricsSnapshot};
use crate::client::{Call, CallObserver};
use crate::clock::SharedClock;
use crate::rejection::Reason;

/// Callers authenticated (members, machine tokens), by `method`.
pub(crate) const AUTHENTICATIONS: &str = "axum_stytch_authentications_total";
/// Requests not authenticated or not authorized, by `reason`.
pub(crate) const FAILURES: &str = "axum_stytch_auth_failures_total";
pub(crate) const JWT_VERIFICATIONS: &str = "axum_stytch_jwt_verifications_total";
pub(crate) const COALESCED: &str = "axum_stytch_coalesced_authentications_total";
pub(crate) const UNVERIFIED_REFUSED: &str = "axum_stytch_unverified_authentications_refused_total";
pub(crate) const RENEWALS: &str = "axum_stytch_session_renewals_total";
pub(crate) const JWKS_FETCHES: &str = "axum_stytch_jwks_fetches_total";
pub(crate) const JWKS_FETCH_FAILURES: &str = "axum_stytch_jwks_fetch_failures_total";
pub(crate) const POLICY_FETCHES: &str = "axum_stytch_policy_fetches_total";
pub(crate) const POLICY_FETCH_FAILURES: &str = "axum_stytch_policy_fetch_failures_total";
pub(crate) const REVOCATIONS_LOST: &str = "axum_stytch_revocations_lost_total";
pub(crate) const FLEET_PUBLISHED: &str = "axum_stytch_fleet_revocations_published_total";
pub(crate) const FLEET_RECEIVED: &str = "axum_stytch_fleet_revocations_received_total";
pub(crate) const FLEET_UNPUBLISHED: &str = "axum_stytch_fleet_revocations_unpublished_total";
pub(crate) const FLEET_MALFORMED: &str = "axum_stytch_fleet_messages_malformed_total";
pub(crate) const FLEET_FAILURES: &str = "axum_stytch_fleet_connection_failures_total";
/// Calls to Stytch, by `endpoint` and `result`.
pub(crate) const API_REQUESTS: &str = "axum_stytch_api_requests_total";
/// Their latency, by `endpoint` and `result`.
pub(crate) const API_DURATION: &str = "axum_stytch_api_request_duration_seconds";
/// Entries held, by `cache`.
pub(crate) const CACHE_ENTRIES: &str = "axum_stytch_cache_entries";

/// How often, at most, the layer publishes by itself.
const PERIOD: Duration = Duration::from_secs(1);
/// A per-request count reaching a multiple of this in its stripe checks whether a
/// publication is due (a power of two: the check is a bit test).
const CHECK_EVERY: u64 = 16;

/// What a publication reads: the layer's engine.
pub(crate) trait Source: Send + Sync {
    /// The counters (as [`StytchAuth::metrics`](crate::StytchAuth::metrics) reads them).
    fn snapshot(&self) -> MetricsSnapshot;
    /// The caches' sizes.
    fn cache_entries(&self) -> CacheEntries;
    /// The counters' own state.
    fn metrics(&self) -> &Metrics;
}

/// Entries held by each size-bounded store, published as `axum_stytch_cache_entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheEntries {
    pub(crate) verified_tokens: usize,
    pub(crate) revocations: usize,
    pub(crate) org_policies: usize,
    pub(crate) gone_credentials: usize,
    pub(crate) confirmed_tokens: usize,
}

/// Publishes the counters' increments and the caches' sizes.
pub(crate) struct Exporter {
    clock: SharedClock,
    /// The monotonic reading `next_due` counts from.
    origin: Instant,
    /// Nanoseconds after `origin` before which the layer does not publish by itself.
    next_due: AtomicU64,
    /// The counters as last published (`None`: never published, nothing described).
    published: Mutex<Option<Vec<u64>>>,
    source: OnceLock<Weak<dyn Source>>,
}

impl Exporter {
    pub(crate) fn new(clock: SharedClock) -> Self {
        Self {
            origin: clock.monotonic(),
            clock,
            next_due: AtomicU64::new(0),
            published: Mutex::new(None),
            source: OnceLock::new(),
        }
    }

    /// What publications read (set once, when the engine is shared).
    pub(crate) fn read_from(&self, source: Weak<dyn Source>) {
        let _ = self.source.set(source);
    }

    /// A per-request counter was bumped from `before` in its stripe, at the monotonic
    /// reading `now` if the request took one: every [`CHECK_EVERY`]th bump checks
    /// whether a publication is due.
    #[inline]
    pub(crate) fn counted(&self, before: u64, now: Option<Instant>) {
        if before % CHECK_EVERY == CHECK_EVERY - 1 {
            self.publish_if_due(now.unwrap_or_else(|| self.clock.monotonic()));
        }
    }

    fn since_origin(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Publishes, on the runtime (or here, outside one), when a second has passed since
    /// the last publication by the monotonic reading `now`; only the caller that claims
    /// the period does.
    #[cold]
    fn publish_if_due(&self, now: Instant) {
        let now = self.since_origin(now);
        let due = self.next_due.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(u64::try_from(PERIOD.as_nanos()).unwrap_or(u64::MAX));
        if self
            .next_due
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let Some(source) = self.source.get().cloned() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Some(source) = source.upgrade() {
                        source.metrics().export.publish(&*source);
                    }
                });
            }
            Err(_) => {
                if let Some(source) = source.upgrade() {
                    self.publish(&*source);
                }
            }
        }
    }

    /// Publishes now: the counters' increments since the last publication, and the
    /// caches' sizes. The first publication describes every name, and publishes every
    /// counter (zeros included, so that each series exists from the start).
    ///
    /// The counters are read under the lock: a publication that read them earlier
    /// cannot publish after a later one and move `published` back (which would publish
    /// the same increments twice).
    pub(crate) fn publish(&self, source: &dyn Source) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let snapshot = source.snapshot();
        let entries = source.cache_entries();
        let first = published.is_none();
        if first {
            describe();
        }
        let counters = counters(&snapshot);
        let before = published.get_or_insert_with(|| vec![0; counters.len()]);
        for ((name, label, value), last) in counters.iter().zip(before.iter_mut()) {
            let delta = value.saturating_sub(*last);
            if delta > 0 || first {
                match label {
                    Some((key, value)) => counter!(*name, *key => *value).increment(delta),
                    None => counter!(*name).increment(delta),
                }
            }
            *last = *value;
        }
        for (cache, size) in [
            ("verified_tokens", entries.verified_tokens),
            ("revocations", entries.revocations),
            ("org_policies", entries.org_policies),
            ("gone_credentials", entries.gone_credentials),
            ("confirmed_tokens", entries.confirmed_tokens),
        ] {
            gauge!(CACHE_ENTRIES, "cache" => cache).set(size as f64);
        }
    }

    /// Publishes now, from the engine this exporter reads (when it is still there).
    pub(crate) fn publish_now(&self) {
        if let Some(source) = self.source.get().and_then(Weak::upgrade) {
            self.publish(&*source);
        }
    }
}

/// Every counter published, with its label and its value in `s`, always in the same
/// order (publications pair them by position).
type Published = (&'static str, Option<(&'static str, &'static str)>, u64);

fn counters(s: &MetricsSnapshot) -> Vec<Published> {
    let method = |m| Some(("method", m));
    let mut all = vec![
        (AUTHENTICATIONS, method("cached"), s.cache_hits),
        (AUTHENTICATIONS, method("local"), s.verified_locally),
        (AUTHENTICATIONS, method("remote"), s.authenticated_remotely),
        (JWT_VERIFICATIONS, None, s.local_verifications),
        (COALESCED, None, s.coalesced_authentications),
        (
            UNVERIFIED_REFUSED,
            None,
            s.unverified_authentications_refused,
        ),
        (RENEWALS, None, s.renewals),
        (JWKS_FETCHES, None, s.jwks_fetches),
        (JWKS_FETCH_FAILURES, None, s.jwks_fetch_failures),
        (POLICY_FETCHES, None, s.policy_fetches),
        (POLICY_FETCH_FAILURES, None, s.policy_fetch_failures),
        (REVOCATIONS_LOST, None, s.revocations_lost),
    ];
    if cfg!(feature = "redis") {
        all.extend([
            (FLEET_PUBLISHED, None, s.revocations_published),
            (FLEET_RECEIVED, None, s.revocations_received),
            (FLEET_UNPUBLISHED, None, s.revocations_unpublished),
            (FLEET_MALFORMED, None, s.revocations_malformed),
            (FLEET_FAILURES, None, s.revocation_feed_failures),
        ]);
    }
    all.extend(
        Reason::ALL
            .iter()
            .map(|r| (FAILURES, Some(("reason", r.as_str())), s.failures_for(*r))),
    );
    all
}

/// Registers every name's description and unit with the recorder.
fn describe() {
    let counters = [
        (
            AUTHENTICATIONS,
            "Callers authenticated (members, M2M and Connected-App tokens), by method: cached (the verified-token cache), local (a JWT verified here), remote (Stytch's sessions/authenticate)",
        ),
        (
            FAILURES,
            "Requests the layer, a guard or Stytch could not authenticate or authorize, by reason (an anonymous request to a public route counts as missing_credentials)",
        ),
        (
            JWT_VERIFICATIONS,
            "JWT signatures checked locally (RSA work)",
        ),
        (
            COALESCED,
            "Requests that joined a sessions/authenticate call already in progress instead of making one",
        ),
        (
            UNVERIFIED_REFUSED,
            "Calls for session tokens never confirmed by Stytch not made, their budget spent (each request answered 503)",
        ),
        (
            RENEWALS,
            "Renewed session cookies Stytch returned for cookie requests",
        ),
        (JWKS_FETCHES, "JWKS fetches attempted"),
        (JWKS_FETCH_FAILURES, "JWKS fetches that failed"),
        (
            POLICY_FETCHES,
            "RBAC policy fetches attempted (project and organizations)",
        ),
        (
            POLICY_FETCH_FAILURES,
            "RBAC policy fetches that failed (project and organizations)",
        ),
        (
            REVOCATIONS_LOST,
            "Revoked sessions forgotten early because revocation_capacity was full",
        ),
        (
            FLEET_PUBLISHED,
            "Revocations this instance published to the fleet through Redis",
        ),
        (
            FLEET_RECEIVED,
            "Revocations received from the fleet through Redis",
        ),
        (
            FLEET_UNPUBLISHED,
            "Revocations never published: the outbox was full during a Redis outage",
        ),
        (
            FLEET_MALFORMED,
            "Messages or entries in Redis that are not revocations of this project, ignored",
        ),
        (
            FLEET_FAILURES,
            "Failed Redis connections or commands (each ends the connection, made again)",
        ),
        (
            API_REQUESTS,
            "Calls to Stytch's API, by endpoint and result",
        ),
    ];
    for (name, description) in counters {
        describe_counter!(name, Unit::Count, description);
    }
    describe_histogram!(
        API_DURATION,
        Unit::Seconds,
        "Latency of calls to Stytch's API, by endpoint and result (the injected clock's monotonic reading)"
    );
    describe_gauge!(
        CACHE_ENTRIES,
        Unit::Count,
        "Entries held by each size-bounded store, by cache"
    );
}

/// Calls to Stytch: counted and timed through the facade at once (they are rare), and
/// a publication if one is due.
impl CallObserver for Metrics {
    fn started(&self) -> Instant {
        self.export.clock.monotonic()
    }

    fn ended(&self, call: Call, started: Instant, result: &'static str) {
        let now = self.export.clock.monotonic();
        let took = now.saturating_duration_since(started);
        let endpoint = call.as_str();
        counter!(API_REQUESTS, "endpoint" => endpoint, "result" => result).increment(1);
        metrics::histogram!(API_DURATION, "endpoint" => endpoint, "result" => result)
            .record(took.as_secs_f64());
        self.export.publish_if_due(now);
    }
}

/// The engine's metrics as the client's observer.
pub(crate) fn observer(metrics: &Arc<Metrics>) -> Arc<dyn CallObserver> {
    Arc::clone(metrics) as Arc<dyn CallObserver>
}
