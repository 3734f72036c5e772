//! Route guards: [`RequireAuthz`] (a permission), [`RequireSession`] (any member
//! session) and [`RequireScope`] (a machine token's scopes).

mod scope;

pub use scope::RequireScope;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::response::{IntoResponse, Response};
use http::Request;
use http::request::Parts;
use tower_layer::Layer;
use tower_service::Service;

use pin_project_lite::pin_project;

use crate::caller::Caller;
use crate::extract::{context, reject, reject_authz};
use crate::rbac::resource_action::ResourceAction;
use crate::rbac::{Subject, Verdict};
use crate::rejection::Failure;
use crate::rejection::{AuthRejection, Reason};
use crate::request::AuthContext;
use crate::request::context::{check_scopes, m2m_denied, not_accepted};
use crate::scope::Scopes;

/// Route guard: lets a request through only when the member may perform `action` on
/// `resource`; answers 401 without a valid session, 403 when the roles do not allow
/// it (or the organization does not match), 503 when Stytch is needed and unreachable.
///
/// The organization checked is the member's own unless
/// [`organization_from_path`](Self::organization_from_path) binds it to a path
/// parameter. The [`Verdict`] is put in the request for the
/// handler, and the [`AuthenticatedMember`](crate::AuthenticatedMember) extractor
/// returns the member the guard checked without checking again. Requires the
/// [`StytchAuth`](crate::StytchAuth) layer outside it.
///
/// When the member's JWT was verified locally and the cached policy is fresh (the
/// common case), the guard decides before calling the route, without waiting or boxing
/// a future; otherwise it waits for Stytch or a policy fetch. It decides as of the time
/// the layer authenticated the request: put middleware that queues requests (a
/// `Buffer`, a concurrency limit) outside the layer, not between it and the guard.
///
/// Put it on a route with `route_layer`, or on one handler with axum's
/// `Handler::layer`: the decision is the same. axum wraps a `route_layer` in one more
/// boxed future per request than a handler layer (one allocation and about 400
/// instructions, see `BENCHMARKS.md`). The [`Authorized`](crate::Authorized) extractor
/// makes the same check with no layer at all, which is cheaper still.
///
/// # Examples
///
/// ```
/// use axum::{Router, handler::Handler as _, routing::{get, post}};
/// use axum_stytch::{RequireAuthz, StytchAuth};
///
/// async fn list() -> &'static str {
///     "listed"
/// }
///
/// # fn app(auth: StytchAuth) -> Router {
/// Router::new()
///     .route("/documents", post(|| async { "created" })
///         .route_layer(RequireAuthz::new("document", "create")))
///     .route("/orgs/{organization_id}/documents", get(|| async { "listed" })
///         .route_layer(RequireAuthz::new("document", "read").organization_from_path("organization_id")))
///     // The same guard on one handler.
///     .route("/drafts", get(list.layer(RequireAuthz::new("document", "read"))))
///     .layer(auth.layer())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a guard does nothing until it wraps a route (`route_layer`)"]
pub struct RequireAuthz {
    requirement: Arc<Requirement>,
}

/// Route guard that answers 401 unless the request has a valid session, so a whole
/// router can require a session without naming the extractor in each handler.
/// Made by [`StytchAuth::require_session`](crate::StytchAuth::require_session) or
/// [`RequireSession::new`].
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use axum_stytch::{RequireSession, StytchAuth};
///
/// # fn app(auth: StytchAuth) -> Router {
/// let private = Router::new()
///     .route("/dashboard", get(|| async { "only members" }))
///     .route_layer(RequireSession::new());
/// Router::new()
///     .merge(private)
///     .route("/", get(|| async { "public" }))
///     .layer(auth.layer())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a guard does nothing until it wraps a route (`route_layer`)"]
pub struct RequireSession {
    _private: (),
}

impl RequireSession {
    /// The guard.
    pub fn new() -> Self {
        Self::default()
    }
}

#[derive(Clone)]
enum Requirement {
    Session,
    Permission {
        wanted: ResourceAction,
        organization_param: Option<Arc<str>>,
    },
    /// A machine token with every one of these scopes.
    Scopes(Scopes),
}

