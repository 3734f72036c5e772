//! The layer's counters: read as a [`MetricsSnapshot`] by
//! [`StytchAuth::metrics`](crate::StytchAuth::metrics) and, with the `metrics` feature,
//! published through the `metrics` crate's facade ([`export`]), under the names of
//! README's "Metrics" table.
//!
//! # Per-request counters
//!
//! The counters a request can bump (cache hits, local verifications, members
//! authenticated, renewals, failures by reason) are [`Striped`]: each thread adds to
//! its own cache-line-padded stripe, and a read sums the stripes. One shared
//! `AtomicU64` per counter, as before, is a cache line that every core serving
//! requests writes in turn: each increment then waits for the line to come back from
//! the core that wrote it last, and costs more with every core added. Striped, an
//! increment is one uncontended atomic add on a line only its thread writes, whatever
//! the number of threads (`benches/counters.rs`, BENCHMARKS.md "Per-request
//! counters"). Threads get distinct stripes while there are at least as many stripes
//! as threads that count: the stripes are twice the available parallelism (a power
//! of two, at most 256), and a thread's slot is the lowest one free, given back when
//! it exits. On 64 cores with 64 runtime workers, that is 128 stripes of 128 bytes
//! (16 KB per layer), each worker writing its own; a snapshot or a publication reads
//! all 128 lines (a few microseconds, at most once a second). More threads than
//! stripes share some, correctly (the adds are atomic), with contention only between
//! those that share. Counters of rare events (fetches, the fleet's messages) stay one
//! `AtomicU64` each.
//!
//! # Publication (feature `metrics`)
//!
//! Nothing on the request path calls the facade: a facade counter is one shared atomic
//! in the exporter, the very line striping avoids. [`export::Exporter`] publishes the
//! increments since its last publication (of the same counters [`MetricsSnapshot`]
//! reads) and the caches' sizes, at most once a second: when a request's count in its
//! stripe reaches a multiple of 16 and a second has passed by the injected clock's
//! monotonic reading (the check costs a bit test per request and, every 16th, a
//! comparison with the reading a cache hit already took, or a clock reading on the
//! other paths), when a call to Stytch ends, and whenever
//! [`StytchAuth::publish_metrics`](crate::StytchAuth::publish_metrics) asks (from a
//! `/metrics` handler, for exact values at each scrape). The publication itself runs
//! as a task on the runtime, not in the request that noticed it was due. Calls to
//! Stytch are rare: each records its outcome and latency through the facade directly.

#[cfg(feature = "metrics")]
pub(crate) mod export;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::clock::SharedClock;
use crate::rejection::Reason;
use crate::util::striped::Striped;

/// The per-request counters: indexes into [`Metrics::hot`].
const CACHE_HITS: usize = 0;
const LOCAL_VERIFICATIONS: usize = 1;
const VERIFIED_LOCALLY: usize = 2;
const AUTHENTICATED_REMOTELY: usize = 3;
const RENEWALS: usize = 4;
/// The first of the failures, one per [`Reason`] (by [`Reason::index`]).
const FAILURES: usize = 5;
const HOT: usize = FAILURES + Reason::ALL.len();

