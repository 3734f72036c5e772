//! The machine-token endpoints over HTTP: the M2M token endpoint in every
//! encoding the official SDKs send, the claims of both token kinds, token
//! introspection on both paths, discovery, and their faults and counters.

use std::time::Duration;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::*;
use crate::clock::Clock;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

struct Fixture {
    emu: StytchEmulator,
    org: String,
    member: String,
    m2m: M2mClient,
    app: ConnectedApp,
    http: reqwest::Client,
}

async fn fixture_with(options: EmulatorOptions) -> Fixture {
    let emu = StytchEmulator::start_with(options).await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &[]);
    let m2m = emu.create_m2m_client(&["read:users", "write:users"]);
    let app = emu.create_connected_app();
    Fixture {
        emu,
        org,
        member,
        m2m,
        app,
        http: reqwest::Client::new(),
    }
}

async fn fixture() -> Fixture {
    fixture_with(EmulatorOptions::new()).await
}

impl Fixture {
    /// POSTs `body` to `path` with these `Content-Type` and `Authorization` headers.
    async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: String,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.emu.base_url()))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.emu.base_url()))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn token_path(&self) -> String {
        format!("/v1/public/{}/oauth2/token", self.emu.project_id())
    }

    fn project_basic(&self) -> String {
        basic(self.emu.project_id(), self.emu.secret())
    }

    /// The project's session JWKS.
    async fn jwks(&self) -> Value {
        let path = format!("/v1/b2b/sessions/jwks/{}", self.emu.project_id());
        self.get(&path).await.1
    }

    /// Introspects `token` at `path` with the fixture app's credentials in a form.
    async fn introspect(&self, path: &str, token: &str) -> (u16, Value) {
        let body = form(&[
            ("token", token),
            ("client_id", &self.app.client_id),
            ("client_secret", &self.app.client_secret),
        ]);
        self.post(path, Some(FORM), None, body).await
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    pairs.join("&")
}

/// The JWT's header text and its claims.
fn decode_jwt(jwt: &str) -> (String, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    (header, claims)
}

/// The JWT's signature verifies with the key of its `kid` in `jwks`.
#[track_caller]
fn assert_signed_by(jwt: &str, jwks: &Value) {
    let (header, _) = decode_jwt(jwt);
    let kid = serde_json::from_str::<Value>(&header).unwrap()["kid"].clone();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} is not in the JWKS"));
    let component = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str().unwrap()).unwrap();
    let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
    RsaPublicKeyComponents {
        n: &component("n"),
        e: &component("e"),
    }
    .verify(
        &RSA_PKCS1_2048_8192_SHA256,
        signing_input.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("the JWT's signature verifies with the JWKS key");
}

