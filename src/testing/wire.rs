//! The Stytch wire format: JSON builders for the objects the emulator returns,
//! error bodies and request ids, session-JWT claims, and request-field parsing.

use std::time::SystemTime;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::model::{MemberRecord, OrgRecord, SessionRecord};

/// Claim names that `session_custom_claims` may never set.
pub(crate) const RESERVED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Prefix of Stytch's own claims, also protected from custom claims.
pub(crate) const STYTCH_CLAIM_PREFIX: &str = "https://stytch.com/";

/// An API error: answered with the five-field Stytch body, or (`oauth`) with the
/// OAuth 2.0 field names of the token and introspection endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
    pub(crate) oauth: bool,
}

impl ApiError {
    pub(crate) fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            oauth: false,
        }
    }

    /// An OAuth 2.0 error (RFC 6749 §5.2): `error` and `error_description`.
    pub(crate) fn oauth(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            oauth: true,
            ..Self::new(status, error, description)
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub(crate) fn project_not_found() -> Self {
        Self::new(404, "project_not_found", "Project could not be found.")
    }

    pub(crate) fn session_not_found() -> Self {
        Self::new(404, "session_not_found", "Session could not be found.")
    }

    /// The body this error is answered with.
    pub(crate) fn body(&self, env: &str) -> Value {
        let names = if self.oauth {
            ["error", "error_description", "error_uri"]
        } else {
            ["error_type", "error_message", "error_url"]
        };
        let mut body = Map::new();
        body.insert("status_code".into(), json!(self.status));
        body.insert("request_id".into(), json!(request_id(env)));
        body.insert(names[0].into(), json!(self.error_type));
        body.insert(names[1].into(), json!(self.message));
        body.insert(
            names[2].into(),
            json!(format!(
                "https://stytch.com/docs/api/errors/{}",
                self.status
            )),
        );
        Value::Object(body)
    }
}

/// A string field where `null`, absence and `""` all mean "not given".
pub(crate) fn opt_string(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a string."))),
    }
}

