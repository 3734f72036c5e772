//! # login_with_stytch_sdk
//!
//! A login handler that completes a B2B email magic link with the official `stytch`
//! crate, then stores the session with `StytchAuth::session_cookies`. From then on the
//! layer authenticates the member on every request.
//!
//! This one talks to real Stytch: set `STYTCH_PROJECT_ID` and `STYTCH_SECRET`, and set
//! the magic link redirect URL in the Stytch dashboard to
//! `http://localhost:3000/authenticate`.
//!
//! ```text
//! STYTCH_PROJECT_ID=project-test-... STYTCH_SECRET=secret-test-... cargo run --example login_with_stytch_sdk
//! ```

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_stytch::{AuthenticatedMember, StytchAuth};
use serde::Deserialize;

#[derive(Clone)]
struct AppState {
    auth: StytchAuth,
    stytch: std::sync::Arc<stytch::b2b::client::Client>,
}

#[derive(Deserialize)]
struct MagicLinkCallback {
    token: String,
}

/// The magic link lands here with `?stytch_token_type=multi_tenant_magic_links&token=...`.
async fn authenticate(
    State(state): State<AppState>,
    Query(callback): Query<MagicLinkCallback>,
) -> Response {
    let request = stytch::b2b::magic_links::AuthenticateRequest {
        magic_links_token: callback.token,
        session_duration_minutes: Some(60 * 24),
        ..Default::default()
    };
    match state.stytch.magic_links.authenticate(request).await {
        Ok(response) if response.member_authenticated => {
            let expires_at = response
                .member_session
                .as_ref()
                .map_or_else(SystemTime::now, |s| SystemTime::from(s.expires_at));
            let cookies = state.auth.session_cookies(
                &response.session_jwt,
                &response.session_token,
                expires_at,
            );
            (cookies, Redirect::to("/me")).into_response()
        }
        // MFA or another primary factor is required: continue with the intermediate
        // session token (not shown here).
        Ok(_) => (StatusCode::ACCEPTED, "further authentication required").into_response(),
        Err(error) => {
            tracing::warn!(%error, "magic link authenticate failed");
            (StatusCode::UNAUTHORIZED, "the link is invalid or expired").into_response()
        }
    }
}

async fn me(member: AuthenticatedMember) -> String {
    format!(
        "signed in as {} in {}",
        member.member_id(),
        member.organization_slug()
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let project_id = std::env::var("STYTCH_PROJECT_ID").map_err(
        |_| "set STYTCH_PROJECT_ID and STYTCH_SECRET (this example talks to real Stytch)",
    )?;
    let secret = std::env::var("STYTCH_SECRET").map_err(|_| "set STYTCH_SECRET")?;
    let auth = StytchAuth::builder(&project_id, &secret)
        .allow_insecure_cookies()
        .build()?;
    let stytch = stytch::b2b::client::Client::new(&project_id, &secret)?;
    let app = Router::new()
        .route("/authenticate", get(authenticate))
        .route("/me", get(me))
        .with_state(AppState {
            auth: auth.clone(),
            stytch: std::sync::Arc::new(stytch),
        })
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "listening on http://localhost:3000 (send yourself a magic link with the Stytch dashboard or SDK)"
    );
    axum::serve(listener, app).await?;
    Ok(())
}
