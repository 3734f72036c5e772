//! Stytch misbehaving: the JWKS, `sessions/authenticate` and RBAC policy endpoints
//! refusing connections, hanging past the timeout, answering 5xx / 429 / garbage /
//! bodies of the wrong shape, and signing keys rotating under traffic.
//!
//! Every case states the documented behaviour, counts outbound calls (the emulator's
//! per-endpoint counters; the layer's own counters where the emulator cannot see a
//! call, since a refused connection never reaches it), bounds latency generously
//! against the 1 s request timeout configured here, and checks recovery once Stytch
//! answers again.
//!
//! Time that the crate reasons about (cooldowns, refresh intervals, staleness, backoffs)
//! is moved with the emulator's `MockClock`; nothing sleeps to let it pass. Real time is
//! only spent by the emulator's injected delays and by waiting (bounded by a generous
//! deadline) for a background refresh, which is real I/O to the emulator, to land.
//!
//! Not repeated here (see `tests/session_layer.rs` and `tests/rbac.rs`): one
//! token-only request against a refused / slow / 500 / 429 / garbage
//! `sessions/authenticate`, the unknown-`kid` flood, a plain key rotation, and the
//! project policy endpoint answering 500 at start and after load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use axum::Router;
use axum_stytch::testing::{Endpoint, Fault, SessionOptions, SessionTokens, StytchEmulator};
use axum_stytch::testing::{Policy, Role};
use axum_stytch::{MetricsSnapshot, Reason};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
use serde_json::json;

/// The request timeout configured for every fixture here.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The most any single request (or burst of coalesced requests) may take when Stytch
/// misbehaves: the timeout plus a generous margin for a loaded machine.
const BOUND: Duration = Duration::from_secs(6);
/// Default JWKS cooldown (between unknown-`kid` refreshes and after a failed fetch).
const JWKS_COOLDOWN: Duration = Duration::from_secs(30);
/// Default JWKS refresh interval and maximum staleness.
const JWKS_REFRESH: u64 = 300;
const JWKS_MAX_STALE: u64 = 3600;
/// The RBAC policy cache's retry backoff after a failed fetch.
const POLICY_BACKOFF: Duration = Duration::from_secs(5);
/// "Until cleared" for one-shot faults.
const MANY: u32 = 100_000;

// ----------------------------------------------------------------------------------
// Helpers

/// One way for an endpoint to be down.
#[derive(Clone, Debug)]
enum Outage {
    /// Every connection to the emulator is reset (all endpoints at once).
    Refusing,
    /// An injected fault on the endpoint under test only.
    Fault(Fault),
}

impl Outage {
    fn start(&self, emu: &StytchEmulator, endpoint: Endpoint) {
        match self {
            Outage::Refusing => emu.set_refusing_connections(true),
            Outage::Fault(fault) => emu.inject_fault(endpoint, fault.clone()),
        }
    }

    fn end(emu: &StytchEmulator) {
        emu.set_refusing_connections(false);
        emu.clear_faults();
    }

    fn is_refusing(&self) -> bool {
        matches!(self, Outage::Refusing)
    }
}

fn status(status: u16) -> Outage {
    Outage::Fault(Fault::Status {
        status,
        times: MANY,
    })
}

fn body(status: u16, body: &str) -> Outage {
    Outage::Fault(Fault::Body {
        status,
        body: body.to_owned(),
        times: MANY,
    })
}

fn garbage() -> Outage {
    Outage::Fault(Fault::Garbage { times: MANY })
}

fn hang() -> Outage {
    Outage::Fault(hang_fault())
}

/// Far past the 1 s timeout; the layer must not wait for it.
fn hang_fault() -> Fault {
    Fault::Delay(Duration::from_secs(30))
}

/// Ways for the JWKS endpoint to give no usable key.
fn jwks_outages() -> Vec<(&'static str, Outage)> {
    vec![
        ("refusing connections", Outage::Refusing),
        ("500", status(500)),
        ("garbage JSON", garbage()),
        (
            "empty key set",
            body(
                200,
                r#"{"keys":[],"request_id":"request-id-test-0","status_code":200}"#,
            ),
        ),
        (
            "no RS256 signing key",
            body(
                200,
                r#"{"keys":[
                    {"kty":"EC","kid":"ec-1","crv":"P-256","x":"AA","y":"AA","alg":"ES256","use":"sig"},
                    {"kty":"RSA","kid":"rsa-enc","alg":"RSA-OAEP","use":"enc","n":"AQAB","e":"AQAB"},
                    {"kty":"RSA","kid":"rsa-no-n","alg":"RS256","use":"sig","e":"AQAB"}
                ],"status_code":200}"#,
            ),
        ),
        ("slower than the request timeout", hang()),
    ]
}

fn token_cookie(token: &str) -> String {
    cookies(None, Some(token))
}

fn metrics(f: &Fixture) -> MetricsSnapshot {
    f.auth.metrics()
}

/// A fail-closed answer: 503 `stytch_unavailable` with a `Retry-After` of 1..=60 s,
/// and no `Set-Cookie` (an outage must never log anyone out). Returns `Retry-After`.
#[track_caller]
fn assert_unavailable(res: &TestResponse, case: &str) -> u64 {
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "stytch_unavailable"),
        "{case}: {}",
        res.body
    );
    let secs = res.retry_after_secs();
    assert!((1..=60).contains(&secs), "{case}: Retry-After {secs}");
    assert!(
        res.set_cookies().is_empty(),
        "{case}: an outage must not touch the cookies: {:?}",
        res.set_cookies()
    );
    secs
}

#[track_caller]
fn assert_member(res: &TestResponse, member: &str, case: &str) {
    assert_eq!(res.status, StatusCode::OK, "{case}: {}", res.body);
    assert_eq!(res.body, member, "{case}");
}

