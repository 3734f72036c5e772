//! Local verification of session JWTs: the keys (JWKS), the cache of verified tokens,
//! the revocations, and the rules that tie them together. No call to Stytch but the
//! JWKS fetch, and none at all for a JWT in the cache.
//!
//! A JWT is verified once (RS256 with the key of its `kid`, then its claims); while
//! it is fresh, later requests with the same bytes are answered from the cache. A hit
//! is checked against the revocations and the key set only when a logout or a key
//! retirement happened since it was last checked (an epoch, see [`token_cache`]).

pub(crate) mod token_cache;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::client::ClientError;
use crate::clock::{Reading, SharedClock};
use crate::diagnostics::Diagnostics;
use crate::jwt::jwks::{JwksCache, KeyError};
use crate::jwt::keys::KeySet;
use crate::jwt::known_headers::KnownHeaders;
use crate::jwt::registered::{ClaimRules, Standing};
use crate::jwt::rejected::Rejected;
use crate::jwt::session::SessionClaims;
use crate::jwt::verify::Token;
use crate::member::AuthenticatedMember;
use crate::metrics::Metrics;
use crate::revocation::{RevocationStatus, Revocations};
use token_cache::{Lookup, TokenCache, Verified};

/// What local verification decided about a JWT.
#[derive(Debug)]
pub(crate) enum Verification {
    /// Valid now: verified, or found in the cache of verified tokens.
    Verified(AuthenticatedMember),
    /// Signed by Stytch but not valid locally (see [`Standing::Stale`]): Stytch
    /// decides, and renews.
    Stale {
        /// The session the JWT names (its signature was verified).
        member_session_id: String,
        /// The organization the JWT names.
        organization_id: String,
        /// The JWT recorded a session end that has passed: if Stytch no longer knows
        /// the session, it expired (rather than was revoked).
        session_ended: bool,
    },
    /// The session was revoked (logged out on this instance, or by the fleet).
    Revoked,
    /// Not a valid JWT of this project.
    Rejected(Rejected),
    /// The keys of this `kid` are not loaded: [`LocalVerifier::verify_awaiting_keys`].
    NeedsKeys(Arc<str>),
    /// No usable keys: Stytch could not be reached.
    KeysUnavailable,
}

/// The parts of local verification.
pub(crate) struct LocalVerifier {
    clock: SharedClock,
    rules: ClaimRules,
    pub(crate) jwks: Arc<JwksCache>,
    /// Header segments of validly signed JWTs, parsed once.
    headers: KnownHeaders,
    /// Verified JWTs, by the whole token (`None`: off).
    tokens: Option<Arc<TokenCache>>,
    revocations: Arc<dyn Revocations>,
    metrics: Arc<Metrics>,
    diagnostics: Arc<Diagnostics>,
}

impl LocalVerifier {
    /// Verification with `rules`, the keys of `jwks`, a token cache (when given) and
    /// `revocations`. A key retired from the JWKS must purge the cache: build `jwks`
    /// with [`TokenCache::remove_keys`] as its retirement hook.
    pub(crate) fn new(
        clock: SharedClock,
        rules: ClaimRules,
        jwks: Arc<JwksCache>,
        tokens: Option<Arc<TokenCache>>,
        revocations: Arc<dyn Revocations>,
        metrics: Arc<Metrics>,
        diagnostics: Arc<Diagnostics>,
    ) -> Self {
        Self {
            clock,
            rules,
            jwks,
            headers: KnownHeaders::new(),
            tokens,
            revocations,
            metrics,
            diagnostics,
        }
    }

    /// The member of a cached verified JWT (the raw cookie bytes: a hit is
    /// byte-identical to a token that was validated and verified), trusted at the
    /// monotonic reading `now`. No revocation or key set lookup unless a logout or a
    /// key retirement ran since the entry was last checked: each purges the tokens
    /// concerned, and an entry a verification inserted around one carries the epoch
    /// before it.
    #[inline]
    pub(crate) fn cached(&self, jwt: &[u8], now: Instant) -> Option<AuthenticatedMember> {
        let tokens = self.tokens.as_ref()?;
        let member = match tokens.get(jwt, now)? {
            Lookup::Checked(member) => member,
            Lookup::Unchecked(entry) => {
                let epoch = tokens.epoch();
                let verified = entry.verified();
                let status = self
                    .revocations
                    .status(verified.member.member_session_id(), verified.issued_at);
                if status != RevocationStatus::Live || !self.jwks.holds(&verified.kid) {
                    // Verified again, the token is refused (revoked, or its key
                    // retired) or sent to Stytch (its revocation unknown).
                    tokens.remove(jwt);
                    return None;
                }
                tokens.mark_checked(jwt, entry, epoch)
            }
        };
        self.metrics.cache_hit(now);
        tracing::trace!(path = "cached", outcome = "ok", "stytch session verified");
        Some(member)
    }

    /// Verifies `jwt` (validated characters) at `now` with the keys loaded, or says
    /// which keys it needs.
    pub(crate) fn verify(&self, jwt: &str, now: Reading) -> Verification {
        let token = match Token::parse(jwt, Some(&self.headers)) {
            Ok(t) => t,
            Err(rejected) => return Verification::Rejected(rejected),
        };
        match self.jwks.serving_set_with(&token.kid) {
            Some(keys) => self.verify_with(&keys.value, jwt, &token, now),
            None => Verification::NeedsKeys(token.kid),
        }
    }

