//! Pure request builders and response parsers for the Stytch B2B endpoints we call.
//!
//! Nothing here does I/O: builders return an [`http::Request`] and parsers take a status,
//! headers and body bytes, so the whole wire format is unit-tested without a network.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, ClientError};
use crate::member::AuthenticationFactor;
use crate::rbac::{Policy, Role};

/// Base URL of Stytch's test environment.
pub(crate) const TEST_BASE_URL: &str = "https://test.stytch.com";
/// Base URL of Stytch's live environment.
pub(crate) const LIVE_BASE_URL: &str = "https://api.stytch.com";

/// The environment base URL for a project id, as every official SDK picks it.
pub(crate) fn default_base_url(project_id: &str) -> &'static str {
    if project_id.starts_with("project-live-") {
        LIVE_BASE_URL
    } else {
        TEST_BASE_URL
    }
}

/// `Basic base64(project_id:secret)`, marked sensitive so it is never logged by `http`.
pub(crate) fn basic_auth(project_id: &str, secret: &str) -> HeaderValue {
    let raw = format!("{project_id}:{secret}");
    let encoded = base64_simd::STANDARD.encode_to_string(raw);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// `{organization_id, resource_id, action}`: the authorization check Stytch evaluates
/// inside `sessions/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct AuthorizationCheck {
    pub(crate) organization_id: String,
    pub(crate) resource_id: String,
    pub(crate) action: String,
}

/// The session credential sent to `sessions/authenticate` or `sessions/revoke`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum SessionCredential {
    Token(String),
    Jwt(String),
}

impl SessionCredential {
    /// The token or JWT itself.
    pub(crate) fn value(&self) -> &str {
        let (SessionCredential::Token(value) | SessionCredential::Jwt(value)) = self;
        value
    }
}

impl std::fmt::Debug for SessionCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCredential::Token(_) => f.write_str("Token(<redacted>)"),
            SessionCredential::Jwt(_) => f.write_str("Jwt(<redacted>)"),
        }
    }
}

/// Body of `POST /v1/b2b/sessions/authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AuthenticateParams {
    pub(crate) credential: SessionCredential,
    pub(crate) session_duration_minutes: Option<u32>,
    pub(crate) authorization_check: Option<AuthorizationCheck>,
}

#[derive(Serialize)]
struct AuthenticateBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_jwt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_duration_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_custom_claims: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_check: Option<&'a AuthorizationCheck>,
}

fn json_request(
    method: Method,
    base: &str,
    path: &str,
    auth: &HeaderValue,
    body: Vec<u8>,
) -> Request<Vec<u8>> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    // `base` is validated at build time and `path` is built from URL-safe ids below;
    // an unparsable URI is still answered by reqwest with a clear error, not a panic.
    *req.uri_mut() = format!("{base}{path}").parse().unwrap_or_default();
    req.headers_mut().insert(AUTHORIZATION, auth.clone());
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req
}

