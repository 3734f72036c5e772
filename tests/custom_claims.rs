//! Typed custom claims, through the layer: `CustomClaims<T>` and `custom_claims_as`
//! read the claims the emulator put in the session JWT (verified locally) and in its
//! `sessions/authenticate` answer (a session token alone: verified by Stytch), and they
//! agree; M2M and Connected-App tokens' claims likewise; a mismatch is 500
//! `custom_claims_mismatch`, logged without the claims.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use axum_stytch::testing::{ConnectedAppOptions, M2mClientOptions, SessionOptions, StytchEmulator};
use axum_stytch::{AuthMethod, AuthenticatedMember, CustomClaims, StytchAuth};
use common::{CapturedLogs, TestResponse, cookies, send_request};
use http::header::{AUTHORIZATION, COOKIE};
use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, PartialEq)]
struct Tenant {
    plan: String,
    seats: u32,
    regions: Vec<String>,
    #[serde(default)]
    beta: Option<bool>,
}

/// A type the claims do not fit: `seats` is a number, not a string.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Wrong {
    seats: String,
}

fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/tenant",
            get(|CustomClaims(t): CustomClaims<Tenant>| async move {
                format!(
                    "{} {} {} {:?}",
                    t.plan,
                    t.seats,
                    t.regions.join(","),
                    t.beta
                )
            }),
        )
        .route(
            "/method",
            get(|m: AuthenticatedMember| async move {
                let tenant: Tenant = m.custom_claims_as().expect("fits");
                format!("{:?} {}", m.auth_method(), tenant.plan)
            }),
        )
        .route(
            "/maybe",
            get(|t: Option<CustomClaims<Tenant>>| async move {
                t.map_or("none".to_owned(), |t| t.0.plan)
            }),
        )
        .route(
            "/wrong",
            get(|_: CustomClaims<Wrong>| async { "unreachable" }),
        )
        .layer(auth.layer())
}

async fn get_with(
    app: &Router,
    path: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> TestResponse {
    let mut req = Request::get(path);
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    if let Some(token) = bearer {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

fn tenant_claims() -> serde_json::Map<String, serde_json::Value> {
    json!({"plan": "gold", "seats": 12, "regions": ["eu", "us"]})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn session_claims_agree_whether_verified_locally_or_by_stytch() {
    let emu = StytchEmulator::start().await;
    let auth = emu.auth_builder().build().unwrap();
    let app = router(&auth);
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let session = emu.create_session_with(
        &member,
        SessionOptions::new().custom_claims(tenant_claims()),
    );

    // The JWT: verified locally.
    let jwt = cookies(Some(&session.session_jwt), None);
    let local = get_with(&app, "/tenant", Some(&jwt), None).await;
    assert_eq!(
        (local.status, local.body.as_str()),
        (StatusCode::OK, "gold 12 eu,us None")
    );
    assert_eq!(
        get_with(&app, "/method", Some(&jwt), None).await.body,
        "LocalJwt gold"
    );
    // The session token alone: Stytch's answer carries the same claims.
    let token = cookies(None, Some(&session.session_token));
    let remote = get_with(&app, "/tenant", Some(&token), None).await;
    assert_eq!((remote.status, &remote.body), (StatusCode::OK, &local.body));
    let method = get_with(&app, "/method", Some(&token), None).await.body;
    assert_eq!(method, format!("{:?} gold", AuthMethod::Remote));

    // No caller: 401, or `None`.
    let res = get_with(&app, "/tenant", None, None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get_with(&app, "/maybe", None, None).await.body, "none");
    assert_eq!(
        get_with(&app, "/maybe", Some(&jwt), None).await.body,
        "gold"
    );
}

#[tokio::test]
async fn machine_tokens_claims_are_typed_too() {
    let emu = StytchEmulator::start().await;
    let auth = emu
        .auth_builder()
        .m2m_tokens(true)
        .connected_app_tokens(true)
        .build()
        .unwrap();
    let app = router(&auth);
    let service = emu.create_m2m_client_with(
        &["read:users"],
        M2mClientOptions::new().custom_claims(tenant_claims()),
    );
    let m2m = emu.mint_m2m_token(&service.client_id, None);
    let res = get_with(&app, "/tenant", None, Some(&m2m)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "gold 12 eu,us None")
    );

    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let mut claims = tenant_claims();
    claims.insert("beta".into(), json!(true));
    let app_client =
        emu.create_connected_app_with(ConnectedAppOptions::new().custom_claims(claims));
    let agent = emu.mint_connected_app_token(&app_client.client_id, &member, &["openid"]);
    let res = get_with(&app, "/tenant", None, Some(&agent)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "gold 12 eu,us Some(true)")
    );
}

#[tokio::test]
async fn claims_that_do_not_fit_are_a_500_naming_the_type_not_the_claims() {
    let emu = StytchEmulator::start().await;
    let auth = emu.auth_builder().build().unwrap();
    let app = router(&auth);
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let mut claims = tenant_claims();
    claims.insert("secret_note".into(), json!("do-not-log-me"));
    let session = emu.create_session_with(&member, SessionOptions::new().custom_claims(claims));
    let jwt = cookies(Some(&session.session_jwt), None);

    let logs = CapturedLogs::default();
    let _recording = logs.on_this_thread();
    let res = get_with(&app, "/wrong", Some(&jwt), None).await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.reason(), "custom_claims_mismatch");
    assert!(
        !res.body.contains("gold") && !res.body.contains("do-not-log-me"),
        "{}",
        res.body
    );
    let logged = logs.text();
    assert!(
        logged.contains("ERROR") && logged.contains("Wrong"),
        "{logged}"
    );
    assert!(
        !logged.contains("do-not-log-me") && !logged.contains("gold"),
        "{logged}"
    );
    // A session without the claims does not fit `Tenant` either.
    let bare = emu.create_session(&member);
    let res = get_with(
        &app,
        "/tenant",
        Some(&cookies(Some(&bare.session_jwt), None)),
        None,
    )
    .await;
    assert_eq!(res.reason(), "custom_claims_mismatch");
    assert_eq!(
        auth.metrics()
            .failures_for(axum_stytch::Reason::CustomClaimsMismatch),
        2
    );
}