impl RequireAuthz {
    /// Requires `action` on `resource` (exact names from your Stytch RBAC policy).
    pub fn new(resource: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            requirement: Arc::new(Requirement::Permission {
                wanted: ResourceAction::new(&resource.into(), &action.into()),
                organization_param: None,
            }),
        }
    }

    /// Checks the organization named by the path parameter `name` (an organization
    /// id) instead of the member's own: a member of another organization gets 403,
    /// whatever their roles, and so does a request whose path parameters are not UTF-8
    /// (`%FF`, in this parameter or another of the route's: axum then reads none of
    /// them, so the organization cannot be known). A route without that parameter
    /// answers 500 (a misconfiguration, logged as an error at most once a minute).
    pub fn organization_from_path(mut self, name: impl Into<String>) -> Self {
        if let Requirement::Permission {
            organization_param, ..
        } = Arc::make_mut(&mut self.requirement)
        {
            *organization_param = Some(Arc::from(name.into()));
        }
        self
    }
}

impl fmt::Debug for RequireAuthz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.requirement, f)
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Permission {
                wanted,
                organization_param,
            } => f
                .debug_struct("RequireAuthz")
                .field("resource", &wanted.resource())
                .field("action", &wanted.action())
                .field("organization_param", organization_param)
                .finish(),
            Requirement::Session => f.write_str("RequireSession"),
            Requirement::Scopes(scopes) => f
                .debug_struct("RequireScope")
                .field("scopes", &scopes.joined())
                .finish(),
        }
    }
}

impl<S> Layer<S> for RequireAuthz {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            requirement: Arc::clone(&self.requirement),
        }
    }
}

impl<S> Layer<S> for RequireSession {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            requirement: Arc::new(Requirement::Session),
        }
    }
}

impl Requirement {
    /// Decides without waiting when it can: a locally verified member, and (for a
    /// permission on the member's own organization) a fresh cached policy. `None`
    /// when the check needs to wait (Stytch, a policy fetch, a path parameter).
    fn check_now(&self, extensions: &mut http::Extensions) -> Option<Result<(), Failure>> {
        let Some(AuthContext::Verified {
            core,
            caller,
            at,
            verdict: slot,
        }) = extensions.get_mut::<AuthContext>()
        else {
            return None;
        };
        match (self, &*caller) {
            (Requirement::Session, Caller::Member(_)) => Some(Ok(())),
            (Requirement::Session, _) => Some(Err(not_accepted(core))),
            (Requirement::Scopes(required), caller) => Some(check_scopes(core, caller, required)),
            (
                Requirement::Permission {
                    wanted,
                    organization_param: None,
                },
                caller,
            ) => {
                // At the time the layer verified the caller, microseconds ago: a policy
                // that just turned stale is still within its grace, where the waiting
                // path would also use it (and start a refresh the next request starts).
                let Some(subject) = Subject::of(caller) else {
                    return Some(Err(m2m_denied(core, wanted)));
                };
                let decided =
                    core.policy
                        .decide_cached(subject, subject.organization_id(), wanted, *at)?;
                Some(match decided {
                    Ok(verdict) => {
                        *slot = Some(verdict);
                        Ok(())
                    }
                    Err(failure) => {
                        core.metrics.failure(failure.reason);
                        Err(failure)
                    }
                })
            }
            (Requirement::Permission { .. }, _) => None,
        }
    }

    /// The rejection for a failure of this requirement.
    fn reject(&self, ctx: &AuthContext, failure: Failure, parts: &Parts) -> AuthRejection {
        match self {
            Requirement::Session | Requirement::Scopes(_) => reject(ctx, failure, parts),
            Requirement::Permission { wanted, .. } => reject_authz(ctx, failure, wanted, parts),
        }
    }

