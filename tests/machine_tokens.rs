//! Services and agents as callers, against the emulator: M2M and Connected-App access
//! tokens as `Authorization: Bearer` beside cookie sessions on one router, each kind
//! taken only where it is asked for; `RequireScope`; `RequireAuthz` for Connected Apps
//! through the policy's scopes; the verified-token cache; the protected-resource
//! metadata of RFC 9728 and the challenges that name it.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_stytch::testing::{EmulatorOptions, Endpoint, Policy, Role, Scope, StytchEmulator};
use axum_stytch::{
    AuthenticatedMember, Caller, ConnectedAppCaller, M2mCaller, ProtectedResource, RequireAuthz,
    RequireScope, StytchAuth, StytchAuthBuilder,
};
use common::{TestResponse, jwt_cookie, send_request};
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{Request, StatusCode};

/// The policy: members' roles and the scopes Connected Apps are granted.
fn policy() -> Policy {
    Policy::new()
        .role(Role::new("editor").allow("document", ["read", "create"]))
        .scope(Scope::new("read:documents").allow("document", ["read"]))
        .scope(Scope::new("write:documents").allow("document", ["read", "create"]))
}

/// Members, services and agents, each route taking what it says.
fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move {
                match caller {
                    Caller::Member(m) => format!("member {}", m.member_id()),
                    Caller::M2m(s) => format!("m2m {}", s.client_id()),
                    Caller::ConnectedApp(a) => {
                        format!("app {} for {}", a.client_id(), a.member_id())
                    }
                    _ => "other".to_owned(),
                }
            }),
        )
        .route(
            "/me",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .route(
            "/service",
            get(
                |s: M2mCaller| async move { format!("{} {}", s.client_id(), s.scopes().join(",")) },
            ),
        )
        .route(
            "/agent",
            get(|a: ConnectedAppCaller| async move {
                format!(
                    "{} {} {}",
                    a.client_id(),
                    a.organization_id(),
                    a.scopes().join(",")
                )
            }),
        )
        .route(
            "/maybe-service",
            get(|s: Option<M2mCaller>| async move {
                s.map_or("none".into(), |s| s.client_id().to_owned())
            }),
        )
        .route(
            "/users",
            get(|| async { "users" }).route_layer(RequireScope::new("read:users")),
        )
        .route(
            "/users/sync",
            post(|| async { "synced" })
                .route_layer(RequireScope::new("read:users").and("write:users")),
        )
        .route(
            "/documents",
            post(|| async { "created" }).route_layer(RequireAuthz::new("document", "create")),
        )
        .route(
            "/orgs/{organization_id}/documents",
            get(|| async { "listed" }).route_layer(
                RequireAuthz::new("document", "read").organization_from_path("organization_id"),
            ),
        )
        .merge(auth.protected_resource_metadata())
        .layer(auth.layer())
}

struct World {
    emu: StytchEmulator,
    auth: StytchAuth,
    app: Router,
    org: String,
    member: String,
    session_jwt: String,
}

async fn world(configure: impl FnOnce(StytchAuthBuilder) -> StytchAuthBuilder) -> World {
    world_with(EmulatorOptions::new(), configure).await
}

async fn world_with(
    options: EmulatorOptions,
    configure: impl FnOnce(StytchAuthBuilder) -> StytchAuthBuilder,
) -> World {
    let emu = StytchEmulator::start_with(options).await;
    emu.set_policy(policy());
    let auth = configure(emu.auth_builder()).build().expect("valid config");
    auth.warm_up().await.expect("the keys");
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let session_jwt = emu.create_session(&member).session_jwt;
    let app = router(&auth);
    World {
        emu,
        auth,
        app,
        org,
        member,
        session_jwt,
    }
}

