//! The outcome of a positive authorization decision.

use std::fmt;

use super::decision::Granting;
use super::resource_action::ResourceAction;
use crate::member::AuthenticatedMember;

/// A positive authorization decision: who may do what, and which roles allowed it.
///
/// [`RequireAuthz`](crate::RequireAuthz) puts it in the request; take it as an
/// extractor (it answers 500 when no guard ran for the route). Cheap to clone.
///
/// # Examples
///
/// ```
/// use axum_stytch::Verdict;
///
/// async fn create(verdict: Verdict) -> String {
///     format!("allowed by {:?}", verdict.granting_roles())
/// }
/// ```
#[derive(Clone)]
pub struct Verdict {
    /// The member decided for: the roles `granting` refers to, and the organization.
    member: AuthenticatedMember,
    granting: Granting,
    decided: ResourceAction,
}

impl Verdict {
    /// A positive decision for `member` (a positive decision is always about the
    /// member's own organization).
    pub(crate) fn new(
        member: AuthenticatedMember,
        granting: Granting,
        decided: ResourceAction,
    ) -> Self {
        Self {
            member,
            granting,
            decided,
        }
    }

    /// Every role of the session that grants the permission, in the session's order.
    pub fn granting_roles(&self) -> Vec<&str> {
        self.granting.names(self.member.roles())
    }

    /// The organization the decision was about (the member's own: a member of another
    /// organization is never allowed).
    pub fn organization_id(&self) -> &str {
        self.member.organization_id()
    }

    /// The resource.
    pub fn resource(&self) -> &str {
        self.decided.resource()
    }

    /// The action.
    pub fn action(&self) -> &str {
        self.decided.action()
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verdict")
            .field("granting_roles", &self.granting_roles())
            .field("organization_id", &self.organization_id())
            .field("resource", &self.resource())
            .field("action", &self.action())
            .finish()
    }
}
