//! Every setting, its default, and its validation: what the builder collects and the
//! engine is built from.

use std::time::Duration;

use super::ConfigError;
use crate::clock::SharedClock;
use crate::cookies::SameSite;

/// The longest the RBAC policy may be cached: Stytch's SDKs refresh every 5 minutes.
pub(crate) const MAX_POLICY_REFRESH: Duration = Duration::from_secs(300);

/// The most entries a cache or list of the layer may be given: far beyond any need
/// (10,000,000 verified JWTs take about 20 GB), and a typo such as `usize::MAX` is
/// refused rather than allocated.
pub(crate) const MAX_ENTRIES: usize = 10_000_000;

/// The settings of one layer, as set on the builder (defaults in
/// [`Settings::defaults`]).
pub(crate) struct Settings {
    pub(crate) project_id: String,
    pub(crate) secret: String,
    pub(crate) base_url: Option<String>,
    pub(crate) clock: SharedClock,
    pub(crate) max_token_age: Duration,
    pub(crate) leeway: Duration,
    pub(crate) jwt_cookie: String,
    pub(crate) token_cookie: String,
    pub(crate) bearer: bool,
    /// `grpc_status_errors`: gRPC requests are refused with gRPC statuses (and bearer
    /// tokens are read).
    pub(crate) grpc_status_errors: bool,
    pub(crate) max_cookie_size: usize,
    pub(crate) session_duration: Option<Duration>,
    pub(crate) cookie_path: String,
    pub(crate) cookie_domain: Option<String>,
    pub(crate) cookie_secure: bool,
    pub(crate) cookie_http_only: bool,
    pub(crate) cookie_same_site: SameSite,
    /// Stytch's frontend SDK owns the session cookies (`browser_sdk_cookies`).
    pub(crate) browser_sdk_cookies: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_concurrent_authentications: usize,
    pub(crate) unverified_per_second: u32,
    pub(crate) max_concurrent_unverified: usize,
    pub(crate) jwks_refresh_interval: Duration,
    pub(crate) jwks_refresh_cooldown: Duration,
    pub(crate) jwks_max_stale: Duration,
    pub(crate) token_cache_capacity: usize,
    pub(crate) revocation_capacity: usize,
    pub(crate) policy_refresh_interval: Duration,
    pub(crate) policy_grace: Duration,
    pub(crate) org_policy_capacity: usize,
    pub(crate) error_handler: Option<crate::rejection::ErrorHandler>,
    /// Machine tokens: which kinds are taken as bearer tokens, and their age limit.
    pub(crate) m2m_tokens: bool,
    pub(crate) connected_app_tokens: bool,
    pub(crate) machine_token_max_age: Duration,
    /// The Connected-Apps project domain (an issuer, and the authorization server).
    pub(crate) project_domain: Option<String>,
    pub(crate) protected_resource: Option<crate::resource_metadata::ProtectedResource>,
    /// The fleet's Redis (`revocations_in_redis`), and its key prefix and staleness.
    #[cfg(feature = "redis")]
    pub(crate) redis_url: Option<String>,
    #[cfg(feature = "redis")]
    pub(crate) redis_key_prefix: String,
    #[cfg(feature = "redis")]
    pub(crate) revocation_feed_max_staleness: Option<Duration>,
}

impl Settings {
    /// The documented defaults.
    pub(crate) fn defaults(project_id: String, secret: String) -> Self {
        Self {
            project_id,
            secret,
            base_url: None,
            clock: SharedClock::system(),
            max_token_age: Duration::from_secs(300),
            leeway: Duration::from_secs(5),
            jwt_cookie: "stytch_session_jwt".into(),
            token_cookie: "stytch_session".into(),
            bearer: false,
            grpc_status_errors: false,
            max_cookie_size: crate::cookies::BROWSER_COOKIE_LIMIT,
            session_duration: None,
            cookie_path: "/".into(),
            cookie_domain: None,
            cookie_secure: true,
            cookie_http_only: true,
            cookie_same_site: SameSite::Lax,
            browser_sdk_cookies: false,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_concurrent_authentications: 256,
            unverified_per_second: 20,
            max_concurrent_unverified: 32,
            jwks_refresh_interval: Duration::from_secs(300),
            jwks_refresh_cooldown: Duration::from_secs(30),
            jwks_max_stale: Duration::from_secs(3600),
            token_cache_capacity: 10_000,
            revocation_capacity: 100_000,
            policy_refresh_interval: MAX_POLICY_REFRESH,
            policy_grace: Duration::from_secs(900),
            org_policy_capacity: 1_000,
            error_handler: None,
            m2m_tokens: false,
            connected_app_tokens: false,
            machine_token_max_age: Duration::from_secs(3600),
            project_domain: None,
            protected_resource: None,
            #[cfg(feature = "redis")]
            redis_url: None,
            #[cfg(feature = "redis")]
            redis_key_prefix: "axum-stytch:".into(),
            #[cfg(feature = "redis")]
            revocation_feed_max_staleness: None,
        }
    }

