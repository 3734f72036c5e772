//! Custom cookie names end to end: credentials are read, renewed and cleared under
//! the configured names, and the default names mean nothing once custom ones are set.

mod common;

use std::time::{Duration, SystemTime};

use axum::response::IntoResponse as _;
use axum_stytch::testing::Endpoint;
use common::{Fixture, TestResponse, app, fixture_with, send};
use http::StatusCode;

const JWT: &str = "my_jwt";
const TOKEN: &str = "my_token";
const DEFAULTS: [&str; 2] = ["stytch_session_jwt", "stytch_session"];

async fn custom() -> Fixture {
    fixture_with(|b| b.session_jwt_cookie(JWT).session_token_cookie(TOKEN)).await
}

fn cookie(jwt: Option<&str>, token: Option<&str>) -> String {
    let jwt = jwt.map(|v| format!("{JWT}={v}"));
    let token = token.map(|v| format!("{TOKEN}={v}"));
    jwt.into_iter().chain(token).collect::<Vec<_>>().join("; ")
}

/// The `Set-Cookie` line for `name`, if any.
fn line(res: &TestResponse, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    res.set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&prefix))
}

#[track_caller]
fn assert_no_default_names(res: &TestResponse) {
    for name in DEFAULTS {
        assert!(
            line(res, name).is_none(),
            "{name} set: {:?}",
            res.set_cookies()
        );
    }
}

#[track_caller]
fn assert_cleared(res: &TestResponse) {
    for name in [JWT, TOKEN] {
        let line = line(res, name)
            .unwrap_or_else(|| panic!("{name} not cleared: {:?}", res.set_cookies()));
        assert_eq!(res.set_cookie_value(name).as_deref(), Some(""), "{line}");
        assert!(line.contains("Max-Age=0"), "{line}");
    }
    assert_no_default_names(res);
}

fn authenticate_calls(f: &Fixture) -> u64 {
    f.emu.requests(Endpoint::Authenticate)
}

#[tokio::test]
async fn credentials_are_read_under_the_configured_names_only() {
    let f = custom().await;
    let app = app(&f.auth);
    let s = &f.session;

    let res = send(
        &app,
        "GET",
        "/me",
        Some(&cookie(Some(&s.session_jwt), None)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "JWT: {}", res.body);
    assert_eq!(res.body, f.member);
    let res = send(
        &app,
        "GET",
        "/me",
        Some(&cookie(None, Some(&s.session_token))),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "token: {}", res.body);
    assert_eq!(authenticate_calls(&f), 1, "the token alone is asked about");

    // Under the default names, the same credentials are no credentials.
    let defaults = format!(
        "{}={}; {}={}",
        DEFAULTS[0], s.session_jwt, DEFAULTS[1], s.session_token
    );
    let res = send(&app, "GET", "/me", Some(&defaults)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.reason(), "missing_credentials");
    let res = send(&app, "GET", "/maybe", Some(&defaults)).await;
    assert_eq!(res.body, "anonymous");
    assert_eq!(authenticate_calls(&f), 1, "nothing asked for the defaults");
}

#[tokio::test]
async fn a_stale_jwt_is_renewed_under_the_configured_names() {
    let f = custom().await;
    let app = app(&f.auth);
    let old = f.session.session_jwt.clone();
    f.emu.clock().advance(Duration::from_secs(301));

    let res = send(&app, "GET", "/me", Some(&cookie(Some(&old), None))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1);
    let renewed = res.set_cookie_value(JWT).expect("renewed JWT cookie");
    assert_ne!(renewed, old);
    assert_eq!(
        res.set_cookie_value(TOKEN).as_deref(),
        Some(f.session.session_token.as_str())
    );
    assert_no_default_names(&res);

    // The renewed JWT, sent back under its name, verifies locally.
    let res = send(&app, "GET", "/me", Some(&cookie(Some(&renewed), None))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
}

#[tokio::test]
async fn logout_clears_the_configured_names() {
    let f = custom().await;
    let app = app(&f.auth);
    let both = cookie(Some(&f.session.session_jwt), Some(&f.session.session_token));

    let res = send(&app, "POST", "/logout", Some(&both)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_cleared(&res);
    let res = send(&app, "GET", "/me", Some(&both)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.reason(), "session_revoked");
}

#[tokio::test]
async fn a_dead_session_is_cleared_under_the_configured_names() {
    let f = custom().await;
    let app = app(&f.auth);
    f.emu.revoke_session(&f.session.member_session_id);

    let res = send(
        &app,
        "GET",
        "/me",
        Some(&cookie(None, Some(&f.session.session_token))),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_cleared(&res);
}

#[tokio::test]
async fn the_cookie_helpers_use_the_configured_names() {
    let f = custom().await;
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let set = f
        .auth
        .session_cookies(&f.session.session_jwt, &f.session.session_token, expires);
    let res = response(set.into_response());
    assert_eq!(
        res.set_cookie_value(JWT).as_deref(),
        Some(f.session.session_jwt.as_str())
    );
    assert_eq!(
        res.set_cookie_value(TOKEN).as_deref(),
        Some(f.session.session_token.as_str())
    );
    assert_no_default_names(&res);

    let res = response(f.auth.clear_cookies().into_response());
    assert_cleared(&res);
}

/// The status and headers of `res` (the helpers' responses have no body).
fn response(res: axum::response::Response) -> TestResponse {
    let (parts, _) = res.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: String::new(),
    }
}
