//! Local verification of Stytch JWTs (member sessions, M2M and Connected-App tokens):
//! the keys (JWKS), the cache of verified tokens, the revocations, and the rules that
//! tie them together. No call to Stytch but the JWKS fetch, and none at all for a JWT
//! in the cache.
//!
//! A JWT is verified once (RS256 with the key of its `kid`, then its claims); while
//! it is fresh, later requests with the same bytes are answered from the cache. A hit
//! is checked against the revocations and the key set only when a logout or a key
//! retirement happened since it was last checked (an epoch, see [`token_cache`]).

pub(crate) mod token_cache;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::caller::Caller;
use crate::client::ClientError;
use crate::clock::{Reading, SharedClock};
use crate::diagnostics::Diagnostics;
use crate::jwt::claims::Claims;
use crate::jwt::jwks::{JwksCache, KeyError};
use crate::jwt::keys::KeySet;
use crate::jwt::known_headers::KnownHeaders;
use crate::jwt::registered::{ClaimRules, Standing, TokenKind};
use crate::jwt::rejected::Rejected;
use crate::jwt::session::SessionClaims;
use crate::jwt::verify::Token;
use crate::metrics::Metrics;
use crate::revocation::{RevocationStatus, Revocations};
use token_cache::{Lookup, TokenCache, Verified};

/// What local verification decided about a JWT.
#[derive(Debug)]
pub(crate) enum Verification {
    /// Valid now: verified, or found in the cache of verified tokens.
    Verified(Caller),
    /// A session JWT signed by Stytch but not valid locally (see [`Standing::Stale`]):
    /// Stytch decides, and renews.
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

    /// The caller of a cached verified JWT (the raw credential bytes: a hit is
    /// byte-identical to a token that was validated and verified), trusted at the
    /// monotonic reading `now`. No revocation or key set lookup unless a logout or a
    /// key retirement ran since the entry was last checked: each purges the tokens
    /// concerned, and an entry a verification inserted around one carries the epoch
    /// before it.
    #[inline]
    pub(crate) fn cached(&self, jwt: &[u8], now: Instant) -> Option<Caller> {
        let tokens = self.tokens.as_ref()?;
        let caller = match tokens.get(jwt, now)? {
            Lookup::Checked(caller) => caller,
            Lookup::Unchecked(entry) => {
                let epoch = tokens.epoch();
                let verified = entry.verified();
                // Only sessions are revoked; machine tokens live until they expire.
                let status = match &verified.caller {
                    Caller::Member(member) => self
                        .revocations
                        .status(member.member_session_id(), verified.issued_at),
                    _ => RevocationStatus::Live,
                };
                if status != RevocationStatus::Live || !self.jwks.holds(&verified.kid) {
                    // Verified again, the token is refused (revoked, or its key
                    // retired) or sent to Stytch (its revocation unknown).
                    tokens.remove(jwt);
                    return None;
                }
                tokens.mark_checked(jwt, entry, epoch)
            }
        };
        tracing::trace!(path = "cached", outcome = "ok", "stytch token verified");
        Some(caller)
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
        now: Reading,
    ) -> Verification {
        let Some(key) = keys.get(&token.kid) else {
            return Verification::Rejected(Rejected::UnknownKid);
        };
        self.metrics.local_verification();
        if let Err(rejected) = token.verify_signature(key) {
            return Verification::Rejected(rejected);
        }
        token.remember_header(&self.headers);
        match token.claims::<Claims>() {
            Ok(Claims::Session(claims)) => self.session(claims, jwt, token, now),
            Ok(Claims::M2m(claims)) => {
                self.machine(claims, jwt, token, now, |c| Caller::M2m(c.into_caller()))
            }
            Ok(Claims::ConnectedApp(claims)) => self.machine(claims, jwt, token, now, |c| {
                Caller::ConnectedApp(c.into_caller())
            }),
            Err(rejected) => Verification::Rejected(rejected),
        }
    }

