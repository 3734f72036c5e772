//! Why a request was not let through, and the response that says so.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;

use crate::rbac::resource_action::ResourceAction;

/// The machine-readable reason a request was rejected.
///
/// Its [`as_str`](Reason::as_str) form is the `error` field of the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No session cookie (or bearer token, when enabled). 401.
    MissingCredentials,
    /// A session cookie that cannot be a credential: over the size cap, repeated, not
    /// text. 401.
    InvalidCredentials,
    /// A session JWT that is malformed, forged, tampered with, signed with an
    /// unknown key or another algorithm, or issued for another project; a session
    /// token that cannot be a Stytch token; or a credential Stytch refused as invalid
    /// (400). 401.
    InvalidToken,
    /// The session has ended: Stytch no longer knows a session whose JWT recorded an
    /// end that has passed. 401, cookies cleared.
    SessionExpired,
    /// The session was revoked (logout), or Stytch no longer knows it. 401.
    SessionRevoked,
    /// Stytch could not be reached (or answered an error) when its answer was needed to
    /// decide. 503: the crate fails closed.
    StytchUnavailable,
    /// The member's organization is not the one the route is about. 403.
    TenancyMismatch,
    /// None of the member's roles grants the action on the resource. 403.
    PermissionDenied,
    /// The [`StytchAuth`](crate::StytchAuth) layer is not installed on this route. 500.
    LayerMissing,
    /// A guard or extractor is set up wrongly for this route (for example
    /// `organization_from_path` names a path parameter the route does not have, or a
    /// [`Verdict`](crate::Verdict) is extracted where no guard ran). 500.
    Misconfigured,
}

impl Reason {
    /// The reason as it appears in the JSON body, e.g. `"session_expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "missing_credentials",
            Reason::InvalidCredentials => "invalid_credentials",
            Reason::InvalidToken => "invalid_token",
            Reason::SessionExpired => "session_expired",
            Reason::SessionRevoked => "session_revoked",
            Reason::StytchUnavailable => "stytch_unavailable",
            Reason::TenancyMismatch => "tenancy_mismatch",
            Reason::PermissionDenied => "permission_denied",
            Reason::LayerMissing => "layer_missing",
            Reason::Misconfigured => "misconfigured",
        }
    }

    /// The HTTP status for this reason.
    pub fn status(self) -> StatusCode {
        match self {
            Reason::MissingCredentials
            | Reason::InvalidCredentials
            | Reason::InvalidToken
            | Reason::SessionExpired
            | Reason::SessionRevoked => StatusCode::UNAUTHORIZED,
            Reason::TenancyMismatch | Reason::PermissionDenied => StatusCode::FORBIDDEN,
            Reason::StytchUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::LayerMissing | Reason::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "No session: sign in first.",
            Reason::InvalidCredentials => {
                "The session cookie (or bearer token) is malformed, repeated, or over the size limit."
            }
            Reason::InvalidToken => "The session JWT or token is not valid: sign in again.",
            Reason::SessionExpired => "The session has expired: sign in again.",
            Reason::SessionRevoked => "The session has ended: sign in again.",
            Reason::StytchUnavailable => {
                "Authentication is temporarily unavailable: try again shortly."
            }
            Reason::TenancyMismatch => "The member does not belong to this organization.",
            Reason::PermissionDenied => "The member may not perform this action.",
            Reason::LayerMissing => {
                "Missing StytchAuth layer: is the StytchAuth layer installed? \
                 Add `.layer(auth.layer())` to the router that serves this route."
            }
            Reason::Misconfigured => {
                "Authorization is misconfigured for this route: check that organization_from_path \
                 names one of the route's path parameters, and that a RequireAuthz guard runs \
                 before a Verdict is extracted."
            }
        }
    }

    pub(crate) const ALL: [Reason; 10] = [
        Reason::MissingCredentials,
        Reason::InvalidCredentials,
        Reason::InvalidToken,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::StytchUnavailable,
        Reason::TenancyMismatch,
        Reason::PermissionDenied,
        Reason::LayerMissing,
        Reason::Misconfigured,
    ];

    pub(crate) fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hook that replaces the default JSON rejection, e.g. to redirect browsers to a
/// login page. Return `None` to keep the default response.
pub(crate) type ErrorHandler =
    Arc<dyn Fn(&AuthRejection, &Parts) -> Option<Response> + Send + Sync + 'static>;

/// The rejection of [`AuthenticatedMember`](crate::AuthenticatedMember),
/// [`RequireAuthz`](crate::RequireAuthz) and friends.
///
/// Renders as JSON, `{"error": "<reason>", "message": "...", "resource": ..., "action": ...}`,
/// with the status of its [`Reason`], unless an error handler installed with
/// [`StytchAuthBuilder::error_handler`](crate::StytchAuthBuilder::error_handler)
/// produced another response. It never contains a token or the member's roles. A 401
/// also carries `WWW-Authenticate: Cookie realm="stytch"`; with
/// [`bearer_tokens`](crate::StytchAuthBuilder::bearer_tokens) enabled, the `Bearer`
/// challenge of RFC 6750 instead: `Bearer realm="stytch"`, with
/// `error="invalid_request"` for a repeated, oversized or malformed credential and
/// `error="invalid_token"` for one refused otherwise. A 503 carries `Retry-After` (1 to
/// 60 s): when `sessions/authenticate` failed, Stytch's own when it sent one, else 1 s;
/// when the JWKS could not be fetched, the
/// [`jwks_refresh_cooldown`](crate::StytchAuthBuilder::jwks_refresh_cooldown) (30 s);
/// when the RBAC policy could not be, the time until it may be fetched again (what is
/// left of the 5 s retry backoff after a failed fetch, or of Stytch's `Retry-After`).
///
/// With [`grpc_status_errors`](crate::StytchAuthBuilder::grpc_status_errors), a gRPC
/// request's rejection renders as a gRPC status instead
/// ([`grpc_response`](Self::grpc_response), see [`grpc`](crate::grpc)).
pub struct AuthRejection {
    reason: Reason,
    permission: Option<(String, String)>,
    retry_after: Option<Duration>,
    /// A 401 challenges `Bearer` (bearer tokens enabled) rather than `Cookie`.
    bearer_challenge: bool,
    /// Rendered as a gRPC status (`grpc_status_errors`, and a gRPC request).
    grpc_status: bool,
    /// The error handler's response. A `Response` is not `Sync`; behind a `Mutex` (only
    /// ever taken apart by `into_response`) the rejection is, so it converts into
    /// `Box<dyn Error + Send + Sync>` and `anyhow::Error`.
    custom: Option<Box<Mutex<Response>>>,
}

