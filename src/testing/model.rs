//! The emulated project's records (plain data) and the ids they carry.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::rbac::policy::Role;

/// Immutable project settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `"test"` or `"live"`, used in generated ids.
    pub(crate) env: &'static str,
    pub(crate) project_id: String,
    pub(crate) secret: String,
    pub(crate) issuer: String,
}

/// An emulated organization.
#[derive(Debug, Clone)]
pub(crate) struct OrgRecord {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) created_at: SystemTime,
    pub(crate) custom_roles: Vec<Role>,
}

/// An emulated member.
#[derive(Debug, Clone)]
pub(crate) struct MemberRecord {
    pub(crate) id: String,
    pub(crate) org_id: String,
    pub(crate) email: String,
    /// Explicitly assigned role ids (without the implicit `stytch_member`).
    pub(crate) roles: Vec<String>,
    pub(crate) created_at: SystemTime,
    pub(crate) updated_at: SystemTime,
}

/// An emulated member session.
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    pub(crate) member_id: String,
    pub(crate) org_id: String,
    pub(crate) token: String,
    pub(crate) started_at: SystemTime,
    pub(crate) last_accessed_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) revoked: bool,
    pub(crate) roles: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) factors: Vec<Value>,
}

impl SessionRecord {
    /// Neither revoked nor expired at `now`.
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        !self.revoked && self.expires_at > now
    }
}

/// `items` without repeats, in first-seen order.
pub(crate) fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// `<kind>-<env>-<uuid>`.
pub(crate) fn new_id(kind: &str, env: &str) -> String {
    format!("{kind}-{env}-{}", uuid::Uuid::new_v4())
}

/// A random 44-character URL-safe token.
pub(crate) fn random_token() -> String {
    random_string(33)
}

/// URL-safe base64 of `bytes` random bytes.
pub(crate) fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_44_url_safe_chars() {
        let t = random_token();
        assert_eq!(t.len(), 44);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
