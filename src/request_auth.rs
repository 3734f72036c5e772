//! The authentication state of one request, shared by the layer, the extractors and
//! the guards through the request's extensions.
//!
//! A locally verified JWT is decided when the request enters the layer. A request that
//! needs Stytch (a session token, or a validly signed but stale JWT) is decided lazily,
//! by the first extractor or guard that asks: a guard can then fold its RBAC check
//! into the same `sessions/authenticate` call, and routes that never look at the
//! member cost no outbound call.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::OnceCell;

use crate::auth::{StytchAuth, member_from_remote};
use crate::client::ClientError;
use crate::client::wire::{AuthenticateParams, AuthorizationCheck, SessionCredential};
use crate::credentials::Source;
use crate::error::Reason;
use crate::member::AuthenticatedMember;
use crate::rbac::Verdict;

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

    fn unavailable(error: &ClientError) -> Self {
        let retry_after = match error {
            ClientError::Api(api) => api.retry_after,
            _ => None,
        };
        Self {
            reason: Reason::StytchUnavailable,
            retry_after,
            clear_cookies: false,
        }
    }
}

enum Initial {
    Done(Result<AuthenticatedMember, Failure>),
    Remote {
        credential: SessionCredential,
        /// The organization of a stale JWT (its signature was verified).
        organization_hint: Option<String>,
    },
}

/// Cookies to write on the way out.
enum CookieUpdate {
    Set(Vec<HeaderValue>),
    Clear,
}

pub(crate) struct RequestAuth {
    auth: StytchAuth,
    initial: Initial,
    source: Source,
    remote: OnceCell<Result<AuthenticatedMember, Failure>>,
    cookies: Mutex<Option<CookieUpdate>>,
}

impl RequestAuth {
    pub(crate) fn done(
        auth: StytchAuth,
        result: Result<AuthenticatedMember, Failure>,
        source: Source,
    ) -> Self {
        if let Err(failure) = &result {
            auth.inner.metrics.failure(failure.reason);
        }
        let clear = matches!(&result, Err(f) if f.clear_cookies);
        let this = Self {
            auth,
            initial: Initial::Done(result),
            source,
            remote: OnceCell::new(),
            cookies: Mutex::new(None),
        };
        if clear {
            this.set_cookies(CookieUpdate::Clear);
        }
        this
    }

    pub(crate) fn remote(
        auth: StytchAuth,
        credential: SessionCredential,
        organization_hint: Option<String>,
        source: Source,
    ) -> Self {
        Self {
            auth,
            initial: Initial::Remote {
                credential,
                organization_hint,
            },
            source,
            remote: OnceCell::new(),
            cookies: Mutex::new(None),
        }
    }

    /// `(path, outcome)` for tracing: how the request was (or will be) decided.
    pub(crate) fn describe(&self) -> (&'static str, &'static str) {
        match &self.initial {
            Initial::Done(Ok(_)) => ("local", "ok"),
            Initial::Done(Err(f)) => ("local", f.reason.as_str()),
            Initial::Remote { .. } => ("remote", "deferred"),
        }
    }

    pub(crate) fn auth(&self) -> &StytchAuth {
        &self.auth
    }

    /// The member, asking Stytch first if the request needs it (once per request).
    pub(crate) async fn member(&self) -> Result<AuthenticatedMember, Failure> {
        match &self.initial {
            Initial::Done(result) => result.clone(),
            Initial::Remote { credential, .. } => self
                .remote
                .get_or_init(|| async {
                    self.authenticate(credential, None)
                        .await
                        .map(|(member, _)| member)
                })
                .await
                .clone(),
        }
    }

