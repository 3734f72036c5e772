//! The layer and guards in front of a tonic server (examples/grpc.rs), called by a
//! tonic client over HTTP/2 on 127.0.0.1: rejections are gRPC statuses in
//! trailers-only responses, and the service implementation reads the member.

#[path = "../examples/grpc.rs"]
#[allow(dead_code)]
mod example;

use std::net::SocketAddr;
use std::time::Duration;

use axum_stytch::testing::{Endpoint, Fault};
use example::proto::{DocumentRequest, DocumentsClient, Member, WhoAmIRequest};
use example::{Demo, with_bearer};
use http_body_util::BodyExt as _;
use tonic::codegen::Bytes;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};
use tower::ServiceExt as _;

/// The seeded emulator, the example's server behind a layer built by `auth`, and a
/// client of it.
async fn start() -> (Demo, SocketAddr, DocumentsClient) {
    let demo = Demo::start().await;
    let addr = example::serve(example::router(&demo.auth())).await.unwrap();
    let client = DocumentsClient::connect(addr).await.unwrap();
    (demo, addr, client)
}

/// `WhoAmI` with `credential` as a bearer token: the member the service saw.
async fn who_am_i(client: &mut DocumentsClient, credential: &str) -> Member {
    let request = with_bearer(WhoAmIRequest {}, credential);
    client.who_am_i(request).await.unwrap().into_inner()
}

fn document() -> DocumentRequest {
    DocumentRequest { id: "plan".into() }
}

#[track_caller]
fn assert_status(result: Result<impl std::fmt::Debug, Status>, code: Code, reason: &str) -> Status {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{reason}: ")),
        "{status:?}"
    );
    status
}

#[tokio::test]
async fn no_session_is_unauthenticated() {
    let (_demo, _, mut client) = start().await;
    let result = client.who_am_i(Request::new(WhoAmIRequest {})).await;
    assert_status(result, Code::Unauthenticated, "missing_credentials");
    let result = client.read(Request::new(document())).await;
    assert_status(result, Code::Unauthenticated, "missing_credentials");
    let result = client
        .who_am_i(with_bearer(WhoAmIRequest {}, "a.b.c"))
        .await;
    assert_status(result, Code::Unauthenticated, "invalid_token");
}

#[tokio::test]
async fn a_method_the_roles_do_not_allow_is_permission_denied() {
    let (demo, _, mut client) = start().await;
    let result = client
        .delete(with_bearer(document(), &demo.viewer.session_jwt))
        .await;
    let status = assert_status(result, Code::PermissionDenied, "permission_denied");
    assert!(
        status
            .message()
            .ends_with("(resource \"document\", action \"delete\")"),
        "{status:?}"
    );
    assert!(!status.message().contains(&demo.viewer.session_jwt));
    // The same refusal when Stytch decides (a session token: the guard's check goes in
    // the `sessions/authenticate` call).
    let result = client
        .delete(with_bearer(document(), &demo.viewer.session_token))
        .await;
    assert_status(result, Code::PermissionDenied, "permission_denied");
}

#[tokio::test]
async fn stytch_unreachable_when_needed_is_unavailable_with_pushback() {
    let (demo, _, mut client) = start().await;
    who_am_i(&mut client, &demo.viewer.session_jwt).await; // the keys are fetched
    demo.emulator.set_refusing_connections(true);
    // A session token needs Stytch; a locally verified JWT does not.
    let result = client
        .who_am_i(with_bearer(WhoAmIRequest {}, &demo.viewer.session_token))
        .await;
    let status = assert_status(result, Code::Unavailable, "stytch_unavailable");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "1000"
    );
    assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    let me = who_am_i(&mut client, &demo.viewer.session_jwt).await;
    assert_eq!(me.auth_method, "LocalJwt");

    // Stytch's own Retry-After becomes the pushback.
    demo.emulator.set_refusing_connections(false);
    demo.emulator.inject_fault(
        Endpoint::Authenticate,
        Fault::RateLimited {
            retry_after: Duration::from_secs(7),
            times: 1,
        },
    );
    let result = client
        .read(with_bearer(document(), &demo.editor.session_token))
        .await;
    let status = assert_status(result, Code::Unavailable, "stytch_unavailable");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "7000"
    );
}

#[tokio::test]
async fn allowed_calls_reach_the_service_with_the_member() {
    let (demo, _, mut client) = start().await;
    let viewer = demo
        .emulator
        .session(&demo.viewer.member_session_id)
        .unwrap();

    // A locally verified JWT.
    let me = who_am_i(&mut client, &demo.viewer.session_jwt).await;
    assert_eq!(me.member_id, viewer.member_id);
    assert_eq!(me.organization_id, demo.organization_id);
    assert!(me.roles.iter().any(|r| r == "viewer"), "{me:?}");
    assert_eq!(me.auth_method, "LocalJwt");
    let doc = client
        .read(with_bearer(document(), &demo.viewer.session_jwt))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (doc.id.as_str(), doc.member_id.as_str()),
        ("plan", viewer.member_id.as_str())
    );

    // A session token: Stytch confirms it, once, for the guard and the service.
    let before = demo.emulator.requests(Endpoint::Authenticate);
    let doc = client
        .delete(with_bearer(document(), &demo.editor.session_token))
        .await
        .unwrap()
        .into_inner();
    let editor = demo
        .emulator
        .session(&demo.editor.member_session_id)
        .unwrap();
    assert_eq!(doc.member_id, editor.member_id);
    assert_eq!(demo.emulator.requests(Endpoint::Authenticate), before + 1);
}

