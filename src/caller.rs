//! Who is calling: a member with a session, a service with an M2M token, or an agent
//! with a Connected-App token acting for a member.
//!
//! Each kind is its own extractor, so a handler states which callers it serves:
//! [`AuthenticatedMember`] only ever means a member session, [`M2mCaller`] an M2M
//! token, [`ConnectedAppCaller`] a Connected-App access token, and [`Caller`] any of
//! them. A token of one kind is never accepted as another: a handler that takes one
//! kind answers any other with 401 `caller_not_accepted`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::member::AuthenticatedMember;
use crate::scope;

/// Any authenticated caller: take it as an extractor to serve members and machines
/// alike (401 without a valid credential of a kind the layer accepts).
///
/// # Examples
///
/// ```
/// use axum_stytch::Caller;
///
/// async fn whoami(caller: Caller) -> String {
///     match caller {
///         Caller::Member(member) => format!("member {}", member.member_id()),
///         Caller::M2m(service) => format!("service {}", service.client_id()),
///         Caller::ConnectedApp(agent) => {
///             format!("{} for member {}", agent.client_id(), agent.member_id())
///         }
///         _ => "another kind of caller".to_owned(),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Caller {
    /// A member with a session (cookie, or `Authorization: Bearer` with
    /// [`bearer_tokens`](crate::StytchAuthBuilder::bearer_tokens)).
    Member(AuthenticatedMember),
    /// A service with an M2M client-credentials access token
    /// ([`m2m_tokens`](crate::StytchAuthBuilder::m2m_tokens)).
    M2m(M2mCaller),
    /// An application (an AI agent, an MCP client) acting for a member with a
    /// Connected-App access token
    /// ([`connected_app_tokens`](crate::StytchAuthBuilder::connected_app_tokens)).
    ConnectedApp(ConnectedAppCaller),
}

impl Caller {
    /// The member, when the caller is a member session.
    pub fn as_member(&self) -> Option<&AuthenticatedMember> {
        match self {
            Caller::Member(member) => Some(member),
            _ => None,
        }
    }

    /// The service, when the caller holds an M2M token.
    pub fn as_m2m(&self) -> Option<&M2mCaller> {
        match self {
            Caller::M2m(m2m) => Some(m2m),
            _ => None,
        }
    }

    /// The application, when the caller holds a Connected-App token.
    pub fn as_connected_app(&self) -> Option<&ConnectedAppCaller> {
        match self {
            Caller::ConnectedApp(app) => Some(app),
            _ => None,
        }
    }

    /// The organization the caller acts in: the member's, or the one named by a
    /// Connected-App token. `None` for M2M tokens, which belong to no organization.
    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Caller::Member(member) => Some(member.organization_id()),
            Caller::ConnectedApp(app) => Some(app.organization_id()),
            Caller::M2m(_) => None,
        }
    }

    /// The caller's custom claims: a session's, or a machine token's.
    pub fn custom_claims(&self) -> &Map<String, Value> {
        match self {
            Caller::Member(member) => member.custom_claims(),
            Caller::M2m(m2m) => m2m.custom_claims(),
            Caller::ConnectedApp(app) => app.custom_claims(),
        }
    }

    /// What the caller is, for logs and rejections.
    pub(crate) fn kind(&self) -> CallerKind {
        match self {
            Caller::Member(_) => CallerKind::Member,
            Caller::M2m(_) => CallerKind::M2m,
            Caller::ConnectedApp(_) => CallerKind::ConnectedApp,
        }
    }
}

/// The kinds of callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerKind {
    Member,
    M2m,
    ConnectedApp,
}

/// The accessors a machine token's caller shares: its scopes, custom claims and times
/// (fields `scopes`, `custom_claims`, `issued_at`, `expires_at` of its data).
macro_rules! token_accessors {
    ($custom_claims_doc:literal) => {
        /// The token's scopes, in its order.
        pub fn scopes(&self) -> &[String] {
            &self.0.scopes
        }

        #[doc = $custom_claims_doc]
        pub fn custom_claims(&self) -> &Map<String, Value> {
            &self.0.custom_claims
        }

        /// The token's custom claims as your own type (which may borrow from them).
        ///
        /// # Errors
        ///
        /// When the claims do not fit `T` (a field missing or of another type).
        pub fn custom_claims_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
            T::deserialize(&self.0.custom_claims)
        }

        /// When the token was issued (`iat`).
        pub fn issued_at(&self) -> SystemTime {
            self.0.issued_at
        }

        /// When the token expires (`exp`).
        pub fn expires_at(&self) -> SystemTime {
            self.0.expires_at
        }
    };
}