async fn timed(app: &Router, method: &str, path: &str, cookie: &str) -> (TestResponse, Duration) {
    let started = Instant::now();
    let res = send(app, method, path, Some(cookie)).await;
    (res, started.elapsed())
}

/// Sends `n` copies of the request at once (behind a barrier) and returns the
/// responses and the time the whole burst took.
async fn burst(
    app: &Router,
    method: &'static str,
    path: &str,
    cookies: &[String],
    n: usize,
) -> (Vec<TestResponse>, Duration) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (app, barrier) = (app.clone(), Arc::clone(&barrier));
            let (path, cookie) = (path.to_owned(), cookies[i % cookies.len()].clone());
            tokio::spawn(async move {
                barrier.wait().await;
                send(&app, method, &path, Some(&cookie)).await
            })
        })
        .collect();
    let mut responses = Vec::with_capacity(n);
    for task in tasks {
        responses.push(task.await.expect("request task"));
    }
    (responses, started.elapsed())
}

/// A session that outlives every clock advance in these tests.
fn long_session(f: &Fixture) -> SessionTokens {
    f.emu.create_session_with(
        &f.member,
        SessionOptions::default().duration(Duration::from_secs(6 * 3600)),
    )
}

/// `jwt` with its header's `kid` replaced (signature left as is): structurally a
/// Stytch JWT, but signed by no key Stytch serves.
fn with_random_kid(jwt: &str, i: usize) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": format!("jwk-test-forged-{i}")});
    let (_, rest) = jwt.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// Signs `payload` (a JWT payload segment, base64url) under `kid` with `pkcs8_der`:
/// a key saved before the emulator rotated it away and retired it, which
/// `StytchEmulator::sign_raw` (the current key only) cannot sign with.
fn sign(pkcs8_der: &[u8], kid: &str, payload_segment: &str) -> String {
    let key = KeyPair::from_pkcs8(pkcs8_der).unwrap();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string();
    let input = format!("{}.{payload_segment}", URL_SAFE_NO_PAD.encode(header));
    sign_input(&key, &RSA_PKCS1_SHA256, &input)
}

fn payload_of(jwt: &str) -> &str {
    jwt.split('.').nth(1).unwrap()
}

/// A JWT cookie for each session, minted now and checked to be signed with `kid`.
fn cookies_signed_by(f: &Fixture, sessions: &[SessionTokens], kid: &str) -> Vec<String> {
    sessions
        .iter()
        .map(|s| {
            let jwt = f.emu.mint_jwt(&s.member_session_id);
            assert_eq!(kid_of(&jwt), kid);
            jwt_cookie(&jwt)
        })
        .collect()
}

/// editor: document/create (the fixture's member is an editor); viewer: document/read.
fn policy() -> Policy {
    Policy::new()
        .role(Role::new("editor").allow("document", ["create", "read"]))
        .role(Role::new("viewer").allow("document", ["read"]))
}

// ----------------------------------------------------------------------------------
// 1. JWKS endpoint down at start

/// No keys were ever loaded and the JWKS endpoint gives none: every JWT request is
/// answered 503 `stytch_unavailable` with `Retry-After` = the JWKS cooldown (30 s),
/// within the request timeout. One fetch attempt per cooldown, however many requests
/// (and whatever their `kid`) arrive; a request never waits for a retry inside the
/// cooldown. Session tokens do not need the keys and keep working when only the JWKS
/// endpoint is down. Once Stytch is back, the first request after the cooldown fetches
/// the keys and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwks_down_at_start_fails_closed_without_a_retry_storm_then_recovers() {
    for (case, outage) in jwks_outages() {
        let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
        let app = app(&f.auth);
        let jwts: Vec<String> = (0..10).map(|_| long_session(&f).session_jwt).collect();
        let jwt_cookies: Vec<String> = jwts.iter().map(|j| jwt_cookie(j)).collect();
        outage.start(&f.emu, Endpoint::Jwks);

        // The first JWT costs one fetch attempt, bounded by the timeout.
        let (res, elapsed) = timed(&app, "GET", "/me", &jwt_cookies[0]).await;
        let secs = assert_unavailable(&res, case);
        assert_eq!(secs, JWKS_COOLDOWN.as_secs(), "{case}: Retry-After");
        assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        assert_eq!(metrics(&f).jwks_fetches, 1, "{case}");
        assert_eq!(metrics(&f).jwks_fetch_failures, 1, "{case}");

        // 50 more (25 at once, 25 one after the other), the optional extractor, and
        // forged tokens with random kids: all 503, none causes another attempt.
        let (responses, elapsed) = burst(&app, "GET", "/me", &jwt_cookies, 25).await;
        for res in &responses {
            assert_unavailable(res, case);
        }
        assert!(elapsed < BOUND, "{case}: burst took {elapsed:?}");
        for (i, cookie) in jwt_cookies.iter().cycle().take(25).enumerate() {
            let path = if i % 2 == 0 { "/me" } else { "/maybe" };
            let (res, elapsed) = timed(&app, "GET", path, cookie).await;
            assert_unavailable(&res, case);
            assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        }
        for i in 0..10 {
            let forged = with_random_kid(&jwts[0], i);
            let res = get_with(&app, "/me", &jwt_cookie(&forged)).await;
            assert_unavailable(&res, case);
        }
        assert_eq!(metrics(&f).jwks_fetches, 1, "{case}: retry storm");
        assert!(f.emu.requests(Endpoint::Jwks) <= 1, "{case}");
        assert_eq!(f.emu.requests(Endpoint::Authenticate), 0, "{case}");

        // Session tokens go to Stytch and need no keys.
        if !outage.is_refusing() {
            let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
            assert_member(&res, &f.member, case);
        }

        // Not a session token beside a JWT whose keys cannot be had, whatever the JWT's
        // `kid` (SECURITY.md, "Keys unavailable"): it may be another session's, and
        // every browser request would go to Stytch for the length of the outage.
        let calls = f.emu.requests(Endpoint::Authenticate);
        let token = &f.session.session_token;
        for jwt in [&jwts[0], &with_random_kid(&jwts[0], 99)] {
            let res = get_with(&app, "/me", &cookies(Some(jwt), Some(token))).await;
            assert_unavailable(&res, case);
        }
        assert_eq!(f.emu.requests(Endpoint::Authenticate), calls, "{case}");

        // Stytch is back, but the failed attempt is within the cooldown: no new one.
        Outage::end(&f.emu);
        f.emu
            .clock()
            .advance(JWKS_COOLDOWN - Duration::from_secs(1));
        let res = get_with(&app, "/me", &jwt_cookies[0]).await;
        assert_unavailable(&res, case);
        assert_eq!(
            metrics(&f).jwks_fetches,
            1,
            "{case}: retried within the cooldown"
        );

        // Past the cooldown: one fetch, and every JWT verifies locally.
        f.emu.clock().advance(Duration::from_secs(2));
        for cookie in &jwt_cookies {
            let res = get_with(&app, "/me", cookie).await;
            assert_member(&res, &f.member, case);
        }
        assert_eq!(metrics(&f).jwks_fetches, 2, "{case}");
        let served = if outage.is_refusing() { 1 } else { 2 };
        assert_eq!(f.emu.requests(Endpoint::Jwks), served, "{case}");
    }
}

