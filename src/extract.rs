//! `AuthenticatedMember` as a required and an optional axum extractor.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::member::AuthenticatedMember;
use crate::rbac::resource_action::ResourceAction;
use crate::rejection::Failure;
use crate::rejection::{AuthRejection, Reason};
use crate::request_auth::AuthContext;
use crate::util::warn_limiter::WarnLimiter;

/// The request's authentication state, or the 500 that says the layer is missing.
pub(crate) fn context(parts: &Parts) -> Result<&AuthContext, AuthRejection> {
    // Without the layer there is no configured clock: the system's decides only when
    // to log again (every request of such a route fails the same way).
    static LAYER_MISSING: WarnLimiter = WarnLimiter::new();
    parts.extensions.get::<AuthContext>().ok_or_else(|| {
        if LAYER_MISSING.allow(crate::clock::unix_seconds(std::time::SystemTime::now())) {
            tracing::error!(
                "AuthenticatedMember or RequireAuthz used on a route without the StytchAuth \
                 layer (logged at most once a minute)"
            );
        }
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

/// `rejection` with the layer's 401 challenge, through the user's error handler.
fn through_handler(rejection: AuthRejection, ctx: &AuthContext, parts: &Parts) -> AuthRejection {
    let inner = &ctx.auth().inner;
    rejection
        .with_bearer_challenge(inner.credentials.bearer())
        .customize(inner.error_handler.as_ref(), parts)
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
        match ctx.member().await {
            Ok(member) => Ok(Some(member)),
            Err(f) if f.reason.status().is_client_error() => Ok(None),
            Err(f) => Err(reject(ctx, f, parts)),
        }
    }
}
