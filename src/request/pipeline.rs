//! The per-request pipeline: credentials, then local verification, then (lazily)
//! Stytch. [`begin`] decides what it can without waiting; [`finish`] completes a
//! request whose JWT needs keys not loaded yet.

use std::sync::Arc;

use http::HeaderMap;

use std::time::{Instant, SystemTime};

use super::context::{AuthContext, RequestAuth, Signed};
use crate::caller::{Caller, CallerKind};
use crate::client::wire::SessionCredential;
use crate::core::Core;
use crate::credentials::{self, CredentialError, Source};
use crate::jwt::rejected::Rejected;
use crate::local::Verification;
use crate::rejection::{Failure, Reason};
use crate::remote::session_gone;

/// What the layer could decide without waiting.
pub(crate) enum Begin {
    Ready(AuthContext),
    /// The JWT needs keys that are not loaded yet.
    NeedsKeys(AwaitingKeys),
}

/// A JWT waiting for the keys of its `kid`.
pub(crate) struct AwaitingKeys {
    jwt: String,
    source: Source,
    kid: Arc<str>,
}

/// Everything that can be decided without waiting: credentials, cache, local
/// verification with loaded keys. One `stytch.session` span per request, with the path
/// taken and the outcome (never a credential).
pub(crate) fn begin(core: &Arc<Core>, headers: &HeaderMap) -> Begin {
    let span = tracing::debug_span!(
        "stytch.session",
        path = tracing::field::Empty,
        outcome = tracing::field::Empty
    );
    let entered = span.enter();
    let begin = begin_unobserved(core, headers);
    if !span.is_disabled() {
        let (path, outcome) = match &begin {
            Begin::Ready(ctx) => ctx.describe(),
            Begin::NeedsKeys(_) => ("local", "awaiting_keys"),
        };
        span.record("path", path);
        span.record("outcome", outcome);
    }
    drop(entered);
    begin
}

fn begin_unobserved(core: &Arc<Core>, headers: &HeaderMap) -> Begin {
    let creds = match credentials::extract(headers, &core.credentials) {
        Ok(c) => c,
        Err(error) => {
            if error == CredentialError::Duplicate {
                core.diagnostics.duplicate_credential();
            } else {
                tracing::debug!(?error, "session credentials unreadable");
            }
            return Begin::Ready(failed(core, Reason::InvalidCredentials, Source::Cookie));
        }
    };
    let source = creds.source;
    let Some(raw_jwt) = creds.jwt else {
        let Some(token) = creds.token else {
            return Begin::Ready(failed(core, Reason::MissingCredentials, source));
        };
        let Ok(token) = token.validate() else {
            return Begin::Ready(failed(core, Reason::InvalidCredentials, source));
        };
        return Begin::Ready(by_session_token(core, token, source));
    };
    // A hit is byte-identical to a token that was validated and verified.
    let now = core.clock.read();
    if let Some(caller) = core.local.cached(raw_jwt.as_bytes(), now.mono) {
        return Begin::Ready(verified(
            core,
            caller,
            source,
            now.wall,
            By::Cache(now.mono),
        ));
    }
    let Ok(jwt) = raw_jwt.validate() else {
        return Begin::Ready(failed(core, Reason::InvalidCredentials, source));
    };
    match core.local.verify(jwt, now) {
        Verification::NeedsKeys(kid) => Begin::NeedsKeys(AwaitingKeys {
            jwt: jwt.to_owned(),
            source,
            kid,
        }),
        verification => Begin::Ready(decided(core, verification, jwt, source, now.wall)),
    }
}

/// The rest of [`begin`] when keys had to be fetched first.
pub(crate) async fn finish(core: &Arc<Core>, waiting: AwaitingKeys) -> AuthContext {
    let AwaitingKeys { jwt, source, kid } = waiting;
    let verification = core.local.verify_awaiting_keys(&jwt, &kid).await;
    decided(core, verification, &jwt, source, core.clock.now())
}