/// Many requests arriving while the one cold JWKS fetch hangs all wait for that one
/// fetch and fail together when it times out: one outbound call, all 503, the whole
/// burst bounded by the timeout plus a margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_requests_share_one_hanging_jwks_fetch_and_fail_together() {
    let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    let app = app(&f.auth);
    f.emu
        .inject_fault(Endpoint::Jwks, Fault::Delay(Duration::from_secs(30)));
    let cookies: Vec<String> = (0..10)
        .map(|_| jwt_cookie(&long_session(&f).session_jwt))
        .collect();

    let (responses, elapsed) = burst(&app, "GET", "/me", &cookies, 100).await;
    for res in &responses {
        let secs = assert_unavailable(res, "hanging JWKS");
        assert_eq!(secs, JWKS_COOLDOWN.as_secs());
    }
    assert!(elapsed < BOUND, "the burst took {elapsed:?}");
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1);
    assert_eq!(metrics(&f).jwks_fetches, 1);

    f.emu.clear_faults();
    f.emu
        .clock()
        .advance(JWKS_COOLDOWN + Duration::from_secs(1));
    let res = get_with(&app, "/me", &cookies[0]).await;
    assert_member(&res, &f.member, "recovered");
    assert_eq!(f.emu.requests(Endpoint::Jwks), 2);
}

// ----------------------------------------------------------------------------------
// 2. JWKS endpoint down after the keys were loaded

/// Loaded keys keep verifying fresh JWTs locally (200, no waiting) while refreshes fail,
/// for `jwks_refresh_interval + jwks_max_stale` (300 s + 1 h by default) after the last
/// successful fetch. Meanwhile a background refresh is attempted at most once per
/// cooldown. Past that bound a JWT that is not already in the verified-token cache is
/// answered 503 (fail closed). When Stytch is back, the next attempt after the
/// cooldown loads the keys again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwks_down_after_load_serves_the_last_keys_until_max_stale_then_fails_closed() {
    for (case, outage) in jwks_outages() {
        let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
        let app = app(&f.auth);
        let clock = f.emu.clock();
        let sessions: Vec<SessionTokens> = (0..5).map(|_| long_session(&f)).collect();
        // A fresh, never-seen JWT for session `i` at the current time.
        let fresh = |i: usize| jwt_cookie(&f.emu.mint_jwt(&sessions[i].member_session_id));

        let res = get_with(&app, "/me", &fresh(0)).await;
        assert_member(&res, &f.member, case);
        assert_eq!(metrics(&f).jwks_fetches, 1, "{case}");
        outage.start(&f.emu, Endpoint::Jwks);

        // Past the refresh interval: served from the loaded keys, refresh behind.
        clock.advance(Duration::from_secs(JWKS_REFRESH + 1));
        let (res, elapsed) = timed(&app, "GET", "/me", &fresh(0)).await;
        assert_member(&res, &f.member, case);
        assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        wait_until(&format!("{case}: the background refresh to fail"), || {
            metrics(&f).jwks_fetch_failures == 1
        })
        .await;
        // More traffic in the same cooldown: all local, no further attempt.
        let cookies: Vec<String> = (0..sessions.len()).map(fresh).collect();
        let (responses, elapsed) = burst(&app, "GET", "/me", &cookies, 50).await;
        for res in &responses {
            assert_member(res, &f.member, case);
        }
        assert!(elapsed < BOUND, "{case}: burst took {elapsed:?}");
        assert_eq!(
            metrics(&f).jwks_fetches,
            2,
            "{case}: one refresh per cooldown"
        );

        // The next cooldown allows one more attempt.
        clock.advance(JWKS_COOLDOWN + Duration::from_secs(1));
        let res = get_with(&app, "/me", &fresh(1)).await;
        assert_member(&res, &f.member, case);
        wait_until(
            &format!("{case}: the second background refresh to fail"),
            || metrics(&f).jwks_fetch_failures == 2,
        )
        .await;
        assert_eq!(metrics(&f).jwks_fetches, 3, "{case}");

        // Just before refresh_interval + max_stale since the last successful fetch:
        // still served.
        let elapsed_so_far = JWKS_REFRESH + 1 + JWKS_COOLDOWN.as_secs() + 1;
        clock.advance(Duration::from_secs(
            JWKS_REFRESH + JWKS_MAX_STALE - 10 - elapsed_so_far,
        ));
        let res = get_with(&app, "/me", &fresh(2)).await;
        assert_member(&res, &f.member, case);
        wait_until(
            &format!("{case}: the third background refresh to fail"),
            || metrics(&f).jwks_fetch_failures == 3,
        )
        .await;

        // Past it: fail closed, quickly, without a retry inside the cooldown.
        clock.advance(Duration::from_secs(20));
        for i in 3..5 {
            let (res, elapsed) = timed(&app, "GET", "/me", &fresh(i)).await;
            let secs = assert_unavailable(&res, case);
            assert_eq!(secs, JWKS_COOLDOWN.as_secs(), "{case}");
            assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        }
        assert_eq!(metrics(&f).jwks_fetches, 4, "{case}");
        assert_eq!(f.emu.requests(Endpoint::Authenticate), 0, "{case}");

        // Stytch is back: after the cooldown the keys load again.
        Outage::end(&f.emu);
        clock.advance(JWKS_COOLDOWN + Duration::from_secs(1));
        let res = get_with(&app, "/me", &fresh(3)).await;
        assert_member(&res, &f.member, case);
        assert_eq!(metrics(&f).jwks_fetches, 5, "{case}");
        let failures = metrics(&f).jwks_fetch_failures;
        assert_eq!(failures, 3, "{case}");
    }
}

