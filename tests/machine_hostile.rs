//! Hostile and broken machine tokens, table-driven: each is refused with the
//! documented status and reason, without a call to Stytch (at most the one JWKS
//! refresh an unknown `kid` may cause per cooldown), and without a panic.

mod common;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use axum_stytch::testing::{Endpoint, Policy, Scope, StytchEmulator};
use axum_stytch::{ConnectedAppCaller, M2mCaller, RequireAuthz, RequireScope, StytchAuth};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestResponse, jwt_cookie, send_request, sign_input};
use http::header::{AUTHORIZATION, COOKIE};
use http::{Request, StatusCode};
use serde_json::{Value, json};

fn router(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/service",
            get(|s: M2mCaller| async move { s.client_id().to_owned() }),
        )
        .route(
            "/agent",
            get(|a: ConnectedAppCaller| async move { a.client_id().to_owned() }),
        )
        .route(
            "/users",
            get(|| async { "users" }).route_layer(RequireScope::new("read:users")),
        )
        .route(
            "/orgs/{organization_id}/documents",
            post(|| async { "created" }).route_layer(
                RequireAuthz::new("document", "create").organization_from_path("organization_id"),
            ),
        )
        .layer(auth.layer())
}

struct World {
    emu: StytchEmulator,
    app: Router,
    org: String,
    member: String,
    now: u64,
    attacker: KeyPair,
    emu_key: KeyPair,
}

async fn world() -> World {
    let emu = StytchEmulator::start().await;
    emu.set_policy(
        Policy::new().scope(Scope::new("write:documents").allow("document", ["create"])),
    );
    let auth = emu
        .auth_builder()
        .m2m_tokens(true)
        .connected_app_tokens(true)
        // Room for the thousands-of-scopes token; JWTs over 8 KiB are refused anyway.
        .max_cookie_size(16 * 1024)
        .build()
        .expect("valid config");
    auth.warm_up().await.expect("the keys");
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let now = axum_stytch::Clock::now(&emu.clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    World {
        app: router(&auth),
        org,
        member,
        now,
        attacker: KeyPair::generate(KeySize::Rsa2048).unwrap(),
        emu_key: KeyPair::from_pkcs8(&emu.signing_key_pkcs8_der()).unwrap(),
        emu,
    }
}

impl World {
    fn m2m_claims(&self) -> Value {
        json!({
            "sub": "m2m-client-test-1", "iss": self.emu.issuer(), "aud": [self.emu.project_id()],
            "scope": "read:users", "iat": self.now, "nbf": self.now, "exp": self.now + 3600,
        })
    }

    fn app_claims(&self) -> Value {
        json!({
            "sub": self.member, "iss": self.emu.issuer(), "aud": [self.emu.project_id()],
            "client_id": "connected-app-test-1", "jti": "j", "scope": "write:documents",
            "iat": self.now, "nbf": self.now, "exp": self.now + 3600,
            "https://stytch.com/organization": {"organization_id": self.org, "slug": "acme"},
        })
    }

    fn header(&self, alg: &str, kid: &str) -> String {
        URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string())
    }

    /// `claims` under `header`, signed with the emulator's key (RS256).
    fn signed_raw(&self, header: &str, payload: &str) -> String {
        Self::signed_by(&self.emu_key, &RSA_PKCS1_SHA256, header, payload)
    }

    /// `claims` under `header`, signed with `key` and `alg`.
    fn signed_by(
        key: &KeyPair,
        alg: &'static dyn RsaEncoding,
        header: &str,
        payload: &str,
    ) -> String {
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        sign_input(key, alg, &input)
    }

    async fn get(&self, path: &str, bearer: Option<&str>, cookie: Option<&str>) -> TestResponse {
        let method = if path.ends_with("/documents") {
            "POST"
        } else {
            "GET"
        };
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        send_request(&self.app, req.body(Body::empty()).unwrap()).await
    }
}

type Patch = fn(&World, &mut Value);

fn remove(c: &mut Value, key: &str) {
    c.as_object_mut().unwrap().remove(key);
}

