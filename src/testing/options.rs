//! The values the test handle takes and gives: emulator and session options,
//! a new session's credentials, and a session snapshot.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::model::{Config, random_string};
use crate::clock::MockClock;

/// Settings for [`StytchEmulator::start_with`].
///
/// # Examples
///
/// ```
/// use axum_stytch::testing::{EmulatorOptions, MockClock, StytchEmulator};
///
/// # #[tokio::main] async fn main() {
/// let clock = MockClock::new();
/// let emulator = StytchEmulator::start_with(
///     EmulatorOptions::new()
///         .project_id("project-live-00000000-0000-0000-0000-000000000000")
///         .secret("secret-live-abc")
///         .clock(clock.clone()),
/// )
/// .await;
/// assert_eq!(emulator.secret(), "secret-live-abc");
/// assert!(emulator.create_organization("acme").starts_with("organization-live-"));
/// # }
/// ```
///
/// [`StytchEmulator::start_with`]: crate::testing::StytchEmulator::start_with
#[derive(Clone, Default)]
pub struct EmulatorOptions {
    project_id: Option<String>,
    secret: Option<String>,
    clock: Option<MockClock>,
    issuer: Option<Issuer>,
    addr: Option<SocketAddr>,
    follow_real_time: bool,
}

/// The `iss` of minted JWTs, when not Stytch's default.
#[derive(Clone, Debug)]
enum Issuer {
    Custom(String),
    /// The emulator's own origin, as a custom domain's.
    OwnOrigin,
}

impl fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("project_id", &self.project_id)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("clock", &self.clock)
            .field("issuer", &self.issuer)
            .field("addr", &self.addr)
            .field("follow_real_time", &self.follow_real_time)
            .finish()
    }
}

impl EmulatorOptions {
    /// Defaults: random test project id and secret, a new [`MockClock`] (frozen),
    /// issuer `stytch.com/<project_id>`, a free port on `127.0.0.1`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this project id (a `project-live-` prefix switches generated ids
    /// to `-live-`). Default: a random `project-test-<uuid>`.
    pub fn project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = Some(project_id.into());
        self
    }

    /// Uses this project secret. Default: a random `secret-test-…` value.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Uses this clock (share it with the code under test). Default: a new
    /// [`MockClock`].
    pub fn clock(mut self, clock: MockClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Makes the emulator's clock follow real time, for clients that read the
    /// system clock (Stytch's Node or Python SDK, a browser): without it, the clock
    /// stands still, and to such a client every JWT the emulator mints looks
    /// expired five minutes after it started. Default: off (the clock moves only
    /// when a test moves it).
    ///
    /// The emulator's [`MockClock`] (and so a layer built with
    /// [`StytchAuthBuilder::clock`](crate::StytchAuthBuilder::clock) or
    /// [`StytchEmulator::auth_builder`], which share it) then moves with real time,
    /// as [`MockClock::real_time`] does: each reading adds the real time passed, so
    /// it never trails the system clock. A test can still jump:
    /// [`advance`](MockClock::advance) and [`set`](MockClock::set) keep working, and
    /// time goes on from where they put it. Without [`clock`](Self::clock), the
    /// clock starts at the current system time, to the nanosecond; a clock given
    /// with it follows real time from its reading at start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use axum_stytch::{Clock as _, testing::{EmulatorOptions, StytchEmulator}};
    ///
    /// # #[tokio::main] async fn main() {
    /// let emulator = StytchEmulator::start_with(EmulatorOptions::new().follow_real_time()).await;
    /// let clock = emulator.clock();
    /// clock.advance(Duration::from_secs(3600));
    /// // An hour ahead of the system clock, and still moving with it.
    /// let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
    /// assert!(ahead > Duration::from_secs(3599));
    /// # }
    /// ```
    ///
    /// [`StytchEmulator::auth_builder`]: crate::testing::StytchEmulator::auth_builder
    pub fn follow_real_time(mut self) -> Self {
        self.follow_real_time = true;
        self
    }

    /// Listens on this port of `127.0.0.1` (0: any free port). Default: any free
    /// port. For an emulator that other processes reach at a known address, such
    /// as `cargo run --example emulator`; the port must be free.
    pub fn port(mut self, port: u16) -> Self {
        self.addr = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        self
    }

    /// Listens on this address. Default: `127.0.0.1:0` (a free port on the
    /// loopback interface only).
    ///
    /// An address other than a loopback one (`0.0.0.0`, say, inside a container)
    /// lets other machines authenticate with the project secret and read the
    /// signing keys: for a test network only. [`StytchEmulator::base_url`] is
    /// `http://` and this address.
    ///
    /// [`StytchEmulator::base_url`]: crate::testing::StytchEmulator::base_url
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Sets the `iss` claim of minted JWTs, e.g. a custom-domain origin such
    /// as `https://auth.example.com`. Presented JWTs must carry the same
    /// issuer. Default: `stytch.com/<project_id>`, as Stytch's own.
    ///
    /// The layer accepts only `stytch.com/<project_id>` and its base URL's origin,
    /// so a layer built with [`StytchEmulator::auth_builder`] refuses these JWTs
    /// (401 `invalid_token`): use this to test a foreign issuer, and
    /// [`custom_domain`](Self::custom_domain) to test a custom domain.
    ///
    /// [`StytchEmulator::auth_builder`]: crate::testing::StytchEmulator::auth_builder
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(Issuer::Custom(issuer.into()));
        self
    }

    /// Acts as a project reached through a custom domain: minted JWTs carry the
    /// emulator's own origin (its [`base_url`],
    /// `http://127.0.0.1:PORT`) as `iss`, as Stytch's do with the custom domain's
    /// origin. A layer built with [`StytchEmulator::auth_builder`] accepts them.
    /// Default: off (`stytch.com/<project_id>`).
    ///
    /// [`base_url`]: crate::testing::StytchEmulator::base_url
    /// [`StytchEmulator::auth_builder`]: crate::testing::StytchEmulator::auth_builder
    pub fn custom_domain(mut self) -> Self {
        self.issuer = Some(Issuer::OwnOrigin);
        self
    }
}

