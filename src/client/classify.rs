//! What a failed `sessions/authenticate` call means, and how loud it is.

use super::ClientError;

/// What a failed `sessions/authenticate` call means.
///
/// Only Stytch's own "session not found" (`404 session_not_found`) says the session is
/// gone. Any other refusal says nothing certain about the member's session (a wrong
/// secret, a proxy's or gateway's error page, a request this crate got wrong), so it
/// must not log anyone out: a `400` or a `401 jwt_invalid` refuses the credential and
/// keeps the cookies; a `403` is a denial only with Stytch's two authorization error
/// types; any other `401`, `403` or `404` and any unexpected status are a problem on
/// our side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteFailure {
    /// Unreachable, timed out, 5xx, 429, or not called while backing off.
    Unavailable,
    SessionGone,
    TenancyMismatch,
    PermissionDenied,
    /// The credential itself was refused (a JWT Stytch no longer accepts, say one
    /// signed by a key it retired): the session token may still be good.
    CredentialRefused,
    SecretRejected,
    WrongBaseUrl,
    Unexpected,
}

impl RemoteFailure {
    pub(crate) fn of(error: &ClientError) -> Self {
        if error.is_unavailable() {
            return Self::Unavailable;
        }
        if error.is_session_not_found() {
            return Self::SessionGone;
        }
        match (error.status().map(|s| s.as_u16()), error.error_type()) {
            (Some(403), Some("session_authorization_tenancy_error")) => Self::TenancyMismatch,
            (Some(403), Some("session_authorization_error")) => Self::PermissionDenied,
            (Some(400), _) | (Some(401), Some("jwt_invalid")) => Self::CredentialRefused,
            (Some(401), _) => Self::SecretRejected,
            (Some(404), _) => Self::WrongBaseUrl,
            _ => Self::Unexpected,
        }
    }

    /// What an operator should read, and how loud: `(is_error, message)`. `None` for
    /// answers about one member's session, which are routine.
    pub(crate) fn log_line(self) -> Option<(bool, &'static str)> {
        match self {
            Self::Unavailable => Some((false, "Stytch unavailable while authenticating a session")),
            Self::CredentialRefused => Some((false, "Stytch refused the session credential")),
            Self::SecretRejected => Some((
                true,
                "Stytch rejected the project id / secret: check STYTCH_PROJECT_ID and STYTCH_SECRET",
            )),
            Self::WrongBaseUrl => Some((
                true,
                "Stytch answered 404 for sessions/authenticate: check the base URL",
            )),
            Self::Unexpected => Some((true, "unexpected answer from sessions/authenticate")),
            Self::SessionGone | Self::TenancyMismatch | Self::PermissionDenied => None,
        }
    }
}

/// What a failed call gave, as a label from a fixed set (metrics, spans): never a
/// message, an id or anything else from the answer but its class.
///
/// `session_not_found` (Stytch's own), `denied` (Stytch's 403 authorization and
/// tenancy errors), `client_error` (any other 4xx but 429: a refused credential, a
/// rejected secret, a wrong base URL), `rate_limited` (429), `server_error` (5xx),
/// `timeout`, `unreachable` (below HTTP), `invalid_response` (not a Stytch answer).
pub(crate) fn result_class(error: &ClientError) -> &'static str {
    match error {
        ClientError::Timeout => "timeout",
        ClientError::Transport { .. } => "unreachable",
        ClientError::UnexpectedResponse { .. } => "invalid_response",
        ClientError::Api(e) if e.status == http::StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        ClientError::Api(e) if e.status.is_server_error() => "server_error",
        ClientError::Api(_) => match RemoteFailure::of(error) {
            RemoteFailure::SessionGone => "session_not_found",
            RemoteFailure::TenancyMismatch | RemoteFailure::PermissionDenied => "denied",
            _ => "client_error",
        },
    }
}
