//! The outcome of a positive authorization decision.

use std::fmt;

use super::decision::Granting;
use super::resource_action::ResourceAction;
use crate::caller::ConnectedAppCaller;
use crate::member::AuthenticatedMember;

/// A positive authorization decision: who may do what, and which roles (of a member
/// session) or scopes (of a Connected-App token) allowed it.
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
    /// The caller decided for: the roles or scopes `granting` refers to, and the
    /// organization.
    subject: Subject,
    granting: Granting,
    decided: ResourceAction,
}

#[derive(Clone)]
enum Subject {
    Member(AuthenticatedMember),
    App(ConnectedAppCaller),
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
            subject: Subject::Member(member),
            granting,
            decided,
        }
    }

    /// A positive decision for a Connected App, `granting` naming its scopes.
    pub(crate) fn for_app(
        app: ConnectedAppCaller,
        granting: Granting,
        decided: ResourceAction,
    ) -> Self {
        Self {
            subject: Subject::App(app),
            granting,
            decided,
        }
    }

    /// Every role of the session that grants the permission, in the session's order
    /// (none for a Connected-App token).
    pub fn granting_roles(&self) -> Vec<&str> {
        match &self.subject {
            Subject::Member(member) => self.granting.names(member.roles()),
            Subject::App(_) => Vec::new(),
        }
    }

    /// Every scope of a Connected-App token that grants the permission, in the
    /// token's order (none for a member session).
    pub fn granting_scopes(&self) -> Vec<&str> {
        match &self.subject {
            Subject::App(app) => self.granting.names(app.scopes()),
            Subject::Member(_) => Vec::new(),
        }
    }

    /// The organization the decision was about (the caller's own: a caller of another
    /// organization is never allowed).
    pub fn organization_id(&self) -> &str {
        match &self.subject {
            Subject::Member(member) => member.organization_id(),
            Subject::App(app) => app.organization_id(),
        }
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
            .field("granting_scopes", &self.granting_scopes())
            .field("organization_id", &self.organization_id())
            .field("resource", &self.resource())
            .field("action", &self.action())
            .finish()
    }
}