/// An OAuth error: `status`, `error`, and exactly the five OAuth error fields.
#[track_caller]
fn assert_oauth_error(got: &(u16, Value), status: u16, error: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    assert_eq!(body["status_code"], status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    for field in ["request_id", "error_description", "error_uri"] {
        assert!(body[field].is_string(), "missing {field} in {body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");
}

fn keys_of(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn now_secs(emu: &StytchEmulator) -> u64 {
    crate::clock::unix_seconds(emu.clock().now())
}

/// Each row of the SDK table (stytch-tokens-wire.md §1.1), and the scope it gets.
#[tokio::test]
async fn token_endpoint_accepts_every_sdk_encoding() {
    let f = fixture().await;
    let (id, secret) = (f.m2m.client_id.as_str(), f.m2m.client_secret.as_str());
    let project = f.project_basic();
    let client_basic = basic(id, secret);
    let both = "read:users write:users";
    let cases: Vec<(&str, &str, Option<&str>, String, &str)> = vec![
        (
            "Node/Go: form, no Authorization",
            FORM,
            None,
            form(&[
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", "read:users"),
            ]),
            "read:users",
        ),
        (
            "form, client credentials as Basic, no scope",
            FORM,
            Some(&client_basic),
            form(&[("grant_type", "client_credentials")]),
            both,
        ),
        (
            "Python/Ruby: JSON, project Basic, body credentials, extra field",
            JSON,
            Some(&project),
            json!({"client_id": id, "client_secret": secret,
                "grant_type": "client_credentials", "scope": "write:users", "tenant": "x"})
            .to_string(),
            "write:users",
        ),
        (
            "Java: JSON labelled as a form, project Basic",
            FORM,
            Some(&project),
            json!({"client_id": id, "client_secret": secret,
                "grant_type": "client_credentials", "scope": "write:users read:users"})
            .to_string(),
            "write:users read:users",
        ),
        (
            "Rust: JSON, project Basic, a `scopes` array (ignored)",
            JSON,
            Some(&project),
            json!({"client_id": id, "client_secret": secret,
                "scopes": ["read:users"], "grant_type": "client_credentials"})
            .to_string(),
            both,
        ),
        (
            "Rust: `scopes` null",
            JSON,
            Some(&project),
            json!({"client_id": id, "client_secret": secret,
                "scopes": null, "grant_type": "client_credentials"})
            .to_string(),
            both,
        ),
    ];
    for (name, content_type, auth, body, scope) in cases {
        let (status, body) = f
            .post(&f.token_path(), Some(content_type), auth, body)
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let mut keys = keys_of(&body);
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "access_token",
                "expires_in",
                "request_id",
                "status_code",
                "token_type"
            ],
            "{name}"
        );
        assert_eq!(body["token_type"], "bearer", "{name}");
        assert_eq!(body["expires_in"], 3600, "{name}");
        assert_eq!(body["status_code"], 200, "{name}");
        assert!(
            body["request_id"]
                .as_str()
                .unwrap()
                .starts_with("request-id-test-")
        );
        let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
        assert_eq!(claims["scope"], scope, "{name}");
        assert_eq!(claims["sub"], id, "{name}");
    }
    assert_eq!(f.emu.requests(Endpoint::M2mToken), 6);
}

#[tokio::test]
async fn m2m_jwt_has_the_documented_claims_and_verifies() {
    let f = fixture().await;
    let client = f.emu.create_m2m_client_with(
        &["read:users"],
        M2mClientOptions::new()
            .custom_claim("tenant", "acme")
            .custom_claim("iss", "evil")
            .custom_claim("gone", Value::Null)
            .custom_claim("https://stytch.com/session", json!({})),
    );
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client.client_id),
        ("client_secret", &client.client_secret),
    ]);
    let (status, response) = f.post(&f.token_path(), Some(FORM), None, body).await;
    assert_eq!(status, 200, "{response}");
    let over_http = response["access_token"].as_str().unwrap().to_owned();
    let minted = f.emu.mint_m2m_token(&client.client_id, None);
    let jwks = f.jwks().await;
    let iat = now_secs(&f.emu);
    for jwt in [&over_http, &minted] {
        let (header, claims) = decode_jwt(jwt);
        assert_eq!(
            header,
            format!(
                r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#,
                f.emu.signing_kid()
            )
        );
        assert_eq!(
            claims,
            json!({
                "aud": [f.emu.project_id()],
                "exp": iat + 3600,
                "iat": iat,
                "iss": format!("stytch.com/{}", f.emu.project_id()),
                "nbf": iat,
                "scope": "read:users",
                "sub": client.client_id,
                "tenant": "acme",
            })
        );
        assert_signed_by(jwt, &jwks);
    }

    // A rotation: new tokens carry the new kid, served on both JWKS paths.
    let kid = f.emu.rotate_keys();
    let jwt = f
        .emu
        .mint_m2m_token(&f.m2m.client_id, Some(&["write:users"]));
    let (header, claims) = decode_jwt(&jwt);
    assert!(header.contains(&kid), "{header}");
    assert_eq!(claims["scope"], "write:users");
    assert_signed_by(&jwt, &f.get("/.well-known/jwks.json").await.1);

    // As a custom domain: the emulator's origin is the issuer.
    let custom = fixture_with(EmulatorOptions::new().custom_domain()).await;
    let jwt = custom.emu.mint_m2m_token(&custom.m2m.client_id, None);
    assert_eq!(decode_jwt(&jwt).1["iss"], custom.emu.base_url());
}