impl EmulatorOptions {
    /// The address to listen on.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// The project settings these options give for a server on `addr`, the clock,
    /// and whether it follows real time: what is not set is generated here.
    pub(super) fn into_config(self, addr: SocketAddr) -> (Config, MockClock) {
        let project_id = self
            .project_id
            .unwrap_or_else(|| format!("project-test-{}", uuid::Uuid::new_v4()));
        let env = if project_id.starts_with("project-live-") {
            "live"
        } else {
            "test"
        };
        let secret = self
            .secret
            .unwrap_or_else(|| format!("secret-{env}-{}", random_string(27)));
        let origin = format!("http://{addr}");
        let issuer = match self.issuer {
            Some(Issuer::Custom(issuer)) => issuer,
            Some(Issuer::OwnOrigin) => origin.clone(),
            None => format!("stytch.com/{project_id}"),
        };
        let config = Config {
            env,
            project_id,
            secret,
            issuer,
            origin,
        };
        let clock = match self.clock {
            Some(clock) => {
                if self.follow_real_time {
                    clock.follow_real_time();
                }
                clock
            }
            // Following real time from the exact current time, not a whole second
            // behind it.
            None if self.follow_real_time => MockClock::real_time(),
            None => MockClock::new(),
        };
        (config, clock)
    }
}

/// Settings for [`StytchEmulator::create_session_with`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum_stytch::testing::SessionOptions;
///
/// let options = SessionOptions::new()
///     .duration(Duration::from_secs(10 * 60))
///     .custom_claim("tenant_tier", "gold");
/// # let _ = options;
/// ```
///
/// [`StytchEmulator::create_session_with`]: crate::testing::StytchEmulator::create_session_with
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub(crate) duration: Duration,
    pub(crate) custom_claims: Option<Map<String, Value>>,
    pub(crate) factors: Vec<Value>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60 * 60),
            custom_claims: None,
            factors: vec![json!({"type": "password", "delivery_method": "knowledge"})],
        }
    }
}

impl SessionOptions {
    /// The defaults: 60 minutes, no custom claims, one password factor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the session lifetime from creation (`Duration::MAX`: until the end of year
    /// 9999, a session that does not expire). Default: 60 minutes.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// Replaces the initial custom claims. Reserved names (`iss sub aud exp nbf iat
    /// jti`) and `https://stytch.com/…` keys are ignored, `null` values skipped.
    /// Default: none.
    pub fn custom_claims(mut self, claims: Map<String, Value>) -> Self {
        self.custom_claims = Some(claims);
        self
    }

    /// Adds one initial custom claim (the same rules as
    /// [`custom_claims`](Self::custom_claims)).
    pub fn custom_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom_claims
            .get_or_insert_with(Map::new)
            .insert(name.into(), value.into());
        self
    }

    /// Replaces the authentication factors, as Stytch's `authentication_factors`
    /// objects (`type`, `delivery_method`, `last_authenticated_at`, ...). Object
    /// factors without `last_authenticated_at` get the session start time; an empty
    /// list is allowed. Default: one `{"type":"password","delivery_method":"knowledge"}`
    /// factor.
    pub fn factors(mut self, factors: Vec<Value>) -> Self {
        self.factors = factors;
        self
    }
}

/// Credentials of a freshly created session. `Debug` redacts the token and JWT.
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionTokens {
    /// `member-session-test-<uuid>`.
    pub member_session_id: String,
    /// The opaque 44-character session token.
    pub session_token: String,
    /// A session JWT minted at creation.
    pub session_jwt: String,
}

impl fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokens")
            .field("member_session_id", &self.member_session_id)
            .field("session_token", &"[redacted]")
            .field("session_jwt", &"[redacted]")
            .finish()
    }
}

/// A snapshot of an emulated session ([`StytchEmulator::session`]).
///
/// [`StytchEmulator::session`]: crate::testing::StytchEmulator::session
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's member.
    pub member_id: String,
    /// The member's organization.
    pub organization_id: String,
    /// When the session started.
    pub started_at: SystemTime,
    /// Last successful authenticate (or creation).
    pub last_accessed_at: SystemTime,
    /// When the session expires.
    pub expires_at: SystemTime,
    /// Whether it was revoked.
    pub revoked: bool,
    /// Roles as of the last authenticate/mint: `stytch_member` first.
    pub roles: Vec<String>,
    /// Current custom claims.
    pub custom_claims: Map<String, Value>,
}
