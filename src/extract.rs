//! The callers as axum extractors, required and optional: [`AuthenticatedMember`],
//! [`M2mCaller`], [`ConnectedAppCaller`] and [`Caller`] (any of them).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::caller::{Caller, ConnectedAppCaller, M2mCaller};
use crate::diagnostics::Diagnostics;
use crate::member::AuthenticatedMember;
use crate::rbac::Verdict;
use crate::rbac::resource_action::ResourceAction;
use crate::rejection::Failure;
use crate::rejection::{AuthRejection, Reason};
use crate::request::AuthContext;

/// The request's authentication state, or the 500 that says the layer is missing.
pub(crate) fn context(parts: &Parts) -> Result<&AuthContext, AuthRejection> {
    parts.extensions.get::<AuthContext>().ok_or_else(|| {
        Diagnostics::layer_missing();
        AuthRejection::new(Reason::LayerMissing)
    })
}

/// The rejection for `failure`, through the user's error handler.
pub(crate) fn reject(ctx: &AuthContext, failure: Failure, parts: &Parts) -> AuthRejection {
    through_handler(failure.rejection(None), ctx, parts)
}

/// The rejection for a failed authorization of `wanted`, through the user's error
/// handler. 403 bodies name the permission (never the member's roles).
pub(crate) fn reject_authz(
    ctx: &AuthContext,
    failure: Failure,
    wanted: &ResourceAction,
    parts: &Parts,
) -> AuthRejection {
    through_handler(failure.rejection(Some(wanted)), ctx, parts)
}

/// `rejection` with the layer's challenge, through the user's error handler.
fn through_handler(rejection: AuthRejection, ctx: &AuthContext, parts: &Parts) -> AuthRejection {
    let core = ctx.core();
    rejection
        .with_bearer_challenge(core.credentials.bearer(), core.resource_metadata_url())
        .customize(core.error_handler.as_ref(), parts)
}

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedMember {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        ctx.member().await.map_err(|f| reject(ctx, f, parts))
    }
}

/// `Option<AuthenticatedMember>`: `None` when there is no valid session (missing,
/// malformed, forged, expired or revoked credentials); still a rejection when the
/// answer is unknown (503, Stytch unavailable) or the layer is missing (500).
impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedMember {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = context(parts)?;
        optional(ctx, ctx.member().await, parts)
    }
}

/// Any caller: 401 without a valid credential of a kind the layer takes.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        ctx.caller().await.map_err(|f| reject(ctx, f, parts))
    }
}

/// `Option<Caller>`: `None` without a valid credential; still a rejection when the
/// answer is unknown (503) or the layer is missing (500).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = context(parts)?;
        optional(ctx, ctx.caller().await, parts)
    }
}

/// Implements the required and optional extractors of a machine caller: the variant
/// `$variant` of [`Caller`]; any other caller is `caller_not_accepted` (401).
macro_rules! machine_extractor {
    ($ty:ty, $variant:ident) => {
        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Self, Self::Rejection> {
                let ctx = context(parts)?;
                let caller = ctx.caller().await.and_then(|caller| match caller {
                    Caller::$variant(caller) => Ok(caller),
                    _ => Err(crate::request::context::not_accepted(ctx.core())),
                });
                caller.map_err(|f| reject(ctx, f, parts))
            }
        }

        /// `None` for any other caller, or none.
        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                let ctx = context(parts)?;
                let caller = ctx.caller().await.map(|caller| match caller {
                    Caller::$variant(caller) => Some(caller),
                    _ => None,
                });
                match caller {
                    Ok(caller) => Ok(caller),
                    Err(f) => optional(ctx, Err::<(), _>(f), parts).map(|_| None),
                }
            }
        }
    };
}

machine_extractor!(M2mCaller, M2m);
machine_extractor!(ConnectedAppCaller, ConnectedApp);

/// An optional extractor's answer: `None` for a client error (no valid credential of
/// the kind), the rejection otherwise (503, 500).
pub(crate) fn optional<T>(
    ctx: &AuthContext,
    outcome: Result<T, Failure>,
    parts: &Parts,
) -> Result<Option<T>, AuthRejection> {
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(f) if f.reason.status().is_client_error() => Ok(None),
        Err(f) => Err(reject(ctx, f, parts)),
    }
}

/// The verdict of the guard that ran for the route (500 `misconfigured` without one).
impl<S: Send + Sync> FromRequestParts<S> for Verdict {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let decided_at_once = match parts.extensions.get::<AuthContext>() {
            Some(AuthContext::Verified { verdict, .. }) => verdict.as_ref(),
            _ => None,
        };
        decided_at_once
            .or_else(|| parts.extensions.get::<Verdict>())
            .cloned()
            .ok_or_else(|| AuthRejection::new(Reason::Misconfigured))
    }
}
