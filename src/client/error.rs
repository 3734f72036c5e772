//! Errors from calls to the Stytch API.

use std::time::Duration;

/// An error answered by the Stytch API (a non-2xx status with Stytch's error body).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// Stytch's machine-readable error type, e.g. `session_not_found`.
    pub error_type: String,
    /// Stytch's human-readable message.
    pub error_message: String,
    /// Stytch's request id, for support tickets.
    pub request_id: Option<String>,
    /// The `Retry-After` delay, when Stytch sent one (429 / 503).
    pub retry_after: Option<Duration>,
}

/// A failed call to the Stytch API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Stytch answered with an error.
    #[error("Stytch API error {}: {} ({})", .0.status, .0.error_type, .0.error_message)]
    Api(ApiError),
    /// Stytch answered with something that is not a Stytch response (not JSON, truncated,
    /// missing required fields).
    #[error("unexpected response from Stytch (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
    /// The call did not complete within the configured timeout.
    #[error("request to Stytch timed out")]
    Timeout,
    /// The call failed below HTTP (DNS, connect, TLS, connection reset).
    #[error("could not reach Stytch: {0}")]
    Transport(String),
}

impl ClientError {
    /// Whether this failure means Stytch could not give an answer (network, timeout, 5xx,
    /// 429, garbage), as opposed to a definite answer about the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Api(e) => e.status == 429 || e.status >= 500,
            ClientError::UnexpectedResponse { .. }
            | ClientError::Timeout
            | ClientError::Transport(_) => true,
        }
    }

    /// The Stytch `error_type`, when Stytch answered with one.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            ClientError::Api(e) => Some(&e.error_type),
            _ => None,
        }
    }

    /// Stytch's own "session not found" (404 `session_not_found`): the session is
    /// gone. A 404 of another kind (a proxy's page, a wrong base URL) is not.
    pub(crate) fn is_session_not_found(&self) -> bool {
        self.status() == Some(404) && self.error_type() == Some("session_not_found")
    }

    /// What a credential Stytch already answered [`is_session_not_found`] for is
    /// answered again, without asking.
    ///
    /// [`is_session_not_found`]: Self::is_session_not_found
    pub(crate) fn remembered_session_not_found() -> Self {
        ClientError::Api(ApiError {
            status: 404,
            error_type: "session_not_found".into(),
            error_message: "Stytch answered earlier that this session was not found".into(),
            request_id: None,
            retry_after: None,
        })
    }

    /// The HTTP status, when Stytch answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            ClientError::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            ClientError::Timeout
        } else {
            // Without the URL: it carries no secret, but keeps messages short and stable.
            ClientError::Transport(e.without_url().to_string())
        }
    }
}
