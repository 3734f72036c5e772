//! # custom_errors
//!
//! One error hook for the whole app: API routes (`/api/...`) keep the JSON rejection
//! with an extra hint, HTML pages redirect signed-out browsers to a login page.
//!
//! ```text
//! cargo run --example custom_errors
//! ```

use axum::body::Body;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use axum::{Json, Router};
use axum_stytch::testing::StytchEmulator;
use axum_stytch::{AuthRejection, AuthenticatedMember, StytchAuth};
use http::request::Parts;
use http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

/// The app's error policy, decided per request.
fn on_auth_error(rejection: &AuthRejection, parts: &Parts) -> Option<axum::response::Response> {
    if parts.uri.path().starts_with("/api/") {
        let body = json!({
            "error": rejection.reason().as_str(),
            "docs": "https://example.com/docs/auth",
        });
        return Some((rejection.status(), Json(body)).into_response());
    }
    match rejection.status() {
        StatusCode::UNAUTHORIZED => {
            let back = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            Some(Redirect::to(&format!("/login?next={back}")).into_response())
        }
        StatusCode::FORBIDDEN => {
            Some((StatusCode::FORBIDDEN, Html("<h1>Not allowed</h1>")).into_response())
        }
        // Keep the default for 503/500: they carry Retry-After and a developer message.
        _ => None,
    }
}

fn router(auth: &StytchAuth) -> Router {
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
    for path in ["/api/me", "/dashboard?tab=2"] {
        let request = Request::get(path).body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let location = response.headers().get("location").cloned();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        println!(
            "{path:<16} -> {status} location={location:?} body={}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
