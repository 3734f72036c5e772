//! End-to-end tests of the emulator over HTTP, with reqwest and the official
//! `stytch` crate as clients.

use std::time::Duration;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::*;
use crate::clock::Clock;
use crate::rbac::{Policy, Role};

struct Fixture {
    emu: StytchEmulator,
    org: String,
    member: String,
    tokens: SessionTokens,
    http: reqwest::Client,
}

async fn fixture() -> Fixture {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let tokens = emu.create_session(&member);
    Fixture {
        emu,
        org,
        member,
        tokens,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.emu.base_url()))
            .basic_auth(self.emu.project_id(), Some(self.emu.secret()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, auth: bool) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.emu.base_url()));
        if auth {
            request = request.basic_auth(self.emu.project_id(), Some(self.emu.secret()));
        }
        request.send().await.unwrap()
    }

    async fn authenticate(&self, body: Value) -> (u16, Value) {
        self.post("/v1/b2b/sessions/authenticate", body).await
    }

    fn stytch(&self) -> stytch::client::Client {
        let url = reqwest::Url::parse(&format!("{}/", self.emu.base_url())).unwrap();
        stytch::client::Client::new_with_base_url(
            self.emu.project_id(),
            self.emu.secret(),
            url,
            stytch::client::Vertical::B2B,
        )
        .unwrap()
    }
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_type: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status_code"], want_status);
    assert_eq!(body["error_type"], want_type);
    for field in ["request_id", "error_message", "error_url"] {
        assert!(body[field].is_string(), "missing {field} in {body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");
}

fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn official_crate_parses_every_answer() {
    let f = fixture().await;
    let client = f.stytch();
    let sessions = stytch::b2b::sessions::Sessions::new(client.clone());

    let auth = sessions
        .authenticate(stytch::b2b::sessions::AuthenticateRequest {
            session_token: Some(f.tokens.session_token.clone()),
            authorization_check: Some(stytch::b2b::sessions::AuthorizationCheck {
                organization_id: f.org.clone(),
                resource_id: "stytch.self".into(),
                action: "delete".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(auth.member_session.member_id, f.member);
    assert_eq!(auth.member_session.roles, ["stytch_member", "editor"]);
    assert_eq!(auth.organization.organization_slug, "acme");
    assert_eq!(auth.member.email_address, "ada@acme.test");
    assert_eq!(auth.verdict.unwrap().granting_roles, ["stytch_member"]);

    let by_jwt = sessions
        .authenticate(stytch::b2b::sessions::AuthenticateRequest {
            session_jwt: Some(f.tokens.session_jwt.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_jwt.session_token, f.tokens.session_token);

    let jwks = sessions
        .get_jwks(stytch::b2b::sessions::GetJWKSRequest {
            project_id: f.emu.project_id().to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(jwks.keys[0].kid, f.emu.signing_kid());

    let rbac = stytch::b2b::rbac::RBAC::new(client);
    let policy = rbac
        .policy(stytch::b2b::rbac::PolicyRequest {})
        .await
        .unwrap();
    assert!(
        policy
            .policy
            .unwrap()
            .roles
            .iter()
            .any(|r| r.role_id == "stytch_admin")
    );
    f.emu
        .set_organization_roles(&f.org, vec![Role::new("auditor").allow("logs", ["read"])]);
    let org_policy = rbac
        .organizations
        .get_org_policy(stytch::b2b::rbac_organizations::GetOrgPolicyRequest {
            organization_id: f.org.clone(),
        })
        .await
        .unwrap();
    assert_eq!(org_policy.org_policy.roles[0].role_id, "auditor");

    sessions
        .revoke(stytch::b2b::sessions::RevokeRequest {
            member_session_id: Some(f.tokens.member_session_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = sessions
        .authenticate(stytch::b2b::sessions::AuthenticateRequest {
            session_token: Some(f.tokens.session_token.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    match err {
        stytch::Error::Response(e) => assert_eq!(e.error_type, "session_not_found"),
        other => panic!("expected a Stytch error response, got {other:?}"),
    }
}

#[tokio::test]
async fn minted_jwt_verifies_against_jwks_and_has_the_wire_shape() {
    let f = fixture().await;
    let jwks: Value = f
        .get(
            &format!("/v1/b2b/sessions/jwks/{}", f.emu.project_id()),
            false,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["status_code"], 200);
    let key = &jwks["keys"][0];
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();

    let jwt = &f.tokens.session_jwt;
    let (signing_input, signature) = jwt.rsplit_once('.').unwrap();
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            signing_input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("JWT signature verifies with the JWKS key");

    let (header, payload) = signing_input.split_once('.').unwrap();
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap(),
        format!(
            r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#,
            key["kid"].as_str().unwrap()
        )
    );
    let raw_payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(raw_payload.starts_with(r#"{"aud":["#), "{raw_payload}");
    let claims = decode_segment(payload);
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
    assert_eq!(claims["nbf"].as_u64().unwrap(), iat);
    assert_eq!(claims["aud"], json!([f.emu.project_id()]));
    assert_eq!(claims["iss"], format!("stytch.com/{}", f.emu.project_id()));
    assert_eq!(claims["sub"], f.member);
    assert!(claims.get("jti").is_none());
    assert_eq!(
        claims["https://stytch.com/organization"],
        json!({"organization_id": f.org, "slug": "acme"})
    );
    let session = &claims["https://stytch.com/session"];
    assert_eq!(session["id"], f.tokens.member_session_id);
    assert_eq!(session["roles"], json!(["stytch_member", "editor"]));
    assert_eq!(
        session["attributes"],
        json!({"user_agent": "", "ip_address": ""})
    );
    assert_eq!(session["authentication_factors"][0]["type"], "password");
    assert_eq!(
        session["authentication_factors"][0]["delivery_method"],
        "knowledge"
    );
    let started = session["started_at"].as_str().unwrap();
    assert!(
        started.ends_with('Z') && !started.contains('.'),
        "{started}"
    );
}

#[tokio::test]
async fn expired_jwt_is_accepted_remotely_and_refreshed() {
    let f = fixture().await;
    f.emu.clock().advance(Duration::from_secs(600));
    let (status, body) = f
        .authenticate(
            json!({"session_token": null, "session_jwt": f.tokens.session_jwt,
            "session_duration_minutes": null, "session_custom_claims": null,
            "authorization_check": null}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["session_jwt"].as_str().unwrap();
    assert_ne!(fresh, f.tokens.session_jwt);
    let claims = decode_segment(fresh.split('.').nth(1).unwrap());
    let now = crate::clock::unix_seconds(f.emu.clock().now());
    assert_eq!(claims["iat"].as_u64().unwrap(), now);
    let info = f.emu.session(&f.tokens.member_session_id).unwrap();
    assert_eq!(info.last_accessed_at, f.emu.clock().now());

    // Past the session's own expiry, it is gone.
    f.emu.clock().advance(Duration::from_secs(3600));
    let (status, body) = f
        .authenticate(json!({"session_jwt": f.tokens.session_jwt}))
        .await;
    assert_error(status, &body, 404, "session_not_found");
}

#[tokio::test]
async fn invalid_jwts_and_key_rotation() {
    let f = fixture().await;
    let (signing_input, _) = f.tokens.session_jwt.rsplit_once('.').unwrap();
    let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]));
    let (status, body) = f.authenticate(json!({"session_jwt": forged})).await;
    assert_error(status, &body, 401, "jwt_invalid");
    let (status, body) = f.authenticate(json!({"session_jwt": "not.a.jwt"})).await;
    assert_error(status, &body, 401, "jwt_invalid");

    let old_kid = f.emu.signing_kid();
    let new_kid = f.emu.rotate_keys();
    assert!(new_kid.starts_with("jwk-test-"));
    assert_eq!(f.emu.signing_kid(), new_kid);
    let jwks: Value = f
        .get(
            &format!("/v1/b2b/sessions/jwks/{}", f.emu.project_id()),
            false,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    // Old-key JWTs still work until retirement.
    let (status, _) = f
        .authenticate(json!({"session_jwt": f.tokens.session_jwt}))
        .await;
    assert_eq!(status, 200);
    let fresh = f.emu.mint_jwt(&f.tokens.member_session_id);
    assert_eq!(
        decode_segment(fresh.split('.').next().unwrap())["kid"],
        new_kid
    );
    f.emu.retire_key(&old_kid);
    let (status, body) = f
        .authenticate(json!({"session_jwt": f.tokens.session_jwt}))
        .await;
    assert_error(status, &body, 401, "jwt_invalid");
    let (status, _) = f.authenticate(json!({"session_jwt": fresh})).await;
    assert_eq!(status, 200);

    // Retiring the signing key rotates in a replacement.
    f.emu.retire_key(&new_kid);
    assert_ne!(f.emu.signing_kid(), new_kid);
    assert!(!f.emu.signing_key_pkcs8_der().is_empty());
}

/// `sign_claims` signs with the current key under the header of minted JWTs (RS256
/// here is deterministic: a minted JWT's claims re-sign into the same token), and
/// `sign_raw` signs its texts verbatim; tampered claims verify, other issuers and a
/// missing `kid` are refused.
#[tokio::test]
async fn signing_arbitrary_claims_with_the_current_key() {
    let f = fixture().await;
    let minted = &f.tokens.session_jwt;
    let mut claims = decode_segment(minted.split('.').nth(1).unwrap());
    assert_eq!(&f.emu.sign_claims(&claims), minted);
    let header = format!(
        r#"{{"alg":"RS256","kid":{},"typ":"JWT"}}"#,
        json!(f.emu.signing_kid())
    );
    assert_eq!(&f.emu.sign_raw(&header, &claims.to_string()), minted);

    claims["tier"] = json!("gold");
    let tampered = f.emu.sign_claims(&claims);
    assert_eq!(decode_segment(tampered.split('.').nth(1).unwrap()), claims);
    let (status, body) = f.authenticate(json!({"session_jwt": tampered})).await;
    assert_eq!(status, 200, "{body}");

    claims["iss"] = json!("stytch.com/project-test-other");
    let (status, body) = f
        .authenticate(json!({"session_jwt": f.emu.sign_claims(&claims)}))
        .await;
    assert_error(status, &body, 401, "jwt_invalid");

    let no_kid = f.emu.sign_raw(r#"{"alg":"RS256","typ":"JWT"}"#, "not json");
    let (h, rest) = no_kid.split_once('.').unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(h).unwrap(),
        br#"{"alg":"RS256","typ":"JWT"}"#
    );
    assert!(rest.starts_with(&format!("{}.", URL_SAFE_NO_PAD.encode("not json"))));
    let (status, body) = f.authenticate(json!({"session_jwt": no_kid})).await;
    assert_error(status, &body, 401, "jwt_invalid");

    // The key that signs is the current one.
    let kid = f.emu.rotate_keys();
    let resigned = f.emu.sign_claims(&json!({}));
    assert_eq!(
        decode_segment(resigned.split('.').next().unwrap())["kid"],
        kid
    );
}

#[tokio::test]
async fn request_validation_errors() {
    let f = fixture().await;
    let (status, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token,
            "session_jwt": f.tokens.session_jwt}))
        .await;
    assert_error(status, &body, 400, "too_many_session_arguments");
    let (status, body) = f.authenticate(json!({"session_token": null})).await;
    assert_error(status, &body, 400, "bad_request");
    for minutes in [4, 527_041] {
        let (status, body) = f
            .authenticate(json!({"session_token": f.tokens.session_token,
                "session_duration_minutes": minutes}))
            .await;
        assert_error(status, &body, 400, "bad_request");
    }
    let response = f
        .http
        .post(format!("{}/v1/b2b/sessions/authenticate", f.emu.base_url()))
        .basic_auth(f.emu.project_id(), Some(f.emu.secret()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_error(status, &response.json().await.unwrap(), 400, "bad_request");

    let (status, body) = f
        .authenticate(json!({"session_token": "no-such-token"}))
        .await;
    assert_error(status, &body, 404, "session_not_found");

    // Credentials.
    let response = f
        .http
        .post(format!("{}/v1/b2b/sessions/authenticate", f.emu.base_url()))
        .basic_auth(f.emu.project_id(), Some("wrong"))
        .json(&json!({"session_token": f.tokens.session_token}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_error(
        status,
        &response.json().await.unwrap(),
        401,
        "unauthorized_credentials",
    );
    let response = f.get("/v1/b2b/rbac/policy", false).await;
    let status = response.status().as_u16();
    assert_error(
        status,
        &response.json().await.unwrap(),
        401,
        "unauthorized_credentials",
    );

    // Routes.
    let response = f.get("/v1/b2b/nope", true).await;
    let status = response.status().as_u16();
    assert_error(status, &response.json().await.unwrap(), 404, "not_found");
    let response = f
        .get("/v1/b2b/sessions/jwks/project-test-other", false)
        .await;
    let status = response.status().as_u16();
    assert_error(
        status,
        &response.json().await.unwrap(),
        404,
        "project_not_found",
    );
    let response = f
        .get("/v1/b2b/rbac/organizations/organization-test-nope", true)
        .await;
    let status = response.status().as_u16();
    assert_error(
        status,
        &response.json().await.unwrap(),
        404,
        "organization_not_found",
    );
}

#[tokio::test]
async fn duration_and_custom_claims() {
    let f = fixture().await;
    f.emu.clock().advance(Duration::from_secs(120));
    let (status, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token,
            "session_duration_minutes": 5,
            "session_custom_claims": {"tier": "gold", "iss": "evil", "n": {"x": [1]}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let info = f.emu.session(&f.tokens.member_session_id).unwrap();
    assert_eq!(
        info.expires_at,
        f.emu.clock().now() + Duration::from_secs(300)
    );
    assert_eq!(
        body["member_session"]["custom_claims"],
        json!({"tier": "gold", "n": {"x": [1]}})
    );
    let claims = decode_segment(
        body["session_jwt"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap(),
    );
    assert_eq!(claims["tier"], "gold");
    assert_eq!(claims["iss"], format!("stytch.com/{}", f.emu.project_id()));

    let (_, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token,
            "session_custom_claims": {"tier": null}}))
        .await;
    assert_eq!(
        body["member_session"]["custom_claims"],
        json!({"n": {"x": [1]}})
    );
    assert_eq!(
        f.emu
            .session(&f.tokens.member_session_id)
            .unwrap()
            .custom_claims,
        *body["member_session"]["custom_claims"].as_object().unwrap()
    );
}

/// "Never expires" and "far in the future" saturate at the end of year 9999 instead
/// of overflowing `SystemTime`: such a session authenticates, locally and remotely.
#[tokio::test]
async fn a_session_that_never_expires_and_a_clock_moved_forever() {
    let f = fixture().await;
    let forever = f
        .emu
        .create_session_with(&f.member, SessionOptions::default().duration(Duration::MAX));
    let end = crate::timestamp::from_unix(u64::MAX);
    assert_eq!(
        f.emu
            .session(&forever.member_session_id)
            .unwrap()
            .expires_at,
        end
    );
    let (status, body) = f
        .authenticate(json!({"session_token": forever.session_token}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member_session"]["expires_at"], "9999-12-31T23:59:59Z");
    let auth = f.emu.auth_builder().build().unwrap();
    let cookie = format!("stytch_session_jwt={}", forever.session_jwt);
    let headers = crate::credentials::cookie_headers(&[cookie.as_bytes()]);
    auth.warm_up().await.expect("the keys");
    let member = match crate::request::begin(&auth.core, &headers) {
        crate::request::Begin::Ready(ctx) => ctx.member().await.unwrap(),
        crate::request::Begin::NeedsKeys(_) => panic!("keys are loaded"),
    };
    assert_eq!(member.member_session_id(), forever.member_session_id);

    f.emu.clock().advance(Duration::MAX);
    assert_eq!(f.emu.clock().now(), end);
    f.emu.clock().advance(Duration::from_secs(1));
    assert_eq!(f.emu.clock().now(), end);
}

#[tokio::test]
async fn authorization_check_rules() {
    let f = fixture().await;
    f.emu.set_policy(
        Policy::new()
            .role(Role::new("editor").allow("documents", ["read", "write"]))
            .role(Role::new("reader").allow("documents", ["read"]))
            .role(Role::new("owner").allow("documents", ["*"])),
    );
    let check = |org: &str, resource: &str, action: &str| {
        json!({"session_token": f.tokens.session_token, "authorization_check":
            {"organization_id": org, "resource_id": resource, "action": action}})
    };
    let (status, body) = f.authenticate(check(&f.org, "documents", "read")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["verdict"],
        json!({"authorized": true, "granting_roles": ["editor"]})
    );

    let (status, body) = f.authenticate(check(&f.org, "documents", "delete")).await;
    assert_error(status, &body, 403, "session_authorization_error");
    let (status, body) = f.authenticate(check(&f.org, "document", "read")).await;
    assert_error(status, &body, 403, "session_authorization_error");
    let (status, body) = f
        .authenticate(check("organization-test-other", "documents", "read"))
        .await;
    assert_error(status, &body, 403, "session_authorization_tenancy_error");

    // Role changes apply from the next authenticate on; "*" grants any action.
    f.emu.set_member_roles(&f.member, &["owner", "reader"]);
    let (status, body) = f.authenticate(check(&f.org, "documents", "read")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["verdict"]["granting_roles"],
        json!(["owner", "reader"])
    );
    assert_eq!(
        body["member_session"]["roles"],
        json!(["stytch_member", "owner", "reader"])
    );
    let (status, _) = f.authenticate(check(&f.org, "documents", "delete")).await;
    assert_eq!(status, 200);

    // Organization custom roles count too.
    f.emu
        .set_organization_roles(&f.org, vec![Role::new("owner").allow("billing", ["view"])]);
    let (status, body) = f.authenticate(check(&f.org, "billing", "view")).await;
    assert_eq!(status, 200);
    assert_eq!(body["verdict"]["granting_roles"], json!(["owner"]));
    assert_eq!(body["organization"]["custom_roles"][0]["role_id"], "owner");
    // No verdict without a check.
    let (_, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token}))
        .await;
    assert!(body.get("verdict").is_none());
}

#[tokio::test]
async fn revoke_variants() {
    let f = fixture().await;
    let second = f.emu.create_session(&f.member);
    let third = f.emu.create_session(&f.member);

    let (status, body) = f
        .post(
            "/v1/b2b/sessions/revoke",
            json!({"member_session_id": null}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = f
        .post(
            "/v1/b2b/sessions/revoke",
            json!({"member_session_id": "member-session-test-nope"}),
        )
        .await;
    assert_error(status, &body, 404, "session_not_found");

    f.emu.clock().advance(Duration::from_secs(400)); // JWT expired, still revocable
    let (status, body) = f
        .post(
            "/v1/b2b/sessions/revoke",
            json!({"session_jwt": f.tokens.session_jwt, "member_id": null}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status_code"], 200);
    assert!(f.emu.session(&f.tokens.member_session_id).unwrap().revoked);
    let (status, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token}))
        .await;
    assert_error(status, &body, 404, "session_not_found");

    let (status, _) = f
        .post(
            "/v1/b2b/sessions/revoke",
            json!({"session_token": second.session_token}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(f.emu.session(&second.member_session_id).unwrap().revoked);

    let (status, _) = f
        .post("/v1/b2b/sessions/revoke", json!({"member_id": f.member}))
        .await;
    assert_eq!(status, 200);
    assert!(f.emu.session(&third.member_session_id).unwrap().revoked);
    assert_eq!(f.emu.requests(Endpoint::Revoke), 5);
}

#[tokio::test]
async fn faults_and_counters() {
    let f = fixture().await;
    let path = "/v1/b2b/sessions/authenticate";
    let body = json!({"session_token": f.tokens.session_token});
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Status {
            status: 429,
            times: 1,
        },
    );
    f.emu
        .inject_fault(Endpoint::Authenticate, Fault::Garbage { times: 1 });
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Body {
            status: 502,
            body: "upstream".into(),
            times: 1,
        },
    );
    let response = f
        .http
        .post(format!("{}{path}", f.emu.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let status = response.status().as_u16();
    assert_error(
        status,
        &response.json().await.unwrap(),
        429,
        "too_many_requests",
    );

    let response = f
        .http
        .post(format!("{}{path}", f.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).is_err());

    let response = f
        .http
        .post(format!("{}{path}", f.emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.text().await.unwrap(), "upstream");

    let (status, _) = f.post(path, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 4);
    assert_eq!(f.emu.requests(Endpoint::Jwks), 0);

    f.emu
        .inject_fault(Endpoint::Jwks, Fault::Delay(Duration::from_secs(1)));
    let started = std::time::Instant::now();
    let response = f
        .get(
            &format!("/v1/b2b/sessions/jwks/{}", f.emu.project_id()),
            false,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(1));
    f.emu.clear_faults();
    let started = std::time::Instant::now();
    f.get(
        &format!("/v1/b2b/sessions/jwks/{}", f.emu.project_id()),
        false,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the delay is cleared"
    );
    assert_eq!(f.emu.requests(Endpoint::Jwks), 2);

    f.emu.reset_request_counts();
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
}

#[tokio::test]
async fn refusing_connections_and_shutdown() {
    let f = fixture().await;
    let path = format!("/v1/b2b/sessions/jwks/{}", f.emu.project_id());
    // Warm a keep-alive connection first.
    assert_eq!(f.get(&path, false).await.status(), 200);
    f.emu.set_refusing_connections(true);
    for _ in 0..2 {
        let result = f
            .http
            .get(format!("{}{path}", f.emu.base_url()))
            .send()
            .await;
        assert!(result.is_err(), "request should fail while refusing");
    }
    f.emu.set_refusing_connections(false);
    assert_eq!(f.get(&path, false).await.status(), 200);

    let url = f.emu.base_url();
    let clone = f.emu.clone();
    drop(f.emu);
    // A clone keeps the server alive.
    assert_eq!(
        f.http
            .get(format!("{url}{path}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(clone);
    let mut down = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::new();
        if fresh.get(format!("{url}{path}")).send().await.is_err() {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        down,
        "server still answering after the last handle was dropped"
    );
}

#[tokio::test]
async fn options_and_debug_redaction() {
    let clock = MockClock::new();
    let emu = StytchEmulator::start_with(
        EmulatorOptions::new()
            .project_id("project-live-0000")
            .secret("s3cret")
            .issuer("https://auth.example.com")
            .clock(clock.clone()),
    )
    .await;
    assert_eq!(emu.project_id(), "project-live-0000");
    assert_eq!(emu.secret(), "s3cret");
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));
    assert!(!emu.base_url().ends_with('/'));
    assert_eq!(emu.addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    clock.advance(Duration::from_secs(5));
    assert_eq!(emu.clock().now(), clock.now());

    let org = emu.create_organization("globex");
    assert!(org.starts_with("organization-live-"));
    let member = emu.create_member(&org, "x@globex.test", &["stytch_admin", "stytch_member"]);
    let tokens = emu.create_session_with(
        &member,
        SessionOptions::default()
            .duration(Duration::from_secs(30))
            .custom_claim("tier", "gold")
            .factors(vec![]),
    );
    assert!(tokens.member_session_id.starts_with("member-session-live-"));
    assert_eq!(tokens.session_token.len(), 44);
    let debug = format!("{tokens:?}");
    assert!(!debug.contains(&tokens.session_token) && !debug.contains(&tokens.session_jwt));
    assert!(debug.contains("redacted"));

    let claims = decode_segment(tokens.session_jwt.split('.').nth(1).unwrap());
    assert_eq!(claims["iss"], "https://auth.example.com");
    assert_eq!(claims["tier"], "gold");
    assert_eq!(
        claims["https://stytch.com/session"]["roles"],
        json!(["stytch_member", "stytch_admin"])
    );
    assert_eq!(
        claims["https://stytch.com/session"]["authentication_factors"],
        json!([])
    );

    let info = emu.session(&tokens.member_session_id).unwrap();
    assert_eq!(info.expires_at, clock.now() + Duration::from_secs(30));
    assert_eq!(info.organization_id, org);
    assert!(!info.revoked);
    emu.revoke_session(&tokens.member_session_id);
    assert!(emu.session(&tokens.member_session_id).unwrap().revoked);
    assert!(emu.session("member-session-live-nope").is_none());
    // mint_jwt works for revoked sessions too.
    assert_eq!(
        emu.mint_jwt(&tokens.member_session_id).split('.').count(),
        3
    );
}

#[tokio::test]
async fn member_object_shape() {
    let f = fixture().await;
    let (status, body) = f
        .authenticate(json!({"session_token": f.tokens.session_token}))
        .await;
    assert_eq!(status, 200);
    let member = &body["member"];
    assert_eq!(member["status"], "active");
    assert_eq!(member["is_admin"], false);
    assert_eq!(
        member["roles"],
        json!([{"role_id": "stytch_member", "sources": [{"type": "direct_assignment"}]},
               {"role_id": "editor", "sources": [{"type": "direct_assignment"}]}])
    );
    assert_eq!(body["member_session"]["organization_slug"], "acme");
    assert!(
        body["request_id"]
            .as_str()
            .unwrap()
            .starts_with("request-id-test-")
    );
    assert_eq!(body["status_code"], 200);
}

/// A call held by `Fault::Hold` is answered when the emulator is dropped, instead of
/// keeping the server (and a client without a timeout) waiting forever.
#[tokio::test]
async fn dropping_the_emulator_answers_held_calls() {
    let emu = StytchEmulator::start().await;
    let url = format!(
        "{}/v1/b2b/sessions/jwks/{}",
        emu.base_url(),
        emu.project_id()
    );
    emu.inject_fault(Endpoint::Jwks, Fault::Hold);
    let call = tokio::spawn(reqwest::get(url));
    while emu.requests(Endpoint::Jwks) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!call.is_finished());
    drop(emu);
    let answered = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the held call was answered")
        .expect("the call's task");
    assert_eq!(answered.expect("an answer").status(), 200);
}
