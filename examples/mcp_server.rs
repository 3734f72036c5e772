//! # mcp_server
//!
//! An MCP-style resource server for AI agents holding Stytch Connected-App access
//! tokens: it publishes its OAuth protected-resource metadata (RFC 9728), names it in
//! every 401 and 403 (`WWW-Authenticate: Bearer resource_metadata="…"`), and checks
//! each tool's permission through the project policy's scopes (`RequireAuthz`: the
//! agent's scopes, never the member's roles), in the member's organization. Runs
//! against the embedded emulator over real loopback HTTP and walks through what an MCP
//! client sees.
//!
//! ```text
//! cargo run --example mcp_server
//! ```
//!
//! The OAuth authorization-code flow in which the member grants the agent its scopes
//! happens on Stytch's project domain and your consent page; the emulator does not
//! emulate it and mints the resulting access token directly
//! (`mint_connected_app_token`). `tests/examples.rs` runs the same router.

use axum::Router;
use axum::routing::post;
use axum_stytch::testing::{EmulatorOptions, Policy, Role, Scope, StytchEmulator};
use axum_stytch::{ConnectedAppCaller, ProtectedResource, RequireAuthz, StytchAuth};
use serde_json::{Value, json};

/// The scopes a member can grant an agent, and what each allows; members' own roles.
pub fn policy() -> Policy {
    Policy::new()
        .role(Role::new("editor").allow("document", ["read", "create"]))
        .scope(Scope::new("read:documents").allow("document", ["read"]))
        .scope(Scope::new("write:documents").allow("document", ["read", "create"]))
}

/// An emulator whose tokens are issued on its own origin, as Connected-App tokens are
/// on the project domain.
pub async fn emulator() -> StytchEmulator {
    let emulator = StytchEmulator::start_with(EmulatorOptions::new().custom_domain()).await;
    emulator.set_policy(policy());
    emulator
}

/// The layer for a server whose MCP endpoint is `resource` (the exact URL clients
/// call): Connected-App tokens on, the project domain as issuer and authorization
/// server.
pub fn auth(emulator: &StytchEmulator, resource: &str) -> StytchAuth {
    emulator
        .auth_builder()
        .connected_app_tokens(true)
        .project_domain(emulator.base_url())
        .protected_resource(
            ProtectedResource::new(resource)
                .scopes_supported(["read:documents", "write:documents"]),
        )
        .build()
        .expect("a valid configuration")
}

/// `POST /mcp` (tools that read: `document`/`read`) and `POST /mcp/documents` (a tool
/// that writes: `document`/`create`), and the metadata routes.
pub fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(list_documents).route_layer(RequireAuthz::new("document", "read")),
        )
        .route(
            "/mcp/documents",
            post(|agent: ConnectedAppCaller| async move {
                format!(
                    "created for {} in {}",
                    agent.member_id(),
                    agent.organization_id()
                )
            })
            .route_layer(RequireAuthz::new("document", "create")),
        )
        .merge(auth.protected_resource_metadata())
        .layer(auth.layer())
}

async fn list_documents(agent: ConnectedAppCaller) -> axum::Json<Value> {
    axum::Json(json!({
        "organization_id": agent.organization_id(),
        "acting_for": agent.member_id(),
        "client_id": agent.client_id(),
        "documents": ["roadmap", "budget"],
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = emulator().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let auth = auth(&emulator, &format!("{origin}/mcp"));
    tokio::spawn(axum::serve(listener, router(&auth)).into_future());

    // A member, and an agent they granted scopes to.
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &["editor"]);
    let agent = emulator.create_connected_app();
    let reader = emulator.mint_connected_app_token(&agent.client_id, &member, &["read:documents"]);
    let writer = emulator.mint_connected_app_token(&agent.client_id, &member, &["write:documents"]);

    let http = reqwest::Client::new();
    let metadata: Value = http
        .get(format!("{origin}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await?
        .json()
        .await?;
    println!("metadata: {metadata}");

    for (what, path, token) in [
        ("no token", "/mcp", None),
        ("read:documents lists", "/mcp", Some(&reader)),
        ("read:documents creates", "/mcp/documents", Some(&reader)),
        ("write:documents creates", "/mcp/documents", Some(&writer)),
    ] {
        let mut request = http.post(format!("{origin}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        println!("{what:<26} {status} {}", response.text().await?);
        if let Some(challenge) = challenge {
            println!("{:<26} WWW-Authenticate: {challenge}", "");
        }
    }
    Ok(())
}
