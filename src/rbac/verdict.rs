//! The outcome of a positive authorization decision.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::error::{AuthRejection, Reason};

/// A positive authorization decision: who may do what, and which roles allowed it.
///
/// [`RequireAuthz`](crate::RequireAuthz) puts it in the request; take it as an
/// extractor (it answers 500 when no guard ran for the route).
///
/// # Examples
///
/// ```
/// use axum_stytch::rbac::Verdict;
///
/// async fn create(verdict: Verdict) -> String {
///     format!("allowed by {:?}", verdict.granting_roles())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    granting_roles: Vec<String>,
    organization_id: String,
    resource: String,
    action: String,
}

impl Verdict {
    pub(crate) fn new(
        granting_roles: Vec<String>,
        organization_id: &str,
        resource: &str,
        action: &str,
    ) -> Self {
        Self {
            granting_roles,
            organization_id: organization_id.to_owned(),
            resource: resource.to_owned(),
            action: action.to_owned(),
        }
    }

    /// Every role of the session that grants the permission.
    pub fn granting_roles(&self) -> &[String] {
        &self.granting_roles
    }

    /// The organization the decision was about.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// The resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The action.
    pub fn action(&self) -> &str {
        &self.action
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Verdict {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Verdict>()
            .cloned()
            .ok_or_else(|| AuthRejection::new(Reason::Misconfigured))
    }
}