impl AuthRejection {
    pub(crate) fn new(reason: Reason) -> Self {
        Self {
            reason,
            permission: None,
            retry_after: None,
            bearer_challenge: false,
            grpc_status: false,
            custom: None,
        }
    }

    pub(crate) fn with_bearer_challenge(mut self, bearer: bool) -> Self {
        self.bearer_challenge = bearer;
        self
    }

    pub(crate) fn with_grpc_status(mut self, grpc: bool) -> Self {
        self.grpc_status = grpc;
        self
    }

    pub(crate) fn with_permission(mut self, resource: &str, action: &str) -> Self {
        self.permission = Some((resource.to_owned(), action.to_owned()));
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Runs the user's error handler, if any, and keeps its response.
    pub(crate) fn customize(mut self, handler: Option<&ErrorHandler>, parts: &Parts) -> Self {
        if let Some(handler) = handler {
            self.custom = handler(&self, parts).map(|r| Box::new(Mutex::new(r)));
        }
        self
    }

    /// Why the request was rejected.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The HTTP status of the default response.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// The resource of the denied permission (403 only).
    pub fn resource(&self) -> Option<&str> {
        self.permission.as_ref().map(|(r, _)| r.as_str())
    }

    /// The action of the denied permission (403 only).
    pub fn action(&self) -> Option<&str> {
        self.permission.as_ref().map(|(_, a)| a.as_str())
    }

    /// The default JSON response, ignoring any error handler.
    pub fn default_response(&self) -> Response {
        let mut body = serde_json::json!({
            "error": self.reason.as_str(),
            "message": self.reason.message(),
        });
        if let Some((resource, action)) = &self.permission {
            body["resource"] = resource.as_str().into();
            body["action"] = action.as_str().into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            let challenge = match (self.bearer_challenge, self.reason) {
                (false, _) => "Cookie realm=\"stytch\"",
                // RFC 6750 §3.1: no error code when the request carried no credential,
                // `invalid_request` for a repeated, oversized or malformed one.
                (true, Reason::MissingCredentials) => "Bearer realm=\"stytch\"",
                (true, Reason::InvalidCredentials) => {
                    "Bearer realm=\"stytch\", error=\"invalid_request\""
                }
                (true, _) => "Bearer realm=\"stytch\", error=\"invalid_token\"",
            };
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if self.reason == Reason::StytchUnavailable {
            let secs = self.retry_after_secs();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// The `Retry-After` of a 503, in seconds: 1 to 60.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after.map_or(1, |d| d.as_secs().clamp(1, 60))
    }
}

impl fmt::Debug for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRejection")
            .field("reason", &self.reason)
            .field("permission", &self.permission)
            .field("custom_response", &self.custom.is_some())
            .finish()
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.reason.message())
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self.custom {
            Some(response) => response
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
            None if self.grpc_status => self.grpc_response(),
            None => self.default_response(),
        }
    }
}

/// Why a request has no usable session (or may not proceed).
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) reason: Reason,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) clear_cookies: bool,
}

impl Failure {
    pub(crate) fn new(reason: Reason) -> Self {
        Self {
            reason,
            retry_after: None,
            clear_cookies: false,
        }
    }

    pub(crate) fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub(crate) fn clearing_cookies(mut self) -> Self {
        self.clear_cookies = true;
        self
    }

    /// The rejection for this failure, without the user's error handler; a 403 names
    /// `permission` (the resource and action refused).
    pub(crate) fn rejection(&self, permission: Option<&ResourceAction>) -> AuthRejection {
        let rejection = AuthRejection::new(self.reason).with_retry_after(self.retry_after);
        match permission {
            Some(wanted) if self.reason.status() == StatusCode::FORBIDDEN => {
                rejection.with_permission(wanted.resource(), wanted.action())
            }
            _ => rejection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rejection, with or without the error handler's response, is an error type
    /// that crosses threads: `?` into `Box<dyn Error + Send + Sync>` (or `anyhow`).
    #[test]
    fn rejections_are_send_and_sync_errors() {
        fn boxed(e: AuthRejection) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            Box::new(e)
        }
        let parts = http::Request::new(()).into_parts().0;
        let handler: ErrorHandler =
            Arc::new(|_, _| Some((StatusCode::IM_A_TEAPOT, "custom").into_response()));
        let custom =
            AuthRejection::new(Reason::MissingCredentials).customize(Some(&handler), &parts);
        assert_eq!(custom.into_response().status(), StatusCode::IM_A_TEAPOT);
        let custom =
            AuthRejection::new(Reason::MissingCredentials).customize(Some(&handler), &parts);
        let error = boxed(custom);
        assert!(
            error.to_string().starts_with("missing_credentials"),
            "{error}"
        );
    }
}
