//! # testing
//!
//! How to test your own app with `axum_stytch::testing`: start the emulator, seed an
//! organization, members and a policy, and drive the app in-process. The same code
//! works in a `#[tokio::test]`; here it runs as an example and prints what it checks.
//! Your `Cargo.toml` needs `axum-stytch = { ..., features = ["test-util"] }` under
//! `[dev-dependencies]`.
//!
//! ```text
//! cargo run --example testing
//! ```

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum_stytch::testing::{Endpoint, StytchEmulator};
use axum_stytch::testing::{Policy, Role};
use axum_stytch::{AuthenticatedMember, RequireAuthz, StytchAuth};
use http::{Request, StatusCode};
use tower::ServiceExt as _;

/// The app under test: yours, built from a `StytchAuth`.
fn my_app(auth: StytchAuth) -> Router {
    Router::new()
        .route(
            "/reports",
            get(|m: AuthenticatedMember| async move { format!("reports for {}", m.member_id()) })
                .route_layer(RequireAuthz::new("report", "read")),
        )
        .layer(auth.layer())
}

async fn status(app: &Router, cookie: &str) -> StatusCode {
    let request = Request::get("/reports")
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::main]
async fn main() {
    // 1. An emulator and an app pointed at it (project, secret, URL and clock).
    let emulator = StytchEmulator::start().await;
    emulator.set_policy(Policy::new().role(Role::new("analyst").allow("report", ["read"])));
    let org = emulator.create_organization("acme");
    let analyst =
        emulator.create_session(&emulator.create_member(&org, "a@acme.test", &["analyst"]));
    let intern = emulator.create_session(&emulator.create_member(&org, "i@acme.test", &[]));
    let app = my_app(emulator.auth_builder().build().unwrap());
    let cookie =
        |s: &axum_stytch::testing::SessionTokens| format!("stytch_session_jwt={}", s.session_jwt);

    // 2. Allowed, denied, signed out.
    assert_eq!(status(&app, &cookie(&analyst)).await, StatusCode::OK);
    assert_eq!(status(&app, &cookie(&intern)).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&app, "").await, StatusCode::UNAUTHORIZED);
    println!("allowed, denied and signed-out requests answer 200, 403, 401");

    // 3. Time moves only when you say so: after 5 minutes the JWT is renewed at Stytch.
    emulator.clock().advance(Duration::from_secs(301));
    let before = emulator.requests(Endpoint::Authenticate);
    assert_eq!(status(&app, &cookie(&analyst)).await, StatusCode::OK);
    assert_eq!(emulator.requests(Endpoint::Authenticate), before + 1);
    println!("an expired JWT costs exactly one call to the emulator");

    // 4. Revocation and outages.
    emulator.revoke_session(&analyst.member_session_id);
    assert_eq!(
        status(&app, &cookie(&analyst)).await,
        StatusCode::UNAUTHORIZED
    );
    emulator.set_refusing_connections(true);
    let token_only = format!("stytch_session={}", intern.session_token);
    assert_eq!(
        status(&app, &token_only).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    println!("a revoked session answers 401; Stytch unreachable answers 503");
}
