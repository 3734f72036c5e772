//! Why a request was not let through, and the response that says so.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;

use crate::rbac::resource_action::ResourceAction;

/// The machine-readable reason a request was rejected.
///
/// Its [`as_str`](Reason::as_str) form is the `error` field of the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No session cookie (nor bearer token, when the layer reads them). 401.
    MissingCredentials,
    /// A session cookie that cannot be a credential: over the size cap, repeated, not
    /// text. 401.
    InvalidCredentials,
    /// A session JWT that is malformed, forged, tampered with, signed with an
    /// unknown key or another algorithm, or issued for another project; a session
    /// token that cannot be a Stytch token; or a credential Stytch refused as invalid
    /// (400). Also an M2M or Connected-App token that is invalid, expired or older
    /// than `machine_token_max_age`, or any token of a kind not taken from where it was
    /// sent (a machine token in a session cookie, a kind not enabled). 401.
    InvalidToken,
    /// The session has ended: Stytch no longer knows a session whose JWT recorded an
    /// end that has passed. 401, cookies cleared.
    SessionExpired,
    /// The session was revoked (logout), or Stytch no longer knows it. 401.
    SessionRevoked,
    /// A valid credential of a kind this route does not take: a machine token where a
    /// member session is needed ([`AuthenticatedMember`](crate::AuthenticatedMember),
    /// [`RequireSession`](crate::RequireSession)), a session where a machine token is
    /// ([`M2mCaller`](crate::M2mCaller), [`RequireScope`](crate::RequireScope)), or one
    /// kind of machine token for the other. 401.
    CallerNotAccepted,
    /// Stytch could not be reached (or answered an error) when its answer was needed to
    /// decide. 503: the crate fails closed.
    StytchUnavailable,
    /// The member's organization is not the one the route is about. 403.
    TenancyMismatch,
    /// None of the member's roles grants the action on the resource (or an M2M token,
    /// which no RBAC role or scope covers, was checked for a permission). 403.
    PermissionDenied,
    /// A machine token without the scopes the route needs: [`RequireScope`] for M2M and
    /// Connected-App tokens, or [`RequireAuthz`](crate::RequireAuthz) for a
    /// Connected-App token none of whose scopes grants the permission. 403, with
    /// `WWW-Authenticate: Bearer error="insufficient_scope"` and the scopes needed.
    ///
    /// [`RequireScope`]: crate::RequireScope
    InsufficientScope,
    /// The [`StytchAuth`](crate::StytchAuth) layer is not installed on this route. 500.
    LayerMissing,
    /// The caller's custom claims do not fit the type a
    /// [`CustomClaims<T>`](crate::CustomClaims) reads them as: the handler's type and
    /// the Stytch custom-claims template disagree (logged as an error once a minute,
    /// naming the type). 500.
    CustomClaimsMismatch,
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
            Reason::CallerNotAccepted => "caller_not_accepted",
            Reason::StytchUnavailable => "stytch_unavailable",
            Reason::TenancyMismatch => "tenancy_mismatch",
            Reason::PermissionDenied => "permission_denied",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::LayerMissing => "layer_missing",
            Reason::CustomClaimsMismatch => "custom_claims_mismatch",
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
            | Reason::SessionRevoked
            | Reason::CallerNotAccepted => StatusCode::UNAUTHORIZED,
            Reason::TenancyMismatch | Reason::PermissionDenied | Reason::InsufficientScope => {
                StatusCode::FORBIDDEN
            }
            Reason::StytchUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::LayerMissing | Reason::CustomClaimsMismatch | Reason::Misconfigured => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn message(self) -> &'static str {
        match self {
            Reason::MissingCredentials => {
                "No credentials: sign in first (or send an access token)."
            }
            Reason::InvalidCredentials => {
                "The session cookie (or bearer token) is malformed, repeated, or over the size limit."
            }
            Reason::InvalidToken => {
                "The session JWT, session token or access token is not valid: sign in again \
                 (or get a new access token)."
            }
            Reason::SessionExpired => "The session has expired: sign in again.",
            Reason::SessionRevoked => "The session has ended: sign in again.",
            Reason::CallerNotAccepted => {
                "This route does not take this kind of credential: it expects a member \
                 session, an M2M token or a Connected-App token, and got another."
            }
            Reason::StytchUnavailable => {
                "Authentication is temporarily unavailable: try again shortly."
            }
            Reason::TenancyMismatch => "The member does not belong to this organization.",
            Reason::PermissionDenied => "The member may not perform this action.",
            Reason::InsufficientScope => {
                "The access token lacks the scopes this action needs: ask for them (see `scope`)."
            }
            Reason::LayerMissing => {
                "Missing StytchAuth layer: is the StytchAuth layer installed? \
                 Add `.layer(auth.layer())` to the router that serves this route."
            }
            Reason::CustomClaimsMismatch => {
                "The caller's custom claims do not match the type this route reads them as: \
                 check the Stytch custom-claims template against the handler's CustomClaims<T> \
                 (the server's log names the type)."
            }
            Reason::Misconfigured => {
                "Authorization is misconfigured for this route: check that organization_from_path \
                 names one of the route's path parameters, and that a RequireAuthz guard runs \
                 before a Verdict is extracted."
            }
        }
    }

    pub(crate) const ALL: [Reason; 13] = [
        Reason::MissingCredentials,
        Reason::InvalidCredentials,
        Reason::InvalidToken,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::CallerNotAccepted,
        Reason::StytchUnavailable,
        Reason::TenancyMismatch,
        Reason::PermissionDenied,
        Reason::InsufficientScope,
        Reason::LayerMissing,
        Reason::CustomClaimsMismatch,
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
/// also carries `WWW-Authenticate: Cookie realm="stytch"`; when the layer reads
/// `Authorization: Bearer` ([`bearer_tokens`](crate::StytchAuthBuilder::bearer_tokens),
/// [`m2m_tokens`](crate::StytchAuthBuilder::m2m_tokens),
/// [`connected_app_tokens`](crate::StytchAuthBuilder::connected_app_tokens)), the
/// `Bearer` challenge of RFC 6750 instead: `Bearer realm="stytch"`, with
/// `error="invalid_request"` for a repeated, oversized or malformed credential and
/// `error="invalid_token"` for one refused otherwise. A 403
/// [`insufficient_scope`](Reason::InsufficientScope) carries `Bearer realm="stytch",
/// error="insufficient_scope", scope="<needed>"` (and the body a `scope` field). With
/// [`protected_resource`](crate::StytchAuthBuilder::protected_resource), Bearer
/// challenges also name the resource's metadata (`resource_metadata="<url>"`, RFC 9728
/// §5.1) and `Access-Control-Expose-Headers: WWW-Authenticate` lets browser clients
/// read them. A 503 carries `Retry-After` (1 to
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
    /// The scopes that would have been enough (space-separated).
    scope: Option<Arc<str>>,
    retry_after: Option<Duration>,
    /// A 401 challenges `Bearer` (the layer reads bearer tokens) rather than `Cookie`.
    bearer_challenge: bool,
    /// The protected-resource metadata URL, named in Bearer challenges.
    resource_metadata: Option<Arc<str>>,
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
            scope: None,
            retry_after: None,
            bearer_challenge: false,
            resource_metadata: None,
            grpc_status: false,
            custom: None,
        }
    }

    /// Challenges with `Bearer` (`bearer`), naming `resource_metadata` if given.
    pub(crate) fn with_bearer_challenge(
        mut self,
        bearer: bool,
        resource_metadata: Option<&Arc<str>>,
    ) -> Self {
        self.bearer_challenge = bearer;
        self.resource_metadata = resource_metadata.cloned();
        self
    }

    pub(crate) fn with_scope(mut self, scope: Option<Arc<str>>) -> Self {
        self.scope = scope;
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

    /// The scopes that would have been enough, space-separated
    /// ([`InsufficientScope`](Reason::InsufficientScope) only; absent when no scope
    /// could grant it).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
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
        if let Some(scope) = &self.scope {
            body["scope"] = scope.as_ref().into();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(challenge) = self.challenge() {
            let headers = response.headers_mut();
            headers.insert(WWW_AUTHENTICATE, challenge);
            if self.resource_metadata.is_some() {
                headers.insert(
                    ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static("WWW-Authenticate"),
                );
            }
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

impl AuthRejection {
    /// The `WWW-Authenticate` challenge: on every 401, and on a 403
    /// `insufficient_scope` to a bearer token (RFC 6750 §3).
    fn challenge(&self) -> Option<HeaderValue> {
        let error = match (self.status(), self.reason) {
            (StatusCode::UNAUTHORIZED, _) if !self.bearer_challenge => {
                return Some(HeaderValue::from_static("Cookie realm=\"stytch\""));
            }
            // RFC 6750 §3.1: no error code when the request carried no credential,
            // `invalid_request` for a repeated, oversized or malformed one.
            (StatusCode::UNAUTHORIZED, Reason::MissingCredentials) => None,
            (StatusCode::UNAUTHORIZED, Reason::InvalidCredentials) => Some("invalid_request"),
            (StatusCode::UNAUTHORIZED, _) => Some("invalid_token"),
            (StatusCode::FORBIDDEN, Reason::InsufficientScope) if self.bearer_challenge => {
                Some("insufficient_scope")
            }
            _ => return None,
        };
        let mut challenge = String::from("Bearer realm=\"stytch\"");
        if let Some(error) = error {
            challenge.push_str(&format!(", error=\"{error}\""));
        }
        // Only what a quoted string carries as is (RFC 6750's scope-token characters,
        // spaces between): a policy's odd scope name stays in the body alone.
        if let Some(scope) = self.scope.as_deref().filter(|s| is_quotable(s)) {
            challenge.push_str(&format!(", scope=\"{scope}\""));
        }
        if let Some(url) = self.resource_metadata.as_deref().filter(|s| is_quotable(s)) {
            challenge.push_str(&format!(", resource_metadata=\"{url}\""));
        }
        HeaderValue::from_str(&challenge).ok()
    }
}

/// Whether `s` fits in a quoted header parameter without escapes: visible ASCII and
/// spaces, no `"` or `\`.
fn is_quotable(s: &str) -> bool {
    s.bytes()
        .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'"' && b != b'\\')
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
    /// The scopes that would have been enough (space-separated).
    pub(crate) scope: Option<Arc<str>>,
}

impl Failure {
    pub(crate) fn new(reason: Reason) -> Self {
        Self {
            reason,
            retry_after: None,
            clear_cookies: false,
            scope: None,
        }
    }

    /// Names the scopes that would have been enough.
    pub(crate) fn needing_scope(mut self, scope: Option<Arc<str>>) -> Self {
        self.scope = scope;
        self
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
        let rejection = AuthRejection::new(self.reason)
            .with_retry_after(self.retry_after)
            .with_scope(self.scope.clone());
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
