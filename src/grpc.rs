//! gRPC: the layer and guards in front of a [tonic](https://docs.rs/tonic) server, with
//! rejections answered as gRPC statuses.
//!
//! A tonic server is an axum router (`tonic::service::Routes::into_axum_router`), so
//! [`StytchAuth::layer`](crate::StytchAuth::layer), [`RequireSession`](crate::RequireSession),
//! [`RequireAuthz`](crate::RequireAuthz) and [`RequireScope`](crate::RequireScope) wrap
//! it as they wrap any router: a guard
//! on the whole service with `route_layer`, or on one method's path
//! (`/package.Service/Method`) with `post_service(..).route_layer(..)` (gRPC calls are `POST`s).
//!
//! * **Credentials.** gRPC clients send `authorization: Bearer <session JWT or token>`
//!   metadata; [`grpc_status_errors`](crate::StytchAuthBuilder::grpc_status_errors)
//!   turns on [`bearer_tokens`](crate::StytchAuthBuilder::bearer_tokens). M2M and
//!   Connected-App tokens are read there too when enabled
//!   ([`m2m_tokens`](crate::StytchAuthBuilder::m2m_tokens),
//!   [`connected_app_tokens`](crate::StytchAuthBuilder::connected_app_tokens)). A
//!   `cookie` metadata entry is read as the `Cookie` header when there is no bearer
//!   token.
//! * **Rejections.** With `grpc_status_errors`, a request whose `content-type` is
//!   `application/grpc` (or `application/grpc+proto`, ...) is refused with a
//!   trailers-only response, as tonic's `Status::into_http` renders one: HTTP 200,
//!   `content-type: application/grpc`, `grpc-status`, `grpc-message` (percent-encoded)
//!   and no body. Other requests keep the JSON body, so one server can carry both. An
//!   [`error_handler`](crate::StytchAuthBuilder::error_handler) still runs first; without
//!   the setting it can answer [`AuthRejection::grpc_response`] itself.
//! * **The caller.** A tonic method reads the member with
//!   [`AuthenticatedMember::from_extensions`](crate::AuthenticatedMember::from_extensions)
//!   on `request.extensions()`, whether the JWT was verified locally or Stytch decides
//!   (asked once per request, and not again after a guard asked); a machine caller
//!   with [`Caller::from_extensions`](crate::Caller::from_extensions),
//!   [`M2mCaller::from_extensions`](crate::M2mCaller::from_extensions) or
//!   [`ConnectedAppCaller::from_extensions`](crate::ConnectedAppCaller::from_extensions).
//!
//! | [`Reason`] | HTTP | gRPC status |
//! |---|---|---|
//! | `missing_credentials`, `invalid_credentials`, `invalid_token`, `session_expired`, `session_revoked`, `caller_not_accepted` | 401 | 16 `UNAUTHENTICATED` |
//! | `permission_denied`, `tenancy_mismatch`, `insufficient_scope` | 403 | 7 `PERMISSION_DENIED` |
//! | `stytch_unavailable` | 503 | 14 `UNAVAILABLE` |
//! | `layer_missing`, `custom_claims_mismatch`, `misconfigured` | 500 | 13 `INTERNAL` |
//!
//! `grpc-message` is `<reason>: <message>`, as [`AuthRejection`]'s `Display`, with the
//! refused resource and action after a 403 (the scopes needed after an
//! `insufficient_scope`): never a token, the member's roles or the token's scopes. An
//! `UNAVAILABLE` also carries the wait the HTTP answer puts in `Retry-After` (1 to 60 s),
//! as `grpc-retry-pushback-ms` (gRPC's server pushback, honoured by clients with a retry
//! policy) and as `retry-after` metadata in seconds (for the application).
//!
//! Not rendered as gRPC: the 500 of a missing layer (the setting lives in the layer),
//! and a [`RequireAuthz::organization_from_path`](crate::RequireAuthz::organization_from_path)
//! that names no parameter of the route (500 `misconfigured`).
//!
//! # Examples
//!
//! ```
//! use axum::Router;
//! use axum::routing::post_service;
//! use axum_stytch::{AuthenticatedMember, RequireAuthz, RequireSession, StytchAuth};
//! use tonic::{Code, Request, Response, Status};
//!
//! // In a method of your service (the trait tonic-build generates):
//! async fn whoami(request: Request<()>) -> Result<Response<String>, Status> {
//!     let member = AuthenticatedMember::from_extensions(request.extensions())
//!         .await
//!         .map_err(|r| Status::new(Code::from(r.grpc_code()), r.grpc_message()))?;
//!     Ok(Response::new(member.member_id().to_owned()))
//! }
//!
//! // `routes` is `tonic::service::Routes::new(MyServiceServer::new(my_service))`.
//! # fn app(routes: tonic::service::Routes) -> Result<Router, axum_stytch::ConfigError> {
//! let auth = StytchAuth::builder("project-test-00000000-0000-0000-0000-000000000000", "secret-test-...")
//!     .grpc_status_errors()
//!     .build()?;
//! let router = routes.into_axum_router();
//! // One method needs a permission; every method needs a session.
//! let app = Router::new()
//!     .route("/demo.Documents/Delete", post_service(router.clone())
//!         .route_layer(RequireAuthz::new("document", "delete")))
//!     .merge(router)
//!     .route_layer(RequireSession::new())
//!     .layer(auth.layer());
//! # Ok(app) }
//! # let _ = app(tonic::service::Routes::default()).unwrap();
//! # let _ = whoami;
//! ```
//! Serve it with `axum::serve` (axum's `http2` feature) or tonic's
//! `Server::builder().add_routes(app.into())`.

