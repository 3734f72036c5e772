//! # multi_tenant
//!
//! Organization-scoped routes: the organization comes from the path, so a member of
//! one organization gets 403 `tenancy_mismatch` on another's URLs, whatever their roles.
//! Runs against the embedded emulator and walks through the cases itself.
//!
//! ```text
//! cargo run --example multi_tenant
//! ```
//!
//! `tests/examples.rs` runs the same router and seed and checks each status.

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{delete, get};
use axum::{Json, Router};
use axum_stytch::testing::{Policy, Role};
use axum_stytch::testing::{SessionTokens, StytchEmulator};
use axum_stytch::{AuthenticatedMember, RequireAuthz, StytchAuth};
use http::Request;
use serde_json::json;
use tower::ServiceExt as _;

/// Members read an organization's projects, owners also delete them.
pub fn policy() -> Policy {
    Policy::new()
        .role(Role::new("member").allow("project", ["read"]))
        .role(Role::new("owner").allow("project", ["*"]))
}

/// Two organizations on an emulator: an owner of `acme` and a member of `globex`,
/// with a session each.
pub struct Tenants {
    pub emulator: StytchEmulator,
    pub acme: String,
    pub globex: String,
    pub acme_owner: SessionTokens,
    pub globex_member: SessionTokens,
}

/// Starts an emulator with [`policy`] and seeds [`Tenants`].
pub async fn tenants() -> Tenants {
    let emulator = StytchEmulator::start().await;
    emulator.set_policy(policy());
    let acme = emulator.create_organization("acme");
    let globex = emulator.create_organization("globex");
    let acme_owner =
        emulator.create_session(&emulator.create_member(&acme, "owner@acme.test", &["owner"]));
    let globex_member =
        emulator.create_session(&emulator.create_member(&globex, "m@globex.test", &["member"]));
    Tenants {
        emulator,
        acme,
        globex,
        acme_owner,
        globex_member,
    }
}

/// `GET /orgs/{organization_id}/projects` (project/read) and
/// `DELETE /orgs/{organization_id}/projects/{project}` (project/delete), each for
/// members of that organization only.
pub fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/orgs/{organization_id}/projects",
            get(list_projects).route_layer(
                RequireAuthz::new("project", "read").organization_from_path("organization_id"),
            ),
        )
        .route(
            "/orgs/{organization_id}/projects/{project}",
            delete(delete_project).route_layer(
                RequireAuthz::new("project", "delete").organization_from_path("organization_id"),
            ),
        )
        .layer(auth.layer())
}

async fn list_projects(
    Path(organization_id): Path<String>,
    member: AuthenticatedMember,
) -> Json<serde_json::Value> {
    Json(
        json!({ "organization_id": organization_id, "projects": ["apollo"], "viewer": member.member_id() }),
    )
}

async fn delete_project(Path((organization_id, project)): Path<(String, String)>) -> String {
    format!("deleted {project} in {organization_id}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Tenants {
        emulator,
        acme,
        globex,
        acme_owner,
        globex_member,
    } = tenants().await;
    let auth = emulator.auth_builder().build()?;
    let app = router(&auth);
    let cases = [
        (
            "acme owner lists acme",
            "GET",
            format!("/orgs/{acme}/projects"),
            &acme_owner,
        ),
        (
            "acme owner deletes in acme",
            "DELETE",
            format!("/orgs/{acme}/projects/apollo"),
            &acme_owner,
        ),
        (
            "acme owner lists globex",
            "GET",
            format!("/orgs/{globex}/projects"),
            &acme_owner,
        ),
        (
            "globex member lists globex",
            "GET",
            format!("/orgs/{globex}/projects"),
            &globex_member,
        ),
        (
            "globex member deletes in globex",
            "DELETE",
            format!("/orgs/{globex}/projects/apollo"),
            &globex_member,
        ),
        (
            "globex member lists acme",
            "GET",
            format!("/orgs/{acme}/projects"),
            &globex_member,
        ),
    ];
    for (what, method, path, session) in cases {
        let request = Request::builder()
            .method(method)
            .uri(&path)
            .header(
                "cookie",
                format!("stytch_session_jwt={}", session.session_jwt),
            )
            .body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        println!(
            "{what:<34} {method:<6} -> {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
