//! Counters readable from [`StytchAuth::metrics`](crate::StytchAuth::metrics).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rejection::Reason;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    local_verifications: AtomicU64,
    cache_hits: AtomicU64,
    remote_authentications: AtomicU64,
    unverified_refused: AtomicU64,
    revocations_lost: AtomicU64,
    revocations_published: AtomicU64,
    revocations_received: AtomicU64,
    revocations_unpublished: AtomicU64,
    revocations_malformed: AtomicU64,
    revocation_feed_failures: AtomicU64,
    renewals: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_fetch_failures: AtomicU64,
    policy_fetches: AtomicU64,
    policy_fetch_failures: AtomicU64,
    failures: [AtomicU64; Reason::ALL.len()],
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn failure(&self, reason: Reason) {
        bump(&self.failures[reason.index()]);
    }

    pub(crate) fn local_verification(&self) {
        bump(&self.local_verifications);
    }

    #[inline]
    pub(crate) fn cache_hit(&self) {
        bump(&self.cache_hits);
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

    pub(crate) fn renewal(&self) {
        bump(&self.renewals);
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

    /// The counters, with `coalesced_authentications` counted by the calls' table.
    pub(crate) fn snapshot(&self, coalesced_authentications: u64) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            local_verifications: get(&self.local_verifications),
            cache_hits: get(&self.cache_hits),
            remote_authentications: get(&self.remote_authentications),
            coalesced_authentications,
            unverified_authentications_refused: get(&self.unverified_refused),
            revocations_lost: get(&self.revocations_lost),
            revocations_published: get(&self.revocations_published),
            revocations_received: get(&self.revocations_received),
            revocations_unpublished: get(&self.revocations_unpublished),
            revocations_malformed: get(&self.revocations_malformed),
            revocation_feed_failures: get(&self.revocation_feed_failures),
            renewals: get(&self.renewals),
            jwks_fetches: get(&self.jwks_fetches),
            jwks_fetch_failures: get(&self.jwks_fetch_failures),
            policy_fetches: get(&self.policy_fetches),
            policy_fetch_failures: get(&self.policy_fetch_failures),
            failures: Reason::ALL
                .iter()
                .map(|r| (*r, get(&self.failures[r.index()])))
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
