//! [`RequireScope`]: a machine token's scopes.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::{GuardService, Requirement};
use crate::scope::Scopes;

/// Route guard: lets a request through only when it carries a machine token with every
/// one of the given scopes; answers 401 without a valid token (and 401
/// `caller_not_accepted` for a member session), 403 `insufficient_scope` when a scope
/// is missing, with `WWW-Authenticate: Bearer error="insufficient_scope",
/// scope="<the scopes>"` (RFC 6750 §3.1).
///
/// Scopes are matched as Stytch's SDKs do:
///
/// * **M2M tokens**: `action:resource` split at the *first* colon (as the Go and Rust
///   SDKs do: `read:users:x` does not grant `read:users`, as it would in Node), `*` a
///   wildcard in the resource position only (`read:*` grants `read:users`; `*:users`
///   grants only `*:users`), exact and case-sensitive otherwise.
/// * **Connected-App tokens**: exact names (their scopes are names from the project's
///   RBAC policy, and `read:*` is just a name). To authorize them by permission
///   instead, use [`RequireAuthz`](crate::RequireAuthz), which maps their scopes
///   through the policy.
///
/// The argument is a space-separated list, as in OAuth; empty strings are ignored (a
/// guard with no scope at all lets any machine token of an enabled kind through).
/// Requires the [`StytchAuth`](crate::StytchAuth) layer outside it, with
/// [`m2m_tokens`](crate::StytchAuthBuilder::m2m_tokens) or
/// [`connected_app_tokens`](crate::StytchAuthBuilder::connected_app_tokens) on.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use axum_stytch::{RequireScope, StytchAuth};
///
/// # fn app(auth: StytchAuth) -> Router {
/// Router::new()
///     .route("/users", get(|| async { "listed" })
///         .route_layer(RequireScope::new("read:users")))
///     .route("/users/sync", post(|| async { "synced" })
///         .route_layer(RequireScope::new("read:users write:users")))
///     .layer(auth.layer())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a guard does nothing until it wraps a route (`route_layer`)"]
pub struct RequireScope {
    requirement: Arc<Requirement>,
}

impl RequireScope {
    /// Requires every scope of `scopes` (space-separated).
    pub fn new(scopes: impl AsRef<str>) -> Self {
        Self {
            requirement: Arc::new(Requirement::Scopes(Scopes::required(scopes.as_ref()))),
        }
    }

    /// Also requires every scope of `scopes` (space-separated).
    pub fn and(self, scopes: impl AsRef<str>) -> Self {
        let more = match &*self.requirement {
            Requirement::Scopes(required) => required.and(scopes.as_ref()),
            _ => Scopes::required(scopes.as_ref()),
        };
        Self {
            requirement: Arc::new(Requirement::Scopes(more)),
        }
    }
}

impl fmt::Debug for RequireScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.requirement, f)
    }
}

impl<S> Layer<S> for RequireScope {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            requirement: Arc::clone(&self.requirement),
        }
    }
}