/// Builds `POST /v1/b2b/sessions/authenticate`.
pub(crate) fn authenticate_request(
    base: &str,
    auth: &HeaderValue,
    params: &AuthenticateParams,
) -> Request<Vec<u8>> {
    let (session_token, session_jwt) = match &params.credential {
        SessionCredential::Token(t) => (Some(t.as_str()), None),
        SessionCredential::Jwt(j) => (None, Some(j.as_str())),
    };
    let body = AuthenticateBody {
        session_token,
        session_jwt,
        session_duration_minutes: params.session_duration_minutes,
        session_custom_claims: None,
        authorization_check: params.authorization_check.as_ref(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    json_request(
        Method::POST,
        base,
        "/v1/b2b/sessions/authenticate",
        auth,
        bytes,
    )
}

/// Builds `POST /v1/b2b/sessions/revoke` for one member session.
pub(crate) fn revoke_request(
    base: &str,
    auth: &HeaderValue,
    member_session_id: &str,
) -> Request<Vec<u8>> {
    let body = serde_json::json!({ "member_session_id": member_session_id });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    json_request(Method::POST, base, "/v1/b2b/sessions/revoke", auth, bytes)
}

/// Builds `GET /v1/b2b/sessions/jwks/{project_id}`. Sent without credentials: the
/// endpoint is public and the JWKS is not worth exposing the secret for.
pub(crate) fn jwks_request(base: &str, project_id: &str) -> Request<Vec<u8>> {
    let mut req = Request::new(Vec::new());
    *req.uri_mut() = format!("{base}/v1/b2b/sessions/jwks/{}", path_segment(project_id))
        .parse()
        .unwrap_or_default();
    req
}

/// Builds `GET /v1/b2b/rbac/policy`.
pub(crate) fn policy_request(base: &str, auth: &HeaderValue) -> Request<Vec<u8>> {
    json_request(Method::GET, base, "/v1/b2b/rbac/policy", auth, Vec::new())
}

/// Builds `GET /v1/b2b/rbac/organizations/{organization_id}`.
pub(crate) fn org_policy_request(
    base: &str,
    auth: &HeaderValue,
    organization_id: &str,
) -> Request<Vec<u8>> {
    let path = format!(
        "/v1/b2b/rbac/organizations/{}",
        path_segment(organization_id)
    );
    json_request(Method::GET, base, &path, auth, Vec::new())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an id can never
/// change the path it is placed in.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ----------------------------------------------------------------------------------
// Responses

/// The parts of a `sessions/authenticate` success we use. `Debug` leaves out the
/// renewed credentials.
#[derive(Clone, Deserialize)]
pub(crate) struct AuthenticateResponse {
    #[serde(default)]
    pub(crate) request_id: String,
    pub(crate) member_session: MemberSession,
    pub(crate) session_token: String,
    pub(crate) session_jwt: String,
    #[serde(default)]
    pub(crate) verdict: Option<Verdict>,
}

impl std::fmt::Debug for AuthenticateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateResponse")
            .field("request_id", &self.request_id)
            .field("member_session", &self.member_session)
            .field("session_token", &"<redacted>")
            .field("session_jwt", &"<redacted>")
            .field("verdict", &self.verdict)
            .finish()
    }
}

/// A member session as the API returns it (wire spec §2.3).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MemberSession {
    pub(crate) member_session_id: String,
    pub(crate) member_id: String,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub(crate) started_at: SystemTime,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub(crate) expires_at: SystemTime,
    #[serde(default, deserialize_with = "crate::member::deserialize_factors")]
    pub(crate) authentication_factors: Vec<AuthenticationFactor>,
    pub(crate) organization_id: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    #[serde(default)]
    pub(crate) organization_slug: String,
    #[serde(default)]
    pub(crate) custom_claims: Option<Map<String, Value>>,
}

/// The outcome of an `authorization_check` that passed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Verdict {
    pub(crate) authorized: bool,
    #[serde(default)]
    pub(crate) granting_roles: Vec<String>,
}

/// `GET /v1/b2b/sessions/jwks/{project_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JwksResponse {
    pub(crate) keys: Vec<Jwk>,
}

/// One JSON Web Key. Everything is optional here: unusable keys are skipped by the
/// key store, not a reason to reject the whole set.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Jwk {
    #[serde(default)]
    pub(crate) kty: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) alg: Option<String>,
    #[serde(default, rename = "use")]
    pub(crate) use_: Option<String>,
    #[serde(default)]
    pub(crate) n: Option<String>,
    #[serde(default)]
    pub(crate) e: Option<String>,
}

/// `GET /v1/b2b/rbac/policy`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PolicyResponse {
    pub(crate) policy: Policy,
}

/// `GET /v1/b2b/rbac/organizations/{organization_id}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrgPolicyResponse {
    pub(crate) org_policy: OrgPolicy,
}

/// An organization's custom roles.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct OrgPolicy {
    #[serde(default)]
    pub(crate) roles: Vec<Role>,
}

/// `sessions/revoke` success carries nothing we use.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Empty {}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(alias = "error")]
    error_type: String,
    #[serde(default, alias = "error_description")]
    error_message: String,
    #[serde(default)]
    request_id: Option<String>,
}

/// Parses any response: 2xx into `T`, everything else into [`ClientError`].
pub(crate) fn parse_response<T: DeserializeOwned>(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            ClientError::unexpected(status, format!("body is not the expected JSON: {e}"))
        });
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(err) => Err(ClientError::Api(ApiError {
            status,
            error_type: err.error_type,
            error_message: err.error_message,
            request_id: err.request_id,
            retry_after: retry_after(headers),
        })),
        Err(_) => Err(ClientError::UnexpectedResponse {
            status,
            detail: format!("error body is not a Stytch error ({} bytes)", body.len()),
            retry_after: retry_after(headers),
        }),
    }
}

