//! Telling Stytch's JWTs apart (tokens wire spec §0), in the one pass that decodes
//! them: a member session JWT carries `https://stytch.com/session`; otherwise a
//! Connected-App access token carries `client_id` (and, in B2B, the organization
//! claim); otherwise it is an M2M token. Each kind then requires its own claims, so a
//! token that fits none (an organization without a session or `client_id`, a machine
//! token without a string `scope`) is refused as malformed.
//!
//! No `#[serde(flatten)]` (which buffers every field): known claims are typed, every
//! other top-level key is a custom claim. A repeated key is an error, as are times
//! that are not whole non-negative seconds.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::machine::{ConnectedAppClaims, M2mClaims};
use super::registered::{Registered, RegisteredFields};
use super::session::{
    ORGANIZATION_CLAIM, OrganizationClaim, SESSION_CLAIM, SessionClaim, SessionClaims,
};
use crate::serde_helpers::{Key, set_once};

const CLIENT_ID: &str = "client_id";
const SCOPE: &str = "scope";

/// A Stytch JWT's claims, by kind.
#[derive(Debug, Clone)]
pub(crate) enum Claims {
    Session(SessionClaims),
    M2m(M2mClaims),
    ConnectedApp(ConnectedAppClaims),
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

/// Every claim some kind gives a meaning to, as met.
#[derive(Default)]
struct Fields {
    registered: RegisteredFields,
    session: Option<SessionClaim>,
    organization: Option<OrganizationClaim>,
    /// Kept as sent until the kind is known: a session's custom claims may use the
    /// names.
    client_id: Option<Value>,
    scope: Option<Value>,
    custom: Map<String, Value>,
}

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of JWT claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut fields = Fields::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if fields.registered.visit(&key, &mut map)? {
                continue;
            }
            match key.as_ref() {
                SESSION_CLAIM => set_once(&mut fields.session, map.next_value()?, &key)?,
                ORGANIZATION_CLAIM => set_once(&mut fields.organization, map.next_value()?, &key)?,
                CLIENT_ID => set_once(&mut fields.client_id, map.next_value()?, &key)?,
                SCOPE => set_once(&mut fields.scope, map.next_value()?, &key)?,
                _ => {
                    let value = map.next_value::<Value>()?;
                    if fields.custom.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate custom claim"));
                    }
                }
            }
        }
        fields.into_claims()
    }
}

impl Fields {
    fn into_claims<E: de::Error>(self) -> Result<Claims, E> {
        let Fields {
            registered,
            session,
            organization,
            client_id,
            scope,
            mut custom,
        } = self;
        let registered: Registered = registered.finish()?;
        let organization_required = |organization: Option<_>| {
            organization.ok_or_else(|| E::missing_field(ORGANIZATION_CLAIM))
        };
        if let Some(session) = session {
            // Custom claims of a session that happen to use these names.
            for (name, value) in [(CLIENT_ID, client_id), (SCOPE, scope)] {
                if let Some(value) = value {
                    custom.insert(name.to_owned(), value);
                }
            }
            return Ok(Claims::Session(SessionClaims {
                registered,
                session,
                organization: organization_required(organization)?,
                custom,
            }));
        }
        let scope = string(scope, SCOPE)?;
        match client_id {
            Some(client_id) => Ok(Claims::ConnectedApp(ConnectedAppClaims {
                registered,
                client_id: string(Some(client_id), CLIENT_ID)?,
                scope,
                organization: organization_required(organization)?,
                custom,
            })),
            // An organization without a session or an app is no kind of Stytch token.
            None if organization.is_some() => Err(E::custom(
                "an organization claim without a session or a client_id",
            )),
            None => Ok(Claims::M2m(M2mClaims {
                registered,
                scope,
                custom,
            })),
        }
    }
}

/// The string `value` of the claim `name`.
fn string<E: de::Error>(value: Option<Value>, name: &'static str) -> Result<String, E> {
    match value {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(E::invalid_type(de::Unexpected::Other(name), &"a string")),
        None => Err(E::missing_field(name)),
    }
}

