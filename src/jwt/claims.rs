//! The claims of a Stytch B2B session JWT (wire spec §5).

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::member::AuthenticationFactor;

#[cfg(test)]
pub(crate) const SESSION_CLAIM: &str = "https://stytch.com/session";
#[cfg(test)]
pub(crate) const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";

/// `aud` as a string or an array of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn contains(&self, project_id: &str) -> bool {
        match self {
            Audience::One(a) => a == project_id,
            Audience::Many(all) => all.iter().any(|a| a == project_id),
        }
    }
}

/// The decoded payload. Registered times are whole seconds since the epoch; a float,
/// string or negative value fails decoding (and so the token).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SessionClaims {
    pub(crate) iss: String,
    pub(crate) aud: Audience,
    pub(crate) sub: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    #[serde(default)]
    pub(crate) nbf: Option<u64>,
    #[serde(rename = "https://stytch.com/session")]
    pub(crate) session: SessionClaim,
    #[serde(rename = "https://stytch.com/organization")]
    pub(crate) organization: OrganizationClaim,
    /// Registered, so never a custom claim; not used.
    #[serde(default, rename = "jti")]
    _jti: Option<serde::de::IgnoredAny>,
    /// Every other top-level claim: the session's custom claims.
    #[serde(flatten)]
    pub(crate) custom: Map<String, Value>,
}

/// `https://stytch.com/session`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SessionClaim {
    pub(crate) id: String,
    #[serde(deserialize_with = "crate::timestamp::deserialize")]
    pub(crate) started_at: SystemTime,
    #[serde(default, deserialize_with = "crate::timestamp::deserialize_opt")]
    pub(crate) expires_at: Option<SystemTime>,
    #[serde(default)]
    pub(crate) authentication_factors: Vec<AuthenticationFactor>,
    /// Absent in sessions without RBAC roles: such a session has no permissions.
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

/// `https://stytch.com/organization`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OrganizationClaim {
    pub(crate) organization_id: String,
    #[serde(default)]
    pub(crate) slug: String,
}
