//! Remote authentication: Stytch's `sessions/authenticate`, called for what local
//! verification cannot decide (a session token alone, a validly signed but stale JWT),
//! with the rules for calling it.
//!
//! Identical concurrent calls share one request; after a 429, no call is made until its
//! `Retry-After`; at most `max_concurrent_authentications` calls are in flight, and
//! calls for session tokens Stytch never confirmed have a budget of their own
//! ([`UnverifiedBudget`]); a credential Stytch answered "not found" for is remembered
//! and not sent again.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument as _;

use crate::client::wire::{
    AuthenticateParams, AuthenticateResponse, AuthorizationCheck, SessionCredential,
};
use crate::client::{ClientError, RemoteFailure, RetryAfter, StytchClient, result_class};
use crate::clock::SharedClock;
use crate::diagnostics::Diagnostics;
use crate::member::{AuthMethod, AuthenticatedMember, MemberData};
use crate::metrics::Metrics;
use crate::rejection::{Failure, Reason};
use crate::unverified::{Refused, UnverifiedBudget, UnverifiedSettings};
use crate::util::permits::{Permit, Permits};
use crate::util::recent_set::RecentSet;
use crate::util::single_flight::SingleFlight;

/// What a call gave, shared by every request that waited for it.
pub(crate) type RemoteResult = Result<Arc<AuthenticateResponse>, Arc<ClientError>>;

/// How long a credential Stytch said is gone is remembered (within its capacity; when
/// full, the oldest go first).
const REMEMBERED_FOR: Duration = Duration::from_secs(3600);

/// The settings of remote authentication.
#[derive(Debug, Clone)]
pub(crate) struct RemoteSettings {
    pub(crate) max_concurrent: usize,
    pub(crate) unverified: UnverifiedSettings,
    /// Credentials remembered as gone.
    pub(crate) gone_capacity: usize,
    /// Extend the session to now + this many minutes whenever Stytch is asked.
    pub(crate) session_duration_minutes: Option<u32>,
}

/// Calls to `sessions/authenticate`, and their rules.
pub(crate) struct RemoteAuthenticator {
    client: StytchClient,
    clock: SharedClock,
    session_duration_minutes: Option<u32>,
    calls: SingleFlight<AuthenticateParams, RemoteResult>,
    /// After a 429, for its `Retry-After`, no call is made.
    backoff: RetryAfter,
    /// One permit per call in flight.
    permits: Arc<Permits>,
    /// The calls for session tokens never confirmed: their own rate and permits.
    unverified: UnverifiedBudget,
    /// Session tokens and stale JWTs Stytch answered "not found" for: asked once only.
    gone: RecentSet<Arc<str>>,
    metrics: Arc<Metrics>,
    diagnostics: Arc<Diagnostics>,
}

impl RemoteAuthenticator {
    pub(crate) fn new(
        client: StytchClient,
        clock: SharedClock,
        settings: RemoteSettings,
        metrics: Arc<Metrics>,
        diagnostics: Arc<Diagnostics>,
    ) -> Arc<Self> {
        let deadline = client.call_deadline();
        Arc::new(Self {
            session_duration_minutes: settings.session_duration_minutes,
            calls: SingleFlight::new(deadline),
            backoff: RetryAfter::default(),
            permits: Permits::new(settings.max_concurrent, deadline),
            unverified: UnverifiedBudget::new(settings.unverified, deadline),
            gone: RecentSet::new(settings.gone_capacity, REMEMBERED_FOR),
            client,
            clock,
            metrics,
            diagnostics,
        })
    }

    /// Whether Stytch answered "session not found" for `credential` (recently enough
    /// to be remembered).
    pub(crate) fn is_gone(&self, credential: &str) -> bool {
        self.gone.contains(credential, self.clock.read())
    }