#[tokio::test]
async fn hostile_machine_tokens_are_refused_locally() {
    let w = world().await;
    let jwks_before = w.emu.requests(Endpoint::Jwks);
    let org_route = format!("/orgs/{}/documents", w.org);

    // Sanity: the unpatched tokens pass.
    let m2m = w.emu.sign_claims(&w.m2m_claims());
    assert_eq!(
        w.get("/service", Some(&m2m), None).await.status,
        StatusCode::OK
    );
    let agent = w.emu.sign_claims(&w.app_claims());
    assert_eq!(
        w.get(&org_route, Some(&agent), None).await.status,
        StatusCode::OK
    );

    // (name, M2M (true) or Connected App (false), patch, route, status, reason)
    let patched: &[(&str, bool, Patch, &str, StatusCode, &str)] = &[
        (
            "wrong aud",
            true,
            |_, c| c["aud"] = json!(["project-test-other"]),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "empty aud",
            true,
            |_, c| c["aud"] = json!([]),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "wrong iss",
            true,
            |_, c| c["iss"] = json!("stytch.com/project-test-other"),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "the environment URL as iss",
            false,
            |_, c| c["iss"] = json!("https://test.stytch.com"),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "expired",
            true,
            |w, c| {
                c["iat"] = json!(w.now - 3700);
                c["nbf"] = json!(w.now - 3700);
                c["exp"] = json!(w.now - 100)
            },
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "older than the age limit",
            false,
            |w, c| {
                c["iat"] = json!(w.now - 3601);
                c["nbf"] = json!(w.now - 3601);
                c["exp"] = json!(w.now + 600)
            },
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "issued in the future",
            true,
            |w, c| c["iat"] = json!(w.now + 120),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "not yet valid",
            true,
            |w, c| c["nbf"] = json!(w.now + 120),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "exp as a string",
            true,
            |w, c| c["exp"] = json!((w.now + 60).to_string()),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "exp as a float",
            true,
            |w, c| c["exp"] = json!(w.now as f64 + 60.5),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "missing scope",
            true,
            |_, c| remove(c, "scope"),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "scope as an array",
            true,
            |_, c| c["scope"] = json!(["read:users"]),
            "/users",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "scope as a number",
            true,
            |_, c| c["scope"] = json!(7),
            "/users",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "scope null",
            false,
            |_, c| c["scope"] = json!(null),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "missing sub",
            true,
            |_, c| remove(c, "sub"),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "empty sub",
            true,
            |_, c| c["sub"] = json!(""),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "client_id not a string",
            false,
            |_, c| c["client_id"] = json!(42),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "empty client_id",
            false,
            |_, c| c["client_id"] = json!(""),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "app token without its organization",
            false,
            |_, c| remove(c, "https://stytch.com/organization"),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "app token with an empty organization",
            false,
            |_, c| c["https://stytch.com/organization"]["organization_id"] = json!(""),
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "organization without client_id or session",
            false,
            |_, c| remove(c, "client_id"),
            "/service",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "M2M token where an app is required",
            true,
            |_, _| {},
            "/agent",
            StatusCode::UNAUTHORIZED,
            "caller_not_accepted",
        ),
        (
            "app token where M2M is required",
            false,
            |_, _| {},
            "/service",
            StatusCode::UNAUTHORIZED,
            "caller_not_accepted",
        ),
        (
            "M2M token without the scope",
            true,
            |_, c| c["scope"] = json!("read:user write:users *:users"),
            "/users",
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            "M2M token with a longer scope",
            true,
            |_, c| c["scope"] = json!("read:users:archived"),
            "/users",
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            "M2M token on an RBAC route",
            true,
            |_, c| c["scope"] = json!("write:documents"),
            "/orgs/ORG/documents",
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "app token of another organization",
            false,
            |_, c| {
                c["https://stytch.com/organization"]["organization_id"] =
                    json!("organization-test-other")
            },
            "/orgs/ORG/documents",
            StatusCode::FORBIDDEN,
            "tenancy_mismatch",
        ),
        (
            "app token with a session claim is a session",
            false,
            |_, c| {
                c["https://stytch.com/session"] =
                    json!({"id": "member-session-test-1", "started_at": "2026-01-01T00:00:00Z"})
            },
            "/agent",
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
    ];
    for (name, m2m, patch, route, status, reason) in patched {
        let mut claims = if *m2m { w.m2m_claims() } else { w.app_claims() };
        patch(&w, &mut claims);
        let token = w.emu.sign_claims(&claims);
        let route = route.replace("ORG", &w.org);
        let res = w.get(&route, Some(&token), None).await;
        assert_eq!(
            (res.status, res.reason().as_str()),
            (*status, *reason),
            "{name}: {}",
            res.body
        );
    }

    // Headers, signatures, sizes.
    let payload = w.m2m_claims().to_string();
    let kid = w.emu.signing_kid();
    let big_scope = {
        let mut c = w.m2m_claims();
        c["scope"] = json!("a".repeat(64 * 1024));
        w.emu.sign_claims(&c)
    };
    let forged: Vec<(&str, String, &str)> = vec![
        (
            "alg HS256",
            w.signed_raw(&w.header("HS256", &kid), &payload),
            "invalid_token",
        ),
        (
            "alg none, unsigned",
            format!(
                "{}.{}.",
                w.header("none", &kid),
                URL_SAFE_NO_PAD.encode(&payload)
            ),
            "invalid_token",
        ),
        (
            "alg PS256",
            World::signed_by(
                &w.emu_key,
                &RSA_PSS_SHA256,
                &w.header("PS256", &kid),
                &payload,
            ),
            "invalid_token",
        ),
        (
            "typ at+jwt",
            w.signed_raw(
                &URL_SAFE_NO_PAD
                    .encode(json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}).to_string()),
                &payload,
            ),
            "invalid_token",
        ),
        (
            "another key, the emulator's kid",
            World::signed_by(
                &w.attacker,
                &RSA_PKCS1_SHA256,
                &w.header("RS256", &kid),
                &payload,
            ),
            "invalid_token",
        ),
        (
            "another key, an unknown kid",
            World::signed_by(
                &w.attacker,
                &RSA_PKCS1_SHA256,
                &w.header("RS256", "jwk-attacker"),
                &payload,
            ),
            "invalid_token",
        ),
        (
            "duplicate scope",
            w.signed_raw(
                &w.header("RS256", &kid),
                &payload.replacen(
                    "\"scope\":\"read:users\"",
                    "\"scope\":\"read:users\",\"scope\":\"admin:*\"",
                    1,
                ),
            ),
            "invalid_token",
        ),
        ("a 64 KB scope", big_scope, "invalid_credentials"),
        ("not a JWT", "Zm9v".into(), "invalid_token"),
    ];
    for (name, token, reason) in &forged {
        let res = w.get("/service", Some(token), None).await;
        assert_eq!(
            (res.status, res.reason().as_str()),
            (StatusCode::UNAUTHORIZED, *reason),
            "{name}: {}",
            res.body
        );
    }

    // Machine tokens are never taken from a session cookie.
    let res = w.get("/service", None, Some(&jwt_cookie(&m2m))).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    // A member's session JWT where machine tokens are taken as bearer tokens, but not
    // sessions.
    let session = w.emu.create_session(&w.member).session_jwt;
    let res = w.get("/service", Some(&session), None).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    for endpoint in [
        Endpoint::Authenticate,
        Endpoint::Revoke,
        Endpoint::Introspect,
        Endpoint::M2mToken,
    ] {
        assert_eq!(w.emu.requests(endpoint), 0, "{endpoint:?}");
    }
    assert!(
        w.emu.requests(Endpoint::Jwks) - jwks_before <= 1,
        "at most the one refresh an unknown kid may cause per cooldown"
    );
}

/// Thousands of scopes parse and match (linearly: a few required scopes against the
/// token's), and a 64 KB one never reaches the parser.
#[tokio::test]
async fn thousands_of_scopes() {
    let w = world().await;
    let mut claims = w.m2m_claims();
    // 1,500 distinct scopes of one or two characters: as many as fit in 8 KiB.
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let one = ALPHABET.iter().map(|&a| (a as char).to_string());
    let two = ALPHABET.iter().flat_map(|&a| {
        ALPHABET
            .iter()
            .map(move |&b| format!("{}{}", a as char, b as char))
    });
    let many: Vec<String> = one.chain(two).take(1500).collect();
    claims["scope"] = json!(format!("{} read:users", many.join(" ")));
    let token = w.emu.sign_claims(&claims);
    assert!(
        token.len() > 4096 && token.len() < 8 * 1024,
        "{}",
        token.len()
    );
    let res = w.get("/users", Some(&token), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    claims["scope"] = json!(many.join(" "));
    let token = w.emu.sign_claims(&claims);
    let res = w.get("/users", Some(&token), None).await;
    assert_eq!(
        (res.status, res.reason().as_str()),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(w.emu.requests(Endpoint::Authenticate), 0);
}