    /// Whether `action` on `resource` in `organization_id` is allowed.
    ///
    /// Locally verified members are decided against the cached policy. Members that
    /// need Stytch are decided by Stytch in the same `sessions/authenticate` call
    /// (`authorization_check`), so role and policy changes apply at once.
    pub(crate) async fn authorize(
        &self,
        organization_id: Option<&str>,
        resource: &str,
        action: &str,
    ) -> Result<(AuthenticatedMember, Verdict), Failure> {
        if let (
            Initial::Remote {
                credential,
                organization_hint,
            },
            None,
        ) = (&self.initial, self.remote.get())
        {
            // The member's own organization is known before asking Stytch only from a
            // (stale but validly signed) JWT; for a bare session token it is not, and
            // the decision below is made locally with the roles Stytch just returned.
            if let Some(org) = organization_id.or(organization_hint.as_deref()) {
                let check = AuthorizationCheck {
                    organization_id: org.to_owned(),
                    resource_id: resource.to_owned(),
                    action: action.to_owned(),
                };
                let (member, verdict) = self.authenticate(credential, Some(check)).await?;
                let _ = self.remote.set(Ok(member.clone()));
                let verdict =
                    verdict.unwrap_or_else(|| Verdict::new(Vec::new(), org, resource, action));
                return Ok((member, verdict));
            }
        }
        let member = self.member().await?;
        let organization_id = organization_id.unwrap_or(member.organization_id());
        let verdict = self
            .auth
            .inner
            .policy
            .decide(&member, organization_id, resource, action)
            .await
            .inspect_err(|f| self.auth.inner.metrics.failure(f.reason))?;
        Ok((member, verdict))
    }

    async fn authenticate(
        &self,
        credential: &SessionCredential,
        check: Option<AuthorizationCheck>,
    ) -> Result<(AuthenticatedMember, Option<Verdict>), Failure> {
        let inner = &self.auth.inner;
        let resource_action = check.as_ref().map(|c| {
            (
                c.organization_id.clone(),
                c.resource_id.clone(),
                c.action.clone(),
            )
        });
        let params = AuthenticateParams {
            credential: credential.clone(),
            session_duration_minutes: inner.session_duration_minutes,
            authorization_check: check,
        };
        let result = self.auth.authenticate_remote(params).await;
        let outcome = match result {
            // Logged out here, but Stytch may not have heard (a failed revoke).
            Ok(response)
                if self
                    .auth
                    .is_revoked(&response.member_session.member_session_id) =>
            {
                Err(self.fail(Failure::new(Reason::SessionRevoked).clearing_cookies()))
            }
            Ok(response) => {
                let member = member_from_remote(&response);
                if self.source == Source::Cookie {
                    inner
                        .metrics
                        .renewals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.set_cookies(CookieUpdate::Set(inner.cookies.set(
                        &response.session_jwt,
                        &response.session_token,
                        response.member_session.expires_at,
                        inner.clock.now(),
                    )));
                }
                let verdict =
                    match (&response.verdict, resource_action) {
                        (Some(v), Some((org, resource, action))) if v.authorized => Some(
                            Verdict::new(v.granting_roles.clone(), &org, &resource, &action),
                        ),
                        (_, Some(_)) => {
                            // A check was sent and Stytch answered 200 without a positive
                            // verdict: fail closed.
                            return Err(self.fail(Failure::new(Reason::PermissionDenied)));
                        }
                        (_, None) => None,
                    };
                tracing::debug!(path = "remote", outcome = "ok", request_id = %response.request_id, "stytch session authenticated");
                Ok((member, verdict))
            }
            Err(error) => {
                let failure = failure_from_remote(&error);
                // Only Stytch's own "session not found" marks a credential dead; a proxy's
                // 404 page must not log anyone out.
                if failure.reason == Reason::SessionRevoked {
                    self.auth.remember_dead(credential);
                }
                Err(self.fail(failure))
            }
        };
        if let Err(failure) = &outcome
            && failure.clear_cookies
        {
            self.set_cookies(CookieUpdate::Clear);
        }
        outcome
    }

