//! The authenticated member handed to handlers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

/// How a request's session was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// The session JWT was verified locally against Stytch's published keys; no call to
    /// Stytch was made. A locally verified JWT may belong to a session revoked at Stytch
    /// in the last `max_token_age` (see the crate docs on the revocation window).
    LocalJwt,
    /// Stytch's `sessions/authenticate` confirmed the session during this request.
    Remote,
}

/// One way the member proved who they are (a password, an email magic link, SSO, ...).
///
/// Stytch keeps adding factor kinds, so `kind` and `delivery_method` are plain strings
/// (`"password"`/`"knowledge"`, `"magic_link"`/`"email"`, `"sso"`/`"sso_oidc"`, ...).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuthenticationFactor {
    kind: String,
    delivery_method: String,
    last_authenticated_at: Option<SystemTime>,
    details: Map<String, Value>,
}

/// Stytch's `authentication_factors` array (`#[serde(deserialize_with)]`). The wire
/// shape stays crate-private: `AuthenticationFactor` itself is not `Deserialize`.
pub(crate) fn deserialize_factors<'de, D>(d: D) -> Result<Vec<AuthenticationFactor>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let factors = Vec::<WireFactor>::deserialize(d)?;
    Ok(factors.into_iter().map(|f| f.0).collect())
}

/// One factor object as Stytch sends it.
struct WireFactor(AuthenticationFactor);

/// One pass over the factor object: `type`, `delivery_method` and
/// `last_authenticated_at` typed, the rest kept in `details`.
impl<'de> Deserialize<'de> for WireFactor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::serde_helpers::{Key, set_once};
        use serde::de::{self, MapAccess, Visitor};

        struct FactorVisitor;
        impl<'de> Visitor<'de> for FactorVisitor {
            type Value = WireFactor;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an authentication factor object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut kind, mut delivery, mut last) = (None, None, None);
                let mut details = Map::new();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match key.as_ref() {
                        "type" => set_once(&mut kind, map.next_value::<String>()?, &key)?,
                        "delivery_method" => {
                            set_once(&mut delivery, map.next_value::<String>()?, &key)?
                        }
                        "last_authenticated_at" => {
                            let value = map.next_value::<Option<Timestamp>>()?;
                            set_once(&mut last, value.map(|t| t.0), &key)?
                        }
                        _ => {
                            let value = map.next_value::<Value>()?;
                            if details.insert(key.into_owned(), value).is_some() {
                                return Err(de::Error::custom("duplicate factor field"));
                            }
                        }
                    }
                }
                Ok(WireFactor(AuthenticationFactor {
                    kind: kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    delivery_method: delivery.unwrap_or_default(),
                    last_authenticated_at: last.flatten(),
                    details,
                }))
            }
        }
        d.deserialize_map(FactorVisitor)
    }
}

#[derive(Deserialize)]
struct Timestamp(#[serde(deserialize_with = "crate::timestamp::deserialize")] SystemTime);

impl AuthenticationFactor {
    /// The factor type, e.g. `"password"`, `"magic_link"`, `"sso"`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// How it was delivered, e.g. `"knowledge"`, `"email"`, `"sso_oidc"`.
    pub fn delivery_method(&self) -> &str {
        &self.delivery_method
    }

    /// When the member last used this factor, if Stytch said.
    pub fn last_authenticated_at(&self) -> Option<SystemTime> {
        self.last_authenticated_at
    }

    /// The remaining fields Stytch sent (for example `email_factor` with the address).
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }
}

/// A Stytch B2B member with a valid session, inserted by the [`StytchAuth`] layer.
///
/// Take it as an axum extractor: `AuthenticatedMember` rejects the request with 401
/// when there is no valid session, `Option<AuthenticatedMember>` yields `None`
/// instead. Cheap to clone (one reference count).
///
/// # Examples
///
/// ```
/// use axum_stytch::AuthenticatedMember;
///
/// async fn me(member: AuthenticatedMember) -> String {
///     format!("{} in {}", member.member_id(), member.organization_slug())
/// }
///
/// async fn maybe(member: Option<AuthenticatedMember>) -> &'static str {
///     if member.is_some() { "signed in" } else { "anonymous" }
/// }
/// ```
///
/// [`StytchAuth`]: crate::StytchAuth
#[derive(Clone)]
pub struct AuthenticatedMember(Arc<MemberData>);

#[derive(Debug)]
pub(crate) struct MemberData {
    pub(crate) member_id: String,
    pub(crate) member_session_id: String,
    pub(crate) organization_id: String,
    pub(crate) organization_slug: String,
    pub(crate) roles: Vec<String>,
    pub(crate) authentication_factors: Vec<AuthenticationFactor>,
    pub(crate) started_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) method: AuthMethod,
}

impl AuthenticatedMember {
    pub(crate) fn new(data: MemberData) -> Self {
        Self(Arc::new(data))
    }

    /// The member id (`member-test-...` / `member-live-...`).
    pub fn member_id(&self) -> &str {
        &self.0.member_id
    }

    /// The member session id (`member-session-test-...`).
    pub fn member_session_id(&self) -> &str {
        &self.0.member_session_id
    }

    /// The member's organization id.
    pub fn organization_id(&self) -> &str {
        &self.0.organization_id
    }

    /// The member's organization slug.
    pub fn organization_slug(&self) -> &str {
        &self.0.organization_slug
    }

    /// The session's effective role ids (what RBAC decisions use). Empty when the
    /// session carries no roles claim.
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// Whether the session holds `role_id`.
    pub fn has_role(&self, role_id: &str) -> bool {
        self.0.roles.iter().any(|r| r == role_id)
    }

    /// How the member authenticated in this session.
    pub fn authentication_factors(&self) -> &[AuthenticationFactor] {
        &self.0.authentication_factors
    }

    /// When the session started.
    pub fn started_at(&self) -> SystemTime {
        self.0.started_at
    }

    /// When the session (not the 5-minute JWT) expires.
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// The session's custom claims (top-level JWT claims other than the registered and
    /// Stytch ones).
    pub fn custom_claims(&self) -> &Map<String, Value> {
        &self.0.custom_claims
    }

    /// The session's custom claims as your own type (which may borrow from them).
    /// Verified locally or by Stytch, they are the same claims.
    ///
    /// # Errors
    ///
    /// When the claims do not fit `T` (a field missing or of another type).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum_stytch::AuthenticatedMember;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Tenant {
    ///     plan: String,
    /// }
    ///
    /// async fn plan(member: AuthenticatedMember) -> String {
    ///     member
    ///         .custom_claims_as::<Tenant>()
    ///         .map_or_else(|_| "free".to_owned(), |t| t.plan)
    /// }
    /// ```
    pub fn custom_claims_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.0.custom_claims)
    }

    /// Whether the session was verified locally or by Stytch in this request.
    pub fn auth_method(&self) -> AuthMethod {
        self.0.method
    }
}

impl fmt::Debug for AuthenticatedMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedMember")
            .field("member_id", &self.0.member_id)
            .field("member_session_id", &self.0.member_session_id)
            .field("organization_id", &self.0.organization_id)
            .field("roles", &self.0.roles)
            .field("auth_method", &self.0.method)
            .finish_non_exhaustive()
    }
}