/// A JWKS answer whose only RS256 keys cannot be RS256 keys (a modulus far below the
/// 2,048 bits Stytch uses and `RSA_PKCS1_2048_8192_SHA256` requires) holds no usable
/// key. Like an empty set it must count as a failed fetch: loaded keys are kept (fresh
/// JWTs keep verifying), and with nothing loaded the answer is 503, not a 401 for
/// every member. Today such keys pass `KeySet::from_jwks` (aws-lc-rs checks the size
/// only when verifying), so the junk set replaces the real keys.
#[tokio::test]
async fn jwks_of_undersized_rsa_keys_is_a_failed_fetch() {
    let undersized = Outage::Fault(Fault::Body {
        status: 200,
        body: json!({"keys": [
            {"kty": "RSA", "kid": "rsa-24-bit", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-512-bit", "alg": "RS256", "use": "sig",
             "n": URL_SAFE_NO_PAD.encode([0xc5u8; 64]), "e": "AQAB"},
        ], "status_code": 200})
        .to_string(),
        times: MANY,
    });

    // After load: the refresh fails and the loaded keys stay.
    let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    undersized.start(&f.emu, Endpoint::Jwks);
    f.emu.clock().advance(Duration::from_secs(1));
    let error = f
        .auth
        .warm_up()
        .await
        .expect_err("a key set without a usable key is a failed refresh");
    assert!(
        error.to_string().contains("no usable RS256 signing key"),
        "{error}"
    );
    assert_eq!(metrics(&f).jwks_fetch_failures, 1);
    let fresh = f.emu.mint_jwt(&f.session.member_session_id);
    let res = get_with(&app, "/me", &jwt_cookie(&fresh)).await;
    assert_member(&res, &f.member, "fresh JWT after the junk refresh");

    // At start: fail closed as unavailable.
    let cold = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    let cold_app = common::app(&cold.auth);
    undersized.start(&cold.emu, Endpoint::Jwks);
    let res = get_with(&cold_app, "/me", &jwt_cookie(&cold.session.session_jwt)).await;
    assert_unavailable(&res, "undersized keys at start");
}

// ----------------------------------------------------------------------------------
// 3. Keys rotating under traffic