/// Credentials from a `cookie` metadata entry, as from `authorization: Bearer`.
#[tokio::test]
async fn cookies_in_metadata_are_credentials() {
    let (demo, _, mut client) = start().await;
    let mut request = Request::new(WhoAmIRequest {});
    let cookie = format!("theme=dark; stytch_session_jwt={}", demo.viewer.session_jwt);
    request
        .metadata_mut()
        .insert("cookie", MetadataValue::try_from(cookie).unwrap());
    let me = client.who_am_i(request).await.unwrap().into_inner();
    assert_eq!(me.auth_method, "LocalJwt");
    assert_eq!(me.organization_id, demo.organization_id);

    let mut request = Request::new(document());
    let cookie = format!("stytch_session={}", demo.viewer.session_token);
    request
        .metadata_mut()
        .insert("cookie", MetadataValue::try_from(cookie).unwrap());
    let result = client.delete(request).await;
    assert_status(result, Code::PermissionDenied, "permission_denied");
}

/// Without guards, the service itself asks for the member: a locally verified one at
/// once, one that needs Stytch with one `sessions/authenticate` call.
#[tokio::test]
async fn the_member_is_resolved_by_the_service_without_guards() {
    let demo = Demo::start().await;
    let documents = example::proto::DocumentsServer::new(example::Library);
    let app = tonic::service::Routes::new(documents)
        .into_axum_router()
        .layer(demo.auth().layer());
    let addr = example::serve(app).await.unwrap();
    let mut client = DocumentsClient::connect(addr).await.unwrap();

    let before = demo.emulator.requests(Endpoint::Authenticate);
    let me = who_am_i(&mut client, &demo.viewer.session_token).await;
    assert_eq!(me.auth_method, "Remote");
    assert_eq!(demo.emulator.requests(Endpoint::Authenticate), before + 1);
    let me = who_am_i(&mut client, &demo.viewer.session_jwt).await;
    assert_eq!(me.auth_method, "LocalJwt");
    // The service's rejection, converted with `grpc_code` and `grpc_message`.
    let result = client.who_am_i(Request::new(WhoAmIRequest {})).await;
    assert_status(result, Code::Unauthenticated, "missing_credentials");
}

/// The raw HTTP/2 response to a refused call: 200, the status in the headers, and no
/// body or trailers (trailers-only).
#[tokio::test]
async fn refusals_are_trailers_only_responses() {
    let (_demo, addr, _) = start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // One empty message: uncompressed, length 0.
    let frame = http_body_util::Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]));
    let request = http::Request::post(format!("http://{addr}/demo.Documents/Delete"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(frame))
        .unwrap();
    let response = channel.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(
        headers["grpc-message"],
        "missing_credentials: No credentials: sign in first (or send an access token)."
    );
    assert!(headers.get("www-authenticate").is_none());
    let body = response.into_body().collect().await.unwrap();
    assert!(body.trailers().is_none(), "{:?}", body.trailers());
    assert!(body.to_bytes().is_empty());
}

/// Requests that are not gRPC keep the JSON rejection on the same server.
#[tokio::test]
async fn other_requests_keep_json() {
    let demo = Demo::start().await;
    let app = example::router(&demo.auth());
    let request = http::Request::post("/demo.Documents/WhoAmI")
        .header("content-type", "application/json")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"stytch\""
    );
}

/// M2M tokens over gRPC: a method guarded by `RequireScope` answers a token without
/// the scope `PERMISSION_DENIED` (`insufficient_scope`, naming the scope), lets one
/// with it through, and the member-only service then answers `UNAUTHENTICATED`
/// (`caller_not_accepted`): each refusal a gRPC status.
#[tokio::test]
async fn machine_tokens_are_refused_and_admitted_as_grpc_statuses() {
    use axum::routing::post_service;
    use axum_stytch::RequireScope;
    use example::proto::DocumentsServer;

    let demo = Demo::start().await;
    let auth = demo
        .emulator
        .auth_builder()
        .grpc_status_errors()
        .m2m_tokens(true)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/demo.Documents/WhoAmI",
            post_service(DocumentsServer::new(example::Library))
                .route_layer(RequireScope::new("read:documents")),
        )
        .layer(auth.layer());
    let addr = example::serve(app).await.unwrap();
    let mut client = DocumentsClient::connect(addr).await.unwrap();

    let writer = demo.emulator.create_m2m_client(&["write:documents"]);
    let token = demo.emulator.mint_m2m_token(&writer.client_id, None);
    let result = client.who_am_i(with_bearer(WhoAmIRequest {}, &token)).await;
    let status = assert_status(result, Code::PermissionDenied, "insufficient_scope");
    assert!(
        status.message().ends_with("(scope \"read:documents\")"),
        "{status:?}"
    );

    let reader = demo.emulator.create_m2m_client(&["read:documents"]);
    let token = demo.emulator.mint_m2m_token(&reader.client_id, None);
    let result = client.who_am_i(with_bearer(WhoAmIRequest {}, &token)).await;
    assert_status(result, Code::Unauthenticated, "caller_not_accepted");
    assert_eq!(demo.emulator.requests(Endpoint::Authenticate), 0);
}
