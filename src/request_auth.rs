//! The authentication state of one request, shared by the layer, the extractors and
//! the guards through the request's extensions.
//!
//! A locally verified JWT is decided when the request enters the layer. A request that
//! needs Stytch (a session token, or a validly signed but stale JWT) is decided lazily,
//! by the first extractor or guard that asks: a guard can then fold its RBAC check
//! into the same `sessions/authenticate` call, and routes that never look at the
//! member cost no outbound call.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::HeaderValue;
use tokio::sync::OnceCell;

use crate::Verdict;
use crate::auth::{StytchAuth, member_from_remote};
use crate::client::ClientError;
use crate::client::wire::{AuthenticateParams, AuthorizationCheck, SessionCredential};
use crate::credentials::Source;
use crate::member::AuthenticatedMember;
use crate::rbac::decision::Granting;
use crate::rbac::resource_action::ResourceAction;
use crate::rejection::{Failure, Reason};

/// The request extension through which extractors and guards reach the request's
/// authentication state.
#[derive(Clone)]
pub(crate) enum AuthContext {
    /// Verified locally, or found in the verified-token cache, when the request came
    /// in: the common case, which allocates nothing but the extension.
    Verified {
        auth: StytchAuth,
        member: AuthenticatedMember,
        /// When it was verified (by the injected clock): the time a guard decides at.
        at: SystemTime,
        /// The last positive decision of a guard that decided without waiting.
        verdict: Option<Verdict>,
    },
    /// Refused, or to be decided by Stytch when first needed.
    Deferred(Arc<RequestAuth>),
}

impl AuthContext {
    pub(crate) fn auth(&self) -> &StytchAuth {
        match self {
            AuthContext::Verified { auth, .. } => auth,
            AuthContext::Deferred(ctx) => &ctx.auth,
        }
    }

    /// `(path, outcome)` for tracing: how the request was (or will be) decided.
    pub(crate) fn describe(&self) -> (&'static str, &'static str) {
        match self {
            AuthContext::Verified { .. } => ("local", "ok"),
            AuthContext::Deferred(ctx) => match &ctx.initial {
                Initial::Failed(f) => ("local", f.reason.as_str()),
                Initial::Remote { .. } => ("remote", "deferred"),
            },
        }
    }

    /// The member, asking Stytch first if the request needs it (once per request).
    pub(crate) async fn member(&self) -> Result<AuthenticatedMember, Failure> {
        match self {
            AuthContext::Verified { member, .. } => Ok(member.clone()),
            AuthContext::Deferred(ctx) => ctx.member().await,
        }
    }

    /// Whether `action` on `resource` in `organization_id` (the member's own when
    /// `None`) is allowed.
    ///
    /// Locally verified members are decided against the cached policy. Members that
    /// need Stytch are decided by Stytch in the same `sessions/authenticate` call
    /// (`authorization_check`), so role and policy changes apply at once.
    pub(crate) async fn authorize(
        &self,
        organization_id: Option<&str>,
        wanted: &ResourceAction,
    ) -> Result<(AuthenticatedMember, Verdict), Failure> {
        match self {
            // At the time the layer verified the member, as the guards decide.
            AuthContext::Verified {
                auth, member, at, ..
            } => decide_locally(auth, member.clone(), organization_id, wanted, *at).await,
            AuthContext::Deferred(ctx) => ctx.authorize(organization_id, wanted).await,
        }
    }
}

/// The local RBAC decision for a member whose roles are known.
async fn decide_locally(
    auth: &StytchAuth,
    member: AuthenticatedMember,
    organization_id: Option<&str>,
    wanted: &ResourceAction,
    now: SystemTime,
) -> Result<(AuthenticatedMember, Verdict), Failure> {
    let organization_id = organization_id.unwrap_or(member.organization_id());
    let verdict = auth
        .inner
        .policy
        .decide(&member, organization_id, wanted, now)
        .await
        .inspect_err(|f| auth.inner.metrics.failure(f.reason))?;
    Ok((member, verdict))
}

