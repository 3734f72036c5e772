//! The claims of a Stytch B2B member session JWT (wire spec §5): the session and the
//! organization, beside the registered claims every Stytch JWT carries
//! ([`super::registered`]), and what makes them valid.
//!
//! Decoded in one pass (no `#[serde(flatten)]`, which buffers every field): known
//! claims are typed, every other top-level key is a custom claim. A repeated key is an
//! error, as are times that are not whole non-negative seconds.

use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::registered::{Registered, RegisteredFields, TokenKind};
use super::rejected::Rejected;
use crate::member::{AuthMethod, AuthenticatedMember, AuthenticationFactor, MemberData};
use crate::serde_helpers::{Key, set_once};

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

impl<'de> Deserialize<'de> for SessionClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = SessionClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of session claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SessionClaims, A::Error> {
        let mut registered = RegisteredFields::default();
        let (mut session, mut organization) = (None, None);
        let mut custom = Map::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if registered.visit(&key, &mut map)? {
                continue;
            }
            match key.as_ref() {
                SESSION_CLAIM => set_once(&mut session, map.next_value::<SessionClaim>()?, &key)?,
                ORGANIZATION_CLAIM => set_once(
                    &mut organization,
                    map.next_value::<OrganizationClaim>()?,
                    &key,
                )?,
                _ => {
                    let value = map.next_value::<Value>()?;
                    if custom.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate custom claim"));
                    }
                }
            }
        }
        Ok(SessionClaims {
            registered: registered.finish()?,
            session: session.ok_or_else(|| de::Error::missing_field(SESSION_CLAIM))?,
            organization: organization
                .ok_or_else(|| de::Error::missing_field(ORGANIZATION_CLAIM))?,
            custom,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::registered::Audience;

    fn parse(json: &str) -> Result<SessionClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    const BASE: &str = r#""aud":["p"],"exp":10,"iat":1,"iss":"i","sub":"s",
        "https://stytch.com/session":{"id":"ms","started_at":"2026-01-01T00:00:00Z"},
        "https://stytch.com/organization":{"organization_id":"o"}"#;

    #[test]
    fn custom_claims_are_the_unknown_keys() {
        let c = parse(&format!(
            r#"{{{BASE},"jti":"x","tier":"gold","n":{{"a":[1]}},"esc\u0061ped":1}}"#
        ))
        .unwrap();
        assert_eq!(c.custom.len(), 3, "{:?}", c.custom);
        assert_eq!(c.custom["tier"], "gold");
        assert_eq!(c.custom["n"]["a"][0], 1);
        assert!(c.custom.contains_key("escaped"));
        assert!(c.session.roles.is_empty(), "no roles claim: no roles");
    }

    #[test]
    fn audience_is_a_string_or_an_array_of_strings() {
        let aud = |json: &str| serde_json::from_str::<Audience>(json);
        assert!(aud(r#""p""#).unwrap().contains("p"));
        assert!(aud(r#"["x","p"]"#).unwrap().contains("p"));
        assert!(!aud(r#"[]"#).unwrap().contains("p"));
        for bad in ["1", "null", r#"{"p":1}"#, r#"["p",1]"#, r#"[["p"]]"#] {
            assert!(aud(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicates_and_missing_claims_are_errors() {
        for dup in [
            r#","sub":"t""#,
            r#","exp":11"#,
            r#","tier":1,"tier":2"#,
            r#","jti":1,"jti":2"#,
        ] {
            assert!(parse(&format!("{{{BASE}{dup}}}")).is_err(), "{dup}");
        }
        assert!(parse(r#"{"iss":"i"}"#).is_err());
        assert!(parse("[1]").is_err());
        assert!(parse("null").is_err());
    }
}
