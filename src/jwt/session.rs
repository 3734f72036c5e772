//! The claims of a Stytch B2B member session JWT (wire spec §5): the session and the
//! organization, beside the registered claims every Stytch JWT carries
//! ([`super::registered`]), and what makes them valid.
//!
//! Decoded with the other kinds, in one pass ([`super::claims`]).

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::registered::{Registered, TokenKind};
use super::rejected::Rejected;
use crate::member::{AuthMethod, AuthenticatedMember, AuthenticationFactor, MemberData};

pub(crate) const SESSION_CLAIM: &str = "https://stytch.com/session";
pub(crate) const ORGANIZATION_CLAIM: &str = "https://stytch.com/organization";

/// The decoded payload of a member session JWT.
#[derive(Debug, Clone)]
pub(crate) struct SessionClaims {
    pub(crate) registered: Registered,
    pub(crate) session: SessionClaim,
    pub(crate) organization: OrganizationClaim,
    /// Every other top-level claim: the session's custom claims.
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
    #[serde(default, deserialize_with = "crate::member::deserialize_factors")]
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

impl TokenKind for SessionClaims {
    fn registered(&self) -> &Registered {
        &self.registered
    }

    /// A session JWT names its session and organization.
    fn check_kind(&self) -> Result<(), Rejected> {
        if self.session.id.is_empty() || self.organization.organization_id.is_empty() {
            return Err(Rejected::InvalidClaims);
        }
        Ok(())
    }

    /// Never past the end of the session as the JWT recorded it (Stytch may have
    /// extended it since: Stytch then decides).
    fn kind_deadline(&self) -> u64 {
        self.session
            .expires_at
            .map_or(u64::MAX, crate::clock::unix_seconds)
    }
}

impl SessionClaims {
    /// The member these verified claims describe (wire spec §5.4).
    pub(crate) fn into_member(self) -> AuthenticatedMember {
        AuthenticatedMember::new(MemberData {
            member_id: self.registered.sub,
            member_session_id: self.session.id,
            organization_id: self.organization.organization_id,
            organization_slug: self.organization.slug,
            roles: self.session.roles,
            authentication_factors: self.session.authentication_factors,
            started_at: self.session.started_at,
            expires_at: self
                .session
                .expires_at
                .unwrap_or_else(|| crate::timestamp::from_unix(self.registered.exp)),
            custom_claims: self.custom,
            method: AuthMethod::LocalJwt,
        })
    }
}
