//! In-process Stytch emulator (feature `test-util`).
//!
//! [`StytchEmulator`] is a real HTTP server on `127.0.0.1` that speaks the
//! subset of the Stytch B2B API this crate (and the official `stytch` crate)
//! uses, so middleware can be tested end to end without network access:
//!
//! | route | auth | notes |
//! |---|---|---|
//! | `POST /v1/b2b/sessions/authenticate` | Basic | token or JWT (expired JWTs accepted if validly signed), `session_duration_minutes`, `session_custom_claims`, `authorization_check` |
//! | `POST /v1/b2b/sessions/revoke` | Basic | one of `member_session_id`, `session_token`, `session_jwt`, `member_id` |
//! | `GET /v1/b2b/sessions/jwks/{project_id}` | none | all nine JWK fields |
//! | `GET /v1/b2b/rbac/policy` | Basic | project policy incl. Stytch default roles/resources |
//! | `GET /v1/b2b/rbac/organizations/{organization_id}` | Basic | organization custom roles |
//!
//! Request bodies may use `null` for absent fields, GET bodies and query
//! strings are ignored, and every error carries the five Stytch error fields
//! (`status_code`, `request_id`, `error_type`, `error_message`, `error_url`).
//!
//! Error types answered: `unauthorized_credentials` (401, bad Basic auth),
//! `jwt_invalid` (401, a session JWT that is malformed, not RS256, signed by a
//! key that is not served, or issued for another issuer/audience; Stytch does not
//! document its answer to such a JWT, so this one is the emulator's: the layer
//! treats it, and any 400, as a refused credential),
//! `session_not_found` (404), `member_not_found` (404, revoke by unknown
//! `member_id`), `organization_not_found` (404), `project_not_found` (404,
//! JWKS of another project), `too_many_session_arguments` (400),
//! `bad_request` (400), `session_authorization_tenancy_error` (403),
//! `session_authorization_error` (403), `not_found` (404, unknown route) and
//! `method_not_allowed` (405).
//!
//! Time on the emulator is a [`MockClock`] ([`StytchEmulator::clock`]); hand
//! the same clock to the middleware so both agree on session and token
//! expiry. Fault injection ([`Fault`]), request counters and
//! [`StytchEmulator::set_refusing_connections`] simulate an unhealthy
//! Stytch.
//!
//! The layer's waits run on that clock too, and a mock clock does not move by
//! itself:
//!
//! * after a failure: the `Retry-After` of a 429 or 503 (1 s without one), the
//!   JWKS cooldown after a failed key fetch (30 s by default) and the policy's
//!   retry backoff (5 s). After [`clear_faults`](StytchEmulator::clear_faults),
//!   advance the clock past them, or the layer keeps answering 503 without
//!   calling the emulator;
//! * a JWT with a `kid` the layer has not seen refreshes the JWKS at most once
//!   per cooldown (30 s): after a second
//!   [`rotate_keys`](StytchEmulator::rotate_keys) within it, advance the clock;
//! * the RBAC policy a layer has loaded is kept for `policy_refresh_interval`
//!   (300 s): after [`set_policy`](StytchEmulator::set_policy) or
//!   [`set_organization_roles`](StytchEmulator::set_organization_roles), advance
//!   the clock past it (or build the layer with a shorter interval) for the
//!   layer to see the change.
//!
//! Ids carry the environment of the project id: `member-test-<uuid>` for
//! `project-test-…` projects and `member-live-<uuid>` for `project-live-…`
//! ones (likewise for organizations, sessions, keys and request ids).
//!
//! # Examples
//!
//! ```
//! use axum_stytch::testing::StytchEmulator;
//!
//! #[tokio::main]
//! async fn main() {
//!     let emulator = StytchEmulator::start().await;
//!     let org = emulator.create_organization("acme");
//!     let member = emulator.create_member(&org, "ada@acme.test", &["editor"]);
//!     let tokens = emulator.create_session(&member);
//!
//!     let response = reqwest::Client::new()
//!         .post(format!("{}/v1/b2b/sessions/authenticate", emulator.base_url()))
//!         .basic_auth(emulator.project_id(), Some(emulator.secret()))
//!         .json(&serde_json::json!({ "session_token": tokens.session_token }))
//!         .send()
//!         .await
//!         .unwrap();
//!     assert_eq!(response.status(), 200);
//!     let body: serde_json::Value = response.json().await.unwrap();
//!     assert_eq!(body["member_session"]["roles"], serde_json::json!(["stytch_member", "editor"]));
//!     assert_eq!(emulator.requests(axum_stytch::testing::Endpoint::Authenticate), 1);
//! }
//! ```

mod emulator;
mod endpoints;
mod faults;
mod keys;
mod listener;
mod model;
mod options;
mod server;
mod wire;

pub use self::emulator::StytchEmulator;
pub use self::faults::{Endpoint, Fault};
pub use self::options::{EmulatorOptions, SessionInfo, SessionOptions, SessionTokens};
pub use crate::clock::MockClock;
pub use crate::rbac::policy::{Permission, Policy, Resource, Role, Scope};

#[cfg(test)]
mod tests;
