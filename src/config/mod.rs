//! [`StytchAuthBuilder`]: every setting, its default, and validation at build time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::request::Parts;

use crate::clock::{Clock, SharedClock};
use crate::cookies::SameSite;
use crate::rejection::AuthRejection;

mod error;
mod machine;
mod settings;

pub use error::ConfigError;
#[cfg(test)]
use settings::MAX_ENTRIES;
pub(crate) use settings::Settings;

/// Builds a [`StytchAuth`](crate::StytchAuth). Every setting has a documented default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum_stytch::StytchAuth;
///
/// let auth = StytchAuth::builder("project-test-00000000-0000-0000-0000-000000000000", "secret-test-xyz")
///     .max_token_age(Duration::from_secs(120))
///     .session_duration(Duration::from_secs(60 * 60))
///     .bearer_tokens(true)
///     .build()
///     .expect("valid configuration");
/// # let _ = auth;
/// ```
#[must_use]
pub struct StytchAuthBuilder {
    settings: Settings,
}

impl fmt::Debug for StytchAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StytchAuthBuilder")
            .field("project_id", &self.settings.project_id)
            .field("secret", &"<redacted>")
            .field(
                "base_url",
                &self
                    .settings
                    .base_url
                    .as_deref()
                    .map(crate::client::redacted_url),
            )
            .field("max_token_age", &self.settings.max_token_age)
            .field("clock_leeway", &self.settings.leeway)
            .field("session_jwt_cookie", &self.settings.jwt_cookie)
            .field("session_token_cookie", &self.settings.token_cookie)
            .field("bearer_tokens", &self.settings.bearer)
            .field("grpc_status_errors", &self.settings.grpc_status_errors)
            .field("session_duration", &self.settings.session_duration)
            .field("browser_sdk_cookies", &self.settings.browser_sdk_cookies)
            .field("revocations_in_redis", &self.redis_url_redacted())
            .finish_non_exhaustive()
    }
}

