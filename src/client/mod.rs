//! A small typed client for the Stytch B2B endpoints the middleware needs.
//!
//! [`wire`] holds the pure request builders and response parsers; this module is
//! the thin I/O step on top (reqwest with rustls, Basic auth, timeouts, a bounded
//! response body).

mod classify;
#[cfg(all(test, feature = "test-util"))]
mod emulator_tests;
mod error;
mod per_runtime;
mod retry_after;
pub(crate) mod wire;

use std::time::Duration;

use http::HeaderValue;
use http::header::USER_AGENT;
use serde::de::DeserializeOwned;

pub(crate) use classify::{RemoteFailure, result_class};
pub(crate) use error::MAX_BACKOFF;
pub use error::{ApiError, ClientError};
pub(crate) use retry_after::RetryAfter;
use wire::{
    AuthenticateParams, AuthenticateResponse, Empty, JwksResponse, OrgPolicyResponse,
    PolicyResponse,
};

/// Why the client cannot be built: checked when the layer is built.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// The custom base URL cannot be used.
    InvalidBaseUrl {
        /// The URL, with any `user:password@` redacted.
        url: String,
        reason: String,
    },
    /// The HTTP client could not be created.
    HttpClient(reqwest::Error),
}

/// Responses larger than this are not Stytch responses; reading stops there.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Connection and timeout settings for calls to Stytch.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the API lives and which issuers its JWTs may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port]`, no trailing slash.
    pub(crate) base_url: String,
    /// The custom base URL's origin, accepted as a JWT `iss` besides `stytch.com/<pid>`.
    pub(crate) custom_issuer: Option<String>,
}

impl Endpoint {
    /// The environment URL for `project_id`, or `custom` when given.
    ///
    /// A custom URL must be `https://`, or `http://` to a loopback address (the emulator),
    /// and must not carry a path, query or credentials: Stytch serves at the root.
    pub(crate) fn resolve(project_id: &str, custom: Option<&str>) -> Result<Self, BuildError> {
        let Some(custom) = custom else {
            return Ok(Self {
                base_url: wire::default_base_url(project_id).to_owned(),
                custom_issuer: None,
            });
        };
        let origin = origin(custom).map_err(|reason| BuildError::InvalidBaseUrl {
            url: redacted_url(custom),
            reason,
        })?;
        Ok(Self {
            base_url: origin.clone(),
            custom_issuer: Some(origin),
        })
    }
}

/// The origin (`https://host[:port]`) of `url`, which must be nothing more: `https://`,
/// or `http://` to a loopback address (the emulator); no credentials, path, query or
/// fragment (a trailing `/` is fine). What is wrong otherwise.
pub(crate) fn origin(url: &str) -> Result<String, String> {
    let url = http_url(url)?;
    if url.path() != "/" || url.query().is_some() {
        return Err("must not have a path or query".into());
    }
    Ok(url.origin().ascii_serialization())
}

/// `url` parsed: `https://`, or `http://` to a loopback address; a host; no
/// credentials or fragment. What is wrong otherwise.
pub(crate) fn http_url(url: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err("plain http is only allowed to a loopback address".into()),
        _ => return Err("scheme must be https".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(url)
}

/// `url` with any user information (`user:password@`, which may hold a secret)
/// replaced by `<redacted>`, for errors and `Debug`: everything between the scheme's
/// `://` (or the start) and the last `@`. That covers passwords with `/`, `?` or `#`
/// and strings that do not parse as URLs; a path with an `@` is redacted too.
pub(crate) fn redacted_url(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    let start = url[..at].find("://").map_or(0, |i| i + 3);
    format!("{}<redacted>{}", &url[..start], &url[at..])
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The Stytch endpoints this client calls: a bounded label for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Authenticate,
    Revoke,
    Jwks,
    Policy,
    OrgPolicy,
}

impl Call {
    /// The endpoint's label.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Call::Authenticate => "authenticate",
            Call::Revoke => "revoke",
            Call::Jwks => "jwks",
            Call::Policy => "policy",
            Call::OrgPolicy => "org_policy",
        }
    }
}

