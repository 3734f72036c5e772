//! The test handle, [`StytchEmulator`]: starting the server, the project's
//! organizations, members, sessions, policies and keys, and fault injection. The
//! machine-token operations (M2M clients, Connected Apps) are in `tokens.rs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde_json::Value;

use super::faults::{Endpoint, Fault};
use super::options::{EmulatorOptions, SessionInfo, SessionOptions, SessionTokens};
use super::server::{self, Running, Shared};
use crate::clock::MockClock;
use crate::rbac::policy::{Policy, Role};

/// An in-process Stytch B2B API for tests.
///
/// Cheap to clone (all clones share one server). The server shuts down when
/// the last handle is dropped. All methods are synchronous except the
/// constructors; they may be called from inside or outside async code.
///
/// Methods that take an id of an organization, member or session that the
/// emulator does not know panic with a clear message: this is a test utility
/// and such a call is a bug in the test.
#[derive(Clone)]
pub struct StytchEmulator {
    inner: Arc<Running>,
}

impl fmt::Debug for StytchEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchEmulator")
            .field("project_id", &self.project_id())
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl StytchEmulator {
    /// Starts an emulator with a fresh `project-test-<uuid>` project, a random
    /// `secret-test-…` secret and a [`MockClock`] frozen at the current time, on
    /// a free port of `127.0.0.1`.
    ///
    /// Must be called inside a Tokio runtime; the server runs as a spawned
    /// task on it.
    ///
    /// # Panics
    ///
    /// If no port can be bound on `127.0.0.1`.
    pub async fn start() -> StytchEmulator {
        Self::start_with(EmulatorOptions::new()).await
    }

    /// Starts an emulator configured by `options`.
    ///
    /// # Panics
    ///
    /// If the address cannot be bound (by default a free port on `127.0.0.1`); see
    /// [`try_start_with`](Self::try_start_with).
    pub async fn start_with(options: EmulatorOptions) -> StytchEmulator {
        let addr = options.addr();
        match Self::try_start_with(options).await {
            Ok(emulator) => emulator,
            Err(error) => panic!("StytchEmulator could not bind {addr}: {error}"),
        }
    }

    /// Starts an emulator configured by `options`, or answers why its address
    /// could not be bound (a fixed [`port`](EmulatorOptions::port) in use, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum_stytch::testing::{EmulatorOptions, StytchEmulator};
    ///
    /// # #[tokio::main] async fn main() {
    /// let first = StytchEmulator::start().await;
    /// let taken = EmulatorOptions::new().port(first.addr().port());
    /// assert!(StytchEmulator::try_start_with(taken).await.is_err());
    /// # }
    /// ```
    pub async fn try_start_with(options: EmulatorOptions) -> io::Result<StytchEmulator> {
        let (tcp, addr) = server::bind(options.addr()).await?;
        let (config, clock) = options.into_config(addr);
        let shared = Shared::new(config, clock);
        Ok(StytchEmulator {
            inner: Arc::new(server::spawn(tcp, addr, shared)),
        })
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub(super) fn now(&self) -> SystemTime {
        self.shared().now()
    }

    /// The project id (`project-test-<uuid>` unless configured).
    pub fn project_id(&self) -> &str {
        &self.shared().config.project_id
    }

    /// The project secret expected in HTTP Basic auth.
    pub fn secret(&self) -> &str {
        &self.shared().config.secret
    }

    /// `http://127.0.0.1:PORT` (the address it listens on), without a trailing
    /// slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The emulator's clock (a shared handle: advancing it moves the
    /// emulator's time). It stands still unless moved, or follows real time with
    /// [`EmulatorOptions::follow_real_time`].
    pub fn clock(&self) -> MockClock {
        self.shared().clock.clone()
    }

    /// The `iss` claim of minted JWTs (`stytch.com/<project_id>` unless
    /// configured with [`EmulatorOptions::issuer`]).
    pub fn issuer(&self) -> &str {
        &self.shared().config.issuer
    }

    /// A [`StytchAuthBuilder`](crate::StytchAuthBuilder) already pointed at this
    /// emulator: its project id, secret, base URL and clock.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// let auth = emulator.auth_builder().build().expect("valid configuration");
    /// assert_eq!(auth.project_id(), emulator.project_id());
    /// # }
    /// ```
    pub fn auth_builder(&self) -> crate::StytchAuthBuilder {
        crate::StytchAuth::builder(self.project_id(), self.secret())
            .base_url(self.base_url())
            .clock(self.clock())
    }

    /// Creates an organization and returns its `organization-test-<uuid>` id.
    ///
    /// The organization's name is its slug.
    pub fn create_organization(&self, slug: &str) -> String {
        let now = self.now();
        self.shared().project().create_organization(slug, now)
    }

    /// Creates an active member and returns its `member-test-<uuid>` id.
    ///
    /// `roles` are explicitly assigned role ids; sessions get
    /// `["stytch_member"]` followed by these (deduplicated). Assigning
    /// `stytch_admin` makes the Member object's `is_admin` true.
    ///
    /// # Panics
    ///
    /// If `organization_id` is unknown.
    pub fn create_member(&self, organization_id: &str, email: &str, roles: &[&str]) -> String {
        let now = self.now();
        self.shared()
            .project()
            .create_member(organization_id, email, roles, now)
    }

    /// Replaces a member's explicit roles. Existing sessions pick the new
    /// roles up on their next authenticate (or [`mint_jwt`](Self::mint_jwt)).
    ///
    /// # Panics
    ///
    /// If `member_id` is unknown.
    pub fn set_member_roles(&self, member_id: &str, roles: &[&str]) {
        let now = self.now();
        self.shared()
            .project()
            .set_member_roles(member_id, roles, now);
    }

    /// Starts a 60-minute session with one password factor, as if the member
    /// had just logged in. See [`create_session_with`](Self::create_session_with).
    ///
    /// # Panics
    ///
    /// If `member_id` is unknown.
    pub fn create_session(&self, member_id: &str) -> SessionTokens {
        self.create_session_with(member_id, SessionOptions::default())
    }

    /// Starts a session at the emulator's current time and returns its id,
    /// opaque token and a JWT minted now.
    ///
    /// # Panics
    ///
    /// If `member_id` is unknown.
    pub fn create_session_with(&self, member_id: &str, options: SessionOptions) -> SessionTokens {
        let now = self.now();
        self.shared()
            .project()
            .create_session(member_id, options, now)
    }

    /// Mints a fresh session JWT (issued at the emulator's current time,
    /// signed with the current signing key, `exp = iat + 300`) carrying the
    /// member's current roles.
    ///
    /// Liveness is not checked, so this also works for revoked or expired
    /// sessions (useful to test that a locally verified JWT outlives a
    /// revocation). It does not touch `last_accessed_at`.
    ///
    /// # Panics
    ///
    /// If `member_session_id` is unknown.
    pub fn mint_jwt(&self, member_session_id: &str) -> String {
        let now = self.now();
        self.shared().project().mint_jwt(member_session_id, now)
    }

    /// Revokes a session: remote authenticate answers 404 `session_not_found`
    /// from now on. Already minted JWTs still verify locally until `exp`.
    ///
    /// # Panics
    ///
    /// If `member_session_id` is unknown.
    pub fn revoke_session(&self, member_session_id: &str) {
        self.shared().project().revoke_session(member_session_id);
    }

    /// A snapshot of a session's state, or `None` for an unknown id.
    pub fn session(&self, member_session_id: &str) -> Option<SessionInfo> {
        self.shared().project().session_info(member_session_id)
    }

    /// Replaces the project's RBAC policy.
    ///
    /// The Stytch default roles `stytch_admin` (`*` on every `stytch.*`
    /// resource) and `stytch_member` (`*` on `stytch.self`) and the default
    /// `stytch.*` resources are kept unless `policy` defines a role or
    /// resource with the same id.
    ///
    /// A layer that has already loaded the policy sees the change once its
    /// `policy_refresh_interval` has passed on the clock (see the module docs).
    pub fn set_policy(&self, policy: Policy) {
        self.shared().project().set_policy(policy);
    }

    /// Replaces an organization's custom roles (served by the organization
    /// policy endpoint and as `Organization.custom_roles`, and consulted by
    /// `authorization_check`).
    ///
    /// A layer that has already loaded them sees the change once its
    /// `policy_refresh_interval` has passed on the clock (see the module docs).
    ///
    /// # Panics
    ///
    /// If `organization_id` is unknown.
    pub fn set_organization_roles(&self, organization_id: &str, roles: Vec<Role>) {
        self.shared()
            .project()
            .set_organization_roles(organization_id, roles);
    }

    /// Adds a new RSA-2048 key (`jwk-test-<uuid>`) and makes it the signing
    /// key. Older keys stay in the JWKS (and keep verifying) until
    /// [`retire_key`](Self::retire_key). Returns the new kid.
    pub fn rotate_keys(&self) -> String {
        let now = self.now();
        self.shared().project().rotate_keys(now)
    }

    /// Removes a key from the JWKS; JWTs signed with it stop verifying.
    ///
    /// Retiring the current signing key first rotates in a new one, so the
    /// emulator always has a signing key. Unknown kids are ignored.
    pub fn retire_key(&self, kid: &str) {
        let now = self.now();
        self.shared().project().retire_key(kid, now);
    }

    /// The kid of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.shared().project().signing_kid()
    }

    /// The current signing key as PKCS#8 DER, for tests that forge or
    /// re-sign tokens with the real key.
    pub fn signing_key_pkcs8_der(&self) -> Vec<u8> {
        self.shared().project().signing_key_pkcs8_der()
    }

    /// Signs `claims` with the current signing key: a compact RS256 JWT with the
    /// header of the JWTs the emulator mints, `{"alg":"RS256","kid":<kid>,"typ":"JWT"}`.
    ///
    /// Nothing is checked or added, so a test can re-sign tampered claims or forge a
    /// token of another issuer with the real key. For another header, or a payload
    /// that is not JSON, see [`sign_raw`](Self::sign_raw).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    /// use serde_json::json;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// let org = emulator.create_organization("acme");
    /// let member = emulator.create_member(&org, "ada@acme.test", &[]);
    /// let session = emulator.create_session(&member);
    ///
    /// // Signed with the real key, but issued by another project: refused.
    /// let forged = emulator.sign_claims(&json!({
    ///     "iss": "stytch.com/project-test-other",
    ///     "aud": [emulator.project_id()],
    ///     "sub": member,
    ///     "https://stytch.com/session": { "id": session.member_session_id },
    /// }));
    /// let response = reqwest::Client::new()
    ///     .post(format!("{}/v1/b2b/sessions/authenticate", emulator.base_url()))
    ///     .basic_auth(emulator.project_id(), Some(emulator.secret()))
    ///     .json(&json!({ "session_jwt": forged }))
    ///     .send()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(response.status(), 401);
    /// # }
    /// ```
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.shared().project().sign_claims(claims)
    }

    /// Signs a JWT of these `header` and `payload` texts, verbatim: each is
    /// base64url-encoded (no padding) and RS256-signed with the current signing key.
    ///
    /// For what [`sign_claims`](Self::sign_claims) cannot produce: another `alg` or
    /// `typ`, a missing or foreign `kid`, duplicate keys, text that is not JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum_stytch::testing::StytchEmulator;
    ///
    /// let emulator = StytchEmulator::start().await;
    /// // Validly signed, but without a `kid`.
    /// let jwt = emulator.sign_raw(r#"{"alg":"RS256","typ":"JWT"}"#, r#"{"sub":"x"}"#);
    /// assert!(jwt.starts_with("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."));
    /// # }
    /// ```
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        self.shared().project().sign_raw(header, payload)
    }

    /// Arms a fault for `endpoint`. One-shot faults queue up in order, and a call
    /// draws its one as it arrives. A [`Fault::Hold`] and a [`Fault::Delay`] apply
    /// to every call, in that order and before the one-shot fault answers it: the
    /// hold until [`release`](Self::release), the delay (which replaces any earlier
    /// one) until [`clear_faults`](Self::clear_faults).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum_stytch::testing::{Endpoint, Fault, StytchEmulator};
    ///
    /// # #[tokio::main] async fn main() {
    /// let emulator = StytchEmulator::start().await;
    /// let url = format!(
    ///     "{}/v1/b2b/sessions/jwks/{}",
    ///     emulator.base_url(),
    ///     emulator.project_id()
    /// );
    /// emulator.inject_fault(Endpoint::Jwks, Fault::Hold);
    /// let call = tokio::spawn(reqwest::get(url));
    /// while emulator.requests(Endpoint::Jwks) == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// // The call is in flight for as long as the test needs.
    /// assert!(!call.is_finished());
    /// emulator.release(Endpoint::Jwks);
    /// assert_eq!(call.await.unwrap().unwrap().status(), 200);
    /// # }
    /// ```
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.shared().faults().inject(endpoint, fault);
    }

    /// Answers every call a [`Fault::Hold`] holds on `endpoint`, and holds no
    /// further call. The endpoint's other faults stay armed.
    pub fn release(&self, endpoint: Endpoint) {
        self.shared().faults().release(endpoint);
    }

    /// Removes every armed fault on every endpoint, releasing held calls.
    pub fn clear_faults(&self) {
        self.shared().faults().clear();
    }

    /// While `true`, new TCP connections are reset right after being
    /// accepted and existing keep-alive connections fail on their next read
    /// or write, so clients see Stytch as unreachable.
    pub fn set_refusing_connections(&self, refuse: bool) {
        self.shared().refusing.store(refuse, Ordering::SeqCst);
    }

    /// How many requests reached `endpoint` (including those answered by a
    /// fault or rejected for bad credentials).
    pub fn requests(&self, endpoint: Endpoint) -> u64 {
        self.shared().faults().requests(endpoint)
    }

    /// Sets every request counter back to zero.
    pub fn reset_request_counts(&self) {
        self.shared().faults().reset_request_counts();
    }
}