fn machines(b: StytchAuthBuilder) -> StytchAuthBuilder {
    b.m2m_tokens(true).connected_app_tokens(true)
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    cookie: Option<&str>,
) -> TestResponse {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = bearer {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(cookie) = cookie {
        req = req.header(COOKIE, cookie);
    }
    send_request(app, req.body(Body::empty()).unwrap()).await
}

async fn bearer(app: &Router, path: &str, token: &str) -> TestResponse {
    let method = if path == "/documents" || path == "/users/sync" {
        "POST"
    } else {
        "GET"
    };
    call(app, method, path, Some(token), None).await
}

fn challenge(res: &TestResponse) -> String {
    res.headers
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Every call the layer could make to Stytch but the key and policy fetches.
fn session_calls(emu: &StytchEmulator) -> u64 {
    [
        Endpoint::Authenticate,
        Endpoint::Revoke,
        Endpoint::Introspect,
        Endpoint::M2mToken,
    ]
    .into_iter()
    .map(|e| emu.requests(e))
    .sum()
}

#[tokio::test]
async fn members_services_and_agents_on_one_router() {
    let w = world(machines).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    let app_client = w.emu.create_connected_app();
    let agent = w.emu.mint_connected_app_token(
        &app_client.client_id,
        &w.member,
        &["openid", "write:documents"],
    );
    let cookie = jwt_cookie(&w.session_jwt);

    // Who each is, through the one extractor that takes them all.
    let res = call(&w.app, "GET", "/whoami", None, Some(&cookie)).await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, &*format!("member {}", w.member))
    );
    let res = bearer(&w.app, "/whoami", &m2m).await;
    assert_eq!(res.body, format!("m2m {}", service.client_id));
    let res = bearer(&w.app, "/whoami", &agent).await;
    assert_eq!(
        res.body,
        format!("app {} for {}", app_client.client_id, w.member)
    );

    // Each kind's own extractor.
    assert_eq!(
        call(&w.app, "GET", "/me", None, Some(&cookie)).await.body,
        w.member
    );
    let res = bearer(&w.app, "/service", &m2m).await;
    assert_eq!(res.body, format!("{} read:users", service.client_id));
    let res = bearer(&w.app, "/agent", &agent).await;
    assert_eq!(
        res.body,
        format!("{} {} openid,write:documents", app_client.client_id, w.org)
    );

    // Never one kind for another: 401 `caller_not_accepted`, with the Bearer challenge.
    for (path, token, cookie) in [
        ("/me", Some(m2m.as_str()), None),
        ("/me", Some(agent.as_str()), None),
        ("/service", None, Some(cookie.as_str())),
        ("/service", Some(agent.as_str()), None),
        ("/agent", Some(m2m.as_str()), None),
        ("/agent", None, Some(cookie.as_str())),
        ("/users", None, Some(cookie.as_str())),
    ] {
        let res = call(&w.app, "GET", path, token, cookie).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}: {}", res.body);
        assert_eq!(res.reason(), "caller_not_accepted", "{path}");
        assert_eq!(
            challenge(&res),
            r#"Bearer realm="stytch", error="invalid_token""#
        );
    }
    // The optional extractor says `None` instead.
    assert_eq!(bearer(&w.app, "/maybe-service", &agent).await.body, "none");
    assert_eq!(
        bearer(&w.app, "/maybe-service", &m2m).await.body,
        service.client_id
    );

    // RBAC: the member by roles, the agent by scopes, the service never.
    let res = call(&w.app, "POST", "/documents", None, Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = bearer(&w.app, "/documents", &agent).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = bearer(&w.app, "/documents", &m2m).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );

    // Scopes.
    assert_eq!(bearer(&w.app, "/users", &m2m).await.status, StatusCode::OK);
    let res = bearer(&w.app, "/users/sync", &m2m).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(res.json()["scope"], "read:users write:users");
    assert_eq!(
        challenge(&res),
        r#"Bearer realm="stytch", error="insufficient_scope", scope="read:users write:users""#
    );

    assert_eq!(session_calls(&w.emu), 0, "all decided locally");
}