/// A service authenticated by a Stytch M2M access token (client credentials): take it
/// as an extractor (401 for any other caller), or `Option<M2mCaller>`.
///
/// # Examples
///
/// ```
/// use axum_stytch::M2mCaller;
///
/// async fn sync(service: M2mCaller) -> String {
///     format!("{} may {:?}", service.client_id(), service.scopes())
/// }
/// ```
#[derive(Clone)]
pub struct M2mCaller(Arc<M2mData>);

pub(crate) struct M2mData {
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
}

impl M2mCaller {
    pub(crate) fn new(data: M2mData) -> Self {
        Self(Arc::new(data))
    }

    /// The M2M client's id (the token's `sub`, `m2m-client-test-...`).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// Whether the token grants `scope`, as Stytch's SDKs decide for M2M tokens:
    /// `action:resource` split at the first colon, `*` a wildcard in the resource
    /// position only (`read:*` grants `read:users`; `*:users` grants nothing else).
    pub fn has_scope(&self, scope: &str) -> bool {
        scope::m2m_grants(&self.0.scopes, scope)
    }

    token_accessors!(
        "The token's custom claims (from the client's custom-claims template): every \
         top-level claim but the registered ones and `scope`."
    );
}

impl fmt::Debug for M2mCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mCaller")
            .field("client_id", &self.0.client_id)
            .field("scopes", &self.0.scopes)
            .finish_non_exhaustive()
    }
}

/// An application acting for a member with a Stytch Connected-App access token (an AI
/// agent, an MCP client): take it as an extractor (401 for any other caller), or
/// `Option<ConnectedAppCaller>`.
///
/// What it may do is what its scopes grant: [`RequireAuthz`](crate::RequireAuthz)
/// looks them up in the project's RBAC policy (`scopes` → permissions), never the
/// member's roles; [`RequireScope`](crate::RequireScope) matches them exactly.
///
/// # Examples
///
/// ```
/// use axum_stytch::ConnectedAppCaller;
///
/// async fn documents(agent: ConnectedAppCaller) -> String {
///     format!("{} for {} in {}", agent.client_id(), agent.member_id(), agent.organization_id())
/// }
/// ```
#[derive(Clone)]
pub struct ConnectedAppCaller(Arc<ConnectedAppData>);

pub(crate) struct ConnectedAppData {
    pub(crate) member_id: String,
    pub(crate) organization_id: String,
    pub(crate) organization_slug: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
}

impl ConnectedAppCaller {
    pub(crate) fn new(data: ConnectedAppData) -> Self {
        Self(Arc::new(data))
    }

    /// The member the application acts for (the token's `sub`).
    pub fn member_id(&self) -> &str {
        &self.0.member_id
    }

    /// The member's organization, from the token.
    pub fn organization_id(&self) -> &str {
        &self.0.organization_id
    }

    /// The organization's slug, from the token.
    pub fn organization_slug(&self) -> &str {
        &self.0.organization_slug
    }

    /// The Connected App's client id (`connected-app-test-...`).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// Whether `scope` is one of the granted scopes (exact: Connected-App scopes are
    /// names, and `read:*` is not a wildcard).
    pub fn has_scope(&self, scope: &str) -> bool {
        scope::exact_grants(&self.0.scopes, scope)
    }

    token_accessors!(
        "The token's custom claims (from the app's access-token template): every \
         top-level claim but the registered ones, `scope`, `client_id` and the \
         organization claim."
    );
}

impl fmt::Debug for ConnectedAppCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectedAppCaller")
            .field("client_id", &self.0.client_id)
            .field("member_id", &self.0.member_id)
            .field("organization_id", &self.0.organization_id)
            .field("scopes", &self.0.scopes)
            .finish_non_exhaustive()
    }
}
