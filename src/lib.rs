//! axum-stytch
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod client;
mod clock;
mod config;
mod cookies;
mod credentials;
mod error;
mod extract;
mod jwt;
mod layer;
mod member;
mod metrics;
pub mod rbac;
mod request_auth;
mod single_flight;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod timestamp;

pub use auth::StytchAuth;
pub use client::{ApiError, ClientError};
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, StytchAuthBuilder};
pub use cookies::{SameSite, SessionCookies};
pub use error::{AuthRejection, Reason};
pub use layer::{ResponseFuture, StytchAuthLayer, StytchAuthService};
pub use member::{AuthMethod, AuthenticatedMember, AuthenticationFactor};
pub use metrics::MetricsSnapshot;
pub use rbac::guard::{GuardService, RequireAuthz, RequireSession};
pub use rbac::typed::{Authorized, RequiredPermission};
