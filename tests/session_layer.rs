//! End-to-end tests of the session layer against the in-process Stytch emulator:
//! local verification and caching, renewal, revocation, logout, key rotation,
//! outages, concurrency, the extractors, and the builder options that change the
//! request flow.
//!
//! Time-dependent behaviour is driven by the emulator's `MockClock` (shared with
//! the layer); no test sleeps to let time pass. The only real-time values are
//! emulator delays used to make concurrent requests overlap, and generous upper
//! bounds on how long a request may take when Stytch is unreachable.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum_stytch::testing::{EmulatorOptions, Endpoint, Fault, SessionOptions, StytchEmulator};
use axum_stytch::{AuthMethod, AuthenticatedMember, Clock as _, Reason, RequireSession};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

const JWT_COOKIE: &str = "stytch_session_jwt";
const TOKEN_COOKIE: &str = "stytch_session";

// ----------------------------------------------------------------------------------
// Helpers

fn token_cookie(token: &str) -> String {
    cookies(None, Some(token))
}

fn authenticate_calls(f: &Fixture) -> u64 {
    f.emu.requests(Endpoint::Authenticate)
}

fn jwks_calls(f: &Fixture) -> u64 {
    f.emu.requests(Endpoint::Jwks)
}

fn unix_now(emu: &StytchEmulator) -> u64 {
    emu.clock()
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The whole `Set-Cookie` line for cookie `name`.
fn set_cookie_line(res: &TestResponse, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    res.set_cookies()
        .into_iter()
        .find(|line| line.starts_with(&prefix))
}

/// The attributes of a `Set-Cookie` line (everything after the first `;`), trimmed.
fn attributes(line: &str) -> Vec<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_owned())
        .collect()
}

/// The `Expires` attribute of a cookie that lives until `end` (whole seconds).
fn expires_attr(end: std::time::SystemTime) -> String {
    let secs = end.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let date = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .unwrap();
    format!("Expires={}", date.format(&format).unwrap())
}

#[track_caller]
fn assert_cleared(res: &TestResponse) {
    for name in [JWT_COOKIE, TOKEN_COOKIE] {
        let line = set_cookie_line(res, name)
            .unwrap_or_else(|| panic!("no Set-Cookie clearing {name}: {:?}", res.set_cookies()));
        assert_eq!(
            res.set_cookie_value(name).as_deref(),
            Some(""),
            "{name} not emptied: {line}"
        );
        assert!(
            attributes(&line).iter().any(|a| a == "Max-Age=0"),
            "{name} not expired: {line}"
        );
    }
}

#[track_caller]
fn assert_rejected(res: &TestResponse, status: StatusCode, reason: Reason) {
    assert_eq!(res.status, status, "body: {}", res.body);
    assert_eq!(res.reason(), reason.as_str(), "body: {}", res.body);
}

async fn get_with_headers(
    app: &Router,
    path: &str,
    headers: &[(http::HeaderName, &str)],
) -> TestResponse {
    let mut req = Request::builder().method("GET").uri(path);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

/// `GET path` with `Authorization: Bearer <value>`.
async fn get_bearer(app: &Router, path: &str, value: &str) -> TestResponse {
    get_with_headers(app, path, &[(AUTHORIZATION, &format!("Bearer {value}"))]).await
}

/// `jwt` with its header's `kid` replaced, re-signed with the real key.
fn with_kid(emu: &StytchEmulator, jwt: &str, kid: &str) -> String {
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"}).to_string();
    let payload = String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    emu.sign_raw(&header, &payload)
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("jwk-test-{hex}")
}

// ----------------------------------------------------------------------------------
// 1. Fresh JWT: local verification, then the token cache

#[tokio::test]
async fn fresh_jwt_is_verified_locally_then_served_from_cache() {
    let f = fixture().await;
    let app = app(&f.auth);
    let cookie = jwt_cookie(&f.session.session_jwt);

    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    assert_eq!(authenticate_calls(&f), 0);
    let first = f.auth.metrics();
    assert_eq!(first.local_verifications, 1);
    assert_eq!(first.cache_hits, 0);

    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    let second = f.auth.metrics();
    assert_eq!(second.cache_hits, first.cache_hits + 1);
    assert_eq!(second.local_verifications, first.local_verifications);
    assert_eq!(second.remote_authentications, 0);
    assert_eq!(authenticate_calls(&f), 0);
    assert_eq!(jwks_calls(&f), 1);

    // The cache is looked up with the cookie value as sent (its characters are checked
    // only on a miss): a quoted value is the same token, a value that differs in any
    // byte is a miss, and a miss with bytes no cookie may carry is refused.
    let quoted = format!("stytch_session_jwt=\"{}\"", f.session.session_jwt);
    let res = get_with(&app, "/me", &quoted).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, f.member.as_str())
    );
    assert_eq!(f.auth.metrics().cache_hits, second.cache_hits + 1);
    let tampered = format!("{}\\", f.session.session_jwt);
    let res = get_with(&app, "/me", &jwt_cookie(&tampered)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::InvalidCredentials);
    assert_eq!(f.auth.metrics().local_verifications, 1);
}