#[tokio::test]
async fn connected_apps_are_authorized_by_the_policys_scopes_in_their_organization() {
    let w = world(machines).await;
    let app_client = w.emu.create_connected_app();
    let reader =
        w.emu
            .mint_connected_app_token(&app_client.client_id, &w.member, &["read:documents"]);
    let other_org = w.emu.create_organization("globex");
    let outsider = w
        .emu
        .create_member(&other_org, "bob@globex.test", &["editor"]);
    let foreign =
        w.emu
            .mint_connected_app_token(&app_client.client_id, &outsider, &["write:documents"]);
    let own_docs = format!("/orgs/{}/documents", w.org);

    assert_eq!(
        bearer(&w.app, &own_docs, &reader).await.status,
        StatusCode::OK
    );
    // Reading is granted; creating is not: the scopes that would have been are named.
    let res = bearer(&w.app, "/documents", &reader).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(res.json()["scope"], "write:documents");
    assert_eq!(res.json()["resource"], "document");
    assert_eq!(
        challenge(&res),
        r#"Bearer realm="stytch", error="insufficient_scope", scope="write:documents""#
    );
    // A token of another organization, whatever its scopes: 403 on this one's route.
    let res = bearer(&w.app, &own_docs, &foreign).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "tenancy_mismatch")
    );
    // The member's roles are never consulted for an agent: no scope, no access, even
    // though the member is an editor.
    let bare = w
        .emu
        .mint_connected_app_token(&app_client.client_id, &w.member, &["openid"]);
    let res = bearer(&w.app, &own_docs, &bare).await;
    assert_eq!(res.reason(), "insufficient_scope");
    // `read:*` is a scope's name here, not a wildcard.
    let star = w
        .emu
        .mint_connected_app_token(&app_client.client_id, &w.member, &["read:*"]);
    assert_eq!(
        bearer(&w.app, &own_docs, &star).await.reason(),
        "insufficient_scope"
    );
    assert_eq!(session_calls(&w.emu), 0);
}

#[tokio::test]
async fn a_repeated_machine_token_is_answered_from_the_cache() {
    let w = world(machines).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    for _ in 0..3 {
        assert_eq!(bearer(&w.app, "/users", &m2m).await.status, StatusCode::OK);
    }
    let metrics = w.auth.metrics();
    assert_eq!((metrics.local_verifications, metrics.cache_hits), (1, 2));
    // The cached token is still refused where its kind is not taken.
    let res = call(&w.app, "GET", "/me", None, Some(&jwt_cookie(&m2m))).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(
        w.auth.metrics().local_verifications,
        1,
        "from the cache, and refused"
    );
}

/// Machine tokens age out at `machine_token_max_age` of real time, from the cache too,
/// whatever the wall clock does; no call to Stytch (there is none to make).
#[tokio::test]
async fn machine_tokens_age_out_by_real_time_without_a_call() {
    let w = world(|b| machines(b).machine_token_max_age(Duration::from_secs(600))).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    assert_eq!(bearer(&w.app, "/users", &m2m).await.status, StatusCode::OK);
    let clock = w.emu.clock();
    // The wall clock steps back an hour: no real time passed, still trusted.
    clock.set(axum_stytch::Clock::now(&clock) - Duration::from_secs(3600));
    assert_eq!(bearer(&w.app, "/users", &m2m).await.status, StatusCode::OK);
    // Ten minutes of real time later (the wall clock still an hour behind): too old.
    clock.advance(Duration::from_secs(600));
    let res = bearer(&w.app, "/users", &m2m).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(session_calls(&w.emu), 0);
}