    /// How many credentials are remembered: `(gone, confirmed)` (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) fn remembered(&self) -> (usize, usize) {
        (self.gone.len(), self.unverified.confirmed())
    }

    /// How many requests so far joined a call in progress instead of making one.
    pub(crate) fn coalesced(&self) -> u64 {
        self.calls.joined()
    }

    /// `sessions/authenticate` for `credential`, with `check` when a guard folds its
    /// permission into the call, coalescing identical concurrent calls.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        credential: SessionCredential,
        check: Option<AuthorizationCheck>,
    ) -> RemoteResult {
        let params = AuthenticateParams {
            credential,
            session_duration_minutes: self.session_duration_minutes,
            authorization_check: check,
        };
        let this = Arc::clone(self);
        self.calls
            .run(
                params.clone(),
                move || async move { this.call(params).await },
            )
            .await
            .unwrap_or_else(|| {
                Err(Arc::new(ClientError::transport(
                    "authentication task failed",
                )))
            })
    }

    /// One call, made or refused by the rules.
    async fn call(&self, params: AuthenticateParams) -> RemoteResult {
        // Remembered and checked inside the call, not by its callers: a caller that
        // finds no call in progress finds the credential remembered once an earlier
        // call for it has ended (and does not ask Stytch again).
        if self.is_gone(params.credential.value()) {
            return Err(Arc::new(ClientError::remembered_session_not_found()));
        }
        // Stytch rate-limited the project: every credential waits it out.
        if let Some(refused) = self.backoff.refusal(self.clock.unix_millis()) {
            return Err(Arc::new(refused));
        }
        // Held until the call ends, whether or not anyone still waits for it.
        let _in_flight = self.permit_for(&params.credential).map_err(Arc::new)?;
        self.metrics.remote_authentication();
        let span = tracing::debug_span!(
            "stytch.authenticate",
            path = "remote",
            check = params.authorization_check.is_some(),
            result = tracing::field::Empty
        );
        let result = self
            .client
            .authenticate(&params)
            .instrument(span.clone())
            .await;
        span.record(
            "result",
            result.as_ref().map_or_else(result_class, |_| "ok"),
        );
        match &result {
            Ok(_) => {
                if let SessionCredential::Token(token) = &params.credential {
                    self.unverified.confirm(token);
                }
            }
            Err(error) => {
                self.diagnostics.call_failed(error);
                self.backoff.observe(error, self.clock.unix_millis());
                // Only Stytch's own "session not found" marks a credential gone; a
                // proxy's 404 page must not log anyone out.
                if error.is_session_not_found() {
                    self.gone
                        .insert(Arc::from(params.credential.value()), self.clock.read());
                }
            }
        }
        result.map(Arc::new).map_err(Arc::new)
    }

    /// The permit for one call of `credential`: from the unverified budget for a
    /// session token Stytch never confirmed, else from `max_concurrent_authentications`.
    /// The refusal, counted and warned about, when none is left.
    fn permit_for(&self, credential: &SessionCredential) -> Result<Permit, ClientError> {
        if let SessionCredential::Token(token) = credential
            && !self.unverified.is_confirmed(token)
        {
            return self
                .unverified
                .admit(self.clock.monotonic())
                .map_err(|refused| {
                    self.metrics.unverified_refused();
                    self.diagnostics.unverified_refused(&refused);
                    let wait = match refused {
                        Refused::Rate(wait) => wait,
                        Refused::InFlight => Duration::from_secs(1),
                    };
                    ClientError::unverified_budget_spent(wait)
                });
        }
        self.permits.try_acquire().ok_or_else(|| {
            self.diagnostics.saturated();
            ClientError::too_many_in_flight()
        })
    }

    /// `POST /v1/b2b/sessions/revoke` of the session `member_session_id`, run to its
    /// end on the runtime even when the caller goes away (unless the runtime shuts
    /// down first). Stytch's "session not found" counts as revoked.
    pub(crate) async fn revoke(&self, member_session_id: &str) -> Result<(), ClientError> {
        let client = self.client.clone();
        let session_id = member_session_id.to_owned();
        let revoke = async move { client.revoke(&session_id).await };
        let revoked = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn(revoke.in_current_span())
                .await
                .unwrap_or_else(|e| Err(ClientError::transport(format!("revoke task: {e}")))),
            Err(_) => revoke.await,
        };
        match revoked {
            // Only Stytch's own "session not found": a 404 page from a wrong base URL
            // is an error.
            Err(e) if e.is_session_not_found() => Ok(()),
            other => other,
        }
    }
}

/// The member described by a `sessions/authenticate` answer.
pub(crate) fn member_from_remote(response: &AuthenticateResponse) -> AuthenticatedMember {
    let s = &response.member_session;
    AuthenticatedMember::new(MemberData {
        member_id: s.member_id.clone(),
        member_session_id: s.member_session_id.clone(),
        organization_id: s.organization_id.clone(),
        organization_slug: s.organization_slug.clone(),
        roles: s.roles.clone(),
        authentication_factors: s.authentication_factors.clone(),
        started_at: s.started_at,
        expires_at: s.expires_at,
        custom_claims: s.custom_claims.clone().unwrap_or_default(),
        method: AuthMethod::Remote,
    })
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

/// Maps a failed `sessions/authenticate` to the answer the request gets (see
/// [`RemoteFailure`]): cookies are cleared only for a session Stytch does not know; a
/// refused credential is 401 with the cookies kept; problems on our side are 503. The
/// call itself is logged where it is made, once ([`RemoteFailure::log_line`]).
pub(crate) fn failure_from_remote(error: &ClientError, session_ended: bool) -> Failure {
    match RemoteFailure::of(error) {
        RemoteFailure::Unavailable => match error.retry_after() {
            Some(wait) => Failure::new(Reason::StytchUnavailable).retry_after(wait),
            None => Failure::new(Reason::StytchUnavailable),
        },
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