/// A project reached through a custom domain: its JWTs carry the domain's origin as
/// `iss`, accepted by a layer whose base URL is that origin, locally and on renewal;
/// JWTs of another issuer are refused without a call.
#[tokio::test]
async fn custom_domain_issuer_is_accepted_and_a_foreign_one_refused() {
    let emu = StytchEmulator::start_with(EmulatorOptions::new().custom_domain()).await;
    assert_eq!(emu.issuer(), emu.base_url());
    let auth = emu.auth_builder().build().unwrap();
    let routes = app(&auth);
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let session = emu.create_session(&member);
    assert_eq!(claims_of(&session.session_jwt)["iss"], emu.base_url());

    let res = get_with(&routes, "/me", &jwt_cookie(&session.session_jwt)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, member.as_str())
    );
    assert_eq!(auth.metrics().local_verifications, 1);
    // Expired: renewed by Stytch, which mints the same issuer.
    emu.clock().advance(Duration::from_secs(301));
    let res = get_with(&routes, "/me", &jwt_cookie(&session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let renewed = res.set_cookie_value("stytch_session_jwt").expect("renewed");
    assert_eq!(claims_of(&renewed)["iss"], emu.base_url());
    let res = get_with(&routes, "/me", &jwt_cookie(&renewed)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    let foreign =
        StytchEmulator::start_with(EmulatorOptions::new().issuer("https://auth.example.com")).await;
    let auth = foreign.auth_builder().build().unwrap();
    let org = foreign.create_organization("acme");
    let member = foreign.create_member(&org, "ada@acme.test", &[]);
    let session = foreign.create_session(&member);
    let res = get_with(&app(&auth), "/me", &jwt_cookie(&session.session_jwt)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::InvalidToken);
    assert_eq!(foreign.requests(Endpoint::Authenticate), 0);
}

// ----------------------------------------------------------------------------------
// 2. Expired JWT renewed through Stytch

#[tokio::test]
async fn expired_jwt_is_renewed_with_cookies_and_the_new_jwt_verifies_locally() {
    let f = fixture().await;
    let app = app(&f.auth);
    let old = f.session.session_jwt.clone();
    f.emu.clock().advance(Duration::from_secs(301));

    let res = get_with(&app, "/me", &jwt_cookie(&old)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(authenticate_calls(&f), 1);

    let new_jwt = res
        .set_cookie_value(JWT_COOKIE)
        .expect("renewed JWT cookie");
    let new_token = res
        .set_cookie_value(TOKEN_COOKIE)
        .expect("renewed token cookie");
    assert!(!new_jwt.is_empty());
    assert_ne!(new_jwt, old, "the renewed JWT must be a new one");
    assert_eq!(claims_of(&new_jwt)["iat"], json!(unix_now(&f.emu)));
    assert_eq!(new_token, f.session.session_token);
    for name in [JWT_COOKIE, TOKEN_COOKIE] {
        let line = set_cookie_line(&res, name).unwrap();
        let attrs = attributes(&line);
        for expected in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(
                attrs.iter().any(|a| a == expected),
                "{name} lacks {expected}: {line}"
            );
        }
        // The cookies live as long as the 60-minute session, until its end as Stytch
        // stated it (not counted from this server's clock).
        let end = f
            .emu
            .session(&f.session.member_session_id)
            .unwrap()
            .expires_at;
        assert_eq!(end, f.emu.clock().now() + Duration::from_secs(3299));
        assert!(attrs.contains(&expires_attr(end)), "{line}");
        assert!(!attrs.iter().any(|a| a.starts_with("Max-Age")), "{line}");
    }
    assert_eq!(f.auth.metrics().renewals, 1);

    let before = f.auth.metrics();
    let res = get_with(&app, "/me", &jwt_cookie(&new_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    assert_eq!(
        authenticate_calls(&f),
        1,
        "the renewed JWT must verify locally"
    );
    let after = f.auth.metrics();
    assert_eq!(after.local_verifications, before.local_verifications + 1);
    assert_eq!(after.remote_authentications, before.remote_authentications);
}

// ----------------------------------------------------------------------------------
// 3. Session token only: remote, lazily

#[tokio::test]
async fn token_only_session_is_authenticated_remotely_and_lazily() {
    let f = fixture().await;
    let app = app(&f.auth);
    let cookie = token_cookie(&f.session.session_token);

    let res = get_with(&app, "/public", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, "public");
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    assert_eq!(authenticate_calls(&f), 0, "no extractor asked: no call");

    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(authenticate_calls(&f), 1);
    // Stytch's answer is written back: a JWT for the next requests, and the token.
    let jwt = res.set_cookie_value(JWT_COOKIE).expect("JWT cookie");
    assert_eq!(claims_of(&jwt)["sub"], json!(f.member));
    assert_eq!(
        res.set_cookie_value(TOKEN_COOKIE).as_deref(),
        Some(f.session.session_token.as_str())
    );
}

// ----------------------------------------------------------------------------------
// 4. Revoked sessions

#[tokio::test]
async fn revoked_session_is_refused_and_cookies_cleared() {
    let f = fixture().await;
    let app = app(&f.auth);
    let jwt = jwt_cookie(&f.session.session_jwt);
    let res = get_with(&app, "/me", &jwt).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    f.emu.revoke_session(&f.session.member_session_id);
    f.emu.clock().advance(Duration::from_secs(301));

    let res = get_with(&app, "/me", &jwt).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    assert_cleared(&res);
    assert_eq!(authenticate_calls(&f), 1);

    let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    assert_cleared(&res);
    assert_eq!(authenticate_calls(&f), 2);

    // The optional extractor sees no member, and the dead cookies still go.
    let res = get_with(&app, "/maybe", &token_cookie(&f.session.session_token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, "anonymous");
    assert_cleared(&res);
    assert!(f.auth.metrics().failures_for(Reason::SessionRevoked) >= 3);
}

// ----------------------------------------------------------------------------------
// 5. Logout

#[tokio::test]
async fn logout_clears_cookies_and_refuses_the_jwt_at_once() {
    let f = fixture().await;
    let app = app(&f.auth);
    let jwt = jwt_cookie(&f.session.session_jwt);

    let res = send(&app, "POST", "/logout", Some(&jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_cleared(&res);
    assert_eq!(f.emu.requests(Endpoint::Revoke), 1);
    assert!(f.emu.session(&f.session.member_session_id).unwrap().revoked);
    let calls = authenticate_calls(&f);
    assert_eq!(calls, 0);

    // The JWT is still within its 5 minutes, but this instance refuses it at once.
    let res = get_with(&app, "/me", &jwt).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    assert_cleared(&res);
    assert_eq!(
        authenticate_calls(&f),
        calls,
        "no call to decide a logged-out JWT"
    );

    // A JWT of the same session never seen before is refused as well.
    f.emu.clock().advance(Duration::from_secs(1));
    let other = f.emu.mint_jwt(&f.session.member_session_id);
    let res = get_with(&app, "/me", &jwt_cookie(&other)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    assert_eq!(authenticate_calls(&f), calls);

    // The session token is dead at Stytch.
    let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
}

/// A logout whose caller stops waiting (the client hung up) still ends the session at
/// Stytch: the revoke call is not cancelled with the request.
#[tokio::test]
async fn a_logout_abandoned_during_the_revoke_call_still_revokes_at_stytch() {
    let f = fixture().await;
    let app = app(&f.auth);
    let jwt = jwt_cookie(&f.session.session_jwt);
    // A delay, not a `Fault::Hold`: the emulator, as any hyper server, drops a call
    // whose client hung up once it notices, and the delay is what lets the hang-up
    // reach it. A hold released at once would answer the call first, and the test
    // would pass with the revoke cancelled.
    f.emu
        .inject_fault(Endpoint::Revoke, Fault::Delay(Duration::from_millis(300)));
    // The request is dropped once Stytch has the call, well before it answers.
    tokio::select! {
        res = send(&app, "POST", "/logout", Some(&jwt)) => {
            panic!("the logout answered before the revoke's delay: {}", res.status)
        }
        () = wait_until("the revoke call", || f.emu.requests(Endpoint::Revoke) == 1) => {}
    }
    wait_until("the session revoked at Stytch", || {
        f.emu
            .session(&f.session.member_session_id)
            .is_some_and(|s| s.revoked)
    })
    .await;
    // This instance refuses it at once, as for a logout that answered.
    let res = get_with(&app, "/me", &jwt).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
}

/// A request renewed by Stytch whose session is logged out (by another request of the
/// same browser) before its response is written: the response clears the cookies
/// instead of handing the logged-out session fresh ones.
#[tokio::test]
async fn a_renewal_answered_after_its_session_logged_out_clears_the_cookies() {
    let f = fixture().await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(tokio::sync::Notify::new());
    let (entered_in, gate_in) = (Arc::clone(&entered), Arc::clone(&gate));
    let slow = Router::new()
        .route(
            "/slow",
            get(move |m: AuthenticatedMember| async move {
                entered_in.notify_one();
                gate_in.notified().await;
                m.member_id().to_owned()
            }),
        )
        .layer(f.auth.layer());
    let app = app(&f.auth).merge(slow);

    // Token only: Stytch authenticates it and returns fresh credentials.
    let renewing = tokio::spawn({
        let (app, cookie) = (app.clone(), token_cookie(&f.session.session_token));
        async move { send(&app, "GET", "/slow", Some(&cookie)).await }
    });
    entered.notified().await;
    let res = send(
        &app,
        "POST",
        "/logout",
        Some(&jwt_cookie(&f.session.session_jwt)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    gate.notify_one();

    let res = renewing.await.expect("the request");
    assert_eq!(
        res.status,
        StatusCode::OK,
        "the handler had run: {}",
        res.body
    );
    assert_cleared(&res);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);
}

/// The denylist is bounded by `revocation_capacity`: when full it forgets the *oldest*
/// logouts, never the one just made.
#[tokio::test]
async fn a_full_denylist_still_refuses_the_latest_logouts() {
    const CAPACITY: usize = 8;
    let f = fixture_with(|b| b.revocation_capacity(CAPACITY)).await;
    let app = app(&f.auth);
    let logout = |tokens: &axum_stytch::testing::SessionTokens| {
        let cookie = jwt_cookie(&tokens.session_jwt);
        let app = app.clone();
        async move {
            let res = send(&app, "POST", "/logout", Some(&cookie)).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            cookie
        }
    };
    let mut logged_out = Vec::new();
    for _ in 0..3 * CAPACITY {
        let tokens = f.emu.create_session(&f.member);
        logged_out.push(logout(&tokens).await);
        // Every logout so far that fits in the denylist is still refused.
        let remembered = logged_out.iter().rev().take(CAPACITY);
        for cookie in remembered {
            let res = get_with(&app, "/me", cookie).await;
            assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
        }
    }
}

#[tokio::test]
async fn failed_logout_still_refuses_the_session_token_on_this_instance() {
    // StytchAuth::logout documents: "When Stytch cannot be reached or refuses the
    // call; the session is refused on this instance anyway."
    let f = fixture().await;
    let app = app(&f.auth);
    f.emu.inject_fault(
        Endpoint::Revoke,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    let both = cookies(Some(&f.session.session_jwt), Some(&f.session.session_token));
    let res = send(&app, "POST", "/logout", Some(&both)).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.body);
    assert!(!f.emu.session(&f.session.member_session_id).unwrap().revoked);

    // The JWT is refused (the local denylist is consulted on the JWT path) ...
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    // ... and so must be the session's opaque token.
    let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
}

// ----------------------------------------------------------------------------------
// 6. Key rotation and unknown kids

#[tokio::test]
async fn key_rotation_costs_one_jwks_fetch() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(jwks_calls(&f), 1);

    let new_kid = f.emu.rotate_keys();
    let rotated = f.emu.mint_jwt(&f.session.member_session_id);
    assert_eq!(kid_of(&rotated), new_kid);
    let res = get_with(&app, "/me", &jwt_cookie(&rotated)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(jwks_calls(&f), 2, "one refresh for the new kid");

    f.emu.clock().advance(Duration::from_secs(1));
    let again = f.emu.mint_jwt(&f.session.member_session_id);
    assert_ne!(again, rotated);
    assert_eq!(kid_of(&again), new_kid);
    let res = get_with(&app, "/me", &jwt_cookie(&again)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(jwks_calls(&f), 2, "the new kid is known now");

    // The old key is still served, so the old JWT still verifies.
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 0);
}

async fn flood_unknown_kids(f: &Fixture, app: &Router, n: usize) {
    let mut handles = Vec::new();
    for _ in 0..n {
        let jwt = with_kid(&f.emu, &f.session.session_jwt, &random_kid());
        let app = app.clone();
        handles.push(tokio::spawn(async move {
            get_with(&app, "/me", &jwt_cookie(&jwt)).await
        }));
    }
    for handle in handles {
        let res = handle.await.unwrap();
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::InvalidToken);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kid_flood_refreshes_jwks_at_most_once_per_cooldown() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(jwks_calls(&f), 1);

    flood_unknown_kids(&f, &app, 50).await;
    let after_first = jwks_calls(&f);
    assert!(
        after_first <= 2,
        "{after_first} JWKS fetches for one cooldown"
    );

    // Still within the cooldown: no more fetches.
    f.emu.clock().advance(Duration::from_secs(29));
    flood_unknown_kids(&f, &app, 50).await;
    assert_eq!(jwks_calls(&f), after_first);

    // Past the default 30 s cooldown: at most one more.
    f.emu.clock().advance(Duration::from_secs(2));
    flood_unknown_kids(&f, &app, 50).await;
    let after_second = jwks_calls(&f);
    assert!(
        after_second <= after_first + 1,
        "{after_first} -> {after_second} JWKS fetches"
    );
    assert_eq!(authenticate_calls(&f), 0);

    // Legitimate traffic is unaffected.
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

// ----------------------------------------------------------------------------------
// 7. Stytch unavailable

#[tokio::test(flavor = "multi_thread")]
async fn stytch_refusing_connections_answers_503_quickly_but_local_jwts_still_work() {
    let f = fixture().await;
    let app = app(&f.auth);
    // Load the keys while Stytch is up.
    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    f.emu.set_refusing_connections(true);
    let started = Instant::now();
    let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
    let elapsed = started.elapsed();
    assert_rejected(
        &res,
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::StytchUnavailable,
    );
    let secs = res.retry_after_secs();
    assert!((1..=60).contains(&secs), "Retry-After: {secs}");
    assert!(
        res.set_cookies().is_empty(),
        "an outage must not log anyone out"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    // A fresh JWT (never seen, so verified with the loaded keys) needs no Stytch.
    f.emu.clock().advance(Duration::from_secs(1));
    let fresh = f.emu.mint_jwt(&f.session.member_session_id);
    let before = f.auth.metrics().local_verifications;
    let res = get_with(&app, "/me", &jwt_cookie(&fresh)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(f.auth.metrics().local_verifications, before + 1);

    // Routes that never ask are not affected either.
    let res = get_with(&app, "/public", &token_cookie(&f.session.session_token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn stytch_slower_than_the_request_timeout_answers_503() {
    let f = fixture_with(|b| b.request_timeout(Duration::from_millis(300))).await;
    let app = app(&f.auth);
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Delay(Duration::from_secs(10)),
    );

    let started = Instant::now();
    let res = get_with(&app, "/me", &token_cookie(&f.session.session_token)).await;
    let elapsed = started.elapsed();
    assert_rejected(
        &res,
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::StytchUnavailable,
    );
    let secs = res.retry_after_secs();
    assert!((1..=60).contains(&secs), "Retry-After: {secs}");
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(authenticate_calls(&f), 1);
    assert_eq!(f.auth.metrics().failures_for(Reason::StytchUnavailable), 1);
}

#[tokio::test]
async fn stytch_5xx_and_garbage_answer_503() {
    let f = fixture().await;
    let app = app(&f.auth);
    let cookie = token_cookie(&f.session.session_token);
    for fault in [
        Fault::Status {
            status: 500,
            times: 1,
        },
        Fault::Status {
            status: 429,
            times: 1,
        },
        Fault::Garbage { times: 1 },
    ] {
        f.emu.inject_fault(Endpoint::Authenticate, fault.clone());
        let res = get_with(&app, "/me", &cookie).await;
        assert_rejected(
            &res,
            StatusCode::SERVICE_UNAVAILABLE,
            Reason::StytchUnavailable,
        );
        assert!((1..=60).contains(&res.retry_after_secs()), "{fault:?}");
        assert!(res.set_cookies().is_empty(), "{fault:?}");
        // Past the 429's Retry-After (1 s): the next fault is met by a call.
        f.emu.clock().advance(Duration::from_secs(1));
    }
    assert_eq!(authenticate_calls(&f), 3);
    // Faults used up: the same cookie works again.
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

// ----------------------------------------------------------------------------------
// 8. / 9. Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_requests_on_a_cold_cache_fetch_the_jwks_once() {
    let f = fixture().await;
    let mut sessions = vec![(f.member.clone(), f.session.session_jwt.clone())];
    for i in 0..9 {
        let member = f
            .emu
            .create_member(&f.org, &format!("member{i}@acme.test"), &[]);
        let session = f.emu.create_session(&member);
        sessions.push((member, session.session_jwt));
    }
    // Keep the single fetch in flight while requests pile up behind it.
    f.emu
        .inject_fault(Endpoint::Jwks, Fault::Delay(Duration::from_millis(100)));
    let app = app(&f.auth);
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut handles = Vec::new();
    for i in 0..1000 {
        let (member, jwt) = sessions[i % sessions.len()].clone();
        let (app, barrier) = (app.clone(), barrier.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            (get_with(&app, "/me", &jwt_cookie(&jwt)).await, member)
        }));
    }
    for handle in handles {
        let (res, member) = handle.await.unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.body, member);
    }
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1);
    assert_eq!(f.auth.metrics().jwks_fetches, 1);
    assert_eq!(authenticate_calls(&f), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_requests_with_one_token_share_one_authenticate() {
    // The held call must outlast `wait_until` below, however slow the machine.
    let f = fixture_with(|b| b.request_timeout(Duration::from_secs(60))).await;
    // The first call stays in flight until every request has joined it.
    f.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);
    let app = app(&f.auth);
    let cookie = token_cookie(&f.session.session_token);
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut handles = Vec::new();
    for _ in 0..100 {
        let (app, barrier, cookie) = (app.clone(), barrier.clone(), cookie.clone());
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            get_with(&app, "/me", &cookie).await
        }));
    }
    wait_until("every request in the one call, held by Stytch", || {
        f.auth.metrics().coalesced_authentications == 99 && authenticate_calls(&f) == 1
    })
    .await;
    f.emu.release(Endpoint::Authenticate);
    for handle in handles {
        let res = handle.await.unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.body, f.member);
        assert!(
            res.set_cookie_value(JWT_COOKIE).is_some(),
            "every response renews"
        );
    }
    assert_eq!(authenticate_calls(&f), 1);
    let metrics = f.auth.metrics();
    assert_eq!(metrics.remote_authentications, 1);
    assert_eq!(metrics.coalesced_authentications, 99);
}

// ----------------------------------------------------------------------------------
// 10. Option<AuthenticatedMember>

#[tokio::test]
async fn optional_member_is_none_for_401s_and_rejects_on_503() {
    let f = fixture().await;
    let app = app(&f.auth);

    let res = send(&app, "GET", "/maybe", None).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "anonymous")
    );

    let res = get_with(&app, "/maybe", "stytch_session_jwt=garbage").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "anonymous")
    );

    // Valid-looking but with another member's id in the payload.
    let jwt = &f.session.session_jwt;
    let mut claims = claims_of(jwt);
    claims["sub"] = json!("member-test-someone-else");
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");
    let res = get_with(&app, "/maybe", &jwt_cookie(&tampered)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "anonymous")
    );

    let res = get_with(&app, "/maybe", &jwt_cookie(jwt)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, f.member.as_str())
    );
    assert_eq!(authenticate_calls(&f), 0);

    f.emu.set_refusing_connections(true);
    let res = get_with(&app, "/maybe", &token_cookie(&f.session.session_token)).await;
    assert_rejected(
        &res,
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::StytchUnavailable,
    );
    assert!((1..=60).contains(&res.retry_after_secs()));
}

// ----------------------------------------------------------------------------------
// 11. max_token_age

#[tokio::test]
async fn zero_max_token_age_sends_every_request_to_stytch() {
    let f = fixture_with(|b| b.max_token_age(Duration::ZERO)).await;
    let app = app(&f.auth);
    let cookie = jwt_cookie(&f.session.session_jwt);

    let res = get_with(&app, "/public", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 0, "still lazy");

    for expected_calls in 1..=3 {
        let res = get_with(&app, "/me", &cookie).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.body, f.member);
        assert_eq!(authenticate_calls(&f), expected_calls);
        assert!(res.set_cookie_value(JWT_COOKIE).is_some());
    }
    let metrics = f.auth.metrics();
    assert_eq!(metrics.cache_hits, 0);
    assert_eq!(metrics.remote_authentications, 3);
}

