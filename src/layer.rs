//! [`StytchAuthLayer`]: the Tower layer, its service and its response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::SET_COOKIE;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::core::Core;
use crate::request::{AuthContext, Begin, RequestAuth};

/// Authenticates every request with Stytch session credentials. Made by
/// [`StytchAuth::layer`](crate::StytchAuth::layer).
///
/// The layer never rejects a request itself: it records the outcome for
/// [`AuthenticatedMember`](crate::AuthenticatedMember), [`RequireAuthz`](crate::RequireAuthz)
/// and [`StytchAuth::require_session`](crate::StytchAuth::require_session) to act on, and adds `Set-Cookie` headers to the
/// response when Stytch renewed the session or said it is gone (unless the handler set
/// those cookies itself, or Stytch's browser SDK owns them:
/// [`browser_sdk_cookies`](crate::StytchAuthBuilder::browser_sdk_cookies)).
#[derive(Clone, Debug)]
#[must_use = "a layer does nothing until it wraps a service (`Router::layer`)"]
pub struct StytchAuthLayer {
    core: Arc<Core>,
}

impl StytchAuthLayer {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

impl<S> Layer<S> for StytchAuthLayer {
    type Service = StytchAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StytchAuthService {
            inner,
            core: Arc::clone(&self.core),
        }
    }
}

/// The service made by [`StytchAuthLayer`]. Generic over request and response bodies.
///
/// `Router::layer(auth.layer())` puts the layer on each route, and axum boxes every
/// layered route once more: per request, about 800 instructions and two allocations
/// (`BENCHMARKS.md`, instruction counts). When every route sits behind the layer
/// anyway, the layer can wrap the router itself instead; guards such as
/// [`RequireAuthz`](crate::RequireAuthz) stay where they are.
///
/// # Examples
///
/// ```no_run
/// use axum::extract::Request;
/// use axum::routing::get;
/// use axum::{Router, ServiceExt};
/// use axum_stytch::{AuthenticatedMember, StytchAuth};
/// use tower::Layer as _;
///
/// # async fn run(auth: StytchAuth) -> std::io::Result<()> {
/// let router = Router::new().route(
///     "/me",
///     get(|member: AuthenticatedMember| async move { member.member_id().to_owned() }),
/// );
/// let app = auth.layer().layer(router);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct StytchAuthService<S> {
    inner: S,
    core: Arc<Core>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StytchAuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match crate::request::begin(&self.core, req.headers()) {
            Begin::Ready(ctx) => {
                let cookies = match &ctx {
                    // Nothing to write back for a verified JWT.
                    AuthContext::Verified { .. } => None,
                    AuthContext::Deferred(state) => Some(Arc::clone(state)),
                };
                req.extensions_mut().insert(ctx);
                let fut = self.inner.call(req);
                let kind = match cookies {
                    None => Kind::Verified { fut },
                    Some(state) => Kind::Deferred { fut, state },
                };
                ResponseFuture { kind }
            }
            Begin::NeedsKeys(waiting) => {
                // Call the instance that was driven to readiness; keep a fresh clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let core = Arc::clone(&self.core);
                let fut = Box::pin(async move {
                    let ctx = crate::request::finish(&core, waiting).await;
                    req.extensions_mut().insert(ctx.clone());
                    let response = inner.call(req).await?;
                    Ok(match &ctx {
                        AuthContext::Verified { .. } => response,
                        AuthContext::Deferred(state) => with_cookies(response, state),
                    })
                });
                ResponseFuture {
                    kind: Kind::AwaitingKeys { fut },
                }
            }
        }
    }
}

/// Adds the session's `Set-Cookie` headers, unless the handler already set ours
/// (a logout or login handler knows best).
fn with_cookies<B>(mut response: Response<B>, state: &RequestAuth) -> Response<B> {
    let Some(values) = state.take_set_cookies() else {
        return response;
    };
    let cookies = &state.core().cookies;
    if response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| cookies.is_ours(v))
    {
        return response;
    }
    for value in values {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

pin_project! {
    /// Response future of [`StytchAuthService`]: the inner service's future, boxed only
    /// when the request had to wait for Stytch's keys.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Verified { #[pin] fut: F },
        Deferred { #[pin] fut: F, state: Arc<RequestAuth> },
        AwaitingKeys { fut: Pin<Box<dyn Future<Output = F::Output> + Send>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Verified { fut } => fut.poll(cx),
            KindProj::Deferred { fut, state } => match fut.poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(with_cookies(response, state))),
                other => other,
            },
            KindProj::AwaitingKeys { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
