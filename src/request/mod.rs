//! One request's authentication: the [`pipeline`] that decides it, and the
//! [`context`] it leaves in the request's extensions for the extractors and guards.
//!
//! A locally verified JWT is decided when the request enters the layer. A request that
//! needs Stytch (a session token, or a validly signed but stale JWT) is decided lazily,
//! by the first extractor or guard that asks: a guard can then fold its RBAC check
//! into the same `sessions/authenticate` call, and routes that never look at the
//! member cost no outbound call.

pub(crate) mod context;
pub(crate) mod pipeline;

pub(crate) use context::{AuthContext, RequestAuth};
pub(crate) use pipeline::{Begin, begin, finish};