#[tokio::test]
async fn each_kind_is_taken_only_once_enabled() {
    // Only M2M tokens: a Connected-App token and a member's JWT as bearer are refused,
    // the member's cookie still works.
    let w = world(|b| b.m2m_tokens(true)).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    let app_client = w.emu.create_connected_app();
    let agent = w
        .emu
        .mint_connected_app_token(&app_client.client_id, &w.member, &["openid"]);
    assert_eq!(bearer(&w.app, "/whoami", &m2m).await.status, StatusCode::OK);
    for token in [
        agent.as_str(),
        w.session_jwt.as_str(),
        "a-made-up-session-token-0123456789",
    ] {
        let res = bearer(&w.app, "/whoami", token).await;
        assert_eq!(
            (res.status, res.reason().as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
    }
    let res = call(
        &w.app,
        "GET",
        "/me",
        None,
        Some(&jwt_cookie(&w.session_jwt)),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        session_calls(&w.emu),
        0,
        "no bearer session token was sent to Stytch"
    );

    // Machine tokens off (the default): refused even with bearer sessions on.
    let w = world(|b| b.bearer_tokens(true)).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    let res = bearer(&w.app, "/whoami", &m2m).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert_eq!(
        bearer(&w.app, "/me", &w.session_jwt).await.status,
        StatusCode::OK
    );
    // A member's JWT where a machine token is required: not the kind asked for.
    let w = world(|b| machines(b).bearer_tokens(true)).await;
    let res = bearer(&w.app, "/service", &w.session_jwt).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "caller_not_accepted")
    );
}

/// Tokens issued on the project domain carry it as `iss`: accepted once the layer is
/// told the domain, refused (locally, as a foreign issuer) before.
#[tokio::test]
async fn connected_app_tokens_of_the_project_domain() {
    const DOMAIN: &str = "https://acme-1234.customers.stytch.dev";
    let options = || EmulatorOptions::new().issuer(DOMAIN);
    let w = world_with(options(), machines).await;
    let app_client = w.emu.create_connected_app();
    let agent = w
        .emu
        .mint_connected_app_token(&app_client.client_id, &w.member, &["openid"]);
    let res = bearer(&w.app, "/agent", &agent).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let w = world_with(options(), |b| machines(b).project_domain(DOMAIN)).await;
    let agent = w.emu.mint_connected_app_token(
        &w.emu.create_connected_app().client_id,
        &w.member,
        &["openid"],
    );
    assert_eq!(
        bearer(&w.app, "/agent", &agent).await.status,
        StatusCode::OK
    );
    assert_eq!(session_calls(&w.emu), 0);
}

const RESOURCE: &str = "https://api.example.com/mcp";
const METADATA: &str = "https://api.example.com/.well-known/oauth-protected-resource/mcp";

#[tokio::test]
async fn protected_resource_metadata_is_served_and_named_in_challenges() {
    let w = world(|b| {
        machines(b)
            .project_domain("https://acme-1234.customers.stytch.dev")
            .protected_resource(
                ProtectedResource::new(RESOURCE).scopes_supported(["openid", "read:documents"]),
            )
    })
    .await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = call(&w.app, "GET", path, None, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.headers["access-control-allow-origin"], "*");
        assert_eq!(
            res.json(),
            serde_json::json!({
                "resource": RESOURCE,
                "authorization_servers": ["https://acme-1234.customers.stytch.dev"],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["openid", "read:documents"],
            })
        );
        let res = call(&w.app, "OPTIONS", path, None, None).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        assert_eq!(res.headers["access-control-allow-methods"], "GET, OPTIONS");
    }

    // No token: the challenge names the metadata, without an error code.
    let res = call(&w.app, "GET", "/agent", None, None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&res),
        format!(r#"Bearer realm="stytch", resource_metadata="{METADATA}""#)
    );
    assert_eq!(
        res.headers["access-control-expose-headers"],
        "WWW-Authenticate"
    );
    // A bad token: `invalid_token`.
    let res = bearer(&w.app, "/agent", "eyJh.not.valid").await;
    assert_eq!(
        challenge(&res),
        format!(r#"Bearer realm="stytch", error="invalid_token", resource_metadata="{METADATA}""#)
    );
    // Too few scopes: `insufficient_scope`, the scopes needed, the metadata.
    let agent = w.emu.mint_connected_app_token(
        &w.emu.create_connected_app().client_id,
        &w.member,
        &["openid"],
    );
    let res = bearer(&w.app, "/documents", &agent).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&res),
        format!(
            r#"Bearer realm="stytch", error="insufficient_scope", scope="write:documents", resource_metadata="{METADATA}""#
        )
    );
}

