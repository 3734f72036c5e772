//! Permissions declared as types, checked by the [`Authorized`] extractor.

use std::fmt;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::caller::Caller;
use crate::extract::{context, reject_authz};
use crate::member::AuthenticatedMember;
use crate::rbac::Verdict;
use crate::rbac::resource_action::ResourceAction;
use crate::rejection::AuthRejection;
use crate::request::context::not_accepted;

/// A permission declared once as a type: a resource and an action of your Stytch RBAC
/// policy. Declare it with [`permission!`](crate::permission) or by hand.
///
/// # Examples
///
/// ```
/// use axum_stytch::{Authorized, RequiredPermission};
///
/// struct CreateDocument;
/// impl RequiredPermission for CreateDocument {
///     const RESOURCE: &'static str = "document";
///     const ACTION: &'static str = "create";
/// }
///
/// async fn create(auth: Authorized<CreateDocument>) -> String {
///     format!("{} may create", auth.member().member_id())
/// }
/// ```
pub trait RequiredPermission: Send + Sync + 'static {
    /// The resource id.
    const RESOURCE: &'static str;
    /// The action.
    const ACTION: &'static str;
}

/// Declares a [`RequiredPermission`] type.
///
/// # Examples
///
/// ```
/// axum_stytch::permission!(pub ReadDocument = "document", "read");
///
/// async fn read(auth: axum_stytch::Authorized<ReadDocument>) -> String {
///     auth.verdict().granting_roles().join(",")
/// }
/// ```
#[macro_export]
macro_rules! permission {
    ($(#[$meta:meta])* $vis:vis $name:ident = $resource:expr, $action:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::RequiredPermission for $name {
            const RESOURCE: &'static str = $resource;
            const ACTION: &'static str = $action;
        }
    };
}

/// Extractor: the member, allowed to perform `P` in their own organization, with the
/// verdict. Rejects like [`RequireAuthz`](crate::RequireAuthz): 401, 403 or 503. A
/// machine caller is never let through, as the guard would refuse it (an M2M token:
/// 403 `permission_denied`; a Connected App whose scopes do not grant `P`: 403
/// `insufficient_scope`), or, when its scopes do grant `P`, with 401
/// `caller_not_accepted`: this extractor hands out a member (guard routes for agents
/// with `RequireAuthz`).
///
/// The same decision as the guard, made the same way (without waiting when the JWT
/// was verified locally and the cached policy is fresh, at the time the layer verified
/// it), but with no layer of axum's around the handler and no allocation: the
/// cheapest RBAC check per request (see `BENCHMARKS.md`). Use
/// [`RequireAuthz`](crate::RequireAuthz) for a permission on another organization
/// (`organization_from_path`) or to guard routes whose handlers you do not write.
pub struct Authorized<P> {
    member: AuthenticatedMember,
    verdict: Verdict,
    _permission: PhantomData<fn() -> P>,
}

impl<P> Authorized<P> {
    /// The member.
    pub fn member(&self) -> &AuthenticatedMember {
        &self.member
    }

    /// The decision, with the roles that granted it.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The member and the verdict.
    pub fn into_parts(self) -> (AuthenticatedMember, Verdict) {
        (self.member, self.verdict)
    }
}

impl<P> fmt::Debug for Authorized<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized")
            .field("member", &self.member)
            .field("verdict", &self.verdict)
            .finish()
    }
}

impl<S: Send + Sync, P: RequiredPermission> FromRequestParts<S> for Authorized<P> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        let wanted = ResourceAction::from_static(P::RESOURCE, P::ACTION);
        let (caller, verdict) = ctx
            .authorize(None, &wanted)
            .await
            .map_err(|f| reject_authz(ctx, f, &wanted, parts))?;
        match caller {
            Caller::Member(member) => Ok(Self {
                member,
                verdict,
                _permission: PhantomData,
            }),
            _ => Err(reject_authz(ctx, not_accepted(ctx.core()), &wanted, parts)),
        }
    }
}