/// `Retry-After` in delta-seconds form (the HTTP-date form is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:4010";

    fn auth() -> HeaderValue {
        basic_auth("project-test-1", "secret-1")
    }

    fn body_json(req: &Request<Vec<u8>>) -> Value {
        serde_json::from_slice(req.body()).unwrap()
    }

    #[test]
    fn base_url_follows_the_project_prefix() {
        assert_eq!(default_base_url("project-live-abc"), LIVE_BASE_URL);
        assert_eq!(default_base_url("project-test-abc"), TEST_BASE_URL);
        assert_eq!(default_base_url("live-project"), TEST_BASE_URL);
    }

    #[test]
    fn basic_auth_is_project_and_secret_and_sensitive() {
        let v = auth();
        assert!(v.is_sensitive());
        // base64("project-test-1:secret-1")
        assert_eq!(
            v.to_str().unwrap(),
            "Basic cHJvamVjdC10ZXN0LTE6c2VjcmV0LTE="
        );
    }

    #[test]
    fn authenticate_with_token_omits_absent_fields() {
        let params = AuthenticateParams {
            credential: SessionCredential::Token("tok".into()),
            session_duration_minutes: None,
            authorization_check: None,
        };
        let req = authenticate_request(BASE, &auth(), &params);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:4010/v1/b2b/sessions/authenticate"
        );
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(body_json(&req), serde_json::json!({"session_token": "tok"}));
    }

    #[test]
    fn authenticate_with_jwt_duration_and_check() {
        let params = AuthenticateParams {
            credential: SessionCredential::Jwt("a.b.c".into()),
            session_duration_minutes: Some(60),
            authorization_check: Some(AuthorizationCheck {
                organization_id: "organization-test-1".into(),
                resource_id: "document".into(),
                action: "read".into(),
            }),
        };
        let req = authenticate_request(BASE, &auth(), &params);
        assert_eq!(
            body_json(&req),
            serde_json::json!({
                "session_jwt": "a.b.c",
                "session_duration_minutes": 60,
                "authorization_check": {
                    "organization_id": "organization-test-1",
                    "resource_id": "document",
                    "action": "read"
                }
            })
        );
    }

    #[test]
    fn revoke_body() {
        let req = revoke_request(BASE, &auth(), "ms-1");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/v1/b2b/sessions/revoke");
        assert_eq!(
            body_json(&req),
            serde_json::json!({"member_session_id": "ms-1"})
        );
    }

    #[test]
    fn jwks_is_unauthenticated_and_path_safe() {
        let req = jwks_request(BASE, "project-test-1");
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/v1/b2b/sessions/jwks/project-test-1");
        assert!(req.headers().get(AUTHORIZATION).is_none());
        let req = jwks_request(BASE, "../x?y");
        assert_eq!(req.uri().path(), "/v1/b2b/sessions/jwks/..%2Fx%3Fy");
    }

    #[test]
    fn policy_requests() {
        let req = policy_request(BASE, &auth());
        assert_eq!(req.uri().path(), "/v1/b2b/rbac/policy");
        assert!(req.headers().contains_key(AUTHORIZATION));
        let req = org_policy_request(BASE, &auth(), "organization-test-1");
        assert_eq!(
            req.uri().path(),
            "/v1/b2b/rbac/organizations/organization-test-1"
        );
    }

    /// The composed example of wire spec §2.7, with an extra unknown field and
    /// fractional-second timestamps.
    const AUTHENTICATE_OK: &str = r#"{"request_id":"request-id-test-0001","status_code":200,
     "session_token":"tok_abc","session_jwt":"eyJ.x.y","some_future_field":{"a":1},
     "member_session":{"member_session_id":"member-session-test-1","member_id":"member-test-1",
       "started_at":"2026-01-01T00:00:00Z","last_accessed_at":"2026-01-01T00:00:00.935673Z",
       "expires_at":"2026-01-01T01:00:00Z","authentication_factors":[
         {"type":"password","delivery_method":"knowledge","last_authenticated_at":"2026-01-01T00:00:00Z"},
         {"type":"brand_new_factor","delivery_method":"telepathy","brand_new_factor":{"id":"x"}}],
       "organization_id":"organization-test-1","roles":["stytch_member"],
       "organization_slug":"acme","custom_claims":{"tier":"gold"}},
     "member":{"member_id":"member-test-1"},
     "organization":{"organization_id":"organization-test-1"},
     "verdict":{"authorized":true,"granting_roles":["stytch_member"]}}"#;

    #[test]
    fn parses_authenticate_success() {
        let r: AuthenticateResponse = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            AUTHENTICATE_OK.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.session_token, "tok_abc");
        assert_eq!(r.session_jwt, "eyJ.x.y");
        let s = &r.member_session;
        assert_eq!(s.member_session_id, "member-session-test-1");
        assert_eq!(s.member_id, "member-test-1");
        assert_eq!(s.organization_slug, "acme");
        assert_eq!(s.roles, vec!["stytch_member"]);
        assert_eq!(s.authentication_factors.len(), 2);
        assert_eq!(s.authentication_factors[1].kind(), "brand_new_factor");
        assert_eq!(
            s.expires_at.duration_since(s.started_at).unwrap(),
            Duration::from_secs(3600)
        );
        let debug = format!("{r:?}");
        assert!(
            !debug.contains("tok_abc") && !debug.contains("eyJ.x.y"),
            "{debug}"
        );
        assert_eq!(s.custom_claims.as_ref().unwrap()["tier"], "gold");
        assert_eq!(
            r.verdict,
            Some(Verdict {
                authorized: true,
                granting_roles: vec!["stytch_member".into()]
            })
        );
    }

    #[test]
    fn authenticate_success_missing_fields_is_unexpected_response() {
        let err = parse_response::<AuthenticateResponse>(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"request_id":"x"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::UnexpectedResponse {
                    status: StatusCode::OK,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_unavailable());
    }

    #[test]
    fn parses_stytch_error_bodies() {
        let body = br#"{"status_code":404,"request_id":"request-id-test-9","error_type":"session_not_found",
            "error_message":"Session could not be found.","error_url":"https://stytch.com/docs/api/errors/404"}"#;
        let err =
            parse_response::<Empty>(StatusCode::NOT_FOUND, &HeaderMap::new(), body).unwrap_err();
        let ClientError::Api(api) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(api.status, StatusCode::NOT_FOUND);
        assert_eq!(api.error_type, "session_not_found");
        assert_eq!(api.error_message, "Session could not be found.");
        assert_eq!(api.request_id.as_deref(), Some("request-id-test-9"));
        assert!(!err.is_unavailable());
        assert_eq!(err.error_type(), Some("session_not_found"));
    }

    #[test]
    fn parses_oauth_style_error_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let body = br#"{"error":"too_many_requests","error_description":"slow down"}"#;
        let err =
            parse_response::<Empty>(StatusCode::TOO_MANY_REQUESTS, &headers, body).unwrap_err();
        let ClientError::Api(api) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(api.error_type, "too_many_requests");
        assert_eq!(api.retry_after, Some(Duration::from_secs(7)));
        assert!(err.is_unavailable());
    }

    #[test]
    fn garbage_error_bodies_are_clear_errors() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"{\"error_type\":\"trunc",
            b"null",
            b"[1,2]",
        ] {
            let err = parse_response::<Empty>(StatusCode::BAD_GATEWAY, &HeaderMap::new(), body)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ClientError::UnexpectedResponse {
                        status: StatusCode::BAD_GATEWAY,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains("502"));
        }
    }

    #[test]
    fn parses_jwks_policy_and_org_policy() {
        let jwks: JwksResponse = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","key_ops":["verify"],"kid":"jwk-test-1",
                "n":"AQAB","e":"AQAB","x5c":["MII"],"x5tS256":"abc="}],"request_id":"r","status_code":200}"#,
        )
        .unwrap();
        assert_eq!(jwks.keys[0].kid.as_deref(), Some("jwk-test-1"));
        assert_eq!(jwks.keys[0].use_.as_deref(), Some("sig"));

        let policy: PolicyResponse = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"request_id":"r","status_code":200,"policy":{
              "roles":[{"role_id":"editor","description":"","permissions":[{"resource_id":"documents","actions":["read","write"]}]}],
              "resources":[{"resource_id":"documents","description":"","actions":["create","read"]}],
              "scopes":[{"scope":"read:docs","description":"","permissions":[{"resource_id":"documents","actions":["read"]}]}]}}"#,
        )
        .unwrap();
        assert_eq!(policy.policy.roles[0].role_id, "editor");
        assert_eq!(
            policy.policy.roles[0].permissions[0].actions,
            vec!["read", "write"]
        );

        let org: OrgPolicyResponse = parse_response(
            StatusCode::OK,
            &HeaderMap::new(),
            br#"{"request_id":"r","status_code":200,"org_policy":{"roles":[]}}"#,
        )
        .unwrap();
        assert!(org.org_policy.roles.is_empty());
    }
}
