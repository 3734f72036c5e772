//! Stytch B2B session authentication and RBAC authorization for axum, as one
//! `.layer()`.
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use axum_stytch::{AuthenticatedMember, RequireAuthz, StytchAuth};
//!
//! async fn me(member: AuthenticatedMember) -> String {
//!     member.member_id().to_owned()
//! }
//!
//! # fn app() -> Result<Router, axum_stytch::ConfigError> {
//! // StytchAuth::from_env() reads STYTCH_PROJECT_ID, STYTCH_SECRET, STYTCH_BASE_URL.
//! let auth = StytchAuth::builder("project-test-00000000-0000-0000-0000-000000000000", "secret-test-...")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/documents", post(|| async { "created" })
//!         .route_layer(RequireAuthz::new("document", "create")))
//!     .layer(auth.layer());
//! # Ok(app) }
//! # app().unwrap();
//! ```
//!
//! # Request flow
//!
//! 1. **Credentials.** The layer reads the `stytch_session_jwt` and `stytch_session`
//!    cookies (names configurable) in one pass over the `Cookie` header, and
//!    `Authorization: Bearer` when enabled. A session cookie over the size cap, or
//!    repeated, is rejected without being parsed further.
//! 2. **Local JWT.** A session JWT is verified locally: RS256 only, the key chosen by
//!    `kid` from Stytch's JWKS (cached), `iss` = `stytch.com/<project_id>` (or the
//!    custom base URL's origin), `aud` contains the project id, `exp`/`nbf`/`iat` with a
//!    small leeway, and `iat` no older than `max_token_age`. A JWT seen before is
//!    answered from a cache of verified tokens without RSA work. No call to Stytch.
//! 3. **Remote.** A JWT that is validly signed but expired or too old, or a session
//!    token alone, is sent to Stytch's `POST /v1/b2b/sessions/authenticate`, lazily:
//!    when an extractor or guard first needs the member. Identical concurrent calls share one request. Renewed credentials go back as `Set-Cookie`; a session Stytch
//!    no longer knows has its cookies cleared. A forged, tampered or malformed JWT is
//!    answered locally (401, or 503 while the keys cannot be fetched) and never sent
//!    to Stytch; a `kid` missing from the cached JWKS refreshes it at most once per
//!    cooldown, for all requests together.
//! 4. **Member.** Handlers take [`AuthenticatedMember`] (401 without a session) or
//!    `Option<AuthenticatedMember>`; [`RequireSession`] protects a whole router.
//! 5. **Guard.** [`RequireAuthz`] (or the typed [`Authorized`] extractor) checks the
//!    member's roles against Stytch's RBAC policy (cached, refreshed every 5 minutes)
//!    for a locally verified JWT; when the request needs Stytch anyway, Stytch decides
//!    in the same `authenticate` call. 401 without a session, 403 when not allowed or
//!    for another organization, 503 when Stytch is needed and unreachable.
//!
//! # Machine and agent callers
//!
//! Services (Stytch M2M client-credentials tokens) and AI agents or MCP clients acting
//! for a member (Stytch Connected-App access tokens) call the same API with
//! `Authorization: Bearer`, verified locally with the same keys, rules and cache as
//! session JWTs:
//!
//! ```
//! use axum::{Router, routing::get};
//! use axum_stytch::{Caller, RequireAuthz, RequireScope, StytchAuth};
//!
//! fn app() -> Result<Router, axum_stytch::ConfigError> {
//!     let auth = StytchAuth::builder("project-live-...", "secret-live-...")
//!         .m2m_tokens(true) // services: M2M client-credentials tokens
//!         .connected_app_tokens(true) // agents acting for a member
//!         .build()?;
//!     Ok(Router::new()
//!         .route("/reports", get(|| async { "q1" }).route_layer(RequireScope::new("read:reports")))
//!         .route("/documents", get(|caller: Caller| async move { format!("{caller:?}") })
//!             .route_layer(RequireAuthz::new("document", "read"))) // members by roles, agents by scopes
//!         .layer(auth.layer()))
//! }
//! # app().unwrap();
//! ```
//!
//! * **Kinds.** A JWT with Stytch's session claim is a member session; otherwise one
//!   with `client_id` is a Connected-App token (it must name its organization); any
//!   other is an M2M token (it must carry a `scope` string). A token is taken only as
//!   its kind, only where that kind is enabled, and never from a session cookie:
//!   [`AuthenticatedMember`] and [`RequireSession`] mean a member session,
//!   [`M2mCaller`] an M2M token, [`ConnectedAppCaller`] a Connected-App token,
//!   [`Caller`] any of them; another kind gets 401 `caller_not_accepted`.
//! * **Scopes.** [`RequireScope`] matches M2M scopes as Stytch's SDKs do (`read:*`
//!   grants `read:users`, `*` only as the resource), splitting `a:b:c` at the first
//!   colon as the Go and Rust SDKs do (Node, Ruby and Java drop the tail, which would
//!   let `read:users:archived` grant `read:users`); Connected-App scopes are matched
//!   exactly. A missing scope is 403 `insufficient_scope` with
//!   `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`.
//! * **RBAC.** [`RequireAuthz`] admits a Connected-App token when one of its scopes
//!   grants the permission in the project policy's `scopes`, in the token's own
//!   organization; the member's roles are never consulted (a token carries none, and a
//!   role change does not shrink a live token). M2M tokens are refused (403): their
//!   scopes are the client's own strings, not the policy's.
//! * **No remote check.** Stytch has none for M2M tokens, and Connected-App
//!   introspection would cost a call per request: machine tokens are trusted until
//!   `exp` or [`machine_token_max_age`](StytchAuthBuilder::machine_token_max_age)
//!   (1 hour), whichever comes first. A deleted client or a revoked consent is not
//!   seen before then.
//! * **MCP.** [`protected_resource`](StytchAuthBuilder::protected_resource) and
//!   [`StytchAuth::protected_resource_metadata`] serve RFC 9728 metadata naming the
//!   project domain as authorization server, and every 401 and 403 names it
//!   (`resource_metadata="…"`).
//!
//! # Configuration
//!
//! | builder method | default |
//! |---|---|
//! | [`base_url`](StytchAuthBuilder::base_url) | `https://api.stytch.com` for `project-live-` ids, else `https://test.stytch.com` |
//! | [`max_token_age`](StytchAuthBuilder::max_token_age) | 300 s (`0`: always ask Stytch) |
//! | [`clock_leeway`](StytchAuthBuilder::clock_leeway) | 5 s |
//! | [`session_jwt_cookie`](StytchAuthBuilder::session_jwt_cookie) / [`session_token_cookie`](StytchAuthBuilder::session_token_cookie) | `stytch_session_jwt` / `stytch_session` |
//! | [`bearer_tokens`](StytchAuthBuilder::bearer_tokens) | off |
//! | [`m2m_tokens`](StytchAuthBuilder::m2m_tokens), [`connected_app_tokens`](StytchAuthBuilder::connected_app_tokens) | off, off |
//! | [`machine_token_max_age`](StytchAuthBuilder::machine_token_max_age) | 1 hour |
//! | [`project_domain`](StytchAuthBuilder::project_domain), [`protected_resource`](StytchAuthBuilder::protected_resource) | none, none |
//! | [`grpc_status_errors`](StytchAuthBuilder::grpc_status_errors) (gRPC statuses for gRPC requests; reads bearer tokens) | off (JSON) |
//! | [`max_cookie_size`](StytchAuthBuilder::max_cookie_size) | 4096 bytes |
//! | [`session_duration`](StytchAuthBuilder::session_duration) | not extended |
//! | [`cookie_path`](StytchAuthBuilder::cookie_path), [`cookie_domain`](StytchAuthBuilder::cookie_domain) | `/`, host-only |
//! | `Secure` ([`allow_insecure_cookies`](StytchAuthBuilder::allow_insecure_cookies) drops it), `HttpOnly` ([`cookies_readable_by_javascript`](StytchAuthBuilder::cookies_readable_by_javascript) drops it), [`cookie_same_site`](StytchAuthBuilder::cookie_same_site) | on, on, `Lax` |
//! | [`browser_sdk_cookies`](StytchAuthBuilder::browser_sdk_cookies) | off: this server owns the session cookies and writes renewals back; on: Stytch's browser SDK owns them, the layer only reads them (README, "Two ways to deploy Stytch") |
//! | [`connect_timeout`](StytchAuthBuilder::connect_timeout), [`request_timeout`](StytchAuthBuilder::request_timeout) | 2 s, 5 s |
//! | [`max_concurrent_authentications`](StytchAuthBuilder::max_concurrent_authentications) | 256 calls in flight |
//! | [`unverified_authentications_per_second`](StytchAuthBuilder::unverified_authentications_per_second), [`max_concurrent_unverified_authentications`](StytchAuthBuilder::max_concurrent_unverified_authentications) | 20 calls per second, 32 in flight (session tokens not yet confirmed by Stytch) |
//! | [`jwks_refresh_interval`](StytchAuthBuilder::jwks_refresh_interval), [`jwks_refresh_cooldown`](StytchAuthBuilder::jwks_refresh_cooldown), [`jwks_max_stale`](StytchAuthBuilder::jwks_max_stale) | 300 s, 30 s, 1 h |
//! | [`token_cache_capacity`](StytchAuthBuilder::token_cache_capacity), [`revocation_capacity`](StytchAuthBuilder::revocation_capacity) | 10,000, 100,000 |
//! | `revocations_in_redis`, `redis_key_prefix`, `revocation_feed_max_staleness` (feature `redis`) | off (each instance knows its own logouts), `axum-stytch:`, off |
//! | [`policy_refresh_interval`](StytchAuthBuilder::policy_refresh_interval), [`policy_grace`](StytchAuthBuilder::policy_grace), [`org_policy_capacity`](StytchAuthBuilder::org_policy_capacity) | 300 s (max), 15 min, 1,000 |
//! | [`clock`](StytchAuthBuilder::clock) | the system clock |
//! | [`error_handler`](StytchAuthBuilder::error_handler) | JSON `{"error": reason, "message": ...}` |
//!
//! # Security notes
//!
//! * **Fail closed.** When the crate cannot decide (Stytch unreachable when it must be
//!   asked, no keys, policy older than its grace) the answer is 503, never a pass.
//! * **Revocation window.** A locally verified JWT stays valid until it is
//!   `max_token_age` old (at most 5 minutes), even if the session was revoked at Stytch
//!   meanwhile. [`StytchAuth::logout`] refuses the session's JWTs on this instance at
//!   once; other instances accept them until they age out, unless the fleet shares
//!   revocations through Redis (feature `redis`, `revocations_in_redis`): then within
//!   milliseconds. Lower `max_token_age` to
//!   shrink the window (each request then costs more calls to Stytch), or set it to
//!   zero to ask Stytch every time.
//! * **RBAC freshness.** Local decisions use a policy at most 5 minutes old (plus the
//!   grace when Stytch is down). Members whose requests go to Stytch anyway are decided
//!   by Stytch with current roles and policy. For a bare session token on a route whose
//!   organization is the member's own, the organization is unknown before asking
//!   Stytch; the session is confirmed remotely and the decision is made locally with
//!   the roles Stytch just returned.
//! * **CSRF.** Cookie authentication is ambient: browsers attach the cookies to
//!   cross-site requests. `SameSite=Lax` (the default) stops cookies on cross-site
//!   POST, PUT, DELETE and on cross-site subresource requests, but not on top-level
//!   GET navigations, and not from sibling subdomains (same site). Keep GET handlers
//!   free of side effects, and add a CSRF defence (an origin check or tokens) for
//!   state-changing routes if any same-site origin is not fully trusted. Bearer tokens
//!   are not sent automatically and are not exposed to CSRF.
//! * **Logs.** Tokens, JWTs and the secret never appear in logs or `Debug` output.
//!
//! # Metrics and tracing
//!
//! [`StytchAuth::metrics`] reads the layer's counters. With the `metrics` feature, the
//! same counters, the latency of each call to Stytch by endpoint and result, and the
//! caches' sizes go to the [`metrics`](https://docs.rs/metrics) crate's facade, so
//! `metrics-exporter-prometheus` or an OpenTelemetry bridge exports them as they are:
//! README's "Metrics and tracing" section lists every name, type and label. Requests
//! never call the facade themselves: each thread counts in its own cache line, and the
//! layer publishes at most once a second (or when `StytchAuth::publish_metrics` asks).
//! Two `DEBUG` spans, `stytch.session` (one per request: `path`, `outcome`) and
//! `stytch.authenticate` (one per call: `path`, `check`, `result`), carry no credential
//! or id.
//!
//! # Compared with calling the official `stytch` crate
//!
//! The official crate is a complete API client, but it has no local JWT verification
//! for B2B sessions and no local RBAC: every request would cost a call to Stytch
//! (tens of milliseconds) and Stytch's rate limits. This crate verifies locally in
//! microseconds, falls back to Stytch only when needed, coalesces calls, and turns the
//! outcome into axum extractors, guards and cookies. Use the official crate for the
//! rest of the API (logins, members, organizations) next to it; see
//! [`StytchAuth::session_cookies`] to store a login's session.
//!
//! # gRPC
//!
//! A tonic server is an axum router: the same layer and guards protect it, and with
//! [`grpc_status_errors`](StytchAuthBuilder::grpc_status_errors) gRPC requests are
//! refused with `UNAUTHENTICATED`, `PERMISSION_DENIED`, `UNAVAILABLE` or `INTERNAL`
//! statuses. A tonic method reads the member with
//! [`AuthenticatedMember::from_extensions`] (a machine caller with
//! [`Caller::from_extensions`] and its kinds'). See [`grpc`].
//!
//! # Testing
//!
//! With the `test-util` feature, `axum_stytch::testing::StytchEmulator` is an
//! in-process Stytch (a real HTTP server on 127.0.0.1) that mints real session JWTs, so
//! your tests run offline. `emulator.auth_builder()` returns a builder pointed at it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod authorized;
mod caller;
mod client;
mod clock;
mod config;
mod cookies;
mod core;
mod credentials;
mod custom_claims;
mod diagnostics;
mod extract;
#[cfg(feature = "redis")]
mod fleet;
pub mod grpc;
pub mod guard;
#[cfg(feature = "__internals")]
#[doc(hidden)]
pub mod internals;
mod jwt;
pub mod layer;
mod local;
mod member;
mod metrics;
mod rbac;
mod rejection;
mod remote;
mod request;
mod resource_metadata;
mod revocation;
mod scope;
mod serde_helpers;
#[cfg(test)]
mod test_logs;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod timestamp;
mod unverified;
mod util;

pub use auth::StytchAuth;
pub use authorized::{Authorized, RequiredPermission};
pub use caller::{Caller, ConnectedAppCaller, M2mCaller};
pub use client::{ApiError, ClientError};
pub use clock::{Clock, SystemClock};
pub use config::{ConfigError, StytchAuthBuilder};
pub use cookies::{SameSite, SessionCookies};
pub use custom_claims::CustomClaims;
pub use guard::{RequireAuthz, RequireScope, RequireSession};
pub use layer::StytchAuthLayer;
pub use member::{AuthMethod, AuthenticatedMember, AuthenticationFactor};
pub use metrics::MetricsSnapshot;
pub use rbac::Verdict;
pub use rejection::{AuthRejection, Reason};
pub use resource_metadata::ProtectedResource;
