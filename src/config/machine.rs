//! The builder's settings for machine callers: M2M and Connected-App tokens, and the
//! protected-resource metadata agents discover them by.

use std::time::Duration;

use super::StytchAuthBuilder;
use crate::resource_metadata::ProtectedResource;

impl StytchAuthBuilder {
    /// Accept Stytch M2M access tokens (client credentials) as
    /// `Authorization: Bearer`, verified locally like session JWTs (same keys, RS256,
    /// `iss`, `aud`, times) and cached the same way. Handlers take
    /// [`M2mCaller`](crate::M2mCaller) or [`Caller`](crate::Caller); guard routes with
    /// [`RequireScope`](crate::RequireScope). An M2M token in a session cookie, or where
    /// a member is needed, is refused (401). Default: off.
    pub fn m2m_tokens(mut self, enabled: bool) -> Self {
        self.settings.m2m_tokens = enabled;
        self
    }

    /// Accept Stytch Connected-App access tokens (OAuth 2.1, an agent or MCP client
    /// acting for a member) as `Authorization: Bearer`, verified locally like session
    /// JWTs. Handlers take [`ConnectedAppCaller`](crate::ConnectedAppCaller) or
    /// [`Caller`](crate::Caller); [`RequireAuthz`](crate::RequireAuthz) authorizes them
    /// through the project policy's scopes, never the member's roles. Their `iss` is
    /// the project domain they were issued on: set
    /// [`project_domain`](Self::project_domain). Default: off.
    pub fn connected_app_tokens(mut self, enabled: bool) -> Self {
        self.settings.connected_app_tokens = enabled;
        self
    }

    /// Machine tokens (M2M, Connected App) older than this (from `iat`) are refused,
    /// besides their `exp`. At least 1 s: no machine token can be confirmed by Stytch,
    /// so zero would refuse them all (unlike
    /// [`max_token_age`](Self::max_token_age), where zero means "always ask Stytch").
    /// Stytch's SDKs check no age by default; tokens live an hour (M2M) or the app's
    /// `access_token_expiry_minutes` (Connected Apps, 60 by default). Lower it to
    /// shorten how long a token stays usable after its client was deleted or its
    /// consent revoked: nothing else tells the layer. Default: 1 hour.
    pub fn machine_token_max_age(mut self, age: Duration) -> Self {
        self.settings.machine_token_max_age = age;
        self
    }

    /// The project domain Connected-App tokens are issued on
    /// (`https://<words>.customers.stytch.dev`, or your custom domain): accepted as a
    /// JWT `iss` (any kind), and the authorization server a
    /// [`ProtectedResource`] names unless it names one itself. An origin: `https://`,
    /// no path. Default: none (only `stytch.com/<project_id>` and the
    /// [`base_url`](Self::base_url)'s origin are accepted issuers).
    pub fn project_domain(mut self, url: impl Into<String>) -> Self {
        self.settings.project_domain = Some(url.into());
        self
    }

    /// Describes the API as an OAuth protected resource (RFC 9728): 401 and 403
    /// answers then name its metadata document (`resource_metadata=` in
    /// `WWW-Authenticate`), which
    /// [`StytchAuth::protected_resource_metadata`](crate::StytchAuth::protected_resource_metadata)
    /// serves. For MCP servers and other APIs that agents discover. Default: none.
    pub fn protected_resource(mut self, resource: ProtectedResource) -> Self {
        self.settings.protected_resource = Some(resource);
        self
    }
}
