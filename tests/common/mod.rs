//! Helpers shared by the integration tests: an emulator with one organization,
//! member and session, a small app behind the layer, request helpers, and JWT
//! helpers (cookies, decoding, signing with a key the emulator cannot sign with).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::RsaEncoding;
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_stytch::testing::{SessionTokens, StytchEmulator};
use axum_stytch::{AuthenticatedMember, RequireAuthz, StytchAuth, StytchAuthBuilder};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

/// A real `redis-server` for the `redis` feature's tests.
#[cfg(feature = "redis")]
pub mod redis_server;

// The log capture the library's unit tests use.
#[path = "../../src/test_logs.rs"]
mod test_logs;
#[allow(unused_imports)] // Only the test crates that check logs use it.
pub use test_logs::CapturedLogs;

pub struct Fixture {
    pub emu: StytchEmulator,
    pub auth: StytchAuth,
    pub org: String,
    pub member: String,
    pub session: SessionTokens,
}

pub async fn fixture() -> Fixture {
    fixture_with(|b| b).await
}

pub async fn fixture_with(
    configure: impl FnOnce(StytchAuthBuilder) -> StytchAuthBuilder,
) -> Fixture {
    let emu = StytchEmulator::start().await;
    let auth = configure(emu.auth_builder()).build().expect("valid config");
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let session = emu.create_session(&member);
    Fixture {
        emu,
        auth,
        org,
        member,
        session,
    }
}

/// `/me` (required member), `/maybe` (optional), `/public`, `/logout`,
/// `/documents` (guarded: document/create), `/orgs/{organization_id}/documents`.
pub fn app(auth: &StytchAuth) -> Router {
    let logout_auth = auth.clone();
    Router::new()
        .route(
            "/me",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .route(
            "/maybe",
            get(|m: Option<AuthenticatedMember>| async move {
                m.map_or_else(|| "anonymous".to_owned(), |m| m.member_id().to_owned())
            }),
        )
        .route("/public", get(|| async { "public" }))
        .route(
            "/logout",
            post(move |m: AuthenticatedMember| {
                let auth = logout_auth.clone();
                async move { auth.logout(&m).await.map_err(|_| StatusCode::BAD_GATEWAY) }
            }),
        )
        .route(
            "/documents",
            post(|| async { "created" }).route_layer(RequireAuthz::new("document", "create")),
        )
        .route(
            "/orgs/{organization_id}/documents",
            get(|| async { "listed" }).route_layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            ),
        )
        .layer(auth.layer())
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `error` field of a rejection body.
    pub fn reason(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// `Retry-After` in delta-seconds (panics when absent: a 503 must carry it).
    #[track_caller]
    pub fn retry_after_secs(&self) -> u64 {
        self.headers
            .get(http::header::RETRY_AFTER)
            .unwrap_or_else(|| panic!("{} without Retry-After: {:?}", self.status, self.headers))
            .to_str()
            .unwrap()
            .parse()
            .expect("Retry-After in delta-seconds")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value set for cookie `name`, if any.
    pub fn set_cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let (n, rest) = c.split_once('=')?;
            (n == name).then(|| rest.split(';').next().unwrap_or_default().to_owned())
        })
    }
}

pub fn cookies(jwt: Option<&str>, token: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(jwt) = jwt {
        parts.push(format!("stytch_session_jwt={jwt}"));
    }
    if let Some(token) = token {
        parts.push(format!("stytch_session={token}"));
    }
    parts.join("; ")
}

/// A `Cookie` header with only the session JWT cookie.
pub fn jwt_cookie(jwt: &str) -> String {
    cookies(Some(jwt), None)
}

/// The claims of a JWT (its payload, decoded; not verified).
pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The `kid` of a JWT's header.
pub fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// `input.<signature>`: `input` (a JWT signing input) signed with `key` and `alg`.
/// For what `StytchEmulator::sign_raw` (RS256, current key) cannot sign: other
/// algorithms, other keys, a key the emulator has rotated away or retired.
pub fn sign_input(key: &KeyPair, alg: &'static dyn RsaEncoding, input: &str) -> String {
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(alg, &SystemRandom::new(), input.as_bytes(), &mut signature)
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

pub async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> TestResponse {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

pub async fn send_request(app: &Router, req: Request<Body>) -> TestResponse {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    TestResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get_with(app: &Router, path: &str, cookie: &str) -> TestResponse {
    send(app, "GET", path, Some(cookie)).await
}

/// Waits (at most 10 s of real time) until `done` holds: for a background task's
/// call or refresh to land.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The path of example `name`'s binary, which `cargo test` builds next to the test
/// binaries (a `cargo test --test NAME` does not: run `cargo build --examples`).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| {
            dir.join("examples")
                .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
        })
        .expect("target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} not built: run `cargo test` (it builds examples)",
        bin.display()
    );
    bin
}

/// Kills a child process when dropped, whatever happens in the test.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` with its stdout piped (stderr dropped) and returns it, killed
/// when dropped, with the lines it printed up to the first starting with `last`
/// (at most 60 s).
pub fn spawn_until(mut command: std::process::Command, last: &str) -> (KillOnDrop, Vec<String>) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the program starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = KillOnDrop(child);
    (guard, lines_until(stdout, last, Duration::from_secs(60)))
}

/// The lines `out` prints up to and including the first one starting with `last`
/// (at most `timeout` of real time; panics past it).
pub fn lines_until(
    out: impl std::io::Read + Send + 'static,
    last: &str,
    timeout: Duration,
) -> Vec<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    let last = last.to_owned();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with(&last);
            lines.push(line);
            if done {
                let _ = tx.send(lines);
                return;
            }
        }
    });
    rx.recv_timeout(timeout)
        .expect("the program printed its last line in time")
}