enum Initial {
    Failed(Failure),
    Remote {
        credential: SessionCredential,
        /// The organization of a stale JWT (its signature was verified).
        organization_hint: Option<String>,
        /// The stale JWT recorded a session end that has passed: if Stytch no longer
        /// knows the session, it expired (rather than was revoked).
        session_ended: bool,
    },
}

/// Cookies to write on the way out.
enum CookieUpdate {
    /// Renewed credentials of the session `member_session_id`.
    Set {
        values: Vec<HeaderValue>,
        member_session_id: String,
    },
    Clear,
}

/// The state of a request that was refused, or needs Stytch.
pub(crate) struct RequestAuth {
    auth: StytchAuth,
    initial: Initial,
    source: Source,
    remote: OnceCell<Result<AuthenticatedMember, Failure>>,
    cookies: Mutex<Option<CookieUpdate>>,
}

impl RequestAuth {
    pub(crate) fn auth(&self) -> &StytchAuth {
        &self.auth
    }

    pub(crate) fn failed(auth: StytchAuth, failure: Failure, source: Source) -> Self {
        auth.inner.metrics.failure(failure.reason);
        let clear = failure.clear_cookies;
        let this = Self {
            auth,
            initial: Initial::Failed(failure),
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
        session_ended: bool,
        source: Source,
    ) -> Self {
        Self {
            auth,
            initial: Initial::Remote {
                credential,
                organization_hint,
                session_ended,
            },
            source,
            remote: OnceCell::new(),
            cookies: Mutex::new(None),
        }
    }

    async fn member(&self) -> Result<AuthenticatedMember, Failure> {
        match &self.initial {
            Initial::Failed(failure) => Err(failure.clone()),
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

    async fn authorize(
        &self,
        organization_id: Option<&str>,
        wanted: &ResourceAction,
    ) -> Result<(AuthenticatedMember, Verdict), Failure> {
        if let (
            Initial::Remote {
                credential,
                organization_hint,
                ..
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
                    resource_id: wanted.resource().to_owned(),
                    action: wanted.action().to_owned(),
                };
                let (member, granting) = self.authenticate(credential, Some(check)).await?;
                let _ = self.remote.set(Ok(member.clone()));
                // `authenticate` answers a check with a verdict or an error.
                let granting = granting.ok_or_else(|| Failure::new(Reason::PermissionDenied))?;
                let verdict = Verdict::new(member.clone(), granting, wanted.clone());
                return Ok((member, verdict));
            }
        }
        let member = self.member().await?;
        let now = self.auth.inner.clock.now();
        decide_locally(&self.auth, member, organization_id, wanted, now).await
    }

    async fn authenticate(
        &self,
        credential: &SessionCredential,
        check: Option<AuthorizationCheck>,
    ) -> Result<(AuthenticatedMember, Option<Granting>), Failure> {
        let inner = &self.auth.inner;
        let checked = check.is_some();
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
                    self.set_cookies(CookieUpdate::Set {
                        values: inner.cookies.set(
                            &response.session_jwt,
                            &response.session_token,
                            response.member_session.expires_at,
                        ),
                        member_session_id: member.member_session_id().to_owned(),
                    });
                }
                let granting = match &response.verdict {
                    Some(v) if checked && v.authorized => {
                        Some(Granting::Names(v.granting_roles.as_slice().into()))
                    }
                    // A check was sent and Stytch answered 200 without a positive
                    // verdict: fail closed.
                    _ if checked => return Err(self.fail(Failure::new(Reason::PermissionDenied))),
                    _ => None,
                };
                tracing::debug!(path = "remote", outcome = "ok", request_id = %response.request_id, "stytch session authenticated");
                Ok((member, granting))
            }
            // A "session not found" was remembered by the call itself (see
            // `StytchAuth::authenticate_remote`).
            Err(error) => {
                let session_ended = matches!(
                    self.initial,
                    Initial::Remote {
                        session_ended: true,
                        ..
                    }
                );
                Err(self.fail(failure_from_remote(&error, session_ended)))
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

    /// The `Set-Cookie` values to add to the response, if any. Renewed credentials of
    /// a session logged out on this instance while the handler ran (a logout request
    /// of the same browser, say) are not written: the cookies are cleared instead, so
    /// the logout is not undone by the response that arrives after it.
    pub(crate) fn take_set_cookies(&self) -> Option<Vec<HeaderValue>> {
        let update = self
            .cookies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let inner = &self.auth.inner;
        Some(match update {
            CookieUpdate::Set {
                values,
                member_session_id,
            } if !self.auth.is_revoked(&member_session_id) => values,
            CookieUpdate::Set { .. } | CookieUpdate::Clear => inner.cookies.clear(),
        })
    }
}

/// The reason for a session Stytch no longer knows: expired when the stale JWT recorded
/// a session end that has passed (`session_ended`), revoked otherwise.
pub(crate) fn session_gone(session_ended: bool) -> Reason {
    if session_ended {
        Reason::SessionExpired
    } else {
        Reason::SessionRevoked
    }
}

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

/// Maps a failed `sessions/authenticate` to the answer the request gets (see
/// [`RemoteFailure`]): cookies are cleared only for a session Stytch does not know; a
/// refused credential is 401 with the cookies kept; problems on our side are 503. The
/// call itself is logged where it is made, once ([`RemoteFailure::log_line`]).
fn failure_from_remote(error: &ClientError, session_ended: bool) -> Failure {
    match RemoteFailure::of(error) {
        RemoteFailure::Unavailable => Failure::unavailable(error),
        RemoteFailure::SessionGone => Failure::new(session_gone(session_ended)).clearing_cookies(),
        RemoteFailure::TenancyMismatch => Failure::new(Reason::TenancyMismatch),
        RemoteFailure::PermissionDenied => Failure::new(Reason::PermissionDenied),
        RemoteFailure::CredentialRefused => Failure::new(Reason::InvalidToken),
        RemoteFailure::SecretRejected | RemoteFailure::WrongBaseUrl | RemoteFailure::Unexpected => {
            Failure::new(Reason::StytchUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiError;
    use http::StatusCode;
    use std::time::Duration;

    fn api(status: u16, error_type: &str) -> ClientError {
        ClientError::Api(ApiError {
            status: StatusCode::from_u16(status).unwrap(),
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
                ClientError::unexpected(StatusCode::NOT_FOUND, ""),
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
            (api(400, "bad_request"), Reason::InvalidToken, false),
            (api(401, "jwt_invalid"), Reason::InvalidToken, false),
            // A WAF's or gateway's 403 is not Stytch's authorization decision.
            (api(403, "forbidden"), Reason::StytchUnavailable, false),
            (
                api(401, "unauthorized_credentials_homepage"),
                Reason::StytchUnavailable,
                false,
            ),
            // A gateway's or proxy's JSON error page is not Stytch's word on a session.
            (api(401, "unauthorized"), Reason::StytchUnavailable, false),
            (
                api(407, "proxy_authentication_required"),
                Reason::StytchUnavailable,
                false,
            ),
            (api(408, "timeout"), Reason::StytchUnavailable, false),
            (api(422, "unprocessable"), Reason::StytchUnavailable, false),
            (
                ClientError::unexpected(StatusCode::UNAUTHORIZED, ""),
                Reason::StytchUnavailable,
                false,
            ),
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
                ClientError::transport("refused"),
                Reason::StytchUnavailable,
                false,
            ),
            (
                ClientError::unexpected(StatusCode::OK, ""),
                Reason::StytchUnavailable,
                false,
            ),
        ];
        for (error, reason, clear) in cases {
            let f = failure_from_remote(&error, false);
            assert_eq!((f.reason, f.clear_cookies), (reason, clear), "{error:?}");
        }
        assert_eq!(
            failure_from_remote(&api(429, "x"), false).retry_after,
            Some(Duration::from_secs(3))
        );
        // Past the session end its JWT recorded, a session Stytch no longer knows
        // expired.
        let f = failure_from_remote(&api(404, "session_not_found"), true);
        assert_eq!((f.reason, f.clear_cookies), (Reason::SessionExpired, true));
    }
}