#[tokio::test]
async fn zero_max_token_age_goes_remote_even_when_iat_is_slightly_ahead() {
    // Stytch's clock running 2 s ahead of ours is within the default 5 s leeway.
    let f = fixture_with(|b| b.max_token_age(Duration::ZERO)).await;
    let app = app(&f.auth);
    let now = unix_now(&f.emu);
    let mut claims = claims_of(&f.session.session_jwt);
    claims["iat"] = json!(now + 2);
    claims["nbf"] = json!(now + 2);
    claims["exp"] = json!(now + 302);
    let jwt = f.emu.sign_claims(&claims);

    let res = get_with(&app, "/me", &jwt_cookie(&jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        authenticate_calls(&f),
        1,
        "max_token_age(ZERO) documents that every request goes to Stytch"
    );
}

// ----------------------------------------------------------------------------------
// Session expiry and the token cache

/// A JWT whose recorded session end has passed is not trusted locally, cached or not:
/// Stytch decides. Its "session not found" is answered `session_expired` (cookies
/// cleared), and remembered: the next request does not ask again.
#[tokio::test]
async fn jwt_of_an_ended_session_is_refused_once_stytch_confirms_it() {
    // 0: every request verifies the JWT; 10,000: the second is looked up in the cache.
    for capacity in [0, 10_000] {
        let f = fixture_with(|b| b.token_cache_capacity(capacity)).await;
        let app = app(&f.auth);
        let session = f.emu.create_session_with(
            &f.member,
            SessionOptions::default().duration(Duration::from_secs(120)),
        );
        let cookie = jwt_cookie(&session.session_jwt);
        let res = get_with(&app, "/me", &cookie).await;
        assert_eq!(res.status, StatusCode::OK, "{capacity}: {}", res.body);

        f.emu.clock().advance(Duration::from_secs(121));
        for calls in [1, 1] {
            let res = get_with(&app, "/me", &cookie).await;
            assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::SessionExpired);
            assert_cleared(&res);
            assert_eq!(authenticate_calls(&f), calls, "cache capacity {capacity}");
        }
    }
}