/// Merges custom claims: `null` deletes, reserved and Stytch claims are ignored.
pub(crate) fn merge_claims(target: &mut Map<String, Value>, update: Map<String, Value>) {
    for (key, value) in update {
        if RESERVED_CLAIMS.contains(&key.as_str()) || key.starts_with(STYTCH_CLAIM_PREFIX) {
            continue;
        }
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// `value` as JSON (for the RBAC types, which always serialise).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("RBAC types always serialise to JSON")
}

/// Whole-second RFC 3339 in UTC with a `Z` suffix, e.g. `2026-01-01T00:00:00Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = i64::try_from(crate::clock::unix_seconds(t)).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// A fresh `request-id-<env>-<uuid>`.
pub(crate) fn request_id(env: &str) -> String {
    format!("request-id-{env}-{}", uuid::Uuid::new_v4())
}

/// A success envelope: `request_id`, `status_code: 200` plus `fields`.
pub(crate) fn success(env: &str, fields: Map<String, Value>) -> Value {
    let mut body = fields;
    body.insert("request_id".into(), Value::String(request_id(env)));
    body.insert("status_code".into(), json!(200));
    Value::Object(body)
}

/// `MemberSession` (§2.3).
pub(crate) fn member_session(session: &SessionRecord, org: &OrgRecord) -> Value {
    json!({
        "member_session_id": session.id,
        "member_id": session.member_id,
        "started_at": rfc3339(session.started_at),
        "last_accessed_at": rfc3339(session.last_accessed_at),
        "expires_at": rfc3339(session.expires_at),
        "authentication_factors": session.factors,
        "organization_id": org.id,
        "roles": session.roles,
        "organization_slug": org.slug,
        "custom_claims": session.custom_claims,
    })
}

/// `Member` (§2.5) with every field the Rust SDK requires.
pub(crate) fn member(member: &MemberRecord) -> Value {
    let mut role_ids = vec!["stytch_member".to_owned()];
    for r in &member.roles {
        if !role_ids.contains(r) {
            role_ids.push(r.clone());
        }
    }
    let roles: Vec<Value> = role_ids
        .iter()
        .map(|id| json!({"role_id": id, "sources": [{"type": "direct_assignment"}]}))
        .collect();
    json!({
        "organization_id": member.org_id,
        "member_id": member.id,
        "email_address": member.email,
        "status": "active",
        "name": "",
        "sso_registrations": [],
        "is_breakglass": false,
        "member_password_id": "",
        "oauth_registrations": [],
        "email_address_verified": true,
        "mfa_phone_number_verified": false,
        "is_admin": member.roles.iter().any(|r| r == "stytch_admin"),
        "totp_registration_id": "",
        "retired_email_addresses": [],
        "is_locked": false,
        "mfa_enrolled": false,
        "mfa_phone_number": "",
        "default_mfa_method": "",
        "roles": roles,
        "trusted_metadata": {},
        "untrusted_metadata": {},
        "created_at": rfc3339(member.created_at),
        "updated_at": rfc3339(member.updated_at),
    })
}

/// `Organization` (§2.6) with every field the Rust SDK requires.
pub(crate) fn organization(org: &OrgRecord) -> Value {
    json!({
        "organization_id": org.id,
        "organization_name": org.slug,
        "organization_logo_url": "",
        "organization_slug": org.slug,
        "sso_jit_provisioning": "NOT_ALLOWED",
        "sso_jit_provisioning_allowed_connections": [],
        "sso_active_connections": [],
        "email_allowed_domains": [],
        "email_jit_provisioning": "NOT_ALLOWED",
        "email_invites": "ALL_ALLOWED",
        "auth_methods": "ALL_ALLOWED",
        "allowed_auth_methods": [],
        "mfa_policy": "OPTIONAL",
        "rbac_email_implicit_role_assignments": [],
        "mfa_methods": "ALL_ALLOWED",
        "allowed_mfa_methods": [],
        "oauth_tenant_jit_provisioning": "NOT_ALLOWED",
        "claimed_email_domains": [],
        "first_party_connected_apps_allowed_type": "ALL_ALLOWED",
        "allowed_first_party_connected_apps": [],
        "third_party_connected_apps_allowed_type": "ALL_ALLOWED",
        "allowed_third_party_connected_apps": [],
        "custom_roles": org.custom_roles,
        "trusted_metadata": {},
        "created_at": rfc3339(org.created_at),
        "updated_at": rfc3339(org.created_at),
    })
}

/// The session JWT payload (§5.2/5.3), issued at `now`.
pub(crate) fn jwt_claims(
    session: &SessionRecord,
    org: &OrgRecord,
    issuer: &str,
    project_id: &str,
    now: SystemTime,
) -> Map<String, Value> {
    let iat = crate::clock::unix_seconds(now);
    // Custom claims first, so the registered and Stytch claims always win.
    let mut claims = session.custom_claims.clone();
    claims.insert("aud".into(), json!([project_id]));
    claims.insert("exp".into(), json!(iat + 300));
    claims.insert(
        "https://stytch.com/organization".into(),
        json!({"organization_id": org.id, "slug": org.slug}),
    );
    claims.insert(
        "https://stytch.com/session".into(),
        json!({
            "id": session.id,
            "started_at": rfc3339(session.started_at),
            "last_accessed_at": rfc3339(session.last_accessed_at),
            "expires_at": rfc3339(session.expires_at),
            "attributes": {"user_agent": "", "ip_address": ""},
            "authentication_factors": session.factors,
            "roles": session.roles,
        }),
    );
    claims.insert("iat".into(), json!(iat));
    claims.insert("iss".into(), json!(issuer));
    claims.insert("nbf".into(), json!(iat));
    claims.insert("sub".into(), json!(session.member_id));
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_whole_second_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_750);
        assert_eq!(rfc3339(t), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn error_body_has_all_five_fields() {
        let body = ApiError::new(404, "session_not_found", "gone").body("test");
        let obj = body.as_object().unwrap();
        assert_eq!(obj.len(), 5);
        assert_eq!(body["status_code"], 404);
        assert!(
            body["request_id"]
                .as_str()
                .unwrap()
                .starts_with("request-id-test-")
        );
        assert_eq!(body["error_url"], "https://stytch.com/docs/api/errors/404");
        let oauth = ApiError::oauth(401, "invalid_client", "no").body("live");
        assert_eq!(oauth.as_object().unwrap().len(), 5);
        assert_eq!(oauth["error"], "invalid_client");
        assert_eq!(oauth["error_description"], "no");
        assert_eq!(oauth["error_uri"], "https://stytch.com/docs/api/errors/401");
        assert!(
            oauth["request_id"]
                .as_str()
                .unwrap()
                .starts_with("request-id-live-")
        );
    }

    #[test]
    fn custom_claims_merge_rules() {
        let mut target = Map::new();
        target.insert("keep".into(), json!(1));
        target.insert("drop".into(), json!(2));
        let update = json!({"drop": null, "iss": "evil", "sub": "x",
            "https://stytch.com/session": {}, "tier": "gold"});
        merge_claims(&mut target, update.as_object().unwrap().clone());
        assert_eq!(Value::Object(target), json!({"keep": 1, "tier": "gold"}));
    }
}
