//! # m2m_service
//!
//! A service calling an API with Stytch M2M client credentials: the service asks the
//! token endpoint for an access token (`grant_type=client_credentials`), then calls
//! the API with `Authorization: Bearer`; the API, behind the layer with
//! `m2m_tokens(true)`, verifies the token locally and checks its scopes with
//! `RequireScope`. Runs against the embedded emulator, over real loopback HTTP, and
//! walks through the cases itself.
//!
//! ```text
//! cargo run --example m2m_service
//! ```
//!
//! `tests/examples.rs` runs the same router and checks each status.

use axum::Router;
use axum::routing::{get, post};
use axum_stytch::testing::{M2mClient, StytchEmulator};
use axum_stytch::{M2mCaller, RequireScope, StytchAuth};
use serde_json::{Value, json};

/// The API: `GET /reports` needs `read:reports`, `POST /reports/rebuild` also
/// `write:reports`. Both say which client called.
pub fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/reports",
            get(list_reports).route_layer(RequireScope::new("read:reports")),
        )
        .route(
            "/reports/rebuild",
            post(
                |service: M2mCaller| async move { format!("rebuilt for {}", service.client_id()) },
            )
            .route_layer(RequireScope::new("read:reports write:reports")),
        )
        .layer(auth.layer())
}

async fn list_reports(service: M2mCaller) -> axum::Json<Value> {
    axum::Json(json!({
        "client_id": service.client_id(),
        "scopes": service.scopes(),
        "reports": ["q1", "q2"],
    }))
}

/// The layer for this API: M2M tokens on (cookies still work for members).
pub fn auth(emulator: &StytchEmulator) -> StytchAuth {
    emulator
        .auth_builder()
        .m2m_tokens(true)
        .build()
        .expect("a valid configuration")
}

/// What the calling service does: client credentials for an access token, at the
/// token endpoint (`POST /v1/public/{project_id}/oauth2/token`; JSON here, as
/// Stytch's Python and Ruby SDKs send it, form-encoded works too), asking for `scope`.
pub async fn access_token(
    http: &reqwest::Client,
    emulator: &StytchEmulator,
    client: &M2mClient,
    scope: &str,
) -> Result<String, reqwest::Error> {
    let response: Value = http
        .post(format!(
            "{}/v1/public/{}/oauth2/token",
            emulator.base_url(),
            emulator.project_id()
        ))
        .json(&json!({
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "grant_type": "client_credentials",
            "scope": scope,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(response["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = StytchEmulator::start().await;
    let auth = auth(&emulator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, router(&auth)).into_future());

    // The calling service's M2M client (created in Stytch's dashboard or API).
    let client = emulator.create_m2m_client(&["read:reports", "write:reports"]);
    let http = reqwest::Client::new();
    let reader = access_token(&http, &emulator, &client, "read:reports").await?;
    let writer = access_token(&http, &emulator, &client, "read:reports write:reports").await?;

    for (what, method, path, token) in [
        ("list with read:reports", "GET", "/reports", Some(&reader)),
        (
            "rebuild with read:reports only",
            "POST",
            "/reports/rebuild",
            Some(&reader),
        ),
        (
            "rebuild with both scopes",
            "POST",
            "/reports/rebuild",
            Some(&writer),
        ),
        ("list without a token", "GET", "/reports", None),
    ] {
        let mut request = http.request(method.parse()?, format!("{api}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = response.text().await?;
        println!("{what:<32} {status} {body}");
        if let Some(challenge) = challenge {
            println!("{:<32} WWW-Authenticate: {challenge}", "");
        }
    }
    Ok(())
}