use std::fmt::Write as _;

use axum::body::Body;
use axum::response::Response;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};

use crate::rejection::{AuthRejection, Reason};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// gRPC's server pushback (gRFC A6): the milliseconds to wait before a retry.
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");
const APPLICATION_GRPC: &str = "application/grpc";

/// Whether `headers` are a gRPC request's: `content-type: application/grpc`, alone or
/// with a `+format` or `;parameters` suffix (the gRPC HTTP/2 protocol). gRPC-Web
/// (`application/grpc-web`) is not: translate it with tonic-web outside the layer.
///
/// For an [`error_handler`](crate::StytchAuthBuilder::error_handler) that answers gRPC
/// requests itself:
///
/// ```
/// use axum_stytch::{StytchAuth, grpc};
///
/// let auth = StytchAuth::builder("project-test-x", "secret")
///     .bearer_tokens(true)
///     .error_handler(|rejection, parts| {
///         grpc::is_grpc_request(&parts.headers).then(|| rejection.grpc_response())
///     })
///     .build();
/// # let _ = auth;
/// ```
pub fn is_grpc_request(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    let n = APPLICATION_GRPC.len();
    value.len() >= n
        && value[..n].eq_ignore_ascii_case(APPLICATION_GRPC.as_bytes())
        && matches!(value.get(n), None | Some(b'+' | b';'))
}

impl Reason {
    /// The gRPC status code for this reason: 16 `UNAUTHENTICATED` for a 401, 7
    /// `PERMISSION_DENIED` for a 403, 14 `UNAVAILABLE` for a 503, 13 `INTERNAL` for a
    /// 500 (see [`grpc`](crate::grpc)). `tonic::Code::from(code)` converts it.
    pub fn grpc_code(self) -> i32 {
        match self.status() {
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::FORBIDDEN => 7,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 13,
        }
    }
}

impl AuthRejection {
    /// The gRPC status code of this rejection ([`Reason::grpc_code`]).
    pub fn grpc_code(&self) -> i32 {
        self.reason().grpc_code()
    }

    /// The gRPC status message: `<reason>: <message>`, with the refused resource and
    /// action (or the scopes needed) after a 403, as in `grpc-message` before
    /// percent-encoding. Never a token or the caller's roles or scopes.
    pub fn grpc_message(&self) -> String {
        let mut message = self.to_string();
        if let (Some(resource), Some(action)) = (self.resource(), self.action()) {
            let _ = write!(message, " (resource {resource:?}, action {action:?})");
        }
        if let Some(scope) = self.scope() {
            let _ = write!(message, " (scope {scope:?})");
        }
        message
    }