pub(crate) struct Metrics {
    /// Bumped per request, striped by thread.
    hot: Striped<HOT>,
    remote_authentications: AtomicU64,
    unverified_refused: AtomicU64,
    revocations_lost: AtomicU64,
    revocations_published: AtomicU64,
    revocations_received: AtomicU64,
    revocations_unpublished: AtomicU64,
    revocations_malformed: AtomicU64,
    revocation_feed_failures: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_fetch_failures: AtomicU64,
    policy_fetches: AtomicU64,
    policy_fetch_failures: AtomicU64,
    #[cfg(feature = "metrics")]
    pub(crate) export: export::Exporter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(SharedClock::system())
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counters whose publication (feature `metrics`) is timed by `clock`.
    pub(crate) fn new(clock: SharedClock) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = clock;
        Self {
            hot: Striped::new(),
            remote_authentications: AtomicU64::new(0),
            unverified_refused: AtomicU64::new(0),
            revocations_lost: AtomicU64::new(0),
            revocations_published: AtomicU64::new(0),
            revocations_received: AtomicU64::new(0),
            revocations_unpublished: AtomicU64::new(0),
            revocations_malformed: AtomicU64::new(0),
            revocation_feed_failures: AtomicU64::new(0),
            jwks_fetches: AtomicU64::new(0),
            jwks_fetch_failures: AtomicU64::new(0),
            policy_fetches: AtomicU64::new(0),
            policy_fetch_failures: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            export: export::Exporter::new(clock),
        }
    }

    /// Bumps a per-request counter in this thread's stripe (and, with the `metrics`
    /// feature, checks every 16th bump whether a publication is due, reading the
    /// clock).
    #[inline]
    fn bump_hot(&self, counter: usize) {
        let before = self.hot.add(counter, 1);
        #[cfg(feature = "metrics")]
        self.export.counted(before, None);
        #[cfg(not(feature = "metrics"))]
        let _ = before;
    }

    pub(crate) fn failure(&self, reason: Reason) {
        self.bump_hot(FAILURES + reason.index());
    }

    pub(crate) fn local_verification(&self) {
        self.bump_hot(LOCAL_VERIFICATIONS);
    }

    /// A JWT accepted from the cache at the monotonic reading `now` (the request's
    /// own: the check for a publication due reads no clock on this path).
    #[inline]
    pub(crate) fn cache_hit(&self, now: Instant) {
        let before = self.hot.add(CACHE_HITS, 1);
        #[cfg(feature = "metrics")]
        self.export.counted(before, Some(now));
        #[cfg(not(feature = "metrics"))]
        let _ = (before, now);
    }

    /// A JWT verified locally was accepted (not from the cache).
    pub(crate) fn verified_locally(&self) {
        self.bump_hot(VERIFIED_LOCALLY);
    }

    /// Stytch confirmed a request's session (once per request, coalesced or not).
    pub(crate) fn authenticated_remotely(&self) {
        self.bump_hot(AUTHENTICATED_REMOTELY);
    }

    pub(crate) fn remote_authentication(&self) {
        bump(&self.remote_authentications);
    }

    pub(crate) fn unverified_refused(&self) {
        bump(&self.unverified_refused);
    }

    pub(crate) fn revocations_lost(&self, lost: usize) {
        self.revocations_lost
            .fetch_add(u64::try_from(lost).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_published(&self) {
        bump(&self.revocations_published);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_received(&self) {
        bump(&self.revocations_received);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_unpublished(&self) {
        bump(&self.revocations_unpublished);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_malformed(&self) {
        bump(&self.revocations_malformed);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_feed_failure(&self) {
        bump(&self.revocation_feed_failures);
    }

    /// Renewed credentials Stytch returned for a cookie request (per request).
    pub(crate) fn renewal(&self) {
        self.bump_hot(RENEWALS);
    }

    pub(crate) fn jwks_fetch(&self) {
        bump(&self.jwks_fetches);
    }

    pub(crate) fn jwks_fetch_failure(&self) {
        bump(&self.jwks_fetch_failures);
    }

    pub(crate) fn policy_fetch(&self) {
        bump(&self.policy_fetches);
    }

    pub(crate) fn policy_fetch_failure(&self) {
        bump(&self.policy_fetch_failures);
    }

    /// How many stripes the per-request counters have.
    #[cfg(feature = "__internals")]
    pub(crate) fn stripes(&self) -> usize {
        self.hot.stripes()
    }

    /// The counters, with `coalesced_authentications` counted by the calls' table.
    pub(crate) fn snapshot(&self, coalesced_authentications: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let hot = |counter: usize| self.hot.sum(counter);
        MetricsSnapshot {
            local_verifications: hot(LOCAL_VERIFICATIONS),
            cache_hits: hot(CACHE_HITS),
            verified_locally: hot(VERIFIED_LOCALLY),
            authenticated_remotely: hot(AUTHENTICATED_REMOTELY),
            remote_authentications: get(&self.remote_authentications),
            coalesced_authentications,
            unverified_authentications_refused: get(&self.unverified_refused),
            revocations_lost: get(&self.revocations_lost),
            revocations_published: get(&self.revocations_published),
            revocations_received: get(&self.revocations_received),
            revocations_unpublished: get(&self.revocations_unpublished),
            revocations_malformed: get(&self.revocations_malformed),
            revocation_feed_failures: get(&self.revocation_feed_failures),
            renewals: hot(RENEWALS),
            jwks_fetches: get(&self.jwks_fetches),
            jwks_fetch_failures: get(&self.jwks_fetch_failures),
            policy_fetches: get(&self.policy_fetches),
            policy_fetch_failures: get(&self.policy_fetch_failures),
            failures: Reason::ALL
                .iter()
                .map(|r| (*r, hot(FAILURES + r.index())))
                .collect(),
        }
    }
}

/// A point-in-time copy of the layer's counters (monotonic since `build()`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// JWTs whose signature was verified locally (RSA work done).
    pub local_verifications: u64,
    /// JWTs accepted from the verified-token cache (no RSA work).
    pub cache_hits: u64,
    /// JWTs verified locally and accepted (signature, claims, revocations): callers
    /// (members, M2M and Connected-App tokens) authenticated without a call to Stytch,
    /// the cache hits apart.
    pub verified_locally: u64,
    /// Requests whose session Stytch's `sessions/authenticate` confirmed: each request
    /// counts, whether it made the call or joined one in progress.
    pub authenticated_remotely: u64,
    /// Calls to Stytch's `sessions/authenticate` (coalesced calls count once).
    pub remote_authentications: u64,
    /// Times a request waited for a `sessions/authenticate` call another request had
    /// already started (same credential, same check) instead of starting its own: what
    /// coalescing saved. Counted whether or not that call then reached Stytch (it may
    /// end without asking: a credential Stytch already said is gone, a rate limit, or
    /// the cap on calls in flight).
    pub coalesced_authentications: u64,
    /// Calls for session tokens never confirmed by Stytch that were not made, their
    /// budget spent (`unverified_authentications_per_second`,
    /// `max_concurrent_unverified_authentications`): each request answered 503.
    pub unverified_authentications_refused: u64,
    /// Revoked sessions forgotten before their time because `revocation_capacity` was
    /// full. Each makes every JWT issued until then go to Stytch (never let in): raise
    /// the capacity when this grows.
    pub revocations_lost: u64,
    /// Revocations this instance published to the fleet (`revocations_in_redis`).
    pub revocations_published: u64,
    /// Revocations received from the fleet (loaded at start or after a reconnect, or
    /// published by another instance; an instance hears its own too).
    pub revocations_received: u64,
    /// Revocations never published: the outbox (10,000) was full during a long Redis
    /// outage, and the oldest went.
    pub revocations_unpublished: u64,
    /// Messages or set entries in Redis that are not revocations of ours, ignored.
    pub revocations_malformed: u64,
    /// Failed connections to Redis or commands: each ends the connection, which is
    /// made again (resubscribed, reloaded).
    pub revocation_feed_failures: u64,
    /// Renewed session credentials Stytch returned for cookie requests. The response
    /// carries them unless the handler set the session cookies itself.
    pub renewals: u64,
    /// JWKS fetches attempted.
    pub jwks_fetches: u64,
    /// JWKS fetches that failed.
    pub jwks_fetch_failures: u64,
    /// RBAC policy fetches attempted (project and organization).
    pub policy_fetches: u64,
    /// RBAC policy fetches that failed (project and organization).
    pub policy_fetch_failures: u64,
    /// By [`Reason`]; read with [`failures`](Self::failures) and
    /// [`failures_for`](Self::failures_for).
    failures: Vec<(Reason, u64)>,
}

impl MetricsSnapshot {
    /// Requests the layer could not authenticate, by reason (every reason, zeros
    /// included), counted when the layer (or a guard, or a remote call) decided it,
    /// whether or not the route then answered with a rejection: an anonymous request
    /// to a public route, or one whose `Option<AuthenticatedMember>` was `None`,
    /// counts as `missing_credentials`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn report(auth: &axum_stytch::StytchAuth) {
    /// let metrics = auth.metrics();
    /// let refused: u64 = metrics.failures().map(|(_, n)| n).sum();
    /// println!("{} cache hits, {refused} refused", metrics.cache_hits);
    /// # }
    /// ```
    pub fn failures(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        self.failures.iter().copied()
    }

    /// How many failures had `reason` (see [`failures`](Self::failures)).
    pub fn failures_for(&self, reason: Reason) -> u64 {
        self.failures
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
