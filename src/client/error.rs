//! Errors from calls to the Stytch API.

use std::time::Duration;

use http::StatusCode;

/// The longest wait a `Retry-After` from Stytch imposes on the layer.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// An error answered by the Stytch API (a non-2xx status with Stytch's error body),
/// or by the layer on its behalf when it did not call Stytch: `too_many_requests`
/// while Stytch's `Retry-After` runs, `too_many_calls_in_flight` past
/// `max_concurrent_authentications`, and `session_not_found` for a credential Stytch
/// already answered that for (`error_message` says so, and `request_id` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stytch's machine-readable error type, e.g. `session_not_found`.
    pub error_type: String,
    /// Stytch's human-readable message.
    pub error_message: String,
    /// Stytch's request id, for support tickets.
    pub request_id: Option<String>,
    /// The `Retry-After` delay, when Stytch sent one (429 / 503).
    pub retry_after: Option<Duration>,
}

/// `404: session_not_found (message), request_id request-id-test-...`: the request id
/// is what Stytch's support asks for.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.status.as_u16(),
            self.error_type,
            self.error_message
        )?;
        match &self.request_id {
            Some(id) => write!(f, ", request_id {id}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ApiError {}

/// A failed call to the Stytch API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Stytch answered with an error.
    #[error("Stytch API error {0}")]
    Api(ApiError),
    /// Stytch answered with something that is not a Stytch response (not JSON, truncated,
    /// missing required fields).
    #[error("unexpected response from Stytch (HTTP {}): {detail}", status.as_u16())]
    #[non_exhaustive]
    UnexpectedResponse {
        /// The HTTP status.
        status: StatusCode,
        /// What was wrong with it.
        detail: String,
        /// The `Retry-After` delay, when the answer carried one (a proxy's or a CDN's
        /// 429 or 503 page).
        retry_after: Option<Duration>,
    },
    /// The call did not complete within the configured timeout.
    #[error("request to Stytch timed out")]
    Timeout,
    /// The call failed below HTTP (DNS, connect, TLS, connection reset).
    #[error("could not reach Stytch: {detail}")]
    #[non_exhaustive]
    Transport {
        /// What failed.
        detail: String,
    },
}

impl ClientError {
    /// Whether this failure means Stytch could not give an answer (network, timeout, 5xx,
    /// 429, garbage), as opposed to a definite answer about the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Api(e) => {
                e.status == StatusCode::TOO_MANY_REQUESTS || e.status.as_u16() >= 500
            }
            ClientError::UnexpectedResponse { .. }
            | ClientError::Timeout
            | ClientError::Transport { .. } => true,
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
        self.status() == Some(StatusCode::NOT_FOUND)
            && self.error_type() == Some("session_not_found")
    }

    /// What a credential Stytch already answered [`is_session_not_found`] for is
    /// answered again, without asking.
    ///
    /// [`is_session_not_found`]: Self::is_session_not_found
    pub(crate) fn remembered_session_not_found() -> Self {
        ClientError::Api(ApiError {
            status: StatusCode::NOT_FOUND,
            error_type: "session_not_found".into(),
            error_message: "Stytch answered earlier that this session was not found".into(),
            request_id: None,
            retry_after: None,
        })
    }

    /// How long Stytch asked not to be called again: its `Retry-After` (1 s when it
    /// sent none) on a 429, or on a 503 that carries one; at most 60 s. A 429 that is
    /// not Stytch's JSON (a CDN's or a WAF's page in front of it) counts the same: it
    /// limits calls all the same.
    pub(crate) fn rate_limited_for(&self) -> Option<Duration> {
        let status = self.status()?;
        let wait = match (status.as_u16(), self.retry_after()) {
            (429, wait) => wait.unwrap_or(Duration::from_secs(1)),
            (503, Some(wait)) => wait,
            _ => return None,
        };
        Some(wait.clamp(Duration::from_secs(1), MAX_BACKOFF))
    }

    /// The `Retry-After` the answer carried, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Api(e) => e.retry_after,
            ClientError::UnexpectedResponse { retry_after, .. } => *retry_after,
            ClientError::Timeout | ClientError::Transport { .. } => None,
        }
    }

    /// The answer to a call not made because Stytch asked to wait
    /// ([`rate_limited_for`](Self::rate_limited_for)): `wait` is what remains of it.
    pub(crate) fn backing_off(wait: Duration) -> Self {
        ClientError::Api(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error_type: "too_many_requests".into(),
            error_message: "Stytch asked not to be called yet (Retry-After); not called".into(),
            request_id: None,
            retry_after: Some(wait),
        })
    }

    /// The answer to a call not made because `max_concurrent_authentications` calls
    /// were already in flight.
    pub(crate) fn too_many_in_flight() -> Self {
        ClientError::Api(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_type: "too_many_calls_in_flight".into(),
            error_message: "max_concurrent_authentications calls to Stytch already in flight; \
                            not called"
                .into(),
            request_id: None,
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    /// The answer to a call not made for a credential that proves nothing (a session
    /// token never confirmed) because their budget was spent: `wait` until the next
    /// may be made.
    pub(crate) fn unverified_budget_spent(wait: Duration) -> Self {
        ClientError::Api(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error_type: "unverified_authentications_limited".into(),
            error_message: "the budget of calls for session tokens not seen before is spent \
                            (unverified_authentications_per_second, \
                            max_concurrent_unverified_authentications); not called"
                .into(),
            request_id: None,
            // Whole seconds, rounded up: `Retry-After` counts seconds.
            retry_after: Some(Duration::from_secs(
                u64::try_from(wait.as_millis().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .max(1),
            )),
        })
    }

    /// A copy of an error shared by the callers of one call. (Not `Clone`, so that a
    /// variant may carry a source error one day.)
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            ClientError::Api(e) => ClientError::Api(e.clone()),
            ClientError::UnexpectedResponse {
                status,
                detail,
                retry_after,
            } => ClientError::UnexpectedResponse {
                status: *status,
                detail: detail.clone(),
                retry_after: *retry_after,
            },
            ClientError::Timeout => ClientError::Timeout,
            ClientError::Transport { detail } => ClientError::transport(detail.clone()),
        }
    }

    /// An answer that is not a Stytch response (without `Retry-After`).
    pub(crate) fn unexpected(status: StatusCode, detail: impl Into<String>) -> Self {
        ClientError::UnexpectedResponse {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A failure below HTTP, or of the task that made the call.
    pub(crate) fn transport(detail: impl Into<String>) -> Self {
        ClientError::Transport {
            detail: detail.into(),
        }
    }

    /// The HTTP status, when Stytch answered at all.
    pub fn status(&self) -> Option<StatusCode> {
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
            ClientError::transport(e.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, retry_after: Option<u64>) -> ClientError {
        ClientError::Api(ApiError {
            status: StatusCode::from_u16(status).unwrap(),
            error_type: "x".into(),
            error_message: String::new(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    #[test]
    fn rate_limits_follow_retry_after_within_bounds() {
        let secs = |e: ClientError| e.rate_limited_for().map(|d| d.as_secs());
        assert_eq!(secs(api(429, None)), Some(1));
        assert_eq!(secs(api(429, Some(0))), Some(1));
        assert_eq!(secs(api(429, Some(7))), Some(7));
        assert_eq!(secs(api(429, Some(86_400))), Some(60));
        assert_eq!(secs(api(503, Some(4))), Some(4));
        assert_eq!(secs(api(503, None)), None, "a 503 without Retry-After");
        assert_eq!(secs(api(500, Some(4))), None);
        assert_eq!(secs(api(404, Some(4))), None);
        assert_eq!(secs(ClientError::Timeout), None);
        // A 429 that is not Stytch's JSON (a CDN's page) limits calls all the same.
        let page = |status: u16, retry_after: Option<u64>| ClientError::UnexpectedResponse {
            status: StatusCode::from_u16(status).unwrap(),
            detail: "not JSON".into(),
            retry_after: retry_after.map(Duration::from_secs),
        };
        assert_eq!(secs(page(429, None)), Some(1));
        assert_eq!(secs(page(429, Some(9))), Some(9));
        assert_eq!(secs(page(503, Some(4))), Some(4));
        assert_eq!(secs(page(503, None)), None);
        assert_eq!(secs(page(502, Some(4))), None);
        let waiting = ClientError::backing_off(Duration::from_secs(3));
        assert!(waiting.is_unavailable());
        assert_eq!(waiting.rate_limited_for(), Some(Duration::from_secs(3)));
    }
}