#[tokio::test]
#[should_panic(expected = "was not given every scope")]
async fn minting_a_scope_the_client_was_not_given_is_a_test_bug() {
    let f = fixture().await;
    f.emu.mint_m2m_token(&f.m2m.client_id, Some(&["admin"]));
}

/// A request that fails: name, path, `Authorization`, form body, status, `error`.
type ErrorCase<'a> = (&'a str, &'a str, Option<&'a str>, String, u16, &'a str);

#[tokio::test]
async fn token_endpoint_errors_are_oauth_errors() {
    let f = fixture().await;
    let (id, secret) = (f.m2m.client_id.as_str(), f.m2m.client_secret.as_str());
    let grant = ("grant_type", "client_credentials");
    let path = f.token_path();
    let other_project = "/v1/public/project-test-other/oauth2/token";
    let project = f.project_basic();
    let cases: Vec<ErrorCase> = vec![
        (
            "wrong secret",
            &path,
            None,
            form(&[grant, ("client_id", id), ("client_secret", "nope")]),
            401,
            "invalid_client",
        ),
        (
            "no credentials",
            &path,
            None,
            form(&[grant]),
            401,
            "invalid_client",
        ),
        (
            "the project's Basic credentials only",
            &path,
            Some(&project),
            form(&[grant]),
            401,
            "invalid_client",
        ),
        (
            "a Connected App's credentials",
            &path,
            None,
            form(&[
                grant,
                ("client_id", &f.app.client_id),
                ("client_secret", &f.app.client_secret),
            ]),
            401,
            "invalid_client",
        ),
        (
            "another project's path",
            other_project,
            None,
            form(&[grant, ("client_id", id), ("client_secret", secret)]),
            401,
            "invalid_client",
        ),
        (
            "no grant_type",
            &path,
            None,
            form(&[("client_id", id), ("client_secret", secret)]),
            400,
            "invalid_request",
        ),
        (
            "another grant",
            &path,
            None,
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", id),
                ("client_secret", secret),
            ]),
            400,
            "unsupported_grant_type",
        ),
        (
            "a scope not given",
            &path,
            None,
            form(&[
                grant,
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "read:users admin"),
            ]),
            400,
            "invalid_scope",
        ),
        (
            "scope as an array",
            &path,
            None,
            json!({"client_id": id, "client_secret": secret,
                "grant_type": "client_credentials", "scope": ["read:users"]})
            .to_string(),
            400,
            "invalid_request",
        ),
        (
            "broken JSON",
            &path,
            None,
            "{\"client_id\":".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "a repeated field",
            &path,
            None,
            form(&[grant, grant, ("client_id", id), ("client_secret", secret)]),
            400,
            "invalid_request",
        ),
    ];
    for (name, path, auth, body, status, error) in cases {
        let got = f.post(path, Some(FORM), auth, body).await;
        assert_eq!(got.0, status, "{name}: {}", got.1);
        assert_oauth_error(&got, status, error);
    }
    // A form sent as JSON.
    let got = f
        .post(&path, Some(JSON), None, form(&[grant, ("client_id", id)]))
        .await;
    assert_oauth_error(&got, 400, "invalid_request");

    // Other methods are the router's: a Stytch error body.
    let response = f
        .http
        .get(format!("{}{path}", f.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "method_not_allowed");
}

