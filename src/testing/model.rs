//! The emulated project's records (plain data) and the ids they carry.

use std::time::{Duration, SystemTime};

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
    /// `http://127.0.0.1:PORT`: the emulator's origin, as a project domain's.
    pub(crate) origin: String,
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

/// What M2M clients and Connected Apps share: credentials, and the custom claims
/// of their tokens. No `Debug`: it holds the secret.
#[derive(Clone)]
pub(crate) struct ClientRecord {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) custom_claims: Map<String, Value>,
}

impl ClientRecord {
    /// A `<kind>-<env>-<uuid>` client with a fresh 44-character secret.
    pub(crate) fn new(kind: &str, env: &str, custom_claims: Map<String, Value>) -> Self {
        Self {
            id: new_id(kind, env),
            secret: random_token(),
            custom_claims,
        }
    }

    /// Whether `secret` is this client's.
    pub(crate) fn authenticates(&self, secret: &str) -> bool {
        self.secret == secret
    }
}

/// An emulated M2M client.
#[derive(Clone)]
pub(crate) struct M2mClientRecord {
    pub(crate) client: ClientRecord,
    pub(crate) scopes: Vec<String>,
}

/// An emulated Connected App.
#[derive(Clone)]
pub(crate) struct ConnectedAppRecord {
    pub(crate) client: ClientRecord,
    pub(crate) access_token_lifetime: Duration,
}

/// A Connected-App access token the emulator issued, keyed by its `jti`.
#[derive(Debug, Clone)]
pub(crate) struct AccessTokenRecord {
    /// `exp`, in Unix seconds.
    pub(crate) expires_at: u64,
    pub(crate) revoked: bool,
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

/// `len` random ASCII letters and digits, like the `jti` of Stytch's access tokens.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut buf = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random source failed");
    buf.iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
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

    #[test]
    fn alphanumeric_strings_have_the_asked_length() {
        let s = random_alphanumeric(44);
        assert_eq!(s.len(), 44);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s, random_alphanumeric(44));
    }
}
