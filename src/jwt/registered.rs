//! What every Stytch JWT carries, whatever its kind (member session, M2M, Connected
//! App): the registered claims of RFC 7519, and [`TokenKind`], what a kind adds to
//! their rules.

use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::rejected::Rejected;
use crate::clock::unix_seconds;
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

/// The registered claims as the claims visitor meets them, in one pass with its own.
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
/// rules every kind follows ([`ClaimRules::check`]).
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

    /// The kind's age limit: seconds after `iat` from which a token is too old.
    fn max_age_secs(&self, rules: &ClaimRules) -> u64 {
        rules.max_token_age_secs
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

/// The claim rules of one project.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) project_id: String,
    /// `stytch.com/<project_id>`, and the custom domain's origin when one is configured.
    pub(crate) issuers: Vec<String>,
    pub(crate) leeway_secs: u64,
    /// The age limit of session JWTs; `0` means every token is too old (always ask
    /// Stytch).
    pub(crate) max_token_age_secs: u64,
    /// The age limit of machine tokens (M2M, Connected App), at least 1.
    pub(crate) machine_max_age_secs: u64,
}

/// A signed token's standing at a given time.
#[derive(Debug)]
pub(crate) enum Standing {
    /// Valid now; may be trusted locally until `valid_until` (unix seconds, exclusive).
    Fresh { valid_until: u64 },
    /// Validly signed but not valid locally: expired, older than the age limit, past
    /// the end of the session as the JWT recorded it (Stytch may have extended the
    /// session since), or not yet valid by our clock (`iat`/`nbf` more than the leeway
    /// ahead: our clock is behind Stytch's). Stytch must decide.
    Stale {
        /// Not yet valid by our clock (`iat`/`nbf` ahead).
        issued_ahead: bool,
    },
}

impl ClaimRules {
    /// The standing at `now` of a validly signed token of any kind: issuer, audience
    /// and subject first, then the kind's own claims, then the times (`iat`/`nbf`,
    /// `exp` + leeway, the age limit, and the kind's deadline).
    pub(crate) fn check<C: TokenKind>(
        &self,
        token: &C,
        now: SystemTime,
    ) -> Result<Standing, Rejected> {
        let claims = token.registered();
        if !self.issuers.contains(&claims.iss) {
            return Err(Rejected::ForeignIssuer);
        }
        if !claims.aud.contains(&self.project_id) || claims.sub.is_empty() {
            return Err(Rejected::InvalidClaims);
        }
        token.check_kind()?;
        let now_secs = unix_seconds(now);
        let latest_start = now_secs.saturating_add(self.leeway_secs);
        if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Ok(Standing::Stale { issued_ahead: true });
        }
        // Expired from `exp` + leeway on (RFC 7519 §4.1.4: valid only before `exp`).
        let exp_deadline = claims.exp.saturating_add(self.leeway_secs);
        // An `iat` slightly ahead (within the leeway) must not extend local trust.
        let age_deadline = claims
            .iat
            .min(now_secs)
            .saturating_add(token.max_age_secs(self));
        let valid_until = exp_deadline.min(age_deadline).min(token.kind_deadline());
        if now_secs >= valid_until {
            return Ok(Standing::Stale {
                issued_ahead: false,
            });
        }
        Ok(Standing::Fresh { valid_until })
    }
}