    fn fail(&self, failure: Failure) -> Failure {
        self.auth.inner.metrics.failure(failure.reason);
        tracing::debug!(
            path = "remote",
            outcome = failure.reason.as_str(),
            "stytch session rejected"
        );
        failure
    }

    fn set_cookies(&self, update: CookieUpdate) {
        if self.source == Source::Cookie {
            *self.cookies.lock().unwrap_or_else(PoisonError::into_inner) = Some(update);
        }
    }

    /// The `Set-Cookie` values to add to the response, if any.
    pub(crate) fn take_set_cookies(&self) -> Option<Vec<HeaderValue>> {
        let update = self
            .cookies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(match update {
            CookieUpdate::Set(values) => values,
            CookieUpdate::Clear => self.auth.inner.cookies.clear(),
        })
    }
}

/// Maps a failed `sessions/authenticate` to the answer the request gets.
fn failure_from_remote(error: &ClientError) -> Failure {
    if error.is_unavailable() {
        tracing::warn!(%error, "Stytch unavailable while authenticating a session");
        return Failure::unavailable(error);
    }
    match (error.status(), error.error_type()) {
        (Some(404), Some("session_not_found")) => {
            Failure::new(Reason::SessionRevoked).clearing_cookies()
        }
        (Some(404), _) => {
            tracing::error!(%error, "Stytch answered 404 for sessions/authenticate: check the base URL");
            Failure::new(Reason::StytchUnavailable)
        }
        (Some(403), Some("session_authorization_tenancy_error")) => {
            Failure::new(Reason::TenancyMismatch)
        }
        (Some(403), _) => Failure::new(Reason::PermissionDenied),
        (Some(401), Some("unauthorized_credentials")) => {
            tracing::error!(
                "Stytch rejected the project id / secret: check STYTCH_PROJECT_ID and STYTCH_SECRET"
            );
            Failure::new(Reason::StytchUnavailable)
        }
        _ => Failure::new(Reason::InvalidToken).clearing_cookies(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiError;

    fn api(status: u16, error_type: &str) -> ClientError {
        ClientError::Api(ApiError {
            status,
            error_type: error_type.into(),
            error_message: String::new(),
            request_id: None,
            retry_after: Some(Duration::from_secs(3)),
        })
    }

    #[test]
    fn remote_failures_map_to_reasons() {
        let cases = [
            (api(404, "session_not_found"), Reason::SessionRevoked, true),
            (api(404, "not_found"), Reason::StytchUnavailable, false),
            (
                ClientError::UnexpectedResponse {
                    status: 404,
                    detail: String::new(),
                },
                Reason::StytchUnavailable,
                false,
            ),
            (
                api(403, "session_authorization_tenancy_error"),
                Reason::TenancyMismatch,
                false,
            ),
            (
                api(403, "session_authorization_error"),
                Reason::PermissionDenied,
                false,
            ),
            (
                api(401, "unauthorized_credentials"),
                Reason::StytchUnavailable,
                false,
            ),
            (api(400, "bad_request"), Reason::InvalidToken, true),
            (
                api(429, "too_many_requests"),
                Reason::StytchUnavailable,
                false,
            ),
            (
                api(500, "internal_server_error"),
                Reason::StytchUnavailable,
                false,
            ),
            (ClientError::Timeout, Reason::StytchUnavailable, false),
            (
                ClientError::Transport("refused".into()),
                Reason::StytchUnavailable,
                false,
            ),
            (
                ClientError::UnexpectedResponse {
                    status: 200,
                    detail: String::new(),
                },
                Reason::StytchUnavailable,
                false,
            ),
        ];
        for (error, reason, clear) in cases {
            let f = failure_from_remote(&error);
            assert_eq!((f.reason, f.clear_cookies), (reason, clear), "{error:?}");
        }
        assert_eq!(
            failure_from_remote(&api(429, "x")).retry_after,
            Some(Duration::from_secs(3))
        );
    }
}