    async fn check(&self, parts: &mut Parts) -> Result<(), AuthRejection> {
        context(parts)?;
        let organization_id = match self {
            Requirement::Permission {
                organization_param: Some(name),
                ..
            } => match path_param(parts, name).await {
                Ok(id) => Some(id),
                Err(PathError::NotUtf8) => {
                    let ctx = context(parts)?;
                    return Err(self.refuse_unmatchable(ctx, parts).await);
                }
                Err(PathError::Missing) => {
                    context(parts)?.core().diagnostics.misconfigured_route(name);
                    return Err(AuthRejection::new(Reason::Misconfigured));
                }
            },
            _ => None,
        };
        let ctx = context(parts)?;
        // The member stays in the request's authentication state, where the
        // `AuthenticatedMember` extractor finds it without asking again.
        let outcome = match self {
            Requirement::Session => ctx.member().await.map(|_| None),
            Requirement::Scopes(required) => ctx.require_scopes(required).await.map(|_| None),
            Requirement::Permission { wanted, .. } => ctx
                .authorize(organization_id.as_deref(), wanted)
                .await
                .map(|(_, verdict)| Some(verdict)),
        };
        match outcome {
            Ok(verdict) => {
                if let Some(verdict) = verdict {
                    keep_verdict(&mut parts.extensions, verdict);
                }
                Ok(())
            }
            Err(failure) => Err(self.reject(ctx, failure, parts)),
        }
    }

    /// A path whose parameters are not UTF-8 names no organization that can be read, so
    /// not the member's: 403 `tenancy_mismatch` once the session is known (401 without
    /// one), as for any other organization. Client input, so logged at `DEBUG`.
    async fn refuse_unmatchable(&self, ctx: &AuthContext, parts: &Parts) -> AuthRejection {
        let failure = match ctx.caller().await {
            Ok(_) => {
                tracing::debug!(
                    decision = "deny",
                    reason = Reason::TenancyMismatch.as_str(),
                    "organization path parameter is not UTF-8"
                );
                ctx.core().metrics.failure(Reason::TenancyMismatch);
                Failure::new(Reason::TenancyMismatch)
            }
            Err(failure) => failure,
        };
        self.reject(ctx, failure, parts)
    }
}

/// Puts a guard's verdict in the request for the `Verdict` extractor: next to a locally
/// verified member (no allocation), else as an extension. The last guard's wins.
fn keep_verdict(extensions: &mut http::Extensions, verdict: Verdict) {
    match extensions.get_mut::<AuthContext>() {
        Some(AuthContext::Verified { verdict: slot, .. }) => *slot = Some(verdict),
        _ => {
            extensions.insert(verdict);
        }
    }
}

/// Why a route's path gave no organization id.
enum PathError {
    /// The route has no such parameter (or no parameters): the guard is misconfigured.
    Missing,
    /// A path parameter of the request (axum does not say which to us) is not UTF-8
    /// (`%FF`): client input.
    NotUtf8,
}

async fn path_param(parts: &mut Parts, name: &str) -> Result<String, PathError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|rejection| match rejection {
            RawPathParamsRejection::InvalidUtf8InPathParam(_) => PathError::NotUtf8,
            _ => PathError::Missing,
        })?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .ok_or(PathError::Missing)
}

/// The service made by [`RequireAuthz`] and [`RequireSession`].
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    requirement: Arc<Requirement>,
}

impl<S> fmt::Debug for GuardService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let kind = match self.requirement.check_now(req.extensions_mut()) {
            Some(Ok(())) => Kind::Allowed {
                fut: self.inner.call(req),
            },
            Some(Err(failure)) => {
                let (parts, _body) = req.into_parts();
                let response = match context(&parts) {
                    Ok(ctx) => self.requirement.reject(ctx, failure, &parts),
                    Err(rejection) => rejection,
                };
                Kind::Refused {
                    fut: std::future::ready(Ok(response.into_response())),
                }
            }
            None => {
                // Call the instance that was driven to readiness; keep a fresh clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let requirement = Arc::clone(&self.requirement);
                Kind::Checking {
                    fut: Box::pin(async move {
                        let (mut parts, body) = req.into_parts();
                        match requirement.check(&mut parts).await {
                            Ok(()) => inner.call(Request::from_parts(parts, body)).await,
                            Err(rejection) => Ok(rejection.into_response()),
                        }
                    }),
                }
            }
        };
        GuardFuture { kind }
    }
}

pin_project! {
    /// Response future of [`GuardService`]: the inner service's future when the
    /// decision was made at once, boxed only when it had to wait.
    pub struct GuardFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Allowed { #[pin] fut: F },
        Refused { #[pin] fut: std::future::Ready<F::Output> },
        Checking { fut: Pin<Box<dyn Future<Output = F::Output> + Send>> },
    }
}

impl<F, E> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Allowed { fut } => fut.poll(cx),
            KindProj::Refused { fut } => fut.poll(cx),
            KindProj::Checking { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for GuardFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}
