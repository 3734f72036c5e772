//! The machine clients the test handle creates and the options they take: M2M
//! clients (client-credentials tokens) and Connected Apps (OAuth access tokens
//! acting for a member).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// The default lifetime of a Connected App's access tokens (Stytch's
/// `access_token_expiry_minutes` default, 60).
pub(crate) const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// An M2M client made by [`StytchEmulator::create_m2m_client`]. `Debug` redacts
/// the secret.
///
/// [`StytchEmulator::create_m2m_client`]: crate::testing::StytchEmulator::create_m2m_client
#[derive(Clone)]
#[non_exhaustive]
pub struct M2mClient {
    /// `m2m-client-test-<uuid>`.
    pub client_id: String,
    /// The client secret (44 URL-safe characters).
    pub client_secret: String,
}

impl fmt::Debug for M2mClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_redacted(f, "M2mClient", &self.client_id)
    }
}

/// `name { client_id, client_secret: "[redacted]" }`.
fn debug_redacted(f: &mut fmt::Formatter<'_>, name: &str, client_id: &str) -> fmt::Result {
    f.debug_struct(name)
        .field("client_id", &client_id)
        .field("client_secret", &"[redacted]")
        .finish()
}

/// A Connected App made by [`StytchEmulator::create_connected_app`]. `Debug`
/// redacts the secret.
///
/// [`StytchEmulator::create_connected_app`]: crate::testing::StytchEmulator::create_connected_app
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectedApp {
    /// `connected-app-test-<uuid>`.
    pub client_id: String,
    /// The client secret (44 URL-safe characters), for token introspection.
    pub client_secret: String,
}

impl fmt::Debug for ConnectedApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_redacted(f, "ConnectedApp", &self.client_id)
    }
}

/// Settings for [`StytchEmulator::create_m2m_client_with`].
///
/// # Examples
///
/// ```
/// use axum_stytch::testing::M2mClientOptions;
///
/// // Every token of the client carries `"tenant": "acme"`, as a custom-claims
/// // template copying the client's trusted metadata would put it there.
/// let options = M2mClientOptions::new().custom_claim("tenant", "acme");
/// # let _ = options;
/// ```
///
/// [`StytchEmulator::create_m2m_client_with`]: crate::testing::StytchEmulator::create_m2m_client_with
#[derive(Debug, Clone, Default)]
pub struct M2mClientOptions {
    pub(crate) custom_claims: Map<String, Value>,
}

impl M2mClientOptions {
    /// The defaults: no custom claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the custom claims added to every access token of the client (what
    /// Stytch's M2M custom-claims template produces). Reserved names
    /// (`iss sub aud exp nbf iat jti`) and `https://stytch.com/…` keys are
    /// ignored, `null` values skipped; `scope` is always the granted scopes.
    pub fn custom_claims(mut self, claims: Map<String, Value>) -> Self {
        self.custom_claims = claims;
        self
    }

    /// Adds one custom claim (the same rules as
    /// [`custom_claims`](Self::custom_claims)).
    pub fn custom_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom_claims.insert(name.into(), value.into());
        self
    }
}

/// Settings for [`StytchEmulator::create_connected_app_with`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use axum_stytch::testing::ConnectedAppOptions;
///
/// let options = ConnectedAppOptions::new()
///     .access_token_expiry(Duration::from_secs(5 * 60))
///     .custom_claim("plan", "pro");
/// # let _ = options;
/// ```
///
/// [`StytchEmulator::create_connected_app_with`]: crate::testing::StytchEmulator::create_connected_app_with
#[derive(Debug, Clone)]
pub struct ConnectedAppOptions {
    pub(crate) access_token_lifetime: Duration,
    pub(crate) custom_claims: Map<String, Value>,
}

impl Default for ConnectedAppOptions {
    fn default() -> Self {
        Self {
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            custom_claims: Map::new(),
        }
    }
}

impl ConnectedAppOptions {
    /// The defaults: access tokens live 60 minutes, no custom claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the app's access tokens live, in whole seconds (`exp = iat +
    /// lifetime`); Stytch sets it in minutes (`access_token_expiry_minutes`).
    /// Default: 60 minutes.
    pub fn access_token_expiry(mut self, lifetime: Duration) -> Self {
        self.access_token_lifetime = lifetime;
        self
    }

    /// Replaces the custom claims added to every access token of the app (what
    /// Stytch's access-token template produces). Reserved names
    /// (`iss sub aud exp nbf iat jti`) and `https://stytch.com/…` keys are
    /// ignored, `null` values skipped; `scope` and `client_id` are always
    /// Stytch's.
    pub fn custom_claims(mut self, claims: Map<String, Value>) -> Self {
        self.custom_claims = claims;
        self
    }

    /// Adds one custom claim (the same rules as
    /// [`custom_claims`](Self::custom_claims)).
    pub fn custom_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom_claims.insert(name.into(), value.into());
        self
    }
}