    /// Verifies `jwt`, whose `kid` named keys not loaded, once they are (fetched, or
    /// refreshed as the JWKS rules allow).
    pub(crate) async fn verify_awaiting_keys(&self, jwt: &str, kid: &str) -> Verification {
        match self.jwks.key_set_for(kid).await {
            Ok(keys) => match Token::parse(jwt, Some(&self.headers)) {
                // Keys may have taken a while: the time is read again.
                Ok(token) => self.verify_with(&keys.value, jwt, &token, self.clock.read()),
                Err(rejected) => Verification::Rejected(rejected),
            },
            Err(KeyError::UnknownKid) => Verification::Rejected(Rejected::UnknownKid),
            Err(KeyError::Unavailable) => Verification::KeysUnavailable,
        }
    }

    fn verify_with(
        &self,
        keys: &KeySet,
        jwt: &str,
        token: &Token<'_>,
        Reading { wall: now, mono }: Reading,
    ) -> Verification {
        let Some(key) = keys.get(&token.kid) else {
            return Verification::Rejected(Rejected::UnknownKid);
        };
        self.metrics.local_verification();
        if let Err(rejected) = token.verify_signature(key) {
            return Verification::Rejected(rejected);
        }
        token.remember_header(&self.headers);
        let claims = match token.claims::<SessionClaims>() {
            Ok(c) => c,
            Err(rejected) => return Verification::Rejected(rejected),
        };
        // Read before the revocation check, stored with the cache entry.
        let epoch = self.tokens.as_ref().map_or(0, |t| t.epoch());
        let issued_at = claims.registered.iat;
        let standing = match self.revocations.status(&claims.session.id, issued_at) {
            RevocationStatus::Revoked => return Verification::Revoked,
            // Whether it was revoked is unknown: Stytch decides.
            RevocationStatus::Unknown => self.rules.check(&claims, now).map(|_| Standing::Stale {
                issued_ahead: false,
            }),
            RevocationStatus::Live => self.rules.check(&claims, now),
        };
        match standing {
            Ok(Standing::Fresh { valid_until }) => {
                let member = claims.into_member();
                if let Some(tokens) = &self.tokens {
                    // Trusted for the time it has left, counted in real time.
                    let left = crate::timestamp::from_unix(valid_until)
                        .duration_since(now)
                        .unwrap_or_default();
                    let verified = Verified {
                        member: member.clone(),
                        kid: Arc::clone(&token.kid),
                        issued_at,
                        trusted_until: mono.checked_add(left).unwrap_or(mono),
                    };
                    tokens.insert(jwt, verified, epoch);
                    // A revocation or a key retirement that happened since the checks
                    // above must not leave this entry behind (each first records the
                    // revocation or stores the new key set, then starts a new epoch,
                    // then purges; hits in between check again, as the entry's epoch is
                    // the old one). Their other entries are theirs to purge, or carry
                    // the old epoch too: dropping this one is enough.
                    match self
                        .revocations
                        .status(member.member_session_id(), issued_at)
                    {
                        RevocationStatus::Live => {}
                        RevocationStatus::Revoked => {
                            tokens.remove(jwt.as_bytes());
                            return Verification::Revoked;
                        }
                        // Rare (a revocation lost a moment ago): Stytch decides.
                        RevocationStatus::Unknown => {
                            tokens.remove(jwt.as_bytes());
                            return Verification::Stale {
                                member_session_id: member.member_session_id().to_owned(),
                                organization_id: member.organization_id().to_owned(),
                                session_ended: member.expires_at() <= now,
                            };
                        }
                    }
                    if !self.jwks.holds(&token.kid) {
                        tokens.remove(jwt.as_bytes());
                        return Verification::Rejected(Rejected::UnknownKid);
                    }
                }
                self.metrics.verified_locally();
                tracing::debug!(path = "local", outcome = "ok", "stytch session verified");
                Verification::Verified(member)
            }
            Ok(Standing::Stale { issued_ahead }) => {
                if issued_ahead {
                    self.diagnostics.clock_behind(self.rules.leeway_secs);
                }
                Verification::Stale {
                    session_ended: claims.session.expires_at.is_some_and(|end| end <= now),
                    member_session_id: claims.session.id,
                    organization_id: claims.organization.organization_id,
                }
            }
            Err(Rejected::ForeignIssuer) => {
                self.diagnostics
                    .foreign_issuer(&claims.registered.iss, &self.rules.issuers);
                Verification::Rejected(Rejected::ForeignIssuer)
            }
            Err(rejected) => Verification::Rejected(rejected),
        }
    }

    /// Revokes the session `member_session_id` until `until`: its JWTs are refused at
    /// once, from the cache too (the revocations tell it).
    pub(crate) fn revoke(&self, member_session_id: &str, until: SystemTime) {
        self.revocations.revoke(member_session_id, until);
    }

    /// Whether the session `member_session_id` is revoked.
    pub(crate) fn is_revoked(&self, member_session_id: &str) -> bool {
        self.revocations.is_revoked(member_session_id)
    }

    /// Fetches the keys now, whatever the cooldowns.
    pub(crate) async fn warm_up(&self) -> Result<(), ClientError> {
        self.jwks.refresh().await
    }

    /// When a request refused for want of keys should try again.
    pub(crate) fn keys_retry_after(&self) -> Duration {
        self.jwks.retry_after()
    }

    #[cfg(test)]
    pub(crate) fn token_cache(&self) -> Option<&Arc<TokenCache>> {
        self.tokens.as_ref()
    }
}
