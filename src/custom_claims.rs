//! [`CustomClaims<T>`]: a caller's custom claims as the handler's own type.

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::extract::{context, optional, reject};
use crate::rejection::{AuthRejection, Failure, Reason};
use crate::request::AuthContext;

/// Extractor: the caller's custom claims (a member session's, or an M2M or
/// Connected-App token's) deserialized as `T`.
///
/// Answers 401 without a valid caller, like the other extractors, and 500
/// `custom_claims_mismatch` when the claims do not fit `T`: the handler's type and
/// the Stytch custom-claims template disagree, which is the application's to fix
/// (logged as an error at most once a minute, naming the type, never the claims).
/// Make fields that not every session or token has `Option`s. `Option<CustomClaims<T>>`
/// is `None` without a valid caller, and still 500 on a mismatch.
///
/// The claims are the same whether the JWT was verified locally or by Stytch (the
/// session's `custom_claims` in its answer).
///
/// # Examples
///
/// ```
/// use axum_stytch::{AuthenticatedMember, CustomClaims};
///
/// #[derive(serde::Deserialize)]
/// struct Tenant {
///     plan: String,
///     seats: Option<u32>,
/// }
///
/// async fn plan(_member: AuthenticatedMember, CustomClaims(tenant): CustomClaims<Tenant>) -> String {
///     format!("{} ({} seats)", tenant.plan, tenant.seats.unwrap_or(1))
/// }
/// ```
#[derive(Clone, Copy, Default)]
pub struct CustomClaims<T>(pub T);

impl<T: fmt::Debug> fmt::Debug for CustomClaims<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CustomClaims").field(&self.0).finish()
    }
}

impl<T> CustomClaims<T> {
    /// The claims.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The caller's claims as `T`, or the failure that says why not.
async fn claims<T: DeserializeOwned>(ctx: &AuthContext) -> Result<T, Failure> {
    let caller = ctx.caller().await?;
    // serde's message may quote a claim's value: not logged (`custom_claims_as` hands
    // it to a handler that wants it).
    T::deserialize(caller.custom_claims()).map_err(|_| {
        let type_name = std::any::type_name::<T>();
        let core = ctx.core();
        core.diagnostics.custom_claims_mismatch(type_name);
        core.metrics.failure(Reason::CustomClaimsMismatch);
        Failure::new(Reason::CustomClaimsMismatch)
    })
}

impl<S, T> FromRequestParts<S> for CustomClaims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        claims(ctx)
            .await
            .map(CustomClaims)
            .map_err(|f| reject(ctx, f, parts))
    }
}

impl<S, T> OptionalFromRequestParts<S> for CustomClaims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = context(parts)?;
        optional(ctx, claims(ctx).await.map(CustomClaims), parts)
    }
}
