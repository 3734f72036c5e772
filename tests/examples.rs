//! The `multi_tenant`, `custom_errors`, `m2m_service` and `mcp_server` examples
//! answer as their docs promise: their routers and seeds, taken from the example
//! files, driven request by request.

#[path = "../examples/custom_errors.rs"]
#[allow(dead_code)]
mod custom_errors;
#[path = "../examples/m2m_service.rs"]
#[allow(dead_code)]
mod m2m_service;
#[path = "../examples/mcp_server.rs"]
#[allow(dead_code)]
mod mcp_server;
#[path = "../examples/multi_tenant.rs"]
#[allow(dead_code)]
mod multi_tenant;

mod common;

use common::{cookies, jwt_cookie, send};
use http::StatusCode;
use http::header::{LINK, LOCATION, RETRY_AFTER};

#[tokio::test]
async fn multi_tenant_binds_the_organization_from_the_path() {
    let t = multi_tenant::tenants().await;
    let app = multi_tenant::router(&t.emulator.auth_builder().build().unwrap());
    let owner = jwt_cookie(&t.acme_owner.session_jwt);
    let member = jwt_cookie(&t.globex_member.session_jwt);
    let (acme, globex) = (&t.acme, &t.globex);

    let res = send(&app, "GET", &format!("/orgs/{acme}/projects"), Some(&owner)).await;
    assert_eq!(res.status, StatusCode::OK, "owner lists acme: {}", res.body);
    assert_eq!(res.json()["organization_id"], acme.as_str());
    let path = format!("/orgs/{acme}/projects/apollo");
    let res = send(&app, "DELETE", &path, Some(&owner)).await;
    assert_eq!(res.status, StatusCode::OK, "owner deletes in acme");
    assert_eq!(res.body, format!("deleted apollo in {acme}"));
    let res = send(
        &app,
        "GET",
        &format!("/orgs/{globex}/projects"),
        Some(&owner),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "owner lists globex");
    assert_eq!(res.reason(), "tenancy_mismatch");

    let res = send(
        &app,
        "GET",
        &format!("/orgs/{globex}/projects"),
        Some(&member),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "member lists globex");
    let path = format!("/orgs/{globex}/projects/apollo");
    let res = send(&app, "DELETE", &path, Some(&member)).await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "member deletes in globex"
    );
    assert_eq!(res.reason(), "permission_denied");
    let res = send(
        &app,
        "GET",
        &format!("/orgs/{acme}/projects"),
        Some(&member),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "member lists acme");
    assert_eq!(res.reason(), "tenancy_mismatch");

    let res = send(&app, "GET", &format!("/orgs/{acme}/projects"), None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "signed out");
}

#[tokio::test]
async fn custom_errors_answers_json_to_apis_and_redirects_pages() {
    let emulator = axum_stytch::testing::StytchEmulator::start().await;
    let auth = emulator
        .auth_builder()
        .error_handler(custom_errors::on_auth_error)
        .build()
        .unwrap();
    let app = custom_errors::router(&auth);

    // Signed out: the API keeps the JSON rejection and gains a Link to the docs...
    let res = send(&app, "GET", "/api/me", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.reason(), "missing_credentials");
    assert_eq!(
        res.headers[LINK],
        "<https://example.com/docs/auth>; rel=\"help\""
    );
    // ...and a page redirects to the login page, with the whole path to come back to.
    let res = send(&app, "GET", "/dashboard?tab=2&x=1", None).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers[LOCATION],
        "/login?next=%2Fdashboard%3Ftab%3D2%26x%3D1"
    );
    assert!(res.headers.get(LINK).is_none());
    let res = send(&app, "GET", "/login", None).await;
    assert_eq!(res.status, StatusCode::OK);

    // Signed in: both answer.
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    let session = emulator.create_session(&member);
    let cookie = jwt_cookie(&session.session_jwt);
    let res = send(&app, "GET", "/api/me", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["member_id"], member.as_str());
    let res = send(&app, "GET", "/dashboard", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, format!("<h1>Hello {member}</h1>"));

    // Stytch unreachable: the 503 is left as it is, even on a page.
    emulator.set_refusing_connections(true);
    let token_only = cookies(None, Some(&session.session_token));
    let res = send(&app, "GET", "/dashboard", Some(&token_only)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert!(res.headers.get(LOCATION).is_none());
    assert!(res.headers.get(RETRY_AFTER).is_some());
    assert!(!res.reason().is_empty(), "the JSON rejection: {}", res.body);
}

/// A request with `Authorization: Bearer <token>`, when given.
async fn bearer(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> common::TestResponse {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    common::send_request(app, req.body(axum::body::Body::empty()).unwrap()).await
}

#[tokio::test]
async fn m2m_service_gets_a_token_and_calls_the_api() {
    let emulator = axum_stytch::testing::StytchEmulator::start().await;
    let app = m2m_service::router(&m2m_service::auth(&emulator));
    let client = emulator.create_m2m_client(&["read:reports", "write:reports"]);
    let http = reqwest::Client::new();
    let reader = m2m_service::access_token(&http, &emulator, &client, "read:reports")
        .await
        .unwrap();
    let writer = m2m_service::access_token(&http, &emulator, &client, "read:reports write:reports")
        .await
        .unwrap();

    let res = bearer(&app, "GET", "/reports", Some(&reader)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["client_id"], client.client_id.as_str());
    assert_eq!(res.json()["scopes"], serde_json::json!(["read:reports"]));
    let res = bearer(&app, "POST", "/reports/rebuild", Some(&reader)).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let res = bearer(&app, "POST", "/reports/rebuild", Some(&writer)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, format!("rebuilt for {}", client.client_id));
    let res = bearer(&app, "GET", "/reports", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn mcp_server_publishes_its_metadata_and_checks_scopes() {
    let emulator = mcp_server::emulator().await;
    let resource = "https://mcp.example.com/mcp";
    let app = mcp_server::router(&mcp_server::auth(&emulator, resource));
    let metadata_url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &["editor"]);
    let agent = emulator.create_connected_app();
    let reader = emulator.mint_connected_app_token(&agent.client_id, &member, &["read:documents"]);
    let writer = emulator.mint_connected_app_token(&agent.client_id, &member, &["write:documents"]);

    let res = bearer(
        &app,
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        None,
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["resource"], resource);
    assert_eq!(
        res.json()["authorization_servers"],
        serde_json::json!([emulator.base_url()])
    );

    let res = bearer(&app, "POST", "/mcp", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers[http::header::WWW_AUTHENTICATE],
        format!(r#"Bearer realm="stytch", resource_metadata="{metadata_url}""#).as_str()
    );
    let res = bearer(&app, "POST", "/mcp", Some(&reader)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["acting_for"], member.as_str());
    assert_eq!(res.json()["organization_id"], org.as_str());
    let res = bearer(&app, "POST", "/mcp/documents", Some(&reader)).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(
        res.headers[http::header::WWW_AUTHENTICATE],
        format!(
            r#"Bearer realm="stytch", error="insufficient_scope", scope="write:documents", resource_metadata="{metadata_url}""#
        )
        .as_str()
    );
    let res = bearer(&app, "POST", "/mcp/documents", Some(&writer)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, format!("created for {member} in {org}"));
}