    /// Checks every setting against its documented range.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.project_id.trim().is_empty() {
            return Err(ConfigError::MissingProjectId);
        }
        if self.secret.is_empty() {
            return Err(ConfigError::MissingSecret);
        }
        for (setting, name) in [
            ("session_jwt_cookie", &self.jwt_cookie),
            ("session_token_cookie", &self.token_cookie),
        ] {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(invalid(
                    setting,
                    format!("{name:?} is not a valid cookie name"),
                ));
            }
        }
        if self.jwt_cookie == self.token_cookie {
            return Err(invalid(
                "session_token_cookie",
                "must differ from the JWT cookie name",
            ));
        }
        if self.max_cookie_size < 256 {
            return Err(invalid("max_cookie_size", "must be at least 256 bytes"));
        }
        if self.leeway > Duration::from_secs(60) {
            return Err(invalid("clock_leeway", "must be at most 60 s"));
        }
        if let Some(d) = self.session_duration {
            let minutes = d.as_secs() / 60;
            if d.as_secs() % 60 != 0 || !(5..=527_040).contains(&minutes) {
                return Err(invalid(
                    "session_duration",
                    "whole minutes from 5 minutes to 366 days",
                ));
            }
        }
        // A value a `Set-Cookie` header cannot carry would make every cookie the crate
        // sets unusable (renewals and logout alike): refused here, with the reason.
        if !self.cookie_path.starts_with('/')
            || !self
                .cookie_path
                .bytes()
                .all(|b| (b'!'..=b'~').contains(&b) && b != b';')
        {
            return Err(invalid(
                "cookie_path",
                format!(
                    "{:?} must start with '/' and be visible ASCII without ';'",
                    self.cookie_path
                ),
            ));
        }
        if let Some(domain) = &self.cookie_domain
            && !is_domain_name(domain)
        {
            return Err(invalid(
                "cookie_domain",
                format!(
                    "{domain:?} is not a domain name (ASCII letters, digits, '-', '_' and '.')"
                ),
            ));
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(invalid(
                "cookie_same_site",
                "SameSite=None requires Secure (drop allow_insecure_cookies())",
            ));
        }
        if self.machine_token_max_age.as_secs() == 0 {
            return Err(invalid(
                "machine_token_max_age",
                "must be at least 1 s (no machine token could be accepted: Stytch has no \
                 remote check for them)",
            ));
        }
        if let Some(domain) = &self.project_domain {
            crate::client::origin(domain)
                .map_err(|reason| invalid("project_domain", format!("{domain:?}: {reason}")))?;
        }
        self.validate_browser_sdk()?;
        for (setting, d) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("jwks_refresh_interval", self.jwks_refresh_interval),
            ("policy_refresh_interval", self.policy_refresh_interval),
        ] {
            if d.is_zero() {
                return Err(invalid(setting, "must be greater than zero"));
            }
        }
        // Cooldowns count whole seconds; under one second there would be none, and
        // every JWT with an unknown `kid` could make the layer fetch the JWKS.
        if self.max_concurrent_authentications == 0 {
            return Err(invalid(
                "max_concurrent_authentications",
                "must be at least 1",
            ));
        }
        if self.max_concurrent_unverified == 0 {
            return Err(invalid(
                "max_concurrent_unverified_authentications",
                "must be at least 1",
            ));
        }
        if self.jwks_refresh_cooldown < Duration::from_secs(1) {
            return Err(invalid("jwks_refresh_cooldown", "must be at least 1 s"));
        }
        if self.policy_refresh_interval > MAX_POLICY_REFRESH {
            return Err(invalid("policy_refresh_interval", "must be at most 300 s"));
        }
        for (setting, entries) in [
            ("token_cache_capacity", self.token_cache_capacity),
            ("revocation_capacity", self.revocation_capacity),
            ("org_policy_capacity", self.org_policy_capacity),
        ] {
            if entries > MAX_ENTRIES {
                return Err(invalid(setting, "must be at most 10,000,000 entries"));
            }
        }
        Ok(())
    }

    /// Under `browser_sdk_cookies()`, refuses the settings that would make the layer
    /// act against the SDK's cookies: a `SameSite` the SDK never writes, and sliding
    /// sessions the layer would seldom apply (the SDK keeps the JWT fresh, so the
    /// layer seldom asks Stytch) and never write back. `HttpOnly` cannot be set then.
    fn validate_browser_sdk(&self) -> Result<(), ConfigError> {
        if !self.browser_sdk_cookies {
            return Ok(());
        }
        if self.cookie_same_site != SameSite::Lax {
            return Err(invalid(
                "cookie_same_site",
                "Stytch's browser SDK always writes SameSite=Lax: drop cookie_same_site(..) \
                 or browser_sdk_cookies()",
            ));
        }
        if self.session_duration.is_some() {
            return Err(invalid(
                "session_duration",
                "under browser_sdk_cookies() the SDK refreshes the session itself: drop \
                 session_duration(..) and extend sessions with the SDK's keepSessionAlive",
            ));
        }
        Ok(())
    }
}

/// A `Domain` cookie attribute value: dot-separated labels of ASCII letters, digits,
/// `-` and `_` (found in internal host names), with an optional leading dot (which
/// browsers ignore).
fn is_domain_name(domain: &str) -> bool {
    let domain = domain.strip_prefix('.').unwrap_or(domain);
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidSetting {
        setting,
        reason: reason.into(),
    }
}