impl StytchAuthBuilder {
    pub(crate) fn new(project_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            settings: Settings::defaults(project_id.into(), secret.into()),
        }
    }

    /// A builder from `STYTCH_PROJECT_ID`, `STYTCH_SECRET` and, when set,
    /// `STYTCH_BASE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var =
            |name: &'static str| std::env::var(name).map_err(|_| ConfigError::MissingEnv(name));
        let mut builder = Self::new(var("STYTCH_PROJECT_ID")?, var("STYTCH_SECRET")?);
        if let Ok(url) = std::env::var("STYTCH_BASE_URL")
            && !url.is_empty()
        {
            builder = builder.base_url(url);
        }
        Ok(builder)
    }

    /// API base URL: a custom domain (`https://auth.example.com`) or the emulator
    /// (`http://127.0.0.1:PORT`; plain http is accepted for loopback only).
    /// Default: `https://api.stytch.com` for `project-live-` ids, else
    /// `https://test.stytch.com`. With a custom URL, JWTs issued by that origin are
    /// accepted besides `stytch.com/<project_id>`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.settings.base_url = Some(url.into());
        self
    }

    /// Time source for expiry, ages and TTLs. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.settings.clock = SharedClock(Arc::new(clock));
        self
    }

    /// Oldest JWT (by `iat`) trusted without asking Stytch. Default: 300 s (a JWT's
    /// whole life). This bounds how long a revoked session keeps working on another
    /// instance. `Duration::ZERO` sends every request to Stytch. A longer age changes
    /// nothing: a JWT's `exp`, 300 s after `iat`, still ends its local trust.
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.settings.max_token_age = age;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default: 5 s; at most 60 s.
    pub fn clock_leeway(mut self, leeway: Duration) -> Self {
        self.settings.leeway = leeway;
        self
    }

    /// Name of the session JWT cookie: a cookie-name token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``), different from the session token cookie's.
    /// Default: `stytch_session_jwt`.
    pub fn session_jwt_cookie(mut self, name: impl Into<String>) -> Self {
        self.settings.jwt_cookie = name.into();
        self
    }

    /// Name of the session token cookie, with the same rules as
    /// [`session_jwt_cookie`](Self::session_jwt_cookie). Default: `stytch_session`.
    pub fn session_token_cookie(mut self, name: impl Into<String>) -> Self {
        self.settings.token_cookie = name.into();
        self
    }

    /// Also accept `Authorization: Bearer <session JWT or token>`, which then takes
    /// precedence over cookies. Renewed credentials are not sent back for bearer
    /// requests: a client that keeps sending a JWT past its `exp` or `max_token_age`
    /// costs a `sessions/authenticate` call per request (concurrent ones coalesced),
    /// so bearer clients should refresh their JWT themselves, as Stytch's frontend
    /// SDKs do. Default: off.
    pub fn bearer_tokens(mut self, enabled: bool) -> Self {
        self.settings.bearer = enabled;
        self
    }

    /// Refuses gRPC requests (`content-type: application/grpc...`) with gRPC statuses
    /// instead of JSON: trailers-only responses (HTTP 200, `grpc-status`,
    /// `grpc-message`, no body) with `UNAUTHENTICATED` (16) for a 401,
    /// `PERMISSION_DENIED` (7) for a 403, `UNAVAILABLE` (14, with
    /// `grpc-retry-pushback-ms`) for a 503 and `INTERNAL` (13) for a 500. Other
    /// requests keep the JSON rejection, so gRPC and REST routes can share the layer.
    /// An [`error_handler`](Self::error_handler) still runs first and its response
    /// wins. See [`grpc`](crate::grpc).
    ///
    /// It also reads `Authorization: Bearer`, as
    /// [`bearer_tokens(true)`](Self::bearer_tokens) does, whatever that setting says:
    /// gRPC clients send their credentials as `authorization` metadata. Cookies (a
    /// `cookie` metadata entry) are still read when there is no bearer token.
    /// Default: off.
    pub fn grpc_status_errors(mut self) -> Self {
        self.settings.grpc_status_errors = true;
        self
    }

    /// Largest session cookie (or bearer) value read; larger ones are rejected (401
    /// `invalid_credentials`) without being parsed. At least 256. Default: 4096 bytes,
    /// what browsers store per cookie. Bearer clients whose JWTs carry large custom
    /// claims (Stytch allows up to 4 KB of them) may need more; JWTs over 8 KiB are
    /// refused whatever this is. A renewed session cookie larger than browsers keep
    /// (4096 bytes, name and value) is still set, with a warning in the logs.
    pub fn max_cookie_size(mut self, bytes: usize) -> Self {
        self.settings.max_cookie_size = bytes;
        self
    }

    /// Extend the session to now + `duration` whenever Stytch is asked (sliding
    /// sessions). Whole minutes, 5 minutes to 366 days. Default: not extended.
    /// Refused with [`browser_sdk_cookies`](Self::browser_sdk_cookies).
    pub fn session_duration(mut self, duration: Duration) -> Self {
        self.settings.session_duration = Some(duration);
        self
    }

    /// `Path` of the cookies this crate sets: starts with `/`, visible ASCII without
    /// `;` (RFC 6265 `path-value`, without spaces: browsers match it against the
    /// request's path as sent, where a space is `%20`). Default: `/`.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.settings.cookie_path = path.into();
        self
    }

    /// `Domain` of the cookies this crate sets: a domain name (ASCII letters, digits,
    /// `-`, `_` and `.`, an optional leading `.`), such as `example.com` to share the
    /// cookies with its subdomains. Default: none (host-only).
    ///
    /// Match the `Domain` and `Path` of the session cookies your frontend sets (such
    /// as Stytch's JavaScript SDK with its cookie options; see
    /// [`browser_sdk_cookies`](Self::browser_sdk_cookies)): a browser keeps one cookie
    /// per name, domain and path, so a cookie set with other attributes adds a second
    /// `stytch_session_jwt` instead of replacing the first, and the layer refuses
    /// requests that carry a session cookie twice (401 `invalid_credentials`, logged
    /// as a warning once a minute).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.settings.cookie_domain = Some(domain.into());
        self
    }

    /// Drops `Secure` from the cookies this crate sets, so that a browser also sends
    /// them over plain `http://` (and anyone on the network path can read and replay
    /// the session). For a local demo on a host name other than `localhost` only:
    /// browsers accept `Secure` cookies from `http://localhost` and `127.0.0.1`.
    /// Default: `Secure` on.
    pub fn allow_insecure_cookies(mut self) -> Self {
        self.settings.cookie_secure = false;
        self
    }

    /// Drops `HttpOnly` from the cookies this crate sets, so that the page's
    /// JavaScript can read the session JWT and token (and so can any script injected
    /// into it: an XSS steals the session). Renewals are still written back. For
    /// browser code of your own that reads the session cookies; when Stytch's frontend
    /// SDK writes them, use [`browser_sdk_cookies`](Self::browser_sdk_cookies) instead.
    /// Default: `HttpOnly`.
    pub fn cookies_readable_by_javascript(mut self) -> Self {
        self.settings.cookie_http_only = false;
        self
    }

    /// The session cookies belong to Stytch's frontend SDK, which writes them from
    /// JavaScript and refreshes the session every 3 minutes: the layer only reads
    /// them. Default: off (this server owns them: renewals and clearing are written
    /// back, `HttpOnly`).
    ///
    /// The layer then writes no `Set-Cookie`: no renewal (the SDK writes its own; a JWT
    /// gone stale while no page ran the SDK costs a `sessions/authenticate` call per
    /// request until the SDK's refresh at page load), and no clearing of a session
    /// Stytch says is gone (still refused and remembered as gone; the SDK's next
    /// refresh, with the token left in its cookie, hears `session_not_found` and logs
    /// out). Cookies a handler returns (`session_cookies`, `logout`, `clear_cookies`)
    /// are never `HttpOnly` (which would silently block every later write of the SDK)
    /// and are `SameSite=Lax`. Set [`cookie_path`](Self::cookie_path),
    /// [`cookie_domain`](Self::cookie_domain) (only with the SDK's
    /// `availableToSubdomains: true`) and the cookie names as in the SDK's
    /// `cookieOptions`. `build()` refuses it with a `cookie_same_site` other than `Lax`
    /// and with `session_duration` (use the SDK's `keepSessionAlive`). See the README,
    /// "Two ways to deploy Stytch".
    pub fn browser_sdk_cookies(mut self) -> Self {
        self.settings.browser_sdk_cookies = true;
        self
    }

    /// `SameSite` of the cookies this crate sets. Default: [`SameSite::Lax`].
    /// `SameSite::None` (sent on every cross-site request, so exposed to CSRF) requires
    /// `Secure`; [`browser_sdk_cookies`](Self::browser_sdk_cookies) requires `Lax`.
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.settings.cookie_same_site = same_site;
        self
    }

    /// Connect timeout for calls to Stytch; greater than zero. Default: 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Total timeout of each call to Stytch; greater than zero. Default: 5 s.
    ///
    /// It bounds each call, not a request: one request can wait for several calls in
    /// turn (the JWKS for a key not seen yet, then `sessions/authenticate`, then the
    /// RBAC policy), each failing closed (503) at its timeout. To bound a whole request,
    /// put a timeout around the router, such as tower-http's `TimeoutLayer`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// Most `sessions/authenticate` calls in flight at once; at least 1. Default: 256.
    ///
    /// Each session token and each stale JWT costs a call (identical concurrent ones
    /// share one), and a call runs to its end even when its requests went away: without
    /// a cap, clients sending made-up tokens and hanging up would pile up outbound calls
    /// at their request rate times `request_timeout`. Past the cap, a request that needs
    /// a new call is answered 503 (`Retry-After: 1`) without one (logged as a warning at
    /// most once a minute); locally verified JWTs are not affected. A busy app renews
    /// each browser's JWT about once per `max_token_age`: 100,000 active browsers at
    /// 100 ms per call keep about 33 calls in flight.
    pub fn max_concurrent_authentications(mut self, calls: usize) -> Self {
        self.settings.max_concurrent_authentications = calls;
        self
    }

    /// Most `sessions/authenticate` calls per second for session tokens Stytch has not
    /// confirmed to this instance before (burst: one second's worth). Default: 20.
    ///
    /// A session token alone proves nothing until Stytch confirms it: anyone can send
    /// made-up tokens, each one a call. These calls have a budget of their own, this
    /// rate and [`max_concurrent_unverified_authentications`](Self::max_concurrent_unverified_authentications),
    /// apart from [`max_concurrent_authentications`](Self::max_concurrent_authentications),
    /// so that such a flood neither takes the permits of members whose JWTs need
    /// renewing nor spends your project's Stytch rate limit (whose 429 would stop
    /// every call). Past the budget, such a request is answered 503 (`Retry-After`)
    /// without a call, counted in
    /// [`MetricsSnapshot::unverified_authentications_refused`](crate::MetricsSnapshot::unverified_authentications_refused)
    /// and logged as a warning at most once a minute. Stale JWTs (validly signed) and
    /// tokens Stytch confirmed (remembered up to `token_cache_capacity`, at least
    /// 1,000) are not limited by it. Keep it well below your project's rate limit.
    /// `0` makes no call for an unconfirmed token.
    pub fn unverified_authentications_per_second(mut self, calls: u32) -> Self {
        self.settings.unverified_per_second = calls;
        self
    }

    /// Most `sessions/authenticate` calls in flight at once for session tokens Stytch
    /// has not confirmed before; at least 1. Default: 32. See
    /// [`unverified_authentications_per_second`](Self::unverified_authentications_per_second).
    pub fn max_concurrent_unverified_authentications(mut self, calls: usize) -> Self {
        self.settings.max_concurrent_unverified = calls;
        self
    }

    /// Age at which the JWKS is refreshed in the background (keys keep being served
    /// meanwhile); greater than zero. Default: 300 s.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.jwks_refresh_interval = interval;
        self
    }

    /// Minimum time between JWKS refreshes caused by an unknown `kid`, and between
    /// retries after a failed fetch. At least 1 s (whole seconds count). Default: 30 s.
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.jwks_refresh_cooldown = cooldown;
        self
    }

    /// How long past the refresh interval the last keys are still used while Stytch
    /// cannot be reached; after that, JWTs that are not in the verified-token cache
    /// are answered 503 (a cached one stays trusted until its own deadline, at most
    /// `max_token_age`). Default: 1 hour.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.settings.jwks_max_stale = max_stale;
        self
    }

    /// Most verified JWTs remembered (a repeated JWT then costs no RSA work).
    /// Default: 10,000. `0` disables the cache. At most 10,000,000.
    pub fn token_cache_capacity(mut self, entries: usize) -> Self {
        self.settings.token_cache_capacity = entries;
        self
    }

    /// Most revoked sessions remembered, so their JWTs are refused at once (logged out
    /// here, said gone by Stytch, or revoked by the fleet with
    /// `revocations_in_redis`); also the most credentials remembered as unknown to
    /// Stytch (refused without asking again). Default: 100,000 each. At most
    /// 10,000,000.
    ///
    /// A revocation is needed while the session's JWTs could be trusted locally:
    /// `max_token_age` + leeway (305 s by default) after it; a logout on this instance
    /// is kept for an hour. Size it above the fleet's logout rate times that: 100,000
    /// covers about 300 logouts a second (about 27 MB when full). When full of
    /// revocations still needed, the oldest goes, and every JWT issued until then is
    /// sent to Stytch instead of being trusted (never let in), counted in
    /// `MetricsSnapshot::revocations_lost` and warned about.
    pub fn revocation_capacity(mut self, entries: usize) -> Self {
        self.settings.revocation_capacity = entries;
        self
    }

    /// Shares revocations with every instance of the fleet through the Redis at `url`
    /// (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS,
    /// `redis+unix:///path/to/socket`). Feature `redis`. Default: off (each instance
    /// knows its own logouts only).
    ///
    /// A logout, and a session Stytch said is gone, is then refused by every instance
    /// within milliseconds, instead of when each one's JWT copy ages out. Nothing on the
    /// request path touches Redis: each instance keeps a local copy, loaded at start
    /// ([`StytchAuth::warm_up`](crate::StytchAuth::warm_up) waits for it, at most
    /// `request_timeout`) and fed from a pub/sub channel by a background thread. While
    /// Redis is unreachable, requests are answered as before (no 5xx, no wait),
    /// revocations made here wait in an outbox, and this instance does not hear those
    /// made elsewhere (see [`revocation_feed_max_staleness`](Self::revocation_feed_max_staleness)).
    /// The URL is checked by `build()`; its password is never logged.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn revocations_in_redis(mut self, url: impl Into<String>) -> Self {
        self.settings.redis_url = Some(url.into());
        self
    }

    /// The prefix of the Redis keys and channel (`<prefix>{<project_id>}:revoked`,
    /// `<prefix>{<project_id>}:revocations`: one hash slot). Default: `axum-stytch:`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.redis_key_prefix = prefix.into();
        self
    }

    /// The stricter choice: once the revocations feed has been silent for longer than
    /// `staleness` (Redis unreachable), JWTs are confirmed with Stytch instead of
    /// trusted locally, until it is back; a revoked session is then never accepted,
    /// at the cost of one `sessions/authenticate` call per renewal window per session.
    /// Default: off (while the feed is down, a JWT revoked elsewhere is accepted until
    /// it is `max_token_age` old, as on a single instance).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn revocation_feed_max_staleness(mut self, staleness: Duration) -> Self {
        self.settings.revocation_feed_max_staleness = Some(staleness);
        self
    }

    /// The most a policy's age may be when it decides, while Stytch answers: in the last
    /// tenth of it the policy is refreshed in the background (requests decided at once),
    /// and once it has passed (after a quiet spell, say) the next request waits for the
    /// refresh. Greater than zero. Default and maximum: 300 s.
    pub fn policy_refresh_interval(mut self, interval: Duration) -> Self {
        self.settings.policy_refresh_interval = interval;
        self
    }

    /// How long past its refresh interval a policy may still decide while refreshes
    /// fail (retried at most every 5 s); after that RBAC decisions answer 503. Never
    /// used while refreshes succeed. Default: 15 minutes.
    pub fn policy_grace(mut self, grace: Duration) -> Self {
        self.settings.policy_grace = grace;
        self
    }

    /// Most organizations whose custom roles are cached. Default: 1,000. At most
    /// 10,000,000. Set it above the number of organizations active at once: an
    /// organization evicted from the cache has its custom roles fetched again (and
    /// its guarded requests wait for them) when its members come back.
    pub fn org_policy_capacity(mut self, entries: usize) -> Self {
        self.settings.org_policy_capacity = entries;
        self
    }

    /// Replaces rejection responses: return `Some(response)` to use it, `None` for the
    /// default JSON. Receives the request parts (path, headers) to decide. Applies to
    /// every rejection made for a request (extractors, guards, the layer), not to the
    /// one [`StytchAuth::authorize`](crate::StytchAuth::authorize) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::response::{IntoResponse, Redirect};
    /// use axum_stytch::StytchAuth;
    ///
    /// let auth = StytchAuth::builder("project-test-x", "secret")
    ///     .error_handler(|rejection, parts| {
    ///         let html = parts.headers.get("accept")
    ///             .and_then(|v| v.to_str().ok())
    ///             .is_some_and(|v| v.contains("text/html"));
    ///         (html && rejection.status() == 401).then(|| Redirect::to("/login").into_response())
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn error_handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(&AuthRejection, &Parts) -> Option<Response> + Send + Sync + 'static,
    {
        self.settings.error_handler = Some(Arc::new(handler));
        self
    }

    /// The fleet's Redis URL without its credentials, if any.
    fn redis_url_redacted(&self) -> Option<String> {
        #[cfg(feature = "redis")]
        return self
            .settings
            .redis_url
            .as_deref()
            .map(crate::client::redacted_url);
        #[cfg(not(feature = "redis"))]
        None
    }

    /// Validates every setting: the settings the layer is built with.
    pub(crate) fn into_settings(self) -> Result<Settings, ConfigError> {
        self.settings.validate()?;
        Ok(self.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> StytchAuthBuilder {
        StytchAuthBuilder::new(
            "project-test-00000000-0000-0000-0000-000000000000",
            "secret",
        )
    }

    /// `build()` refuses `b`, naming `setting` (`what`: the case, for the message).
    #[track_caller]
    fn assert_refused(b: StytchAuthBuilder, setting: &str, what: &str) {
        match b.build() {
            Err(ConfigError::InvalidSetting { setting: named, .. }) => {
                assert_eq!(named, setting, "{what:?}")
            }
            Err(other) => panic!("{what:?}: {other}"),
            Ok(_) => panic!("{what:?}: accepted"),
        }
    }

    /// Each setting out of its documented range is refused when the layer is built,
    /// naming the setting.
    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        type Change = fn(StytchAuthBuilder) -> StytchAuthBuilder;
        let cases: [(&str, Change); 10] = [
            ("max_cookie_size", |b| b.max_cookie_size(100)),
            ("clock_leeway", |b| b.clock_leeway(Duration::from_secs(61))),
            ("cookie_path", |b| b.cookie_path("no-slash")),
            ("request_timeout", |b| b.request_timeout(Duration::ZERO)),
            ("max_concurrent_authentications", |b| {
                b.max_concurrent_authentications(0)
            }),
            ("policy_refresh_interval", |b| {
                b.policy_refresh_interval(Duration::from_secs(301))
            }),
            // Under a second, whole-second cooldowns would be none: every JWT with an
            // unknown kid could make the layer fetch the JWKS.
            ("jwks_refresh_cooldown", |b| {
                b.jwks_refresh_cooldown(Duration::from_millis(999))
            }),
            // Allocated up front: refused rather than an abort at build().
            ("token_cache_capacity", |b| {
                b.token_cache_capacity(usize::MAX)
            }),
            ("revocation_capacity", |b| {
                b.revocation_capacity(MAX_ENTRIES + 1)
            }),
            ("org_policy_capacity", |b| b.org_policy_capacity(usize::MAX)),
        ];
        for (setting, change) in cases {
            assert_refused(change(builder()), setting, setting);
        }
        assert!(
            builder()
                .jwks_refresh_cooldown(Duration::from_secs(1))
                .build()
                .is_ok()
        );
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_url_credentials() {
        let b = StytchAuthBuilder::new("project-test-1", "secret-test-abc")
            .base_url("https://user:secret-test-abc@auth.example.com");
        let dbg = format!("{b:?}");
        assert!(!dbg.contains("secret-test-abc"), "{dbg}");
        assert!(dbg.contains("https://<redacted>@auth.example.com"), "{dbg}");
    }

    /// A cookie path or domain a `Set-Cookie` header cannot carry (say, with the
    /// newline of a secrets file) is refused, instead of every cookie being dropped;
    /// accepted ones make cookies that carry them.
    #[tokio::test]
    async fn cookie_path_and_domain_must_fit_a_set_cookie_header() {
        for path in [
            "no-slash", "", "/a\nb", "/a;b", "/\u{7f}", "/é", "/a\tb", "/a b",
        ] {
            assert_refused(builder().cookie_path(path), "cookie_path", path);
        }
        for domain in [
            "a.com\n",
            "a.com\0",
            "a.com,b.com",
            "",
            ".",
            "a..com",
            "a b.com",
            "exämple.com",
            "a.com;",
            "a.com.",
        ] {
            assert_refused(builder().cookie_domain(domain), "cookie_domain", domain);
        }
        for (path, domain) in [
            ("/", "example.com"),
            ("/app/v1", ".example.com"),
            ("/a%20b", "localhost"),
            ("/", "web_app.internal"),
            ("/~x", "127.0.0.1"),
        ] {
            let auth = builder()
                .cookie_path(path)
                .cookie_domain(domain)
                .build()
                .unwrap_or_else(|e| panic!("{path:?} {domain:?}: {e}"));
            let cookies = auth.clear_cookies();
            assert_eq!(cookies.header_values().len(), 2);
            for value in cookies.header_values() {
                let value = value.to_str().unwrap();
                assert!(value.contains(&format!("Path={path}")), "{value}");
                assert!(
                    value.contains(&format!("Domain={}", domain.trim_start_matches('.'))),
                    "{value}"
                );
            }
        }
    }
}