/// Told when each call to Stytch starts and how it ended (feature `metrics`).
#[cfg(feature = "metrics")]
pub(crate) trait CallObserver: Send + Sync {
    /// A reading taken as a call starts (the injected clock's monotonic one).
    fn started(&self) -> std::time::Instant;
    /// The call `call`, started at `started`, ended: `"ok"` or [`result_class`].
    fn ended(&self, call: Call, started: std::time::Instant, result: &'static str);
}

/// The HTTP client for Stytch. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StytchClient {
    http: std::sync::Arc<per_runtime::PerRuntime>,
    base_url: String,
    project_id: String,
    basic_auth: HeaderValue,
    request_timeout: Duration,
    #[cfg(feature = "metrics")]
    observer: Option<std::sync::Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for StytchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StytchClient")
            .field("base_url", &self.base_url)
            .field("project_id", &self.project_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl StytchClient {
    pub(crate) fn new(
        project_id: &str,
        secret: &str,
        endpoint: &Endpoint,
        settings: &ClientSettings,
    ) -> Result<Self, BuildError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("axum-stytch/", env!("CARGO_PKG_VERSION"))),
        );
        let (connect_timeout, request_timeout) =
            (settings.connect_timeout, settings.request_timeout);
        let http = per_runtime::PerRuntime::new(move || {
            reqwest::Client::builder()
                .default_headers(headers.clone())
                .connect_timeout(connect_timeout)
                .timeout(request_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
        })
        .map_err(BuildError::HttpClient)?;
        Ok(Self {
            http: std::sync::Arc::new(http),
            base_url: endpoint.base_url.clone(),
            project_id: project_id.to_owned(),
            basic_auth: wire::basic_auth(project_id, secret),
            request_timeout: settings.request_timeout,
            #[cfg(feature = "metrics")]
            observer: None,
        })
    }

    /// This client, telling `observer` of each call (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) fn observed_by(self, observer: std::sync::Arc<dyn CallObserver>) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// How long callers that joined a call in progress wait for it (twice the request
    /// timeout, real time): a call stuck on a runtime that no longer runs it is given
    /// up after that ([`crate::util::single_flight`]).
    pub(crate) fn call_deadline(&self) -> Duration {
        self.request_timeout.saturating_mul(2)
    }

    /// `POST /v1/b2b/sessions/authenticate`.
    pub(crate) async fn authenticate(
        &self,
        params: &AuthenticateParams,
    ) -> Result<AuthenticateResponse, ClientError> {
        self.send(
            Call::Authenticate,
            wire::authenticate_request(&self.base_url, &self.basic_auth, params),
        )
        .await
    }

    /// `POST /v1/b2b/sessions/revoke` of one member session.
    pub(crate) async fn revoke(&self, member_session_id: &str) -> Result<(), ClientError> {
        self.send::<Empty>(
            Call::Revoke,
            wire::revoke_request(&self.base_url, &self.basic_auth, member_session_id),
        )
        .await
        .map(|_| ())
    }

    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    pub(crate) async fn jwks(&self) -> Result<JwksResponse, ClientError> {
        self.send(
            Call::Jwks,
            wire::jwks_request(&self.base_url, &self.project_id),
        )
        .await
    }

    /// `GET /v1/b2b/rbac/policy`.
    pub(crate) async fn policy(&self) -> Result<PolicyResponse, ClientError> {
        self.send(
            Call::Policy,
            wire::policy_request(&self.base_url, &self.basic_auth),
        )
        .await
    }

    /// `GET /v1/b2b/rbac/organizations/{organization_id}`.
    pub(crate) async fn org_policy(
        &self,
        organization_id: &str,
    ) -> Result<OrgPolicyResponse, ClientError> {
        self.send(
            Call::OrgPolicy,
            wire::org_policy_request(&self.base_url, &self.basic_auth, organization_id),
        )
        .await
    }