#[tokio::test]
async fn connected_app_token_has_the_documented_claims_and_verifies() {
    let f = fixture().await;
    let token =
        f.emu
            .mint_connected_app_token(&f.app.client_id, &f.member, &["openid", "read:docs"]);
    let (header, claims) = decode_jwt(&token);
    assert_eq!(
        header,
        format!(
            r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#,
            f.emu.signing_kid()
        )
    );
    let iat = now_secs(&f.emu);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 44);
    assert!(jti.chars().all(|c| c.is_ascii_alphanumeric()), "{jti}");
    assert_eq!(
        claims,
        json!({
            "aud": [f.emu.project_id()],
            "client_id": f.app.client_id,
            "exp": iat + 3600,
            "https://stytch.com/organization": {"organization_id": f.org, "slug": "acme"},
            "iat": iat,
            "iss": f.emu.issuer(),
            "jti": jti,
            "nbf": iat,
            "scope": "openid read:docs",
            "sub": f.member,
        })
    );
    assert_signed_by(&token, &f.jwks().await);
    let again = f
        .emu
        .mint_connected_app_token(&f.app.client_id, &f.member, &[]);
    assert_ne!(decode_jwt(&again).1["jti"], claims["jti"]);
    assert_eq!(decode_jwt(&again).1["scope"], "");

    // Per-app lifetime and custom claims; Stytch's claims win.
    let app = f.emu.create_connected_app_with(
        ConnectedAppOptions::new()
            .access_token_expiry(Duration::from_secs(300))
            .custom_claim("plan", "pro")
            .custom_claim("client_id", "spoofed")
            .custom_claim("sub", "spoofed"),
    );
    assert!(app.client_id.starts_with("connected-app-test-"));
    let (_, claims) = decode_jwt(&f.emu.mint_connected_app_token(
        &app.client_id,
        &f.member,
        &["x"],
    ));
    assert_eq!(claims["exp"], iat + 300);
    assert_eq!(claims["plan"], "pro");
    assert_eq!(claims["client_id"], app.client_id);
    assert_eq!(claims["sub"], f.member);
}

#[tokio::test]
async fn introspection_answers_live_tokens_on_both_paths_and_every_encoding() {
    let f = fixture().await;
    let token =
        f.emu
            .mint_connected_app_token(&f.app.client_id, &f.member, &["openid", "read:docs"]);
    let (_, claims) = decode_jwt(&token);
    let legacy = format!("/v1/public/{}/oauth2/introspect", f.emu.project_id());
    let modern = "/v1/oauth2/introspect";
    let app_basic = basic(&f.app.client_id, &f.app.client_secret);
    let project = f.project_basic();
    let (app_id, app_secret) = (f.app.client_id.as_str(), f.app.client_secret.as_str());
    let with_secret = form(&[
        ("token", &token),
        ("client_id", app_id),
        ("client_secret", app_secret),
        ("token_type_hint", "access_token"),
    ]);
    let cases: Vec<(&str, &str, &str, Option<&str>, String)> = vec![
        ("Node/Go: form", &legacy, FORM, None, with_secret.clone()),
        (
            "Python: form, project Basic",
            &legacy,
            FORM,
            Some(&project),
            with_secret.clone(),
        ),
        (
            "Ruby: JSON, project Basic",
            modern,
            JSON,
            Some(&project),
            json!({"token": token, "client_id": app_id, "client_secret": app_secret,
                "token_type_hint": null})
            .to_string(),
        ),
        (
            "client credentials as Basic",
            modern,
            FORM,
            Some(&app_basic),
            form(&[("token", &token), ("token_type_hint", "refresh_token")]),
        ),
    ];
    for (name, path, content_type, auth, body) in cases {
        let (status, body) = f.post(path, Some(content_type), auth, body).await;
        assert_eq!(status, 200, "{name}: {body}");
        let mut want = claims.clone();
        let want_map = want.as_object_mut().unwrap();
        want_map.remove("jti");
        want_map.insert("active".into(), json!(true));
        want_map.insert("token_type".into(), json!("access_token"));
        want_map.insert("status_code".into(), json!(200));
        want_map.insert("request_id".into(), body["request_id"].clone());
        assert_eq!(body, want, "{name}");
    }

    // Any app of the project may introspect another app's token.
    let other = f.emu.create_connected_app();
    let body = form(&[
        ("token", &token),
        ("client_id", &other.client_id),
        ("client_secret", &other.client_secret),
    ]);
    let (_, body) = f.post(modern, Some(FORM), None, body).await;
    assert_eq!(body["active"], true);
    assert_eq!(f.emu.requests(Endpoint::Introspect), 5);
}