/// Stytch extends a session on every call with `session_duration`; a client that keeps
/// its first JWT (a bearer client never gets the renewed one) is still let in after the
/// end that JWT recorded, because Stytch says the session lives on.
#[tokio::test]
async fn jwt_of_a_session_extended_since_is_accepted_through_stytch() {
    let f = fixture_with(|b| {
        b.bearer_tokens(true)
            .session_duration(Duration::from_secs(60 * 60))
    })
    .await;
    let app = app(&f.auth);
    let session = f.emu.create_session_with(
        &f.member,
        SessionOptions::default().duration(Duration::from_secs(120)),
    );
    // The session token goes to Stytch, which extends the session to an hour.
    let res = get_bearer(&app, "/me", &session.session_token).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1);

    // Past the two minutes the first JWT recorded, well within its own `exp`.
    f.emu.clock().advance(Duration::from_secs(121));
    let res = get_bearer(&app, "/me", &session.session_jwt).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(authenticate_calls(&f), 2, "Stytch decided");
}

// ----------------------------------------------------------------------------------
// 12. Bearer tokens

#[tokio::test]
async fn bearer_tokens_work_when_enabled_and_never_set_cookies() {
    let f = fixture_with(|b| b.bearer_tokens(true)).await;
    let app = app(&f.auth);

    let res = get_bearer(&app, "/me", &f.session.session_jwt).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(authenticate_calls(&f), 0);

    // An opaque session token works too (remotely), without cookies.
    let res = get_bearer(&app, "/me", &f.session.session_token).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1);
    assert!(
        res.headers.get(SET_COOKIE).is_none(),
        "{:?}",
        res.set_cookies()
    );

    // Renewal of an expired JWT through a bearer header sets no cookies.
    f.emu.clock().advance(Duration::from_secs(301));
    let res = get_bearer(&app, "/me", &f.session.session_jwt).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(authenticate_calls(&f), 2);
    assert!(
        res.headers.get(SET_COOKIE).is_none(),
        "{:?}",
        res.set_cookies()
    );
}