    /// The verification of a validly signed session JWT.
    fn session(
        &self,
        claims: SessionClaims,
        jwt: &str,
        token: &Token<'_>,
        now: Reading,
    ) -> Verification {
        // Read before the revocation check, stored with the cache entry.
        let epoch = self.epoch();
        let issued_at = claims.registered.iat;
        let standing = match self.revocations.status(&claims.session.id, issued_at) {
            RevocationStatus::Revoked => return Verification::Revoked,
            // Whether it was revoked is unknown: Stytch decides.
            RevocationStatus::Unknown => self.check(&claims, now.wall).map(|_| Standing::Stale {
                issued_ahead: false,
            }),
            RevocationStatus::Live => self.check(&claims, now.wall),
        };
        match standing {
            Ok(Standing::Fresh { valid_until }) => {
                let member = claims.into_member();
                let caller = Caller::Member(member.clone());
                if let Some(tokens) = &self.tokens {
                    let verified =
                        Self::verified(token, caller.clone(), issued_at, valid_until, now);
                    tokens.insert(jwt, verified, epoch);
                    // A revocation that happened since the check above must not leave
                    // this entry behind (each first records the revocation, then
                    // starts a new epoch, then purges; hits in between check again, as
                    // the entry's epoch is the old one). Its other entries are its to
                    // purge, or carry the old epoch too: dropping this one is enough.
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
                                session_ended: member.expires_at() <= now.wall,
                            };
                        }
                    }
                    if !self.still_held(tokens, jwt, token) {
                        return Verification::Rejected(Rejected::UnknownKid);
                    }
                }
                tracing::debug!(path = "local", outcome = "ok", "stytch session verified");
                Verification::Verified(caller)
            }
            Ok(Standing::Stale { .. }) => Verification::Stale {
                session_ended: claims.session.expires_at.is_some_and(|end| end <= now.wall),
                member_session_id: claims.session.id,
                organization_id: claims.organization.organization_id,
            },
            Err(rejected) => Verification::Rejected(rejected),
        }
    }

    /// The verification of a validly signed machine token (M2M, Connected App): valid,
    /// or refused. Stytch cannot renew one, and never revokes one we could learn of.
    fn machine<C: TokenKind>(
        &self,
        claims: C,
        jwt: &str,
        token: &Token<'_>,
        now: Reading,
        into_caller: impl FnOnce(C) -> Caller,
    ) -> Verification {
        let epoch = self.epoch();
        match self.check(&claims, now.wall) {
            Ok(Standing::Fresh { valid_until }) => {
                let issued_at = claims.registered().iat;
                let caller = into_caller(claims);
                if let Some(tokens) = &self.tokens {
                    let verified =
                        Self::verified(token, caller.clone(), issued_at, valid_until, now);
                    tokens.insert(jwt, verified, epoch);
                    if !self.still_held(tokens, jwt, token) {
                        return Verification::Rejected(Rejected::UnknownKid);
                    }
                }
                tracing::debug!(
                    path = "local",
                    outcome = "ok",
                    "stytch machine token verified"
                );
                Verification::Verified(caller)
            }
            Ok(Standing::Stale { .. }) => Verification::Rejected(Rejected::Expired),
            Err(rejected) => Verification::Rejected(rejected),
        }
    }

    /// [`ClaimRules::check`], with what it says of the configuration or the clock
    /// logged (a foreign issuer, a clock behind Stytch's).
    fn check<C: TokenKind>(&self, claims: &C, now: SystemTime) -> Result<Standing, Rejected> {
        let standing = self.rules.check(claims, now);
        match &standing {
            Ok(Standing::Stale { issued_ahead: true }) => {
                self.diagnostics.clock_behind(self.rules.leeway_secs);
            }
            Err(Rejected::ForeignIssuer) => {
                self.diagnostics
                    .foreign_issuer(&claims.registered().iss, &self.rules.issuers);
            }
            _ => {}
        }
        standing
    }

    /// The token cache's epoch (0 without a cache): read it before a check whose result
    /// an entry will carry.
    fn epoch(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.epoch())
    }

    /// What the cache keeps of a token verified with `token`'s key as `caller`: trusted
    /// for the time it has left (`valid_until`, unix seconds), counted in real time
    /// from the reading `now`.
    fn verified(
        token: &Token<'_>,
        caller: Caller,
        issued_at: u64,
        valid_until: u64,
        Reading { wall, mono }: Reading,
    ) -> Verified {
        let left = crate::timestamp::from_unix(valid_until)
            .duration_since(wall)
            .unwrap_or_default();
        Verified {
            caller,
            kid: Arc::clone(&token.kid),
            issued_at,
            trusted_until: mono.checked_add(left).unwrap_or(mono),
        }
    }

    /// Whether the key that verified a just-cached `jwt` is still in the key set: a
    /// retirement that raced the verification (it stores the new set, starts a new
    /// epoch, then purges) must not leave the entry behind. Drops it if not.
    fn still_held(&self, tokens: &TokenCache, jwt: &str, token: &Token<'_>) -> bool {
        let held = self.jwks.holds(&token.kid);
        if !held {
            tokens.remove(jwt.as_bytes());
        }
        held
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