#[tokio::test]
async fn introspection_answers_inactive_for_any_other_token() {
    let f = fixture().await;
    let legacy = format!("/v1/public/{}/oauth2/introspect", f.emu.project_id());
    let live = |f: &Fixture| {
        f.emu
            .mint_connected_app_token(&f.app.client_id, &f.member, &["openid"])
    };
    let session = f.emu.create_session(&f.member);
    let mut forged = decode_jwt(&live(&f)).1;
    forged["jti"] = json!("unknown-jti");
    let revoked = live(&f);
    f.emu.revoke_connected_app_token(&revoked);
    let inactive = [
        ("garbage", "not-a-jwt".to_owned()),
        ("M2M", f.emu.mint_m2m_token(&f.m2m.client_id, None)),
        ("session JWT", session.session_jwt),
        ("signed, never issued", f.emu.sign_claims(&forged)),
        ("revoked", revoked),
    ];
    let check_inactive = |name: &str, (status, body): (u16, Value)| {
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["active"], false, "{name}");
        assert_eq!(body["status_code"], 200, "{name}");
        assert!(body["request_id"].is_string(), "{name}");
        assert_eq!(body.as_object().unwrap().len(), 3, "{name}: {body}");
    };
    for (name, token) in &inactive {
        check_inactive(name, f.introspect("/v1/oauth2/introspect", token).await);
        check_inactive(name, f.introspect(&legacy, token).await);
    }

    // Expiry follows the emulator's clock; a retired key's tokens stop verifying.
    let retired = live(&f);
    f.emu.retire_key(&f.emu.signing_kid());
    let expiring = live(&f);
    check_inactive("retired key", f.introspect(&legacy, &retired).await);
    f.emu.clock().advance(Duration::from_secs(3599));
    assert_eq!(f.introspect(&legacy, &expiring).await.1["active"], true);
    f.emu.clock().advance(Duration::from_secs(1));
    check_inactive("expired", f.introspect(&legacy, &expiring).await);
}

#[tokio::test]
async fn introspection_errors_are_oauth_errors() {
    let f = fixture().await;
    let token = f
        .emu
        .mint_connected_app_token(&f.app.client_id, &f.member, &[]);
    let path = "/v1/oauth2/introspect";
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "wrong secret",
            path,
            form(&[
                ("token", &token),
                ("client_id", &f.app.client_id),
                ("client_secret", "nope"),
            ]),
            401,
            "invalid_client",
        ),
        (
            "an M2M client",
            path,
            form(&[
                ("token", &token),
                ("client_id", &f.m2m.client_id),
                ("client_secret", &f.m2m.client_secret),
            ]),
            401,
            "invalid_client",
        ),
        (
            "no client",
            path,
            form(&[("token", &token)]),
            401,
            "invalid_client",
        ),
        (
            "another project's path",
            "/v1/public/project-test-other/oauth2/introspect",
            form(&[
                ("token", &token),
                ("client_id", &f.app.client_id),
                ("client_secret", &f.app.client_secret),
            ]),
            401,
            "invalid_client",
        ),
        (
            "no token",
            path,
            form(&[
                ("client_id", &f.app.client_id),
                ("client_secret", &f.app.client_secret),
            ]),
            400,
            "invalid_request",
        ),
    ];
    for (name, path, body, status, error) in cases {
        let got = f.post(path, Some(FORM), None, body).await;
        assert_eq!(got.0, status, "{name}: {}", got.1);
        assert_oauth_error(&got, status, error);
    }
}

