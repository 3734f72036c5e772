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
//! | `POST /v1/public/{project_id}/oauth2/token` | M2M client | `grant_type=client_credentials`; see below |
//! | `POST /v1/oauth2/introspect`, `POST /v1/public/{project_id}/oauth2/introspect` | Connected App | RFC 7662: `token`, `token_type_hint` (ignored); see below |
//! | `GET /.well-known/jwks.json`, `GET /v1/public/{project_id}/.well-known/jwks.json` | none | the session JWKS's body |
//! | `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`, `GET /v1/public/{project_id}/.well-known/openid-configuration` | none | one document; see below |
//!
//! Request bodies may use `null` for absent fields, GET bodies and query
//! strings are ignored, and every error carries the five Stytch error fields
//! (`status_code`, `request_id`, `error_type`, `error_message`, `error_url`),
//! with OAuth's names (`error`, `error_description`, `error_uri`) on the token
//! and introspection endpoints.
//!
//! # Machine tokens
//!
//! The token and introspection endpoints take a form or a JSON body (a body
//! starting with `{` is JSON whatever its `Content-Type`, as Java's SDK labels its
//! JSON a form), and the client's `client_id` and `client_secret` in the body or
//! as HTTP Basic; credentials in the body win over an `Authorization` header, which
//! the SDKs that send the project's Basic credentials need.
//!
//! * Token: clients from [`StytchEmulator::create_m2m_client`]. `scope` is one
//!   space-delimited string of scopes given to the client (omitted: all of them).
//!   The Rust SDK's `scopes` array is ignored, so its tokens carry all the
//!   client's scopes (what Stytch does with it is unconfirmed). Answers
//!   `{"access_token","token_type":"bearer","expires_in":3600,"request_id","status_code"}`;
//!   the JWT has `sub` (the client id), `iss` ([`StytchEmulator::issuer`]), `aud`
//!   `[project_id]`, `scope`, `iat` = `nbf`, `exp = iat + 3600`, custom claims, and
//!   no `jti`. The authorization-code and refresh-token grants of Connected Apps
//!   are not emulated: mint their tokens with
//!   [`StytchEmulator::mint_connected_app_token`].
//! * Introspection: any app from [`StytchEmulator::create_connected_app`]
//!   authenticates. A Connected-App access token that verifies, was minted here,
//!   is not revoked and has not expired on the emulator's clock answers its claims
//!   (no `jti`) with `"active":true` and `"token_type":"access_token"`; any other
//!   token (M2M, session JWT, expired, revoked, malformed) answers HTTP 200
//!   `{"active":false,"request_id","status_code":200}`.
//! * Discovery: Stytch's documented OpenID configuration (plus
//!   `code_challenge_methods_supported: ["S256"]`) with the emulator as the project
//!   domain: `issuer` is the `iss` of minted JWTs ([`StytchEmulator::issuer`], the
//!   emulator's origin with [`EmulatorOptions::custom_domain`]) and the URLs are on
//!   [`StytchEmulator::base_url`]. Of these URLs the emulator serves `jwks_uri`
//!   only; `token_endpoint`, `userinfo_endpoint` and `authorization_endpoint` (your
//!   app's consent page, on Stytch) answer 404.
//!
//! Error types answered: `unauthorized_credentials` (401, bad Basic auth),
//! `jwt_invalid` (401, a session JWT that is malformed, not RS256, signed by a
//! key that is not served, or issued for another issuer/audience; Stytch does not
//! document its answer to such a JWT, so this one is the emulator's: the layer
//! treats it, and any 400, as a refused credential),
//! `session_not_found` (404), `member_not_found` (404, revoke by unknown
//! `member_id`), `organization_not_found` (404), `project_not_found` (404,
//! JWKS or metadata of another project), `too_many_session_arguments` (400),
//! `bad_request` (400), `session_authorization_tenancy_error` (403),
//! `session_authorization_error` (403), `not_found` (404, unknown route) and
//! `method_not_allowed` (405). The OAuth endpoints answer `invalid_client` (401,
//! unknown client, wrong secret, no credentials, or another project's path),
//! `invalid_request` (400, a missing `grant_type` or `token`, a malformed body,
//! a repeated form field), `unsupported_grant_type` (400) and `invalid_scope` (400,
//! a scope not given to the client); Stytch documents none of these codes but
//! `invalid_client`, so the others follow RFC 6749.
//!
//! Time on the emulator is a [`MockClock`] ([`StytchEmulator::clock`]); hand
//! the same clock to the middleware so both agree on session and token
//! expiry. It stands still unless a test moves it; with
//! [`EmulatorOptions::follow_real_time`] it follows real time, for clients that
//! read the system clock.
//!
//! # Other languages
//!
//! `cargo run --example emulator -- --port 4000` runs one on a fixed port with its
//! clock following real time, seeds an organization, an admin and a viewer with
//! sessions, an M2M client and a Connected App, and prints their credentials (as
//! shell `export` lines and one JSON line) for a Node or Python test suite to use
//! with Stytch's own SDK; see the README. [`EmulatorOptions::port`] and
//! [`EmulatorOptions::bind`] choose the address (by default a free port on
//! `127.0.0.1`). Fault injection ([`Fault`]), request counters and
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

mod clients;
mod emulator;
mod endpoints;
mod faults;
mod keys;
mod listener;
mod model;
mod oauth;
mod options;
mod server;
mod tokens;
mod wire;

pub use self::clients::{ConnectedApp, ConnectedAppOptions, M2mClient, M2mClientOptions};
pub use self::emulator::StytchEmulator;
pub use self::faults::{Endpoint, Fault};
pub use self::options::{EmulatorOptions, SessionInfo, SessionOptions, SessionTokens};
pub use crate::clock::MockClock;
pub use crate::rbac::policy::{Permission, Policy, Resource, Role, Scope};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_tests;