impl<'de> Deserialize<'de> for SessionClaims {
    /// The claims of a member session JWT; any other kind is an error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Claims::deserialize(d)? {
            Claims::Session(claims) => Ok(claims),
            _ => Err(de::Error::custom("not a member session JWT")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::registered::Audience;

    fn parse(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn session(json: &str) -> Result<SessionClaims, serde_json::Error> {
        serde_json::from_str(json)
    }

    const REGISTERED: &str = r#""aud":["p"],"exp":10,"iat":1,"iss":"i","sub":"s""#;
    const SESSION: &str =
        r#""https://stytch.com/session":{"id":"ms","started_at":"2026-01-01T00:00:00Z"}"#;
    const ORG: &str = r#""https://stytch.com/organization":{"organization_id":"o","slug":"acme"}"#;

    fn kind(json: &str) -> Result<&'static str, serde_json::Error> {
        Ok(match parse(json)? {
            Claims::Session(_) => "session",
            Claims::M2m(_) => "m2m",
            Claims::ConnectedApp(_) => "connected_app",
        })
    }

    /// Every combination of the distinguishing claims, and what it is (or why not).
    #[test]
    fn kinds_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (&format!("{SESSION},{ORG}"), Some("session")),
            // A session's custom claims may use the machine names, in any type.
            (
                &format!(r#"{SESSION},{ORG},"client_id":1,"scope":["x"]"#),
                Some("session"),
            ),
            (SESSION, None),
            (r#""scope":"read:users""#, Some("m2m")),
            (r#""scope":"""#, Some("m2m")),
            (
                &format!(r#""client_id":"ca","scope":"openid",{ORG}"#),
                Some("connected_app"),
            ),
            // Missing or ill-typed scope, client_id or organization.
            ("", None),
            (r#""scope":null"#, None),
            (r#""scope":["read:users"]"#, None),
            (r#""scope":1"#, None),
            (&format!(r#""scope":"a",{ORG}"#), None),
            (r#""client_id":"ca","scope":"openid""#, None),
            (&format!(r#""client_id":"ca",{ORG}"#), None),
            (&format!(r#""client_id":7,"scope":"openid",{ORG}"#), None),
            (&format!(r#""client_id":"ca","scope":{{}},{ORG}"#), None),
            // Repeated claims.
            (r#""scope":"a","scope":"b""#, None),
            (
                &format!(r#""client_id":"a","client_id":"b","scope":"x",{ORG}"#),
                None,
            ),
        ];
        for (claims, expected) in cases {
            let json = if claims.is_empty() {
                format!("{{{REGISTERED}}}")
            } else {
                format!("{{{REGISTERED},{claims}}}")
            };
            let got = kind(&json).ok();
            assert_eq!(got, *expected, "{json}");
        }
    }

    #[test]
    fn machine_claims_keep_their_custom_claims_apart() {
        let Claims::ConnectedApp(app) = parse(&format!(
            r#"{{{REGISTERED},"client_id":"ca","jti":"j","scope":"openid read:docs",{ORG},"tier":"gold"}}"#
        ))
        .unwrap() else {
            panic!("a connected-app token");
        };
        assert_eq!(app.client_id, "ca");
        assert_eq!(app.scope, "openid read:docs");
        assert_eq!(app.organization.slug, "acme");
        assert_eq!(app.custom.keys().collect::<Vec<_>>(), ["tier"]);
        let Claims::M2m(m2m) = parse(&format!(
            r#"{{{REGISTERED},"scope":"a b","team":{{"id":3}}}}"#
        ))
        .unwrap() else {
            panic!("an M2M token");
        };
        assert_eq!(m2m.scope, "a b");
        assert_eq!(m2m.custom["team"]["id"], 3);
    }

    #[test]
    fn custom_claims_are_the_unknown_keys() {
        let c = session(&format!(
            r#"{{{REGISTERED},{SESSION},{ORG},"jti":"x","tier":"gold","n":{{"a":[1]}},"esc\u0061ped":1}}"#
        ))
        .unwrap();
        assert_eq!(c.custom.len(), 3, "{:?}", c.custom);
        assert_eq!(c.custom["tier"], "gold");
        assert_eq!(c.custom["n"]["a"][0], 1);
        assert!(c.custom.contains_key("escaped"));
        assert!(c.session.roles.is_empty(), "no roles claim: no roles");
        assert!(
            session(&format!(r#"{{{REGISTERED},"scope":"a"}}"#)).is_err(),
            "not a session"
        );
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
            assert!(
                session(&format!("{{{REGISTERED},{SESSION},{ORG}{dup}}}")).is_err(),
                "{dup}"
            );
        }
        assert!(parse(r#"{"iss":"i"}"#).is_err());
        assert!(parse("[1]").is_err());
        assert!(parse("null").is_err());
    }
}