/// A 401 challenges `Cookie` by default, and `Bearer` (RFC 6750) when bearer tokens
/// are enabled, with an error code only when a credential was sent.
#[tokio::test]
async fn unauthorized_challenges_bearer_only_when_bearer_tokens_are_enabled() {
    let challenge = |res: &TestResponse| {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
        res.headers[WWW_AUTHENTICATE].to_str().unwrap().to_owned()
    };
    let f = fixture().await;
    let cookies_only = app(&f.auth);
    let res = get_with_headers(&cookies_only, "/me", &[]).await;
    assert_eq!(challenge(&res), r#"Cookie realm="stytch""#);
    let res = get_with(&cookies_only, "/me", &jwt_cookie("a.b.c")).await;
    assert_eq!(challenge(&res), r#"Cookie realm="stytch""#);

    let f = fixture_with(|b| b.bearer_tokens(true)).await;
    let app = app(&f.auth);
    let res = get_with_headers(&app, "/me", &[]).await;
    assert_eq!(challenge(&res), r#"Bearer realm="stytch""#);
    let refused = r#"Bearer realm="stytch", error="invalid_token""#;
    assert_eq!(challenge(&get_bearer(&app, "/me", "a.b.c").await), refused);
    assert_eq!(challenge(&get_bearer(&app, "/me", "short").await), refused);
    // Cookies refused while bearer tokens are enabled: the same challenge.
    assert_eq!(
        challenge(&get_with(&app, "/me", &jwt_cookie("a.b.c")).await),
        refused
    );
    // A repeated or malformed credential is a bad request.
    let malformed = r#"Bearer realm="stytch", error="invalid_request""#;
    let twice = [
        (AUTHORIZATION, "Bearer a.b.c"),
        (AUTHORIZATION, "Bearer d.e.f"),
    ];
    assert_eq!(
        challenge(&get_with_headers(&app, "/me", &twice).await),
        malformed
    );
    assert_eq!(challenge(&get_bearer(&app, "/me", "a\\b").await), malformed);
}

#[tokio::test]
async fn bearer_tokens_are_ignored_unless_enabled() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_bearer(&app, "/me", &f.session.session_jwt).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::MissingCredentials);
    assert_eq!(authenticate_calls(&f), 0);
}

// ----------------------------------------------------------------------------------
// 13. Layer missing

#[tokio::test]
async fn member_extractor_without_the_layer_is_a_500_that_says_so() {
    let f = fixture().await;
    let router: Router = Router::new().route(
        "/me",
        get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
    );
    let logs = CapturedLogs::default();
    let _recording = logs.on_this_thread();
    for _ in 0..5 {
        let res = get_with(&router, "/me", &jwt_cookie(&f.session.session_jwt)).await;
        assert_rejected(
            &res,
            StatusCode::INTERNAL_SERVER_ERROR,
            Reason::LayerMissing,
        );
        assert!(res.body.contains("StytchAuth layer"), "{}", res.body);
    }
    // One ERROR, not one per request (the only test of this binary without a layer).
    let text = logs.text();
    assert_eq!(
        text.matches("without the StytchAuth layer").count(),
        1,
        "{text}"
    );
    assert_eq!(authenticate_calls(&f), 0);
    assert_eq!(jwks_calls(&f), 0);
}

// ----------------------------------------------------------------------------------
// 14. session_duration

#[tokio::test]
async fn session_duration_extends_the_session_on_renewal() {
    let f = fixture_with(|b| b.session_duration(Duration::from_secs(7200))).await;
    let app = app(&f.auth);
    f.emu.clock().advance(Duration::from_secs(301));

    let res = get_with(&app, "/me", &jwt_cookie(&f.session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1);
    let info = f.emu.session(&f.session.member_session_id).unwrap();
    assert_eq!(
        info.expires_at,
        f.emu.clock().now() + Duration::from_secs(7200)
    );
    let line = set_cookie_line(&res, JWT_COOKIE).unwrap();
    assert!(
        attributes(&line).contains(&expires_attr(info.expires_at)),
        "{line}"
    );
}

// ----------------------------------------------------------------------------------
// 15. error_handler

#[tokio::test]
async fn error_handler_redirects_browsers_and_keeps_json_for_apis() {
    let f = fixture_with(|b| {
        b.error_handler(|rejection, parts| {
            let html = parts
                .headers
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"));
            (html && rejection.status() == StatusCode::UNAUTHORIZED)
                .then(|| Redirect::to("/login").into_response())
        })
    })
    .await;
    let app = app(&f.auth);

    let res = get_with_headers(&app, "/me", &[(ACCEPT, "text/html,application/xhtml+xml")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.headers.get(LOCATION).unwrap(), "/login");

    let res = get_with_headers(&app, "/me", &[(ACCEPT, "application/json")]).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::MissingCredentials);
    let res = send(&app, "GET", "/me", None).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::MissingCredentials);

    // A revoked session redirects, and the layer still clears the dead cookies.
    f.emu.revoke_session(&f.session.member_session_id);
    let cookie = token_cookie(&f.session.session_token);
    let res = get_with_headers(&app, "/me", &[(ACCEPT, "text/html"), (COOKIE, &cookie)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(res.headers.get(LOCATION).unwrap(), "/login");
    assert_cleared(&res);

    // 503s are not the handler's business here: default JSON.
    f.emu.set_refusing_connections(true);
    let other = f.emu.create_session(&f.member);
    let cookie = token_cookie(&other.session_token);
    let res = get_with_headers(&app, "/me", &[(ACCEPT, "text/html"), (COOKIE, &cookie)]).await;
    assert_rejected(
        &res,
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::StytchUnavailable,
    );
}

// ----------------------------------------------------------------------------------
// 16. RequireSession over a nested router

#[tokio::test]
async fn require_session_guards_a_nested_router() {
    let f = fixture().await;
    let private = Router::new()
        .route(
            "/dashboard",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .route_layer(RequireSession::new());
    let also_private = Router::new()
        .route("/settings", get(|| async { "settings" }))
        .route_layer(f.auth.require_session());
    let app: Router = Router::new()
        .nest("/app", private)
        .nest("/account", also_private)
        .route("/", get(|| async { "home" }))
        .layer(f.auth.layer());

    let res = send(&app, "GET", "/app/dashboard", None).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::MissingCredentials);
    let res = get_with(&app, "/app/dashboard", "stytch_session_jwt=not.a.jwt").await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::InvalidToken);
    let res = send(&app, "GET", "/account/settings", None).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Reason::MissingCredentials);
    let res = send(&app, "GET", "/", None).await;
    assert_eq!((res.status, res.body.as_str()), (StatusCode::OK, "home"));

    let cookie = jwt_cookie(&f.session.session_jwt);
    let res = get_with(&app, "/app/dashboard", &cookie).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    let res = get_with(&app, "/account/settings", &cookie).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "settings")
    );

    // Token-only through the guard: remote, renewed.
    let res = get_with(
        &app,
        "/app/dashboard",
        &token_cookie(&f.session.session_token),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert!(res.set_cookie_value(JWT_COOKIE).is_some());
}