/// Stytch rotates its signing key while requests flow: JWTs signed with the old key
/// keep verifying throughout (the old key is still published), the first JWTs with the
/// new `kid` cost exactly one JWKS refresh however many arrive at once, and nothing
/// goes to `sessions/authenticate`. Once the old key is retired and the keys are
/// refreshed, JWTs signed with it are refused (401) locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_rotating_under_traffic_cost_one_refresh_and_old_tokens_keep_working() {
    let f = fixture().await;
    let app = app(&f.auth);
    let sessions: Vec<SessionTokens> = (0..10).map(|_| long_session(&f)).collect();
    let old_cookies: Vec<String> = sessions
        .iter()
        .map(|s| jwt_cookie(&s.session_jwt))
        .collect();
    let res = get_with(&app, "/me", &old_cookies[0]).await;
    assert_member(&res, &f.member, "warm-up");
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1);
    let old_kid = f.emu.signing_kid();
    let old_key = f.emu.signing_key_pkcs8_der();
    // Control for the retirement check below: a token signed here with the old key
    // is accepted while that key is published.
    let control = sign(&old_key, &old_kid, payload_of(&sessions[1].session_jwt));
    let res = get_with(&app, "/me", &jwt_cookie(&control)).await;
    assert_member(&res, &f.member, "old-key control");

    // Traffic with old-kid JWTs runs through the rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let traffic: Vec<_> = (0..4)
        .map(|t| {
            let (app, stop, served) = (app.clone(), stop.clone(), served.clone());
            let cookies = old_cookies.clone();
            let member = f.member.clone();
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let res = get_with(&app, "/me", &cookies[i % cookies.len()]).await;
                    assert_member(&res, &member, "old-kid traffic");
                    served.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let new_kid = f.emu.rotate_keys();
    assert_ne!(new_kid, old_kid);
    // Keep the refresh in flight while the burst below piles up behind it.
    f.emu
        .inject_fault(Endpoint::Jwks, Fault::Delay(Duration::from_millis(100)));
    let new_cookies = cookies_signed_by(&f, &sessions, &new_kid);
    let (responses, elapsed) = burst(&app, "GET", "/me", &new_cookies, 100).await;
    for res in &responses {
        assert_member(res, &f.member, "new-kid burst");
    }
    assert!(elapsed < BOUND, "the burst took {elapsed:?}");
    stop.store(true, Ordering::Relaxed);
    for task in traffic {
        task.await.expect("traffic task");
    }
    assert!(served.load(Ordering::Relaxed) > 0, "no traffic ran");
    f.emu.clear_faults();
    assert_eq!(
        f.emu.requests(Endpoint::Jwks),
        2,
        "exactly one refresh for the new kid"
    );

    // Both generations verify, with no further fetch.
    for cookie in old_cookies.iter().chain(&new_cookies) {
        let res = get_with(&app, "/me", cookie).await;
        assert_member(&res, &f.member, "after rotation");
    }
    assert_eq!(f.emu.requests(Endpoint::Jwks), 2);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);

    // Retire the old key and let the keys be refreshed, as the scheduled refresh does
    // past the refresh interval (`warm_up` makes that one fetch deterministic: the
    // background refresh a request would start cannot be awaited from here).
    f.emu.retire_key(&old_kid);
    f.emu.clock().advance(Duration::from_secs(JWKS_REFRESH + 1));
    f.auth
        .warm_up()
        .await
        .expect("refresh after the retirement");
    assert_eq!(f.emu.requests(Endpoint::Jwks), 3);
    let res = get_with(
        &app,
        "/me",
        &jwt_cookie(&f.emu.mint_jwt(&sessions[0].member_session_id)),
    )
    .await;
    assert_member(&res, &f.member, "new key after the refresh");
    let fresh_payload = f.emu.mint_jwt(&sessions[2].member_session_id);
    let retired = sign(&old_key, &old_kid, payload_of(&fresh_payload));
    let res = get_with(&app, "/me", &jwt_cookie(&retired)).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{}",
        res.body
    );
    // That unknown kid was allowed one refresh (the last forced one is 301 s old);
    // another retired-key token within the cooldown costs none.
    assert_eq!(f.emu.requests(Endpoint::Jwks), 4);
    let fresh_payload = f.emu.mint_jwt(&sessions[3].member_session_id);
    let retired = sign(&old_key, &old_kid, payload_of(&fresh_payload));
    let res = get_with(&app, "/me", &jwt_cookie(&retired)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(f.emu.requests(Endpoint::Jwks), 4);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

/// Regression: the request that claimed an unknown-`kid` refresh used to make its fetch
/// visible to others only after the claim. A request arriving in between saw the
/// cooldown taken and no fetch in progress, and answered 401 to a valid JWT signed
/// with the new key (about one run in eight of the test above). Here every rotation is
/// met by a burst of new-key JWTs on four workers: none is refused, and each rotation
/// costs exactly one JWKS fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rotation_met_by_a_burst_costs_one_fetch_and_refuses_no_valid_jwt() {
    const ROTATIONS: u64 = 15;
    let f = fixture().await;
    let app = app(&f.auth);
    let sessions: Vec<SessionTokens> = (0..4).map(|_| long_session(&f)).collect();
    let res = get_with(&app, "/me", &jwt_cookie(&sessions[0].session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    for rotation in 1..=ROTATIONS {
        // Past the previous forced refresh's cooldown (and within the refresh
        // interval: each rotation's fetch renews the keys, so no scheduled refresh runs).
        f.emu
            .clock()
            .advance(JWKS_COOLDOWN + Duration::from_secs(1));
        let previous = f.emu.signing_kid();
        let new_kid = f.emu.rotate_keys();
        f.emu.retire_key(&previous);
        let cookies = cookies_signed_by(&f, &sessions, &new_kid);
        let (responses, _) = burst(&app, "GET", "/me", &cookies, 100).await;
        for res in &responses {
            assert_member(res, &f.member, &format!("rotation {rotation}"));
        }
        assert_eq!(
            f.emu.requests(Endpoint::Jwks),
            1 + rotation,
            "rotation {rotation}: one fetch"
        );
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

/// A JWT signed with a new key that arrives while a scheduled JWKS refresh (here a
/// warm-up) is in flight joins that refresh. When its answer predates the new key, the
/// request asks once more, as this cooldown's forced refresh, instead of answering 401.
#[tokio::test]
async fn a_new_kid_joining_a_refresh_answered_before_the_rotation_forces_one_more() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    let jwks_url = format!(
        "{}/v1/b2b/sessions/jwks/{}",
        f.emu.base_url(),
        f.emu.project_id()
    );
    let before_rotation = reqwest::get(&jwks_url)
        .await
        .expect("the JWKS")
        .text()
        .await
        .expect("a body");
    let new_kid = f.emu.rotate_keys();
    // The next JWKS answer is the one from before the rotation, and every answer
    // takes a while.
    f.emu.inject_fault(
        Endpoint::Jwks,
        Fault::Body {
            status: 200,
            body: before_rotation,
            times: 1,
        },
    );
    f.emu
        .inject_fault(Endpoint::Jwks, Fault::Delay(Duration::from_millis(100)));
    let requests = f.emu.requests(Endpoint::Jwks);
    let auth = f.auth.clone();
    let warm_up = tokio::spawn(async move { auth.warm_up().await });
    while f.emu.requests(Endpoint::Jwks) == requests {
        tokio::task::yield_now().await;
    }

    let session = long_session(&f);
    let cookie = cookies_signed_by(&f, std::slice::from_ref(&session), &new_kid);
    let res = get_with(&app, "/me", &cookie[0]).await;
    assert_member(&res, &f.member, "new kid after a stale refresh");
    warm_up
        .await
        .expect("warm-up task")
        .expect("the warm-up's fetch");
    assert_eq!(
        f.emu.requests(Endpoint::Jwks),
        requests + 2,
        "the warm-up's fetch, then one forced refresh"
    );
}

/// When the refresh an unknown kid forced has failed, another request with that kid in
/// the same cooldown is answered 503 with `Retry-After` (whether Stytch publishes the
/// key is unknown), not 401: a member whose JWT is signed with a new key is asked to
/// retry, not logged out. Once Stytch answers again after the cooldown, it verifies.
#[tokio::test]
async fn a_new_kid_after_a_failed_forced_refresh_is_unavailable_not_invalid() {
    let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    let new_kid = f.emu.rotate_keys();
    let session = long_session(&f);
    let cookie = cookies_signed_by(&f, std::slice::from_ref(&session), &new_kid).remove(0);
    Outage::Refusing.start(&f.emu, Endpoint::Jwks);
    for case in ["the forced refresh fails", "within its cooldown"] {
        let res = get_with(&app, "/me", &cookie).await;
        assert_unavailable(&res, case);
    }
    assert_eq!(
        (metrics(&f).jwks_fetches, metrics(&f).jwks_fetch_failures),
        (2, 1),
        "one forced refresh per cooldown"
    );
    Outage::end(&f.emu);
    f.emu
        .clock()
        .advance(JWKS_COOLDOWN + Duration::from_secs(1));
    let res = get_with(&app, "/me", &cookie).await;
    assert_member(&res, &f.member, "after the cooldown");
}

// ----------------------------------------------------------------------------------
// 4. sessions/authenticate down

/// Ways for `sessions/authenticate` to give no answer about the session.
fn authenticate_outages() -> Vec<(&'static str, Outage)> {
    vec![
        ("refusing connections", Outage::Refusing),
        ("slower than the request timeout", hang()),
        ("500", status(500)),
        ("503", status(503)),
        ("429 with Retry-After", status(429)),
        ("401: Stytch refuses our secret", status(401)),
        ("200 with garbage", garbage()),
        ("200 with an empty object", body(200, "{}")),
        (
            "200 with truncated JSON",
            body(200, r#"{"member_session":{"member_id":"member-test-x","#),
        ),
        (
            "200 with fields of the wrong type",
            body(
                200,
                r#"{"member_session":7,"session_token":1,"session_jwt":null,"status_code":200}"#,
            ),
        ),
        (
            "502 with an HTML body",
            body(502, "<html>Bad Gateway</html>"),
        ),
        ("400 with a body that is not Stytch's", body(400, "oops")),
        // Refusals that are not Stytch's word on the session log no one out.
        (
            "401 from a gateway, in JSON",
            body(401, r#"{"error":"unauthorized"}"#),
        ),
        ("407 from a proxy", status(407)),
        ("422", status(422)),
    ]
}

/// After a 429, no `sessions/authenticate` call is made, for any credential, until its
/// `Retry-After` has passed: the requests get 503 with what remains of it. Then calls
/// resume.
#[tokio::test]
async fn a_rate_limit_stops_every_call_for_its_retry_after() {
    let f = fixture().await;
    let app = app(&f.auth);
    let sessions: Vec<_> = (0..3).map(|_| f.emu.create_session(&f.member)).collect();
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::RateLimited {
            retry_after: Duration::from_secs(5),
            times: 1,
        },
    );
    let res = get_with(&app, "/me", &token_cookie(&sessions[0].session_token)).await;
    assert_eq!(assert_unavailable(&res, "the 429"), 5);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);

    f.emu.clock().advance(Duration::from_secs(2));
    for (i, session) in sessions.iter().enumerate() {
        let res = get_with(&app, "/me", &token_cookie(&session.session_token)).await;
        let what = format!("session {i} during the Retry-After");
        assert_eq!(assert_unavailable(&res, &what), 3, "{what}: what remains");
    }
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        1,
        "no call while waiting"
    );
    assert_eq!(metrics(&f).remote_authentications, 1);

    f.emu.clock().advance(Duration::from_secs(3));
    for (i, session) in sessions.iter().enumerate() {
        let res = get_with(&app, "/me", &token_cookie(&session.session_token)).await;
        assert_member(
            &res,
            &f.member,
            &format!("session {i} after the Retry-After"),
        );
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 4);
}

/// A clock stepped back after a 429 (an NTP correction, a resumed VM) does not turn
/// its `Retry-After` into minutes of 503.
#[tokio::test]
async fn a_clock_stepped_back_does_not_stretch_a_rate_limit() {
    let f = fixture().await;
    let app = app(&f.auth);
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::RateLimited {
            retry_after: Duration::from_secs(5),
            times: 1,
        },
    );
    let cookie = token_cookie(&f.session.session_token);
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(assert_unavailable(&res, "the 429"), 5);
    let clock = f.emu.clock();
    clock.set(axum_stytch::Clock::now(&clock) - Duration::from_secs(600));
    let res = get_with(&app, "/me", &cookie).await;
    assert_member(&res, &f.member, "after the step back");
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 2);
}