#[tokio::test]
async fn discovery_and_jwks_on_the_project_domain_paths() {
    let f = fixture().await;
    let pid = f.emu.project_id().to_owned();
    let session_keys = f.jwks().await["keys"].clone();
    for path in [
        "/.well-known/jwks.json".to_owned(),
        format!("/v1/public/{pid}/.well-known/jwks.json"),
    ] {
        let (status, body) = f.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["keys"], session_keys, "{path}");
        assert_eq!(body["status_code"], 200, "{path}");
    }
    let (status, body) = f
        .get("/v1/public/project-test-other/.well-known/jwks.json")
        .await;
    assert_eq!(
        (status, &body["error_type"]),
        (404, &json!("project_not_found"))
    );

    let base = f.emu.base_url();
    let mut documents = Vec::new();
    for path in [
        "/.well-known/openid-configuration".to_owned(),
        "/.well-known/oauth-authorization-server".to_owned(),
        format!("/v1/public/{pid}/.well-known/openid-configuration"),
    ] {
        let (status, mut body) = f.get(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(body.as_object_mut().unwrap().remove("request_id").is_some());
        documents.push(body);
    }
    assert_eq!(documents[0], documents[1]);
    assert_eq!(documents[0], documents[2]);
    let doc = &documents[0];
    assert_eq!(doc["issuer"], format!("stytch.com/{pid}"));
    assert_eq!(doc["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{base}/v1/oauth2/token"));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(doc["status_code"], 200);
    let (status, _) = f
        .get("/v1/public/project-test-other/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 404);
    assert_eq!(f.emu.requests(Endpoint::PublicJwks), 3);
    assert_eq!(f.emu.requests(Endpoint::Discovery), 4);

    // As a custom domain, the issuer is the origin the metadata is served on.
    let custom = fixture_with(EmulatorOptions::new().custom_domain()).await;
    let (_, doc) = custom.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(doc["issuer"], custom.emu.base_url());
    assert_eq!(doc["issuer"], custom.emu.issuer());
}

#[tokio::test]
async fn faults_and_counters_on_the_token_endpoints() {
    let f = fixture().await;
    let token_form = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &f.m2m.client_id),
        ("client_secret", &f.m2m.client_secret),
    ]);
    f.emu.inject_fault(
        Endpoint::M2mToken,
        Fault::Status {
            status: 503,
            times: 1,
        },
    );
    let got = f
        .post(&f.token_path(), Some(FORM), None, token_form.clone())
        .await;
    assert_oauth_error(&got, 503, "service_unavailable");
    let (status, _) = f.post(&f.token_path(), Some(FORM), None, token_form).await;
    assert_eq!(status, 200);
    assert_eq!(f.emu.requests(Endpoint::M2mToken), 2);

    f.emu.inject_fault(
        Endpoint::Introspect,
        Fault::RateLimited {
            retry_after: Duration::from_secs(7),
            times: 1,
        },
    );
    let response = f
        .http
        .post(format!("{}/v1/oauth2/introspect", f.emu.base_url()))
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_oauth_error(&(429, body), 429, "too_many_requests");

    // The metadata endpoints' faults keep Stytch's error names.
    f.emu.inject_fault(
        Endpoint::Discovery,
        Fault::Status {
            status: 500,
            times: 1,
        },
    );
    let (status, body) = f.get("/.well-known/openid-configuration").await;
    assert_eq!(
        (status, &body["error_type"]),
        (500, &json!("internal_server_error"))
    );
    f.emu.reset_request_counts();
    assert_eq!(f.emu.requests(Endpoint::Introspect), 0);
}

#[tokio::test]
async fn debug_redacts_client_secrets() {
    let f = fixture().await;
    let m2m = format!("{:?}", f.m2m);
    assert!(m2m.contains(&f.m2m.client_id), "{m2m}");
    assert!(!m2m.contains(&f.m2m.client_secret), "{m2m}");
    assert!(f.m2m.client_id.starts_with("m2m-client-test-"));
    assert_eq!(f.m2m.client_secret.len(), 44);
    let app = format!("{:?}", f.app);
    assert!(
        app.contains("[redacted]") && !app.contains(&f.app.client_secret),
        "{app}"
    );
}