    /// The trailers-only gRPC response for this rejection, ignoring any error handler:
    /// HTTP 200, `content-type: application/grpc`, `grpc-status`, `grpc-message` and,
    /// for `UNAVAILABLE`, `grpc-retry-pushback-ms` and `retry-after`; no body. What
    /// [`grpc_status_errors`](crate::StytchAuthBuilder::grpc_status_errors) answers to
    /// gRPC requests; usable from an error handler without it.
    pub fn grpc_response(&self) -> Response {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_GRPC));
        headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_code()));
        if let Ok(message) = HeaderValue::try_from(percent_encode(&self.grpc_message())) {
            headers.insert(GRPC_MESSAGE, message);
        }
        if self.reason() == Reason::StytchUnavailable {
            let secs = self.retry_after_secs();
            headers.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from(secs * 1000));
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `message` percent-encoded for `grpc-message`: every byte outside `0x20..=0x7E`, and
/// `%` itself (the gRPC HTTP/2 protocol's `Percent-Encoded`).
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::response::IntoResponse;
    use http::request::Parts;
    use http_body_util::BodyExt as _;

    use super::*;

    fn parts_with(content_type: Option<&'static str>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "application/grpc;charset=utf-8",
            "Application/GRPC",
        ] {
            assert!(is_grpc_request(&parts_with(Some(ct)).headers), "{ct}");
        }
        for ct in [
            None,
            Some("application/json"),
            Some("application/grpc-web"),
            Some("application/grpc-web+proto"),
            Some("application/grpcx"),
            Some("application/grp"),
        ] {
            assert!(!is_grpc_request(&parts_with(ct).headers), "{ct:?}");
        }
    }

    /// Every reason maps to the gRPC code of its HTTP status class.
    #[test]
    fn reasons_map_to_grpc_codes() {
        for reason in Reason::ALL {
            let expected = match reason.status().as_u16() {
                401 => tonic::Code::Unauthenticated,
                403 => tonic::Code::PermissionDenied,
                503 => tonic::Code::Unavailable,
                500 => tonic::Code::Internal,
                other => panic!("{reason}: {other}"),
            };
            assert_eq!(tonic::Code::from(reason.grpc_code()), expected, "{reason}");
        }
    }

    /// Trailers-only, as tonic renders a `Status`, and read back by tonic as the same
    /// code and message.
    #[tokio::test]
    async fn the_response_is_trailers_only_and_tonic_reads_it_back() {
        for reason in Reason::ALL {
            let rejection = AuthRejection::new(reason).with_permission("doc ü%", "read\n");
            let response = rejection.grpc_response();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
            let status = tonic::Status::from_header_map(response.headers()).unwrap();
            assert_eq!(status.code(), tonic::Code::from(reason.grpc_code()));
            assert_eq!(status.message(), rejection.grpc_message());
            assert!(status.message().starts_with(reason.as_str()));
            let tonic = tonic::Status::new(status.code(), "x").into_http::<()>();
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                tonic.headers()[CONTENT_TYPE]
            );
            let body = response.into_body().collect().await.unwrap();
            assert!(body.trailers().is_none());
            assert!(body.to_bytes().is_empty(), "{reason}");
        }
    }

    #[test]
    fn forbidden_names_the_permission_and_unavailable_the_wait() {
        let denied =
            AuthRejection::new(Reason::PermissionDenied).with_permission("document", "delete");
        assert_eq!(
            denied.grpc_message(),
            "permission_denied: The member may not perform this action. \
             (resource \"document\", action \"delete\")"
        );
        let scope = AuthRejection::new(Reason::InsufficientScope)
            .with_scope(Some("read:documents write:documents".into()));
        assert_eq!(scope.grpc_code(), 7);
        assert!(
            scope
                .grpc_message()
                .ends_with(" (scope \"read:documents write:documents\")"),
            "{}",
            scope.grpc_message()
        );
        let unavailable = AuthRejection::new(Reason::StytchUnavailable)
            .with_retry_after(Some(Duration::from_secs(7)));
        let response = unavailable.grpc_response();
        assert_eq!(response.headers()["grpc-retry-pushback-ms"], "7000");
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        let bounded = AuthRejection::new(Reason::StytchUnavailable)
            .with_retry_after(Some(Duration::from_secs(3600)))
            .grpc_response();
        assert_eq!(bounded.headers()[RETRY_AFTER], "60");
        let unauthenticated = AuthRejection::new(Reason::MissingCredentials).grpc_response();
        assert!(unauthenticated.headers().get(RETRY_AFTER).is_none());
        assert!(unauthenticated.headers().get("www-authenticate").is_none());
    }

    #[test]
    fn messages_are_percent_encoded_as_the_protocol_says() {
        assert_eq!(percent_encode("a b: ok."), "a b: ok.");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("é\n\u{7f}"), "%C3%A9%0A%7F");
    }

    /// With the flag set (by the layer, for a gRPC request), the rejection renders as
    /// gRPC; an error handler's response still wins.
    #[test]
    fn into_response_renders_grpc_when_flagged() {
        let parts = parts_with(Some("application/grpc"));
        let grpc = AuthRejection::new(Reason::MissingCredentials)
            .with_grpc_status(true)
            .customize(None, &parts)
            .into_response();
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "16");
        let handler: crate::rejection::ErrorHandler =
            std::sync::Arc::new(|_, _| Some(StatusCode::IM_A_TEAPOT.into_response()));
        let custom = AuthRejection::new(Reason::MissingCredentials)
            .with_grpc_status(true)
            .customize(Some(&handler), &parts)
            .into_response();
        assert_eq!(custom.status(), StatusCode::IM_A_TEAPOT);
        let json = AuthRejection::new(Reason::MissingCredentials).into_response();
        assert_eq!(json.status(), StatusCode::UNAUTHORIZED);
    }
}
