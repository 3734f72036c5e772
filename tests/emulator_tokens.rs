//! The emulator's machine tokens through the official `stytch` crate (v11), pointed
//! at the emulator: `m2m.token` gets M2M access tokens from the token endpoint, and
//! `m2m.authenticate_token` verifies them locally (RS256 against the B2B session
//! JWKS the crate fetches from the emulator, `iss` `stytch.com/<project_id>`, `aud`,
//! `exp` on the real clock, scopes), and gets the token endpoint's OAuth errors as
//! `stytch::Error::Response`.
//!
//! What the crate cannot check, and why:
//! * Connected-App introspection: the crate has no introspection call (its B2B
//!   `idp` exposes only `oauth.authorize*`); the emulator's own tests cover it over
//!   HTTP. Connected-App tokens are checked here with the crate's generic JWT
//!   verification, which `m2m.authenticate_token` is (see
//!   `connected_app_tokens_pass_the_crates_jwt_verification`).
//! * Custom-domain tokens: the crate accepts only the issuer `stytch.com/<project_id>`
//!   (`shared::jwt_helpers::authenticate_jwt`), so tokens of an emulator started with
//!   `EmulatorOptions::custom_domain()` are refused, as Stytch's would be
//!   (`custom_domain_tokens_are_refused_by_the_crate`).
//! * Time: the crate checks `exp` and `max_token_age_seconds` against the real
//!   clock, not the emulator's; the emulator's clock starts at the real time, so
//!   fresh tokens are fresh to both, and the expiry tests stay in the emulator's own
//!   tests.

mod common;

use std::collections::HashMap;

use axum_stytch::testing::{EmulatorOptions, M2mClient, M2mClientOptions, StytchEmulator};
use http::StatusCode;
use serde_json::{Value, json};
use stytch::consumer::m2m::{AuthenticateTokenRequest, TokenRequest, TokenResponse};

/// The official B2B client for `emu`, as `tests/stytch_sdk_compat.rs` builds it.
fn client(emu: &StytchEmulator) -> stytch::b2b::client::Client {
    let http = stytch::client::Client::new_with_base_url(
        emu.project_id(),
        emu.secret(),
        format!("{}/", emu.base_url())
            .parse()
            .expect("emulator base URL"),
        stytch::client::Vertical::B2B,
    )
    .expect("stytch client");
    stytch::b2b::client::Client::new_with_http_client(http.clone(), http)
}

fn token_request(m2m: &M2mClient, scopes: Option<&[&str]>) -> TokenRequest {
    TokenRequest {
        client_id: m2m.client_id.clone(),
        client_secret: m2m.client_secret.clone(),
        scopes: scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
        grant_type: "client_credentials".to_owned(),
    }
}

/// `m2m.token` for `m2m`, asking for `scopes`.
async fn token(
    stytch: &stytch::b2b::client::Client,
    m2m: &M2mClient,
    scopes: Option<&[&str]>,
) -> TokenResponse {
    stytch
        .m2m
        .token(token_request(m2m, scopes))
        .await
        .unwrap_or_else(|e| panic!("m2m.token: {e:?}"))
}

fn authenticate(token: &str, required: &[&str]) -> AuthenticateTokenRequest {
    AuthenticateTokenRequest {
        access_token: token.to_owned(),
        required_scopes: Some(required.iter().map(|s| (*s).to_owned()).collect()),
        ..Default::default()
    }
}

#[tokio::test]
async fn m2m_token_then_authenticate_token() {
    let emu = StytchEmulator::start().await;
    let m2m = emu.create_m2m_client_with(
        &["read:users", "write:users"],
        M2mClientOptions::new().custom_claim("tenant", "acme"),
    );
    let stytch = client(&emu);

    let token = token(&stytch, &m2m, None).await;
    assert_eq!(token.token_type, "bearer");
    assert_eq!(token.expires_in, 3600);

    let claims = stytch
        .m2m
        .authenticate_token(authenticate(&token.access_token, &["read:users"]))
        .await
        .expect("m2m.authenticate_token");
    assert_eq!(claims.client_id, m2m.client_id);
    assert_eq!(claims.scopes, ["read:users", "write:users"]);
    assert_eq!(
        claims.custom_claims,
        HashMap::from([("tenant".to_owned(), json!("acme"))])
    );

    // A token minted without HTTP is the same kind of token.
    let minted = emu.mint_m2m_token(&m2m.client_id, Some(&["write:users"]));
    let claims = stytch
        .m2m
        .authenticate_token(authenticate(&minted, &["write:users"]))
        .await
        .expect("a minted token authenticates");
    assert_eq!(claims.scopes, ["write:users"]);
}

/// A service that gets its token with the official crate (`m2m.token`) calls an API
/// behind the layer: the layer takes the token, with its client id, scopes and custom
/// claims, and the same scope rules as the crate's `authenticate_token`.
#[tokio::test]
async fn a_token_from_the_crate_is_taken_by_the_layer() {
    use axum::routing::get;
    use axum_stytch::{M2mCaller, RequireScope};

    let emu = StytchEmulator::start().await;
    let m2m = emu.create_m2m_client_with(
        &["read:users", "write:*"],
        M2mClientOptions::new().custom_claim("tenant", "acme"),
    );
    let token = token(&client(&emu), &m2m, None).await.access_token;
    let auth = emu.auth_builder().m2m_tokens(true).build().unwrap();
    let app = axum::Router::new()
        .route(
            "/users",
            get(|s: M2mCaller| async move {
                format!(
                    "{} {} {}",
                    s.client_id(),
                    s.scopes().join(","),
                    s.custom_claims()["tenant"]
                )
            })
            .route_layer(RequireScope::new("read:users write:users")),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(RequireScope::new("admin:users")),
        )
        .layer(auth.layer());
    let call = |path: &'static str| {
        let req = http::Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        common::send_request(&app, req)
    };
    let res = call("/users").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        res.body,
        format!("{} read:users,write:* \"acme\"", m2m.client_id)
    );
    assert_eq!(call("/admin").await.status, StatusCode::FORBIDDEN);
}