/// The request's state after local verification of `jwt` at `now`.
fn decided(
    core: &Arc<Core>,
    verification: Verification,
    jwt: &str,
    source: Source,
    now: SystemTime,
) -> AuthContext {
    if matches!(
        verification,
        Verification::Stale { .. } | Verification::Revoked
    ) && !session_carrier(core, source)
    {
        // Only a session JWT is stale or revoked: not taken from where it came.
        return wrong_carrier(core, source);
    }
    match verification {
        Verification::Verified(caller) => verified(core, caller, source, now, By::Keys),
        // Signed by Stytch but not valid locally: Stytch decides (and renews), unless
        // it already said the session is gone.
        Verification::Stale {
            member_session_id,
            organization_id,
            session_ended,
        } => {
            if core.remote.is_gone(jwt) {
                return failed_clearing(core, session_gone(session_ended), source);
            }
            remote(
                core,
                SessionCredential::Jwt(jwt.to_owned()),
                Some(Signed {
                    member_session_id,
                    organization_id,
                }),
                session_ended,
                source,
            )
        }
        Verification::Revoked => failed_clearing(core, Reason::SessionRevoked, source),
        Verification::Rejected(rejected) => self::rejected(core, rejected, source),
        // Not the session token beside the JWT either (SECURITY.md, "Keys
        // unavailable"): it may belong to another session than the JWT, and every
        // browser request would go to Stytch for as long as the keys are missing.
        Verification::KeysUnavailable => AuthContext::Deferred(Arc::new(RequestAuth::failed(
            Arc::clone(core),
            Failure::new(Reason::StytchUnavailable).retry_after(core.local.keys_retry_after()),
            source,
        ))),
        // Keys loaded by `finish` are never missing again.
        Verification::NeedsKeys(_) => self::rejected(core, Rejected::UnknownKid, source),
    }
}

/// How a verified caller was verified: what its authentication counts as.
#[derive(Clone, Copy)]
enum By {
    /// From the cache of verified tokens, at this monotonic reading.
    Cache(Instant),
    /// With the keys, here.
    Keys,
}

/// A verified `caller`, if of a kind `source` may carry: a machine token in a session
/// cookie, or a session JWT as a bearer token where only machine tokens are taken, is
/// refused (401 `invalid_token`), however valid. Only a caller taken counts as
/// authenticated.
#[inline]
fn verified(
    core: &Arc<Core>,
    caller: Caller,
    source: Source,
    at: SystemTime,
    by: By,
) -> AuthContext {
    if !core.credentials.accepts(caller.kind(), source) {
        tracing::debug!(kind = ?caller.kind(), ?source, "valid token of a kind not taken from there");
        return failed(core, Reason::InvalidToken, source);
    }
    match by {
        By::Cache(now) => core.metrics.cache_hit(now),
        By::Keys => core.metrics.verified_locally(),
    }
    AuthContext::Verified {
        core: Arc::clone(core),
        caller,
        at,
        verdict: None,
    }
}

/// Whether `source` may carry a member session at all.
fn session_carrier(core: &Core, source: Source) -> bool {
    core.credentials.accepts(CallerKind::Member, source)
}

/// A session credential sent as a bearer token where only machine tokens are taken:
/// refused without asking Stytch.
fn wrong_carrier(core: &Arc<Core>, source: Source) -> AuthContext {
    tracing::debug!(
        ?source,
        "session credential where only machine tokens are taken"
    );
    failed(core, Reason::InvalidToken, source)
}

/// A session token alone: Stytch decides. Every session token costs a call, so what
/// cannot be one, and what Stytch already said is gone, is refused without asking.
fn by_session_token(core: &Arc<Core>, token: &str, source: Source) -> AuthContext {
    if !session_carrier(core, source) {
        return wrong_carrier(core, source);
    }
    if !is_plausible_session_token(token) {
        return failed(core, Reason::InvalidToken, source);
    }
    if core.remote.is_gone(token) {
        return failed_clearing(core, Reason::SessionRevoked, source);
    }
    remote(
        core,
        SessionCredential::Token(token.to_owned()),
        None,
        false,
        source,
    )
}