    /// Sends `request`, the call `call`, and tells the observer (feature `metrics`).
    async fn send<T: DeserializeOwned>(
        &self,
        call: Call,
        request: http::Request<Vec<u8>>,
    ) -> Result<T, ClientError> {
        #[cfg(feature = "metrics")]
        let started = self.observer.as_ref().map(|o| o.started());
        let result = self.send_unobserved(request).await;
        #[cfg(feature = "metrics")]
        if let (Some(observer), Some(started)) = (&self.observer, started) {
            let class = result.as_ref().map_or_else(result_class, |_| "ok");
            observer.ended(call, started, class);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = call;
        result
    }

    async fn send_unobserved<T: DeserializeOwned>(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let request = reqwest::Request::try_from(request)?;
        let mut response = self.http.current()?.execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ClientError::unexpected(
                    status,
                    format!("response body over {MAX_RESPONSE_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        wire::parse_response(status, &headers, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_environment_and_custom_urls() {
        let e = Endpoint::resolve("project-live-1", None).unwrap();
        assert_eq!(e.base_url, "https://api.stytch.com");
        assert_eq!(e.custom_issuer, None);
        let e = Endpoint::resolve("project-test-1", None).unwrap();
        assert_eq!(e.base_url, "https://test.stytch.com");

        let e = Endpoint::resolve("project-test-1", Some("https://auth.example.com/")).unwrap();
        assert_eq!(e.base_url, "https://auth.example.com");
        assert_eq!(e.custom_issuer.as_deref(), Some("https://auth.example.com"));
        let e = Endpoint::resolve("project-test-1", Some("http://127.0.0.1:4010")).unwrap();
        assert_eq!(e.base_url, "http://127.0.0.1:4010");
        assert!(Endpoint::resolve("p", Some("http://[::1]:80")).is_ok());
        assert!(Endpoint::resolve("p", Some("http://localhost:9")).is_ok());
    }

    #[test]
    fn rejects_unsafe_or_malformed_custom_urls() {
        for bad in [
            "http://auth.example.com",
            "ftp://auth.example.com",
            "https://user:pw@auth.example.com",
            "https://auth.example.com/prefix",
            "https://auth.example.com/?q=1",
            "not a url",
            "",
        ] {
            let err = Endpoint::resolve("p", Some(bad)).unwrap_err();
            assert!(
                matches!(err, BuildError::InvalidBaseUrl { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    /// A URL refused for carrying credentials does not print them.
    #[test]
    fn refused_urls_do_not_print_their_credentials() {
        for (bad, shown) in [
            (
                "https://project-test-x:secret-test-abc@api.stytch.com",
                "https://<redacted>@api.stytch.com",
            ),
            (
                "https://secret-test-abc@api.stytch.com/v1",
                "https://<redacted>@api.stytch.com/v1",
            ),
            (
                "http://a:secret-test-abc@auth.example.com",
                "http://<redacted>@auth.example.com",
            ),
            // Unparseable (a space), still redacted.
            (
                "https://a:secret-test-abc@bad host",
                "https://<redacted>@bad host",
            ),
            // A password with `/`, `?` or `#` (unparseable: an invalid port).
            (
                "https://a:sec/ret-test-abc@api.stytch.com",
                "https://<redacted>@api.stytch.com",
            ),
            (
                "https://a:sec?ret-test-abc@api.stytch.com",
                "https://<redacted>@api.stytch.com",
            ),
            (
                "https://a:sec#ret-test-abc@api.stytch.com",
                "https://<redacted>@api.stytch.com",
            ),
            // One slash: parsed (and refused for its credentials) all the same.
            (
                "https:/a:secret-test-abc@api.stytch.com",
                "<redacted>@api.stytch.com",
            ),
        ] {
            // As the builder reports it.
            let err =
                crate::config::ConfigError::from(Endpoint::resolve("p", Some(bad)).unwrap_err());
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains("ret-test-abc"), "{text}");
                assert!(text.contains(shown), "{text}");
            }
        }
        assert_eq!(
            redacted_url("https://api.stytch.com"),
            "https://api.stytch.com"
        );
        assert_eq!(redacted_url("https://a.b/x@y"), "https://<redacted>@y");
        assert_eq!(redacted_url("no scheme@host"), "<redacted>@host");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let endpoint = Endpoint::resolve("project-test-1", None).unwrap();
        let client = StytchClient::new(
            "project-test-1",
            "super-secret",
            &endpoint,
            &ClientSettings::default(),
        )
        .unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("super-secret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