/// The crate sends a `scopes` array where Stytch documents a `scope` string; the
/// emulator ignores it, so the token carries every scope of the client.
#[tokio::test]
async fn the_crates_scopes_array_is_ignored() {
    let emu = StytchEmulator::start().await;
    let m2m = emu.create_m2m_client(&["read:users", "write:users"]);
    let stytch = client(&emu);
    let token = token(&stytch, &m2m, Some(&["read:users"])).await;
    let claims = stytch
        .m2m
        .authenticate_token(authenticate(&token.access_token, &[]))
        .await
        .expect("m2m.authenticate_token");
    assert_eq!(claims.scopes, ["read:users", "write:users"]);
}

#[tokio::test]
async fn required_scopes_and_token_age_are_enforced_by_the_crate() {
    let emu = StytchEmulator::start().await;
    let m2m = emu.create_m2m_client(&["read:*", "write:users"]);
    let stytch = client(&emu);
    let token = emu.mint_m2m_token(&m2m.client_id, None);

    for required in [&["read:users"][..], &["read:books", "write:users"], &[]] {
        stytch
            .m2m
            .authenticate_token(authenticate(&token, required))
            .await
            .unwrap_or_else(|e| panic!("{required:?} is granted: {e:?}"));
    }
    for required in [
        &["write:books"][..],
        &["delete:users"],
        &["read:users", "admin"],
    ] {
        match stytch
            .m2m
            .authenticate_token(authenticate(&token, required))
            .await
        {
            Err(stytch::Error::Unauthorized) => {}
            other => panic!("{required:?} is not granted, got {other:?}"),
        }
    }

    // The crate's age limit: 0 means every token is too old.
    let too_old = stytch
        .m2m
        .authenticate_token(AuthenticateTokenRequest {
            max_token_age_seconds: Some(0),
            ..authenticate(&token, &[])
        })
        .await;
    match too_old {
        Err(stytch::Error::JWTError(e)) => assert_eq!(e.to_string(), "JWT too old"),
        other => panic!("expected JWT too old, got {other:?}"),
    }
}

/// The token endpoint's OAuth errors parse as `stytch::Error::Response` (the crate
/// reads `error`, `error_description` and `error_uri` as aliases of Stytch's names).
#[tokio::test]
async fn token_endpoint_errors_reach_the_crate_as_responses() {
    let emu = StytchEmulator::start().await;
    let m2m = emu.create_m2m_client(&["read:users"]);
    let stytch = client(&emu);
    let wrong_secret = TokenRequest {
        client_secret: "wrong".to_owned(),
        ..token_request(&m2m, None)
    };
    let wrong_grant = TokenRequest {
        grant_type: "password".to_owned(),
        ..token_request(&m2m, None)
    };
    for (request, status, error) in [
        (wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client"),
        (
            wrong_grant,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
    ] {
        match stytch.m2m.token(request).await {
            Err(stytch::Error::Response(e)) => {
                assert_eq!(e.status_code, status, "{e:?}");
                assert_eq!(e.error_type, error, "{e:?}");
                assert!(e.request_id.starts_with("request-id-test-"), "{e:?}");
                assert!(!e.error_message.is_empty(), "{e:?}");
                assert!(!e.error_url.is_empty(), "{e:?}");
            }
            other => panic!("expected Error::Response({error}), got {other:?}"),
        }
    }
}

/// A Connected-App access token passes the crate's JWT verification (signature
/// against the JWKS, RS256, `iss`, `aud`, `exp`): `m2m.authenticate_token` runs it,
/// reading `sub` (the member) as the client id and the other non-registered claims
/// as custom claims. The crate has no Connected-App call of its own.
#[tokio::test]
async fn connected_app_tokens_pass_the_crates_jwt_verification() {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let app = emu.create_connected_app();
    let token = emu.mint_connected_app_token(&app.client_id, &member, &["openid", "read:docs"]);

    let claims = client(&emu)
        .m2m
        .authenticate_token(authenticate(&token, &["read:docs"]))
        .await
        .expect("the crate verifies a Connected-App token");
    assert_eq!(claims.client_id, member);
    assert_eq!(claims.scopes, ["openid", "read:docs"]);
    assert_eq!(
        claims.custom_claims,
        HashMap::from([
            ("client_id".to_owned(), json!(app.client_id)),
            (
                "https://stytch.com/organization".to_owned(),
                json!({"organization_id": org, "slug": "acme"}),
            ),
        ])
    );
}

/// The crate accepts only `stytch.com/<project_id>` as issuer, so it refuses the
/// tokens of a project reached through a custom domain (here, the emulator's own
/// origin), whose signature and audience are otherwise right.
#[tokio::test]
async fn custom_domain_tokens_are_refused_by_the_crate() {
    let emu = StytchEmulator::start_with(EmulatorOptions::new().custom_domain()).await;
    let m2m = emu.create_m2m_client(&["read:users"]);
    let stytch = client(&emu);
    let token = token(&stytch, &m2m, None).await;
    let payload = token.access_token.split('.').nth(1).expect("a JWS");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["iss"], emu.base_url());
    match stytch
        .m2m
        .authenticate_token(authenticate(&token.access_token, &[]))
        .await
    {
        Err(stytch::Error::JWTError(e)) => assert_eq!(e.to_string(), "InvalidIssuer"),
        other => panic!("expected an issuer error, got {other:?}"),
    }
}
