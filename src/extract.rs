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
use crate::request::context::not_accepted;

/// The request's authentication state, or the 500 that says the layer is missing.
pub(crate) fn context(parts: &Parts) -> Result<&AuthContext, AuthRejection> {
    context_in(&parts.extensions)
}

fn context_in(extensions: &http::Extensions) -> Result<&AuthContext, AuthRejection> {
    extensions.get::<AuthContext>().ok_or_else(|| {
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

/// `rejection` with the layer's challenge (and, for a gRPC request with
/// `grpc_status_errors`, as a gRPC status), through the user's error handler.
fn through_handler(rejection: AuthRejection, ctx: &AuthContext, parts: &Parts) -> AuthRejection {
    let core = ctx.core();
    challenged(rejection, ctx)
        .with_grpc_status(core.grpc_status_errors && crate::grpc::is_grpc_request(&parts.headers))
        .customize(core.error_handler.as_ref(), parts)
}

/// `rejection` with the layer's 401 challenge (`Bearer` or `Cookie`, and the
/// protected-resource metadata URL).
fn challenged(rejection: AuthRejection, ctx: &AuthContext) -> AuthRejection {
    let core = ctx.core();
    rejection.with_bearer_challenge(core.credentials.bearer(), core.resource_metadata_url())
}

/// The rejection for `failure` outside an extractor (no request parts): with the
/// layer's challenge, without the error handler.
fn reject_outside(ctx: &AuthContext, failure: Failure) -> AuthRejection {
    challenged(failure.rejection(None), ctx)
}

/// Implements a caller's extractor and its `Option` form: `$get` is the caller (or the
/// failure) for the request's context `$ctx`. The optional form is `None` for a client
/// error (no valid credential, or a caller of another kind: 401), and still rejects
/// when the answer is unknown (503) or the layer is missing (500).
/// Also implements `from_extensions`, documented by the attributes before the type.
macro_rules! caller_extractor {
    ($(#[$doc:meta])* $ty:ty, |$ctx:ident| $get:expr) => {
        impl $ty {
            $(#[$doc])*
            pub async fn from_extensions(
                extensions: &http::Extensions,
            ) -> Result<Self, AuthRejection> {
                let $ctx = context_in(extensions)?;
                $get.await.map_err(|f| reject_outside($ctx, f))
            }
        }

        impl<S: Send + Sync> FromRequestParts<S> for $ty {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Self, Self::Rejection> {
                let $ctx = context(parts)?;
                $get.await.map_err(|f| reject($ctx, f, parts))
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $ty {
            type Rejection = AuthRejection;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                let $ctx = context(parts)?;
                optional($ctx, $get.await, parts)
            }
        }
    };
}

// A member session only: a machine caller is `caller_not_accepted`.
caller_extractor!(
    /// The member of the request whose extensions these are, for code that sees the
    /// request's `http::Extensions` rather than axum's extractors: a tonic method
    /// (`request.extensions()`), a tower service. Asks Stytch first when the request
    /// needs it (once per request; not again after a guard or extractor did), as the
    /// [`AuthenticatedMember`] extractor does.
    ///
    /// The rejection is the extractor's (401 without a valid session, 503 when Stytch
    /// is needed and unreachable, 500 `layer_missing` without the layer), without the
    /// [`error_handler`](crate::StytchAuthBuilder::error_handler), which needs the
    /// request's parts: turn it into a gRPC status with
    /// [`grpc_code`](AuthRejection::grpc_code) and
    /// [`grpc_message`](AuthRejection::grpc_message) (see [`grpc`](crate::grpc)).
    ///
    /// ```
    /// use axum_stytch::AuthenticatedMember;
    /// use tonic::{Code, Request, Response, Status};
    ///
    /// async fn whoami(request: Request<()>) -> Result<Response<String>, Status> {
    ///     let member = AuthenticatedMember::from_extensions(request.extensions())
    ///         .await
    ///         .map_err(|r| Status::new(Code::from(r.grpc_code()), r.grpc_message()))?;
    ///     Ok(Response::new(member.member_id().to_owned()))
    /// }
    /// ```
    AuthenticatedMember,
    |ctx| ctx.member()
);
// Any caller.
caller_extractor!(
    /// The caller of the request whose extensions these are (a member, an M2M client
    /// or a Connected App), for a tonic method or a tower service, as
    /// [`AuthenticatedMember::from_extensions`] gives the member; the rejections of the
    /// [`Caller`] extractor, without the error handler.
    Caller,
    |ctx| ctx.caller()
);
caller_extractor!(
    /// The M2M client of the request whose extensions these are, for a tonic method
    /// or a tower service (see [`AuthenticatedMember::from_extensions`]); 401
    /// `caller_not_accepted` for a caller of another kind.
    M2mCaller,
    |ctx| of_kind(ctx, |caller| match caller {
        Caller::M2m(m2m) => Some(m2m),
        _ => None,
    })
);
caller_extractor!(
    /// The Connected App of the request whose extensions these are, for a tonic method
    /// or a tower service (see [`AuthenticatedMember::from_extensions`]); 401
    /// `caller_not_accepted` for a caller of another kind.
    ConnectedAppCaller,
    |ctx| of_kind(ctx, |caller| match caller {
        Caller::ConnectedApp(app) => Some(app),
        _ => None,
    })
);

/// The caller, if `pick` takes its kind; `caller_not_accepted` otherwise.
async fn of_kind<T>(ctx: &AuthContext, pick: fn(Caller) -> Option<T>) -> Result<T, Failure> {
    let caller = ctx.caller().await?;
    pick(caller).ok_or_else(|| not_accepted(ctx.core()))
}

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
        if let Some(verdict) = decided_at_once.or_else(|| parts.extensions.get::<Verdict>()) {
            return Ok(verdict.clone());
        }
        let misconfigured = AuthRejection::new(Reason::Misconfigured);
        Err(match parts.extensions.get::<AuthContext>() {
            Some(ctx) => through_handler(misconfigured, ctx, parts),
            None => misconfigured,
        })
    }
}