#[tokio::test]
async fn a_protected_resource_needs_an_authorization_server() {
    let emu = StytchEmulator::start().await;
    let err = emu
        .auth_builder()
        .connected_app_tokens(true)
        .protected_resource(ProtectedResource::new(RESOURCE))
        .build()
        .expect_err("no authorization server");
    assert!(err.to_string().contains("project_domain"), "{err}");
    let err = emu
        .auth_builder()
        .protected_resource(ProtectedResource::new("http://api.example.com/mcp"))
        .project_domain("https://acme-1234.customers.stytch.dev")
        .build()
        .expect_err("plain http");
    assert!(err.to_string().contains("protected_resource"), "{err}");
    let err = emu
        .auth_builder()
        .project_domain("https://acme-1234.customers.stytch.dev/path")
        .build()
        .expect_err("a path");
    assert!(err.to_string().contains("project_domain"), "{err}");
    let err = emu
        .auth_builder()
        .machine_token_max_age(Duration::ZERO)
        .build()
        .expect_err("zero");
    assert!(err.to_string().contains("machine_token_max_age"), "{err}");
}

/// Code that sees the request's extensions rather than axum's extractors (a tonic
/// method, a tower service) reads each kind of caller, and is refused another kind.
#[tokio::test]
async fn callers_are_read_from_the_requests_extensions() {
    let w = world(machines).await;
    let service = w.emu.create_m2m_client(&["read:users"]);
    let m2m = w.emu.mint_m2m_token(&service.client_id, None);
    let app_client = w.emu.create_connected_app();
    let agent = w
        .emu
        .mint_connected_app_token(&app_client.client_id, &w.member, &["openid"]);
    let app = Router::new()
        .route(
            "/ext",
            get(|request: Request<Body>| async move {
                let extensions = request.extensions();
                let caller = match Caller::from_extensions(extensions).await {
                    Ok(Caller::Member(m)) => format!("member {}", m.member_id()),
                    Ok(Caller::M2m(s)) => format!("m2m {}", s.client_id()),
                    Ok(Caller::ConnectedApp(a)) => format!("app {}", a.client_id()),
                    Ok(_) => "other".to_owned(),
                    Err(r) => format!("caller {}", r.reason()),
                };
                let kinds = [
                    M2mCaller::from_extensions(extensions).await.err(),
                    ConnectedAppCaller::from_extensions(extensions).await.err(),
                    AuthenticatedMember::from_extensions(extensions).await.err(),
                ]
                .map(|refused| refused.map_or("ok".to_owned(), |r| r.reason().to_string()));
                format!("{caller}; {}", kinds.join(" "))
            }),
        )
        .layer(w.auth.layer());

    let res = bearer(&app, "/ext", &m2m).await;
    assert_eq!(
        res.body,
        format!(
            "m2m {}; ok caller_not_accepted caller_not_accepted",
            service.client_id
        )
    );
    let res = bearer(&app, "/ext", &agent).await;
    assert_eq!(
        res.body,
        format!(
            "app {}; caller_not_accepted ok caller_not_accepted",
            app_client.client_id
        )
    );
    let res = call(&app, "GET", "/ext", None, Some(&jwt_cookie(&w.session_jwt))).await;
    assert_eq!(
        res.body,
        format!(
            "member {}; caller_not_accepted caller_not_accepted ok",
            w.member
        )
    );
    let res = call(&app, "GET", "/ext", None, None).await;
    assert_eq!(
        res.body,
        "caller missing_credentials; missing_credentials missing_credentials missing_credentials"
    );
}
