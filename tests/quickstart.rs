//! The quickstart walks as the README says: through its router, and as the built binary.

#[path = "../examples/quickstart/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use std::process::Command;
use std::time::Duration;

use common::{example_binary, send, send_request, spawn_until};
use http::StatusCode;

#[tokio::test]
async fn demo_walkthrough() {
    let demo = app::Demo::start().await;
    let auth = demo.emulator.auth_builder().build().unwrap();
    let router = app::router(auth, Some(&demo));
    let viewer = app::Demo::cookie(&demo.viewer);
    let admin = app::Demo::cookie(&demo.admin);

    let res = send(&router, "GET", "/documents", Some(&viewer)).await;
    assert_eq!(res.status, StatusCode::OK, "viewer reads: {}", res.body);
    assert_eq!(res.json()["allowed_by"], serde_json::json!(["viewer"]));

    let res = send(&router, "POST", "/documents", Some(&viewer)).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "viewer creates");
    assert_eq!(res.reason(), "permission_denied");

    let res = send(&router, "POST", "/documents", Some(&admin)).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "admin creates: {}",
        res.body
    );

    let res = send(&router, "GET", "/me", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "no cookie");

    let path = format!("/orgs/{}/documents", demo.organization_id);
    let res = send(&router, "GET", &path, Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK, "own organization");
    let res = send(
        &router,
        "GET",
        "/orgs/organization-test-other/documents",
        Some(&admin),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "other organization");
    assert_eq!(res.reason(), "tenancy_mismatch");

    let res = send(&router, "POST", "/logout", Some(&viewer)).await;
    assert_eq!(res.status, StatusCode::OK, "logout");
    assert!(
        res.set_cookies().iter().all(|c| c.contains("Max-Age=0")),
        "{:?}",
        res.set_cookies()
    );
    let res = send(&router, "GET", "/me", Some(&viewer)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "/me after logout");
    assert_eq!(res.reason(), "session_revoked");
}

#[tokio::test]
async fn demo_login_sets_cookies_that_work() {
    let demo = app::Demo::start().await;
    let auth = demo.emulator.auth_builder().build().unwrap();
    let router = app::router(auth, Some(&demo));
    let res = send(&router, "GET", "/demo/login/admin", None).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let jwt = res
        .set_cookie_value("stytch_session_jwt")
        .expect("jwt cookie");
    let req = http::Request::get("/me")
        .header("cookie", format!("stytch_session_jwt={jwt}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let res = send_request(&router, req).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json()["roles"],
        serde_json::json!(["stytch_member", "admin"])
    );
}

/// The `Cookie` header a browser sends after `/demo/login/{who}`.
async fn demo_login(router: &axum::Router, who: &str) -> String {
    let res = send(router, "GET", &format!("/demo/login/{who}"), None).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "login as {who}");
    let jwt = res
        .set_cookie_value("stytch_session_jwt")
        .expect("jwt cookie");
    let token = res
        .set_cookie_value("stytch_session")
        .expect("token cookie");
    format!("stytch_session_jwt={jwt}; stytch_session={token}")
}

#[tokio::test]
async fn logout_then_login_again_works() {
    let demo = app::Demo::start().await;
    let auth = demo.emulator.auth_builder().build().unwrap();
    let router = app::router(auth, Some(&demo));

    let first = demo_login(&router, "viewer").await;
    let res = send(&router, "GET", "/me", Some(&first)).await;
    assert_eq!(res.status, StatusCode::OK, "signed in: {}", res.body);
    let res = send(&router, "POST", "/logout", Some(&first)).await;
    assert_eq!(res.status, StatusCode::OK, "logout: {}", res.body);
    let res = send(&router, "GET", "/me", Some(&first)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "the old session");
    assert_eq!(res.reason(), "session_revoked");

    // Each login starts a new session, so signing in again works.
    let second = demo_login(&router, "viewer").await;
    assert_ne!(first, second, "a new session");
    let res = send(&router, "GET", "/me", Some(&second)).await;
    assert_eq!(res.status, StatusCode::OK, "signed in again: {}", res.body);
    assert_eq!(
        res.json()["roles"],
        serde_json::json!(["stytch_member", "viewer"])
    );
    // Also by the opaque token alone (Stytch is asked: the session is live there).
    let token = second.split("; ").nth(1).unwrap();
    let res = send(&router, "GET", "/me", Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "token alone: {}", res.body);
    // The first login's session is still refused.
    let res = send(&router, "GET", "/me", Some(&first)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_binary_prints_working_cookies() {
    let mut command = Command::new(example_binary("quickstart"));
    command
        .env("PORT", "0")
        .env_remove("STYTCH_PROJECT_ID")
        .env_remove("STYTCH_SECRET")
        .env("RUST_LOG", "warn");
    let (_guard, lines) = spawn_until(command, "quickstart ready on ");
    let base = lines
        .last()
        .and_then(|l| l.strip_prefix("quickstart ready on "))
        .unwrap()
        .to_owned();
    let viewer = lines
        .iter()
        .find_map(|l| l.strip_prefix("VIEWER='"))
        .map(|v| v.trim_end_matches('\'').to_owned());
    let viewer = viewer.expect("VIEWER line before the ready line");

    let (status, body) = tokio::task::spawn_blocking(move || http_get(&base, "/me", &viewer))
        .await
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    assert!(
        body.contains("\"roles\":[\"stytch_member\",\"viewer\"]"),
        "{body}"
    );
}

/// A minimal HTTP/1.1 GET over a std TcpStream (no HTTP client dependency needed).
fn http_get(base: &str, path: &str, cookie: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}
