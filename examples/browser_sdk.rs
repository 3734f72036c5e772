//! # browser_sdk
//!
//! The second way to deploy Stytch: members log in in the browser with Stytch's
//! frontend SDK, which writes the `stytch_session` and `stytch_session_jwt` cookies
//! from JavaScript and refreshes them itself every 3 minutes. The API behind the layer
//! only reads them: `browser_sdk_cookies()` (no `Set-Cookie` of its own, no
//! `HttpOnly` ever, so the SDK can always read and rewrite its cookies).
//!
//! It runs offline, against the embedded emulator. The page at `/`
//! (`examples/browser_sdk.html`) is where the SDK would run; with no Stytch to log in
//! to, its "Sign in" button stands in for the SDK: it fetches the seeded session from
//! `/demo/session` and writes both cookies as the SDK writes them (`path=/`, `expires=`
//! the session's end, `sameSite=lax`, no `HttpOnly`). "GET /api/me" then calls the API.
//!
//! ```text
//! cargo run --example browser_sdk              # http://127.0.0.1:3000
//! PORT=0 cargo run --example browser_sdk       # any free port
//! ```
//!
//! With real Stytch, drop `/demo/session`, load the SDK in the page and build the
//! layer with `StytchAuthBuilder::from_env()?.browser_sdk_cookies().build()?`.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use axum_stytch::testing::{EmulatorOptions, SessionOptions, StytchEmulator};
use axum_stytch::{AuthenticatedMember, StytchAuth};
use serde_json::{Value, json};

/// The page that would host Stytch's SDK.
pub const PAGE: &str = include_str!("browser_sdk.html");

/// An emulator with one member and one 8-hour session: the session a login with the
/// SDK would have started.
#[derive(Clone)]
pub struct Demo {
    pub emulator: StytchEmulator,
    pub member_session_id: String,
    pub session_token: String,
}

impl Demo {
    pub async fn start_with(options: EmulatorOptions) -> Demo {
        let emulator = StytchEmulator::start_with(options).await;
        let organization = emulator.create_organization("acme");
        let member = emulator.create_member(&organization, "ada@acme.test", &[]);
        let session = emulator.create_session_with(
            &member,
            SessionOptions::new().duration(Duration::from_secs(8 * 3600)),
        );
        Demo {
            emulator,
            member_session_id: session.member_session_id,
            session_token: session.session_token,
        }
    }
}

/// `/` (the page), `/demo/session` (stands in for the SDK's login and refresh) and
/// `/api/me` (behind the layer). `auth` is built with `browser_sdk_cookies()`.
pub fn router(auth: &StytchAuth, demo: Demo) -> Router {
    let api = Router::new().route("/api/me", get(me)).layer(auth.layer());
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/demo/session", get(session).with_state(demo))
        .merge(api)
}

/// The seeded session's token, a JWT minted now and the session's end: what the
/// SDK holds after a login or a refresh. Demo only: a real app has no such route.
async fn session(State(demo): State<Demo>) -> Json<Value> {
    let emulator = &demo.emulator;
    let id = &demo.member_session_id;
    let info = emulator.session(id).expect("the seeded session");
    let expires_at_ms = info
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Json(json!({
        "session_token": demo.session_token,
        "session_jwt": emulator.mint_jwt(id),
        "expires_at_ms": expires_at_ms,
    }))
}

async fn me(member: AuthenticatedMember) -> Json<Value> {
    Json(json!({
        "member_id": member.member_id(),
        "organization_slug": member.organization_slug(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    // The emulator's clock follows real time, as the browser's does.
    let demo = Demo::start_with(EmulatorOptions::new().follow_real_time()).await;
    let auth = demo.emulator.auth_builder().browser_sdk_cookies().build()?;
    let app = router(&auth, demo);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("browser_sdk ready on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