// ----------------------------------------------------------------------------------
// 17. A non-axum body type

#[tokio::test]
async fn layer_wraps_a_plain_tower_service_with_string_bodies() {
    let f = fixture().await;
    let service = tower::ServiceBuilder::new()
        .layer(f.auth.layer())
        .service(tower::service_fn(|req: Request<String>| async move {
            let (mut parts, body) = req.into_parts();
            let response = match AuthenticatedMember::from_request_parts(&mut parts, &()).await {
                Ok(member) => {
                    let method = match member.auth_method() {
                        AuthMethod::LocalJwt => "local",
                        AuthMethod::Remote => "remote",
                        _ => "other",
                    };
                    Response::new(format!("{}|{method}|{body}", member.member_id()))
                }
                Err(rejection) => Response::builder()
                    .status(rejection.status())
                    .body(rejection.reason().as_str().to_owned())
                    .unwrap(),
            };
            Ok::<_, Infallible>(response)
        }));
    let request = |cookie: Option<String>| {
        let mut req = Request::builder().uri("/anything");
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        req.body("hello".to_owned()).unwrap()
    };

    let res = service.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.body(), "missing_credentials");

    let res = service
        .clone()
        .oneshot(request(Some(jwt_cookie(&f.session.session_jwt))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), &format!("{}|local|hello", f.member));
    assert!(res.headers().get(SET_COOKIE).is_none());

    f.emu.clock().advance(Duration::from_secs(301));
    let res = service
        .clone()
        .oneshot(request(Some(jwt_cookie(&f.session.session_jwt))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), &format!("{}|remote|hello", f.member));
    let set_cookies: Vec<&str> = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let renewed = set_cookies
        .iter()
        .find_map(|c| c.strip_prefix("stytch_session_jwt="))
        .unwrap_or_else(|| panic!("no renewed JWT cookie: {set_cookies:?}"));
    let renewed = renewed.split(';').next().unwrap();
    assert!(!renewed.is_empty());
    assert_ne!(renewed, f.session.session_jwt);
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("stytch_session={};", f.session.session_token))),
        "{set_cookies:?}"
    );
    assert_eq!(authenticate_calls(&f), 1);
}

