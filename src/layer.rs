//! [`StytchAuthLayer`]: the Tower layer, its service and its response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::SET_COOKIE;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{Begin, StytchAuth};
use crate::request_auth::RequestAuth;

/// The request extension through which extractors and guards reach the request's
/// authentication state.
#[derive(Clone)]
pub(crate) struct AuthContext(pub(crate) Arc<RequestAuth>);

/// Authenticates every request with Stytch session credentials. Made by
/// [`StytchAuth::layer`].
///
/// The layer never rejects a request itself: it records the outcome for
/// [`AuthenticatedMember`](crate::AuthenticatedMember), [`RequireAuthz`](crate::RequireAuthz)
/// and [`StytchAuth::require_session`] to act on, and adds `Set-Cookie` headers to the
/// response when Stytch renewed the session or said it is gone (unless the handler set
/// those cookies itself).
#[derive(Clone, Debug)]
pub struct StytchAuthLayer {
    auth: StytchAuth,
}

impl StytchAuthLayer {
    pub(crate) fn new(auth: StytchAuth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for StytchAuthLayer {
    type Service = StytchAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StytchAuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service made by [`StytchAuthLayer`]. Generic over request and response bodies.
#[derive(Clone, Debug)]
pub struct StytchAuthService<S> {
    inner: S,
    auth: StytchAuth,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StytchAuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Call the instance that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        match self.auth.begin(req.headers()) {
            Begin::Ready(ctx) => {
                req.extensions_mut().insert(AuthContext(Arc::clone(&ctx)));
                let fut = inner.call(req);
                ResponseFuture::new(async move {
                    let response = fut.await?;
                    Ok(with_cookies(response, &ctx))
                })
            }
            Begin::NeedsKeys { jwt, source, kid } => {
                let auth = self.auth.clone();
                ResponseFuture::new(async move {
                    let ctx = auth.finish(jwt, source, kid).await;
                    req.extensions_mut().insert(AuthContext(Arc::clone(&ctx)));
                    let response = inner.call(req).await?;
                    Ok(with_cookies(response, &ctx))
                })
            }
        }
    }
}

/// Adds the session's `Set-Cookie` headers, unless the handler already set ours
/// (a logout or login handler knows best).
fn with_cookies<B>(mut response: Response<B>, ctx: &RequestAuth) -> Response<B> {
    let Some(values) = ctx.take_set_cookies() else {
        return response;
    };
    let cookies = &ctx.auth().inner.cookies;
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

/// Response future of [`StytchAuthService`].
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>,
}

impl<B, E> ResponseFuture<B, E> {
    fn new(fut: impl Future<Output = Result<Response<B>, E>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(fut),
        }
    }
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> std::fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
