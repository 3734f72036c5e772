//! # custom_errors
//!
//! One error hook for the whole app: API routes (`/api/...`) keep the JSON rejection
//! and gain a `Link` to the docs, HTML pages redirect signed-out browsers to a login
//! page. 503 and 500 answers are left as they are everywhere: they carry `Retry-After`
//! and a message for the developer.
//!
//! ```text
//! cargo run --example custom_errors
//! ```
//!
//! `tests/examples.rs` runs the same router and hook and checks each answer.

use axum::body::Body;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::{Json, Router};
use axum_stytch::testing::StytchEmulator;
use axum_stytch::{AuthRejection, AuthenticatedMember, StytchAuth};
use http::header::LINK;
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

/// The app's error policy, decided per request.
pub fn on_auth_error(rejection: &AuthRejection, parts: &Parts) -> Option<axum::response::Response> {
    if rejection.status().is_server_error() {
        return None;
    }
    if parts.uri.path().starts_with("/api/") {
        let mut response = rejection.default_response();
        response.headers_mut().insert(
            LINK,
            HeaderValue::from_static("<https://example.com/docs/auth>; rel=\"help\""),
        );
        return Some(response);
    }
    match rejection.status() {
        StatusCode::UNAUTHORIZED => {
            let back = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let login = format!("/login?next={}", percent_encode(back));
            Some(Redirect::to(&login).into_response())
        }
        StatusCode::FORBIDDEN => {
            Some((StatusCode::FORBIDDEN, Html("<h1>Not allowed</h1>")).into_response())
        }
        _ => None,
    }
}

/// `value` as a query parameter value: every byte but letters, digits and `-._~`
/// percent-encoded (so `/dashboard?tab=2&x=1` comes back whole).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/api/me` (JSON), `/dashboard` (HTML), both for signed-in members, and the
/// `/login` page.
pub fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/api/me",
            get(
                |m: AuthenticatedMember| async move { Json(json!({ "member_id": m.member_id() })) },
            ),
        )
        .route(
            "/dashboard",
            get(|m: AuthenticatedMember| async move {
                Html(format!("<h1>Hello {}</h1>", m.member_id()))
            }),
        )
        .route("/login", get(|| async { Html("<h1>Sign in</h1>") }))
        .layer(auth.layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = StytchEmulator::start().await;
    let auth = emulator
        .auth_builder()
        .error_handler(on_auth_error)
        .build()?;
    let app = router(&auth);
    for path in ["/api/me", "/dashboard?tab=2&x=1"] {
        let request = Request::get(path).body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let location = response.headers().get("location").cloned();
        let link = response.headers().get(LINK).cloned();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        println!(
            "{path:<20} -> {status} location={location:?} link={link:?} body={}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