/// A request that passed the layer before another request's call found its session
/// token dead, and reaches its extractor only after that call ended, does not ask
/// Stytch again: the call remembers the dead token before it ends, and checks for it
/// before asking.
#[tokio::test]
async fn a_token_found_dead_while_another_request_waited_costs_no_second_call() {
    let f = fixture().await;
    f.emu.revoke_session(&f.session.member_session_id);
    let arrived = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (a, r) = (Arc::clone(&arrived), Arc::clone(&release));
    // Between the layer and the handler's extractor: holds requests marked `x-wait`.
    let hold = axum::middleware::from_fn(move |req: Request<Body>, next: Next| {
        let (a, r) = (Arc::clone(&a), Arc::clone(&r));
        async move {
            if req.headers().contains_key("x-wait") {
                a.notify_one();
                let _permit = r.acquire().await;
            }
            next.run(req).await
        }
    });
    let app = Router::new()
        .route(
            "/me",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .layer(hold)
        .layer(f.auth.layer());
    let cookie = cookies(None, Some(&f.session.session_token));

    let waiting = {
        let req = Request::get("/me")
            .header(COOKIE, &cookie)
            .header("x-wait", "1")
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        tokio::spawn(async move { send_request(&app, req).await })
    };
    arrived.notified().await;
    let first = get_with(&app, "/me", &cookie).await;
    assert_rejected(&first, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    release.add_permits(1);
    let second = waiting.await.expect("the waiting request");
    assert_rejected(&second, StatusCode::UNAUTHORIZED, Reason::SessionRevoked);
    assert_cleared(&second);
    assert_eq!(
        authenticate_calls(&f),
        1,
        "asked Stytch twice about a dead token"
    );
}

#[tokio::test]
async fn implausible_or_dead_session_tokens_cost_no_second_call() {
    let f = fixture().await;
    let app = app(&f.auth);
    // Not shaped like a Stytch token: refused without asking Stytch.
    for junk in [
        "x",
        "short-token",
        &"a".repeat(200),
        "has.dots.in.it.so.not.a.token",
    ] {
        let res = get_with(&app, "/me", &cookies(None, Some(junk))).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{junk}");
        assert_eq!(res.reason(), "invalid_token", "{junk}");
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);

    // Shaped like one but unknown to Stytch: asked once, then remembered.
    let unknown = "A".repeat(44);
    for _ in 0..5 {
        let res = get_with(&app, "/me", &cookies(None, Some(&unknown))).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.reason(), "session_revoked");
        assert!(res.set_cookies().iter().any(|c| c.contains("Max-Age=0")));
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 1);
}