/// Requests that need Stytch's answer get 503 `stytch_unavailable` (with
/// `Retry-After`, never cookie changes) within the timeout when it does not come:
/// a session token alone, a validly signed but too old JWT, and either of them on a
/// guarded route (the RBAC check rides on the same call). One outbound call per
/// request, no retries; after a 429, none until its `Retry-After` has passed. When
/// Stytch answers again, the same credentials work and are renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authenticate_down_fails_closed_within_the_timeout_then_recovers() {
    for (case, outage) in authenticate_outages() {
        let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
        f.emu.set_policy(policy());
        let app = app(&f.auth);
        // Keys loaded while Stytch is up; then the session's JWT grows too old.
        let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
        assert_member(&res, &f.member, case);
        f.emu.clock().advance(Duration::from_secs(301));
        let stale = jwt_cookie(&f.session.session_jwt);
        let token = token_cookie(&f.session.session_token);
        let requests: [(&str, &str, &str); 4] = [
            ("GET", "/me", &token),
            ("GET", "/me", &stale),
            ("POST", "/documents", &stale),
            ("POST", "/documents", &token),
        ];
        outage.start(&f.emu, Endpoint::Authenticate);

        for (i, (method, path, cookie)) in requests.iter().enumerate() {
            let what = format!("{case}: {method} {path} #{i}");
            let (res, elapsed) = timed(&app, method, path, cookie).await;
            let secs = assert_unavailable(&res, &what);
            if case.starts_with("429") {
                assert_eq!(secs, 1, "{what}: Stytch's Retry-After: 1 is passed on");
            }
            assert!(elapsed < BOUND, "{what}: took {elapsed:?}");
            // A 429 stops the calls for its Retry-After (1 s, the clock stands still).
            let calls = if case.starts_with("429") {
                1
            } else {
                i as u64 + 1
            };
            assert_eq!(metrics(&f).remote_authentications, calls, "{what}");
            let seen = if outage.is_refusing() { 0 } else { calls };
            assert_eq!(f.emu.requests(Endpoint::Authenticate), seen, "{what}");
        }
        // The optional extractor does not turn "unknown" into "anonymous".
        let res = get_with(&app, "/maybe", &token).await;
        assert_unavailable(&res, case);
        assert_eq!(
            metrics(&f).failures_for(Reason::StytchUnavailable),
            5,
            "{case}"
        );

        // Stytch answers again: same credentials, renewed cookies.
        Outage::end(&f.emu);
        if case.starts_with("429") {
            f.emu.clock().advance(Duration::from_secs(1));
        }
        for (method, path, cookie) in requests {
            let res = send(&app, method, path, Some(cookie)).await;
            assert_eq!(
                res.status,
                StatusCode::OK,
                "{case}: {method} {path}: {}",
                res.body
            );
            assert!(
                res.set_cookie_value("stytch_session_jwt")
                    .is_some_and(|v| !v.is_empty()),
                "{case}: {method} {path}: not renewed: {:?}",
                res.set_cookies()
            );
        }
        let res = get_with(&app, "/maybe", &token).await;
        assert_member(&res, &f.member, case);
    }
}