/// Stytch session tokens are 44 URL-safe base64 characters; this accepts 16 to 128.
fn is_plausible_session_token(token: &str) -> bool {
    (16..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn rejected(core: &Arc<Core>, rejected: Rejected, source: Source) -> AuthContext {
    tracing::debug!(path = "local", outcome = "rejected", reason = ?rejected, "stytch session JWT rejected");
    failed(core, Reason::InvalidToken, source)
}

fn failed(core: &Arc<Core>, reason: Reason, source: Source) -> AuthContext {
    AuthContext::Deferred(Arc::new(RequestAuth::failed(
        Arc::clone(core),
        Failure::new(reason),
        source,
    )))
}

fn failed_clearing(core: &Arc<Core>, reason: Reason, source: Source) -> AuthContext {
    AuthContext::Deferred(Arc::new(RequestAuth::failed(
        Arc::clone(core),
        Failure::new(reason).clearing_cookies(),
        source,
    )))
}

fn remote(
    core: &Arc<Core>,
    credential: SessionCredential,
    signed: Option<Signed>,
    session_ended: bool,
    source: Source,
) -> AuthContext {
    AuthContext::Deferred(Arc::new(RequestAuth::remote(
        Arc::clone(core),
        credential,
        signed,
        session_ended,
        source,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StytchAuth;
    use crate::rejection::Reason;
    use crate::testing::StytchEmulator;
    use std::time::Duration;

    /// The request's context, decided without waiting for keys (none are needed, or
    /// they are loaded).
    #[track_caller]
    fn begin_ready(auth: &StytchAuth, headers: &HeaderMap) -> AuthContext {
        match begin(&auth.core, headers) {
            Begin::Ready(ctx) => ctx,
            Begin::NeedsKeys(_) => panic!("waited for keys"),
        }
    }

    /// A session cookie sent twice is refused and logged as a warning that names the
    /// usual cause, at most once a minute, without the cookies' values.
    #[tokio::test]
    async fn a_repeated_session_cookie_is_refused_with_a_warning_once_a_minute() {
        let emu = StytchEmulator::start().await;
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let headers = credentials::cookie_headers(&[
            b"stytch_session_jwt=aaa.bbb.ccc; x=1; stytch_session_jwt=ddd.eee.fff",
        ]);
        let outcome = || begin_ready(&auth, &headers).describe();
        let (first, all) = crate::test_logs::capture(|logged| {
            for _ in 0..3 {
                assert_eq!(outcome(), ("local", "invalid_credentials"));
            }
            let first = logged();
            emu.clock().advance(Duration::from_secs(59));
            outcome();
            emu.clock().advance(Duration::from_secs(1));
            outcome();
            (first, logged())
        });
        assert_eq!(first.matches("WARN").count(), 1, "{first}");
        assert!(first.contains("cookie_domain / cookie_path"), "{first}");
        assert_eq!(all.matches("WARN").count(), 2, "{all}");
        assert!(
            !all.contains("aaa.bbb") && !all.contains("ddd.eee"),
            "{all}"
        );
    }

    /// A validly signed JWT of an issuer the layer was not given (a custom domain left
    /// out of `base_url`) is refused without a call, and the warning names the issuer
    /// and the fix, at most once a minute.
    #[tokio::test]
    async fn a_signed_jwt_of_another_issuer_is_refused_with_a_warning_naming_it() {
        let emu = StytchEmulator::start_with(
            crate::testing::EmulatorOptions::new().issuer("https://auth.example.com"),
        )
        .await;
        let org = emu.create_organization("acme");
        let member_id = emu.create_member(&org, "ada@acme.example", &["stytch_member"]);
        let session = emu.create_session(&member_id);
        let auth = emu.auth_builder().build().expect("a valid configuration");
        auth.warm_up().await.expect("the keys");
        let cookie = format!("stytch_session_jwt={}", session.session_jwt);
        let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
        let outcome = || begin_ready(&auth, &headers).describe();
        let (first, all) = crate::test_logs::capture(|logged| {
            for _ in 0..3 {
                assert_eq!(outcome(), ("local", "invalid_token"));
            }
            let first = logged();
            emu.clock().advance(Duration::from_secs(60));
            outcome();
            (first, logged())
        });
        assert_eq!(first.matches("WARN").count(), 1, "{first}");
        assert!(first.contains("https://auth.example.com"), "{first}");
        assert!(first.contains("`base_url`"), "{first}");
        assert_eq!(all.matches("WARN").count(), 2, "{all}");
        assert!(!all.contains(&session.session_jwt), "{all}");
        assert_eq!(emu.requests(crate::testing::Endpoint::Authenticate), 0);
    }

    /// While Stytch fails, every request that needs it fails alike: the failure is
    /// logged once per call, at WARN at most once a minute, not once per request (a
    /// request anyone can make, with a made-up session token).
    #[test]
    fn failing_calls_to_stytch_warn_once_a_minute_not_per_request() {
        let warnings = crate::test_logs::capture(|logged| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let emu = StytchEmulator::start().await;
                let auth = emu.auth_builder().build().expect("a valid configuration");
                let ask = |i: usize| {
                    let cookie = format!("stytch_session=made-up-session-token-{i:08}");
                    let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
                    begin_ready(&auth, &headers)
                };
                // Rate-limited: one call, then 49 requests answered without one.
                emu.inject_fault(
                    crate::testing::Endpoint::Authenticate,
                    crate::testing::Fault::RateLimited {
                        retry_after: Duration::from_secs(60),
                        times: 1,
                    },
                );
                for i in 0..50 {
                    let failure = ask(i).member().await.expect_err("rate-limited");
                    assert_eq!(failure.reason, Reason::StytchUnavailable);
                }
                let after_429 = logged().matches("WARN").count();
                // A minute later, Stytch answers 500 to each of 20 calls.
                emu.clock().advance(Duration::from_secs(61));
                emu.inject_fault(
                    crate::testing::Endpoint::Authenticate,
                    crate::testing::Fault::Status {
                        status: 500,
                        times: 20,
                    },
                );
                for i in 50..70 {
                    assert!(ask(i).member().await.is_err());
                }
                assert_eq!(emu.requests(crate::testing::Endpoint::Authenticate), 21);
                (after_429, logged().matches("WARN").count())
            })
        });
        assert_eq!(warnings, (1, 2));
    }

    /// A verification that checked the denylist before a logout, and inserted its
    /// cache entry only after that logout had purged the session's tokens, replayed
    /// step by step: the entry must not be trusted once `logout` has returned.
    #[tokio::test]
    async fn a_token_cached_around_a_logout_is_not_trusted_after_it() {
        let emu = StytchEmulator::start().await;
        let org = emu.create_organization("acme");
        let member_id = emu.create_member(&org, "ada@acme.example", &["stytch_member"]);
        let session = emu.create_session(&member_id);
        let auth = emu.auth_builder().build().expect("a valid configuration");
        let cookie = format!("stytch_session_jwt={}", session.session_jwt);
        let headers = credentials::cookie_headers(&[cookie.as_bytes()]);
        let verified = |auth: &StytchAuth| match begin_ready(auth, &headers) {
            AuthContext::Verified {
                caller: Caller::Member(member),
                ..
            } => Some(member),
            _ => None,
        };
        auth.warm_up().await.expect("the keys");
        let member = verified(&auth).expect("a valid JWT");
        let tokens = auth.core.local.token_cache().expect("a token cache");

        // The verification reads the epoch and passes the denylist check...
        let before = tokens.epoch();
        // ... the whole logout runs: denylist, new epoch, purge ...
        let _clearing = auth.logout(&member).await.expect("logout");
        // ... and then the verification inserts its entry.
        let verified_then = crate::local::token_cache::Verified {
            caller: Caller::Member(member),
            kid: Arc::from(emu.signing_kid()),
            issued_at: crate::clock::unix_seconds(crate::Clock::now(&emu.clock())),
            trusted_until: crate::Clock::monotonic(&emu.clock()) + Duration::from_secs(300),
        };
        tokens.insert(&session.session_jwt, verified_then, before);

        assert!(
            verified(&auth).is_none(),
            "a logged-out session's JWT was accepted from the cache"
        );
        assert!(
            tokens
                .get(
                    session.session_jwt.as_bytes(),
                    crate::Clock::monotonic(&emu.clock())
                )
                .is_none(),
            "the refused entry is gone"
        );
    }
}
