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

use crate::caller::Caller;
use crate::client::wire::{AuthorizationCheck, SessionCredential};
use crate::core::Core;
use crate::credentials::Source;
use crate::member::AuthenticatedMember;
use crate::rbac::decision::Granting;
use crate::rbac::resource_action::ResourceAction;
use crate::rbac::{Subject, Verdict};
use crate::rejection::{Failure, Reason};
use crate::remote::{failure_from_remote, member_from_remote};
use crate::scope::Scopes;

/// The request extension through which extractors and guards reach the request's
/// authentication state.
#[derive(Clone)]
pub(crate) enum AuthContext {
    /// Verified locally, or found in the verified-token cache, when the request came
    /// in: the common case, which allocates nothing but the extension. Every machine
    /// token (M2M, Connected App) is decided here.
    Verified {
        core: Arc<Core>,
        caller: Caller,
        /// When it was verified (by the injected clock): the time a guard decides at.
        at: SystemTime,
        /// The last positive decision of a guard that decided without waiting.
        verdict: Option<Verdict>,
    },
    /// Refused, or to be decided by Stytch when first needed.
    Deferred(Arc<RequestAuth>),
}

impl AuthContext {
    pub(crate) fn core(&self) -> &Arc<Core> {
        match self {
            AuthContext::Verified { core, .. } => core,
            AuthContext::Deferred(ctx) => &ctx.core,
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

    /// The member, asking Stytch first if the request needs it (once per request);
    /// a machine caller is not one (`caller_not_accepted`).
    pub(crate) async fn member(&self) -> Result<AuthenticatedMember, Failure> {
        match self {
            AuthContext::Verified {
                caller: Caller::Member(member),
                ..
            } => Ok(member.clone()),
            AuthContext::Verified { core, .. } => Err(not_accepted(core)),
            AuthContext::Deferred(ctx) => ctx.member().await,
        }
    }

    /// The caller, of any kind, asking Stytch first if the request needs it.
    pub(crate) async fn caller(&self) -> Result<Caller, Failure> {
        match self {
            AuthContext::Verified { caller, .. } => Ok(caller.clone()),
            AuthContext::Deferred(ctx) => ctx.member().await.map(Caller::Member),
        }
    }

    /// Whether the caller is a machine token granting every scope of `required`
    /// (M2M: Stytch's SDKs' rule; Connected App: exact names). A member session is not
    /// taken (`caller_not_accepted`); missing scopes are `insufficient_scope`, naming
    /// `required`.
    pub(crate) async fn require_scopes(&self, required: &Scopes) -> Result<(), Failure> {
        match self {
            AuthContext::Verified { core, caller, .. } => check_scopes(core, caller, required),
            // A session, or no valid credential: either way not a machine token.
            AuthContext::Deferred(ctx) => Err(match ctx.member().await {
                Ok(_) => not_accepted(&ctx.core),
                Err(failure) => failure,
            }),
        }
    }

    /// Whether `action` on `resource` in `organization_id` (the caller's own when
    /// `None`) is allowed.
    ///
    /// Locally verified members are decided against the cached policy's roles,
    /// Connected-App tokens against its scopes; M2M tokens are never allowed (no RBAC
    /// role or scope covers them). Members that need Stytch are decided by Stytch in
    /// the same `sessions/authenticate` call (`authorization_check`), so role and
    /// policy changes apply at once.
    pub(crate) async fn authorize(
        &self,
        organization_id: Option<&str>,
        wanted: &ResourceAction,
    ) -> Result<(Caller, Verdict), Failure> {
        match self {
            // At the time the layer verified the caller, as the guards decide.
            AuthContext::Verified {
                core, caller, at, ..
            } => {
                let Some(subject) = Subject::of(caller) else {
                    return Err(m2m_denied(core, wanted));
                };
                let org = organization_id.unwrap_or(subject.organization_id());
                let verdict = core.decide(subject, org, wanted, *at).await?;
                Ok((caller.clone(), verdict))
            }
            AuthContext::Deferred(ctx) => ctx
                .authorize(organization_id, wanted)
                .await
                .map(|(member, verdict)| (Caller::Member(member), verdict)),
        }
    }
}

/// Whether `caller` is a machine token granting every scope of `required`; a refusal
/// is counted.
pub(crate) fn check_scopes(core: &Core, caller: &Caller, required: &Scopes) -> Result<(), Failure> {
    let granted = match caller {
        Caller::M2m(m2m) => required.iter().all(|s| m2m.has_scope(s)),
        Caller::ConnectedApp(app) => required.iter().all(|s| app.has_scope(s)),
        Caller::Member(_) => return Err(not_accepted(core)),
    };
    if granted {
        return Ok(());
    }
    core.metrics.failure(Reason::InsufficientScope);
    tracing::debug!(
        decision = "deny",
        reason = Reason::InsufficientScope.as_str(),
        required = %required.joined(),
        "stytch scope decision"
    );
    Err(Failure::new(Reason::InsufficientScope).needing_scope(Some(required.joined())))
}

/// A valid caller of a kind the route does not take, counted.
pub(crate) fn not_accepted(core: &Core) -> Failure {
    core.metrics.failure(Reason::CallerNotAccepted);
    Failure::new(Reason::CallerNotAccepted)
}

/// An M2M token checked for an RBAC permission: refused (its scopes are the client's
/// own strings, not the policy's), counted.
pub(crate) fn m2m_denied(core: &Core, wanted: &ResourceAction) -> Failure {
    tracing::debug!(
        decision = "deny",
        reason = Reason::PermissionDenied.as_str(),
        resource = wanted.resource(),
        action = wanted.action(),
        "stytch rbac decision: an M2M token has no RBAC permissions"
    );
    core.metrics.failure(Reason::PermissionDenied);
    Failure::new(Reason::PermissionDenied)
}

/// The local RBAC decision for a member whose roles are known.
async fn decide_locally(
    core: &Core,
    member: AuthenticatedMember,
    organization_id: Option<&str>,
    wanted: &ResourceAction,
    now: SystemTime,
) -> Result<(AuthenticatedMember, Verdict), Failure> {
    let organization_id = organization_id.unwrap_or(member.organization_id());
    let verdict = core
        .decide(Subject::Member(&member), organization_id, wanted, now)
        .await?;
    Ok((member, verdict))
}

/// What a stale but validly signed JWT says of its session.
pub(crate) struct Signed {
    pub(crate) member_session_id: String,
    pub(crate) organization_id: String,
}

enum Initial {
    Failed(Failure),
    Remote {
        credential: SessionCredential,
        /// A stale JWT's session and organization (its signature was verified).
        signed: Option<Signed>,
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
    core: Arc<Core>,
    initial: Initial,
    source: Source,
    remote: OnceCell<Result<AuthenticatedMember, Failure>>,
    cookies: Mutex<Option<CookieUpdate>>,
}

impl RequestAuth {
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub(crate) fn failed(core: Arc<Core>, failure: Failure, source: Source) -> Self {
        core.metrics.failure(failure.reason);
        let clear = failure.clear_cookies;
        let this = Self {
            core,
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
        core: Arc<Core>,
        credential: SessionCredential,
        signed: Option<Signed>,
        session_ended: bool,
        source: Source,
    ) -> Self {
        Self {
            core,
            initial: Initial::Remote {
                credential,
                signed,
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
                credential, signed, ..
            },
            None,
        ) = (&self.initial, self.remote.get())
        {
            // The member's own organization is known before asking Stytch only from a
            // (stale but validly signed) JWT; for a bare session token it is not, and
            // the decision below is made locally with the roles Stytch just returned.
            let organization_hint = signed.as_ref().map(|s| s.organization_id.as_str());
            if let Some(org) = organization_id.or(organization_hint) {
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
        let now = self.core.clock.now();
        decide_locally(&self.core, member, organization_id, wanted, now).await
    }

    async fn authenticate(
        &self,
        credential: &SessionCredential,
        check: Option<AuthorizationCheck>,
    ) -> Result<(AuthenticatedMember, Option<Granting>), Failure> {
        let core = &self.core;
        let checked = check.is_some();
        let result = core.remote.authenticate(credential.clone(), check).await;
        let outcome = match result {
            // Logged out here, but Stytch may not have heard (a failed revoke).
            Ok(response) if core.is_revoked(&response.member_session.member_session_id) => {
                Err(self.fail(Failure::new(Reason::SessionRevoked).clearing_cookies()))
            }
            Ok(response) => {
                let member = member_from_remote(&response);
                core.metrics.authenticated_remotely();
                if self.writes_cookies() {
                    core.metrics.renewal();
                    self.set_cookies(CookieUpdate::Set {
                        values: core.cookies.set(
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
                let Initial::Remote {
                    signed,
                    session_ended,
                    ..
                } = &self.initial
                else {
                    return Err(self.fail(failure_from_remote(&error, false)));
                };
                // Stytch no longer knows the session of a validly signed JWT, before the
                // end it recorded (revoked, not expired: the JWTs of an ended session are
                // past that end, and never trusted locally): its other JWTs are refused
                // here (and, with a fleet's store, everywhere).
                if let Some(signed) = signed
                    && !*session_ended
                    && error.is_session_not_found()
                {
                    core.session_gone(&signed.member_session_id);
                }
                Err(self.fail(failure_from_remote(&error, *session_ended)))
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
        self.core.metrics.failure(failure.reason);
        tracing::debug!(
            path = "remote",
            outcome = failure.reason.as_str(),
            "stytch session rejected"
        );
        failure
    }

    /// Whether the layer writes this request's cookies back: only for credentials
    /// that came from cookies, and not when Stytch's browser SDK owns them
    /// (`browser_sdk_cookies`: it renews them itself and logs out on its own when
    /// Stytch says the session is gone).
    fn writes_cookies(&self) -> bool {
        self.source == Source::Cookie && self.core.cookies.layer_writes
    }

    fn set_cookies(&self, update: CookieUpdate) {
        if self.writes_cookies() {
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
        Some(match update {
            CookieUpdate::Set {
                values,
                member_session_id,
            } if !self.core.is_revoked(&member_session_id) => values,
            CookieUpdate::Set { .. } | CookieUpdate::Clear => self.core.cookies.clear(),
        })
    }
}