/// 100 concurrent requests with the same session token (or the same stale JWT) share
/// one `sessions/authenticate` call; when it hangs, they all time out with it: one
/// outbound call, 100 × 503, the whole burst bounded by the timeout plus a margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalesced_calls_time_out_together() {
    let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    f.emu.clock().advance(Duration::from_secs(301));
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Delay(Duration::from_secs(30)),
    );

    let credentials = [
        ("session token", token_cookie(&f.session.session_token)),
        ("stale JWT", jwt_cookie(&f.session.session_jwt)),
    ];
    for (n, (case, cookie)) in credentials.iter().enumerate() {
        let (responses, elapsed) =
            burst(&app, "GET", "/me", std::slice::from_ref(cookie), 100).await;
        for res in &responses {
            assert_unavailable(res, case);
        }
        assert!(elapsed < BOUND, "{case}: the burst took {elapsed:?}");
        let calls = n as u64 + 1;
        assert_eq!(f.emu.requests(Endpoint::Authenticate), calls, "{case}");
        assert_eq!(metrics(&f).remote_authentications, calls, "{case}");
        assert_eq!(
            metrics(&f).failures_for(Reason::StytchUnavailable),
            100 * calls,
            "{case}"
        );
    }

    // Recovery: the same credentials work (and were not remembered as dead).
    f.emu.clear_faults();
    for (case, cookie) in &credentials {
        let res = get_with(&app, "/me", cookie).await;
        assert_member(&res, &f.member, case);
    }
}

/// At most `max_concurrent_authentications` calls are in flight, even when the
/// requests that started them went away: past the cap, a request that needs another
/// call is answered 503 without one. Calls already in flight still answer their
/// requests, and once one ends, new calls are made again. (Stale JWTs: validly signed,
/// they count against this cap; session tokens never confirmed have a budget of their
/// own, tested in tests/rate_limits.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_in_flight_are_capped_and_the_rest_fail_fast() {
    let f = fixture_with(|b| b.max_concurrent_authentications(2)).await;
    let app = app(&f.auth);
    let sessions: Vec<SessionTokens> = (0..5).map(|_| long_session(&f)).collect();
    f.auth.warm_up().await.expect("the keys");
    // Every JWT is past max_token_age: each request needs a call.
    f.emu.clock().advance(Duration::from_secs(301));
    // Stytch holds every call until released.
    f.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);
    // Two calls in flight: one awaited, one whose request is dropped at once.
    let awaited = {
        let (app, cookie) = (app.clone(), jwt_cookie(&sessions[0].session_jwt));
        tokio::spawn(async move { get_with(&app, "/me", &cookie).await })
    };
    let abandoned = {
        let (app, cookie) = (app.clone(), jwt_cookie(&sessions[1].session_jwt));
        tokio::spawn(async move { get_with(&app, "/me", &cookie).await })
    };
    wait_until("two calls in flight", || {
        f.emu.requests(Endpoint::Authenticate) == 2
    })
    .await;
    abandoned.abort();
    // The abandoned request's call still holds its slot. (A request that made a call
    // would wait for the release, or its timeout: `BOUND` turns that into a failure.)
    for session in &sessions[2..] {
        let cookie = jwt_cookie(&session.session_jwt);
        let res = tokio::time::timeout(BOUND, get_with(&app, "/me", &cookie))
            .await
            .expect("a request over the cap waited for a call of its own");
        assert_eq!(assert_unavailable(&res, "over the cap"), 1);
    }
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        2,
        "calls over the cap"
    );
    assert_eq!(metrics(&f).remote_authentications, 2);

    f.emu.release(Endpoint::Authenticate);
    let res = awaited.await.unwrap();
    assert_member(&res, &f.member, "in flight");
    for session in &sessions[2..] {
        let res = get_with(&app, "/me", &jwt_cookie(&session.session_jwt)).await;
        assert_member(&res, &f.member, "once a call ended");
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 5);
}

