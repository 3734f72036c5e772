//! What an operator must hear about: conditions that can repeat on every request (a
//! misconfiguration, an outage, a skewed clock, a flood), each logged at most once a
//! minute ([`WarnLimiter`]), with its text. The messages say what to fix; none carries
//! a credential.

use std::fmt;

use crate::client::{ClientError, RemoteFailure};
use crate::clock::SharedClock;
use crate::util::warn_limiter::WarnLimiter;

/// One limiter per kind of warning.
pub(crate) struct Diagnostics {
    clock: SharedClock,
    clock_behind: WarnLimiter,
    duplicate: WarnLimiter,
    foreign_issuer: WarnLimiter,
    route: WarnLimiter,
    remote_warning: WarnLimiter,
    remote_error: WarnLimiter,
    saturated: WarnLimiter,
    unverified: WarnLimiter,
    revocations_lost: WarnLimiter,
    feed: WarnLimiter,
    malformed: WarnLimiter,
    outbox: WarnLimiter,
    custom_claims: WarnLimiter,
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnostics").finish_non_exhaustive()
    }
}

impl Diagnostics {
    /// Nothing logged yet; `clock` says when a minute has passed.
    pub(crate) fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            clock_behind: WarnLimiter::default(),
            duplicate: WarnLimiter::default(),
            foreign_issuer: WarnLimiter::default(),
            route: WarnLimiter::default(),
            remote_warning: WarnLimiter::default(),
            remote_error: WarnLimiter::default(),
            saturated: WarnLimiter::default(),
            unverified: WarnLimiter::default(),
            revocations_lost: WarnLimiter::default(),
            feed: WarnLimiter::default(),
            malformed: WarnLimiter::default(),
            outbox: WarnLimiter::default(),
            custom_claims: WarnLimiter::default(),
        }
    }

    fn allow(&self, limiter: &WarnLimiter) -> bool {
        limiter.allow(self.clock.unix_seconds())
    }

    /// A JWT issued ahead of our clock by more than the leeway costs a call to Stytch
    /// per request.
    pub(crate) fn clock_behind(&self, leeway_secs: u64) {
        if self.allow(&self.clock_behind) {
            tracing::warn!(
                leeway_secs,
                "a Stytch JWT was issued ahead of this server's clock by more than the leeway \
                 (is the clock behind?): such session JWTs go to Stytch, one call per \
                 request, and such machine tokens are refused"
            );
        }
    }

    /// A JWT signed with the project's keys but carrying another issuer than the
    /// accepted ones is refused (401), and so is every session of a project whose
    /// sessions are minted through a custom domain the layer was not given. The issuer
    /// is logged (the JWT's signature was checked, so it is Stytch's, and an issuer is
    /// no secret).
    pub(crate) fn foreign_issuer(&self, issuer: &str, accepted: &[String]) {
        if self.allow(&self.foreign_issuer) {
            tracing::warn!(
                issuer,
                accepted = ?accepted,
                "a Stytch session JWT with a valid signature carries an issuer this layer \
                 does not accept, and was refused with 401: if your project uses a Stytch \
                 custom domain, give it to the layer with `base_url` (its origin is then \
                 accepted besides stytch.com/<project_id>)"
            );
        }
    }

    /// A session cookie sent twice is refused (401): when cookies set with another
    /// `Domain` or `Path` than the layer's are the cause, every request of that browser
    /// is refused.
    pub(crate) fn duplicate_credential(&self) {
        if self.allow(&self.duplicate) {
            tracing::warn!(
                "a request carried a Stytch session cookie twice (or two Authorization \
                 headers) and was refused with 401: a browser keeps one cookie per name, \
                 domain and path, so cookies set elsewhere (your frontend, Stytch's SDK) \
                 with another Domain or Path than cookie_domain / cookie_path come back \
                 beside ours"
            );
        }
    }

    /// A guard whose `organization_from_path` names a parameter its route does not
    /// have answers 500 to every request: an error (any client can send requests to
    /// that route).
    pub(crate) fn misconfigured_route(&self, parameter: &str) {
        if self.allow(&self.route) {
            tracing::error!(
                parameter,
                "RequireAuthz::organization_from_path names a parameter this route does not \
                 have: its requests are answered 500 (logged at most once a minute)"
            );
        }
    }

    /// A caller's custom claims do not fit the type a `CustomClaims<T>` reads them as:
    /// the handler's type and the Stytch custom-claims template disagree. The type is
    /// named; the claims (and serde's message, which may quote them) are not.
    pub(crate) fn custom_claims_mismatch(&self, type_name: &str) {
        if self.allow(&self.custom_claims) {
            tracing::error!(
                type_name,
                "a caller's custom claims do not match CustomClaims<T> for this type (check \
                 the Stytch custom-claims template against it): such requests are answered \
                 500 (logged at most once a minute)"
            );
        }
    }

    /// A failed `sessions/authenticate` call, logged once per call (not per request
    /// waiting on it), and at WARN or ERROR at most once a minute each: during an
    /// outage, or with a wrong secret, every call fails alike, and calls are what
    /// anyone can cause (one per distinct session token).
    pub(crate) fn call_failed(&self, error: &ClientError) {
        match RemoteFailure::of(error).log_line() {
            Some((false, message)) if self.allow(&self.remote_warning) => {
                tracing::warn!(%error, "{message} (logged at most once a minute)");
            }
            Some((true, message)) if self.allow(&self.remote_error) => {
                tracing::error!(%error, "{message} (logged at most once a minute)");
            }
            _ => tracing::debug!(%error, "stytch sessions/authenticate failed"),
        }
    }

    /// A call refused for want of a permit under `max_concurrent_authentications`.
    pub(crate) fn saturated(&self) {
        if self.allow(&self.saturated) {
            tracing::warn!(
                "max_concurrent_authentications calls to Stytch in flight: requests that \
                 need another are answered 503 without one (logged at most once a minute)"
            );
        }
    }

    /// A call for a session token never confirmed, refused for want of its budget.
    pub(crate) fn unverified_refused(&self, why: &dyn fmt::Debug) {
        if self.allow(&self.unverified) {
            tracing::warn!(
                refused = ?why,
                "calls to Stytch for session tokens not seen before are over their budget \
                 (unverified_authentications_per_second, \
                 max_concurrent_unverified_authentications): such requests are answered 503 \
                 without a call (logged at most once a minute)"
            );
        }
    }

    /// Revocations forgotten before their time for want of room.
    pub(crate) fn revocations_lost(&self, lost: usize) {
        if self.allow(&self.revocations_lost) {
            tracing::warn!(
                lost,
                "revocation_capacity is full of revocations still needed: the oldest were \
                 forgotten, and JWTs issued until now go to Stytch instead of being trusted \
                 locally; raise revocation_capacity above the logout rate times \
                 max_token_age (logged at most once a minute)"
            );
        }
    }

    /// The connection to the fleet's Redis failed (it is made again, resubscribed
    /// and reloaded); meanwhile revocations elsewhere are not heard.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_feed_failed(&self, error: &dyn fmt::Display) {
        if self.allow(&self.feed) {
            tracing::warn!(
                %error,
                "the fleet's revocations in Redis cannot be reached: this instance keeps \
                 answering, but hears no logout made elsewhere (a JWT revoked on another \
                 instance is accepted here until it is max_token_age old) and publishes its \
                 own once Redis is back (logged at most once a minute)"
            );
        }
    }

    /// A message on the revocations channel, or an entry of the set, that is not a
    /// revocation of ours: ignored.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_malformed(&self) {
        if self.allow(&self.malformed) {
            tracing::warn!(
                "a message on the fleet's revocations channel (or an entry of its set) is \
                 not a revocation of this crate's format: ignored (logged at most once a \
                 minute)"
            );
        }
    }

    /// The outbox of revocations to publish overflowed during a Redis outage.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn revocation_outbox_full(&self) {
        if self.allow(&self.outbox) {
            tracing::warn!(
                "the outbox of revocations waiting for Redis is full: the oldest are dropped \
                 (other instances refuse them only once they are max_token_age old; logged \
                 at most once a minute)"
            );
        }
    }

    /// An extractor or guard on a route without the layer: every request of that route
    /// answers 500. Without the layer there is no configured clock: the system's
    /// decides only when to log again.
    pub(crate) fn layer_missing() {
        static LAYER_MISSING: WarnLimiter = WarnLimiter::new();
        let now = crate::clock::unix_seconds(std::time::SystemTime::now());
        if LAYER_MISSING.allow(now) {
            tracing::error!(
                "AuthenticatedMember or RequireAuthz used on a route without the StytchAuth \
                 layer (logged at most once a minute)"
            );
        }
    }
}
