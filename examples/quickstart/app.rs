//! The quickstart's app: a small document API behind `StytchAuth`, with RBAC routes.
//! Shared by `main.rs` and the integration tests (`tests/quickstart.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_stytch::Verdict;
use axum_stytch::testing::{EmulatorOptions, SessionTokens, StytchEmulator};
use axum_stytch::testing::{Policy, Role};
use axum_stytch::{AuthenticatedMember, RequireAuthz, StytchAuth};
use serde_json::json;

/// The demo's RBAC policy: viewers read documents, admins do anything with them.
pub fn demo_policy() -> Policy {
    Policy::new()
        .role(Role::new("viewer").allow("document", ["read"]))
        .role(Role::new("admin").allow("document", ["*"]))
}

/// An emulator seeded with the organization `acme`, an admin and a viewer, and a
/// session each (the ones `main.rs` prints).
pub struct Demo {
    pub emulator: StytchEmulator,
    pub organization_id: String,
    pub admin_member_id: String,
    pub viewer_member_id: String,
    pub admin: SessionTokens,
    pub viewer: SessionTokens,
}

impl Demo {
    /// A demo on an emulator with a frozen clock (tests move it).
    #[allow(dead_code)] // Used by tests/quickstart.rs; main.rs uses `start_with`.
    pub async fn start() -> Demo {
        Self::start_with(EmulatorOptions::new()).await
    }

    /// A demo on an emulator started with `options`.
    pub async fn start_with(options: EmulatorOptions) -> Demo {
        let emulator = StytchEmulator::start_with(options).await;
        emulator.set_policy(demo_policy());
        let organization_id = emulator.create_organization("acme");
        let admin_member_id =
            emulator.create_member(&organization_id, "admin@acme.test", &["admin"]);
        let viewer_member_id =
            emulator.create_member(&organization_id, "viewer@acme.test", &["viewer"]);
        let admin = emulator.create_session(&admin_member_id);
        let viewer = emulator.create_session(&viewer_member_id);
        Demo {
            emulator,
            organization_id,
            admin_member_id,
            viewer_member_id,
            admin,
            viewer,
        }
    }

    /// The `Cookie` header a browser would send for `session`.
    pub fn cookie(session: &SessionTokens) -> String {
        format!(
            "stytch_session_jwt={}; stytch_session={}",
            session.session_jwt, session.session_token
        )
    }
}

#[derive(Clone)]
struct AppState {
    auth: StytchAuth,
    /// Only in emulator mode: who the demo login route signs in.
    demo: Option<DemoLogins>,
}

/// The emulator and the members `/demo/login/{admin|viewer}` starts sessions for.
#[derive(Clone)]
struct DemoLogins {
    emulator: StytchEmulator,
    admin_member_id: String,
    viewer_member_id: String,
}

/// The app. `demo` enables `/demo/login/{admin|viewer}` (emulator mode only).
pub fn router(auth: StytchAuth, demo: Option<&Demo>) -> Router {
    let state = AppState {
        auth: auth.clone(),
        demo: demo.map(|d| DemoLogins {
            emulator: d.emulator.clone(),
            admin_member_id: d.admin_member_id.clone(),
            viewer_member_id: d.viewer_member_id.clone(),
        }),
    };
    Router::new()
        .route("/", get(index))
        .route("/me", get(me))
        .route(
            "/documents",
            get(list_documents).route_layer(RequireAuthz::new("document", "read")),
        )
        .route(
            "/documents",
            post(create_document).route_layer(RequireAuthz::new("document", "create")),
        )
        .route(
            "/orgs/{organization_id}/documents",
            get(list_documents).route_layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            ),
        )
        .route("/logout", post(logout))
        .route("/demo/login/{who}", get(demo_login))
        .with_state(state)
        .layer(auth.layer())
}

async fn index(member: Option<AuthenticatedMember>) -> Html<String> {
    let who = member.map_or_else(
        || "not signed in".to_owned(),
        |m| format!("signed in as {} ({:?})", m.member_id(), m.roles()),
    );
    Html(format!(
        "<h1>axum-stytch quickstart</h1><p>You are {who}.</p>\
         <ul><li><a href=\"/demo/login/admin\">sign in as the admin</a></li>\
         <li><a href=\"/demo/login/viewer\">sign in as the viewer</a></li>\
         <li><a href=\"/me\">/me</a></li><li><a href=\"/documents\">/documents</a></li></ul>"
    ))
}

async fn me(member: AuthenticatedMember) -> Json<serde_json::Value> {
    Json(json!({
        "member_id": member.member_id(),
        "organization_id": member.organization_id(),
        "organization_slug": member.organization_slug(),
        "roles": member.roles(),
        "auth_method": format!("{:?}", member.auth_method()),
    }))
}

async fn list_documents(verdict: Verdict) -> Json<serde_json::Value> {
    Json(json!({
        "documents": ["roadmap.md", "budget.xlsx"],
        "allowed_by": verdict.granting_roles(),
    }))
}

async fn create_document(member: AuthenticatedMember) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::CREATED,
        Json(json!({ "created": "new-document.md", "by": member.member_id() })),
    )
}

async fn logout(State(state): State<AppState>, member: AuthenticatedMember) -> Response {
    match state.auth.logout(&member).await {
        Ok(cookies) => (cookies, Json(json!({ "logged_out": true }))).into_response(),
        Err(error) => {
            tracing::warn!(%error, "logout: Stytch could not revoke the session");
            (state.auth.clear_cookies(), StatusCode::BAD_GATEWAY).into_response()
        }
    }
}

/// Demo only: starts a new session for a seeded member and sets its cookies, as a
/// real login handler would after Stytch's magic-link or password authenticate (so
/// a login after `POST /logout` works: the logged-out session stays revoked).
async fn demo_login(State(state): State<AppState>, Path(who): Path<String>) -> Response {
    let Some(demo) = &state.demo else {
        return (
            StatusCode::NOT_FOUND,
            "demo login exists only with the embedded emulator",
        )
            .into_response();
    };
    let member_id = match who.as_str() {
        "admin" => &demo.admin_member_id,
        "viewer" => &demo.viewer_member_id,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "use /demo/login/admin or /demo/login/viewer",
            )
                .into_response();
        }
    };
    let session = demo.emulator.create_session(member_id);
    let expires_at = demo
        .emulator
        .session(&session.member_session_id)
        .map_or_else(std::time::SystemTime::now, |info| info.expires_at);
    let cookies =
        state
            .auth
            .session_cookies(&session.session_jwt, &session.session_token, expires_at);
    (cookies, Redirect::to("/me")).into_response()
}