/// A 404 whose body is not a Stytch error (a proxy's or load balancer's page) says
/// nothing about the session: it is answered 503 like any other garbled answer, and
/// the session must work again once Stytch does. It must not be remembered as dead (for
/// an hour), which would log the member out over a transient fault.
#[tokio::test]
async fn non_stytch_404_does_not_mark_the_session_dead() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_member(&res, &f.member, "warm-up");
    f.emu.clock().advance(Duration::from_secs(301));
    let credentials = [
        ("session token", token_cookie(&f.session.session_token)),
        ("stale JWT", jwt_cookie(&f.session.session_jwt)),
    ];
    for (case, cookie) in &credentials {
        f.emu.inject_fault(
            Endpoint::Authenticate,
            Fault::Body {
                status: 404,
                body: "<html><body><h1>404 Not Found</h1></body></html>".into(),
                times: 1,
            },
        );
        let res = get_with(&app, "/me", cookie).await;
        assert_unavailable(&res, case);

        // The fault is used up: Stytch must be asked again, and the session is alive.
        let before = f.emu.requests(Endpoint::Authenticate);
        let res = get_with(&app, "/me", cookie).await;
        assert_member(&res, &f.member, case);
        assert_eq!(f.emu.requests(Endpoint::Authenticate), before + 1, "{case}");
    }
}

// ----------------------------------------------------------------------------------
// 5. RBAC policy endpoints (500 at start and after load: tests/rbac.rs)

/// The project policy endpoint hanging, refusing, or answering garbage or a body of the
/// wrong shape before any policy was loaded: guarded requests of locally verified
/// members get 503 within the timeout (`Retry-After` = the 5 s retry backoff), one
/// attempt per backoff, never a 403 guessed from nothing. After the backoff, with
/// Stytch back, the policy loads and decisions are made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_endpoint_hanging_or_garbled_at_start_fails_closed_then_recovers() {
    let outages = [
        ("refusing connections", Outage::Refusing),
        ("slower than the request timeout", hang()),
        ("200 with garbage", garbage()),
        (
            "200 with a policy of the wrong shape",
            body(200, r#"{"policy":7}"#),
        ),
    ];
    for (case, outage) in outages {
        let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
        f.emu.set_policy(policy());
        let app = app(&f.auth);
        let cookie = jwt_cookie(&f.session.session_jwt);
        let res = get_with(&app, "/me", &cookie).await;
        assert_member(&res, &f.member, case);
        outage.start(&f.emu, Endpoint::Policy);

        let (res, elapsed) = timed(&app, "POST", "/documents", &cookie).await;
        let secs = assert_unavailable(&res, case);
        assert_eq!(secs, POLICY_BACKOFF.as_secs(), "{case}: Retry-After");
        assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        let (res, elapsed) = timed(&app, "POST", "/documents", &cookie).await;
        assert_unavailable(&res, case);
        assert!(elapsed < BOUND, "{case}: took {elapsed:?}");
        assert_eq!(
            metrics(&f).policy_fetches,
            2,
            "{case}: one attempt per backoff, the project policy and the organization's \
             roles at once"
        );
        assert!(f.emu.requests(Endpoint::Policy) <= 1, "{case}");
        assert_eq!(f.emu.requests(Endpoint::Authenticate), 0, "{case}");
        // The project policy failed; the organization's roles only while refusing.
        let failed = if outage.is_refusing() { 2 } else { 1 };
        assert_eq!(metrics(&f).policy_fetch_failures, failed, "{case}");

        Outage::end(&f.emu);
        f.emu
            .clock()
            .advance(POLICY_BACKOFF + Duration::from_secs(1));
        let res = send(&app, "POST", "/documents", Some(&cookie)).await;
        assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, "created"),
            "{case}"
        );
        // The project policy again (and the organization's roles, when they could not
        // be fetched either: only while refusing connections).
        let fetches = if outage.is_refusing() { 4 } else { 3 };
        assert_eq!(metrics(&f).policy_fetches, fetches, "{case}");
        let served = if outage.is_refusing() { 1 } else { 2 };
        assert_eq!(f.emu.requests(Endpoint::Policy), served, "{case}");
        assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 1, "{case}");
        assert_eq!(
            metrics(&f).policy_fetch_failures,
            failed,
            "{case}: recovered"
        );
    }
}

/// Organization custom roles can only add permissions. While the organization policy
/// endpoint is down (here: hanging past the timeout), a grant by the project policy stands (200), but a denial cannot
/// be confirmed and fails closed (503), one attempt per backoff. Once it answers, the
/// denial is a 403 again.
#[tokio::test]
async fn organization_policy_down_keeps_project_grants_and_fails_denials_closed() {
    let f = fixture_with(|b| b.request_timeout(TIMEOUT)).await;
    f.emu.set_policy(policy());
    let viewer = f.emu.create_member(&f.org, "vi@acme.test", &["viewer"]);
    let viewer = f.emu.create_session(&viewer);
    let app = app(&f.auth);
    let cookie = jwt_cookie(&viewer.session_jwt);
    let read = format!("/orgs/{}/documents", f.org);
    f.emu
        .inject_fault(Endpoint::OrganizationPolicy, hang_fault());

    let (res, elapsed) = timed(&app, "GET", &read, &cookie).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "listed"),
        "granted by the project policy"
    );
    assert!(elapsed < BOUND, "took {elapsed:?}");
    let (res, elapsed) = timed(&app, "POST", "/documents", &cookie).await;
    let secs = assert_unavailable(&res, "denial without the organization's roles");
    assert_eq!(secs, POLICY_BACKOFF.as_secs());
    assert!(elapsed < BOUND, "took {elapsed:?}");
    assert_eq!(
        f.emu.requests(Endpoint::OrganizationPolicy),
        1,
        "one attempt per backoff"
    );

    f.emu.clear_faults();
    f.emu
        .clock()
        .advance(POLICY_BACKOFF + Duration::from_secs(1));
    let res = send(&app, "POST", "/documents", Some(&cookie)).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "permission_denied"),
        "{}",
        res.body
    );
    assert_eq!(f.emu.requests(Endpoint::OrganizationPolicy), 2);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}
