//! What every Stytch JWT carries, whatever its kind (member session, M2M, Connected
//! App): the registered claims of RFC 7519, and [`TokenKind`], what a kind adds to
//! their rules.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::verify::Rejected;
use crate::serde_helpers::set_once;

/// The registered claims, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) iss: String,
    pub(crate) aud: Audience,
    pub(crate) sub: String,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    pub(crate) nbf: Option<u64>,
}

/// The registered claims as a kind's visitor meets them, in one pass with its own.
#[derive(Default)]
pub(crate) struct RegisteredFields {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    jti: Option<IgnoredAny>,
}

impl RegisteredFields {
    /// Takes the value of `key` from `map` when it is a registered claim (`true`);
    /// leaves it for the caller otherwise. A repeated claim is an error.
    pub(crate) fn visit<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        match key {
            "iss" => set_once(&mut self.iss, map.next_value::<String>()?, key)?,
            "aud" => set_once(&mut self.aud, map.next_value::<Audience>()?, key)?,
            "sub" => set_once(&mut self.sub, map.next_value::<String>()?, key)?,
            "exp" => set_once(&mut self.exp, map.next_value::<u64>()?, key)?,
            "iat" => set_once(&mut self.iat, map.next_value::<u64>()?, key)?,
            "nbf" => set_once(&mut self.nbf, map.next_value::<u64>()?, key)?,
            // Registered, never a custom claim; not used.
            "jti" => set_once(&mut self.jti, map.next_value::<IgnoredAny>()?, key)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The registered claims; `iss`, `aud`, `sub`, `exp` and `iat` are required.
    pub(crate) fn finish<E: de::Error>(self) -> Result<Registered, E> {
        Ok(Registered {
            iss: self.iss.ok_or_else(|| E::missing_field("iss"))?,
            aud: self.aud.ok_or_else(|| E::missing_field("aud"))?,
            sub: self.sub.ok_or_else(|| E::missing_field("sub"))?,
            exp: self.exp.ok_or_else(|| E::missing_field("exp"))?,
            iat: self.iat.ok_or_else(|| E::missing_field("iat"))?,
            nbf: self.nbf,
        })
    }
}

/// A kind of Stytch JWT: its registered claims, and what its own claims add to the
/// rules every kind follows ([`ClaimRules::check`](super::verify::ClaimRules::check)).
pub(crate) trait TokenKind {
    /// The registered claims.
    fn registered(&self) -> &Registered;

    /// The kind's own reasons to refuse a validly signed token of the right issuer and
    /// audience (a claim it must carry is missing or empty).
    fn check_kind(&self) -> Result<(), Rejected> {
        Ok(())
    }

    /// Unix seconds from which the kind no longer allows local trust (besides `exp`
    /// and the age limit); `u64::MAX` for none.
    fn kind_deadline(&self) -> u64 {
        u64::MAX
    }
}

/// `aud` as a string or an array of strings.
#[derive(Debug, Clone)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Decoded directly (an untagged enum would buffer the value and try each variant).
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(a) = seq.next_element::<String>()? {
                    all.push(a);
                }
                Ok(Audience::Many(all))
            }
        }
        d.deserialize_any(AudienceVisitor)
    }
}

impl Audience {
    pub(crate) fn contains(&self, project_id: &str) -> bool {
        match self {
            Audience::One(a) => a == project_id,
            Audience::Many(all) => all.iter().any(|a| a == project_id),
        }
    }
}
