//! # grpc
//!
//! A tonic gRPC server behind the `StytchAuth` layer and its guards, against the
//! in-process Stytch emulator:
//!
//! ```text
//! cargo run --example grpc             # calls it with a tonic client, then exits
//! cargo run --example grpc -- --serve  # and keeps serving, printing grpcurl commands
//! ```
//!
//! The service, `demo.Documents` (its `.proto` is [`PROTO`]), has three methods:
//! `WhoAmI` needs a session, `Read` the `document:read` permission, `Delete`
//! `document:delete`. Each method's implementation reads the member with
//! `AuthenticatedMember::from_extensions`. With `grpc_status_errors()`, the layer
//! answers `UNAUTHENTICATED` without a session, `PERMISSION_DENIED` when the roles do
//! not allow the method, and `UNAVAILABLE` when Stytch is needed and unreachable, as
//! trailers-only gRPC responses. Credentials come from `authorization: Bearer <session
//! JWT or token>` metadata, or a `cookie` entry (`stytch_session_jwt=...`).
//!
//! The gRPC plumbing in [`proto`] is what `tonic-build` generates from [`PROTO`],
//! written out by hand so that the example needs no `protoc`.
//!
//! It prints test credentials on purpose: they belong to a project that lives only in
//! this process.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::post_service;
use axum_stytch::testing::{Policy, Role, SessionTokens, StytchEmulator};
use axum_stytch::{AuthenticatedMember, RequireAuthz, RequireSession, StytchAuth};
use proto::{Document, DocumentRequest, Documents, DocumentsServer, Member, WhoAmIRequest};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};

/// The service's definition, for `grpcurl -proto` (the example writes it to a file).
pub const PROTO: &str = r#"syntax = "proto3";
package demo;

service Documents {
  rpc WhoAmI(WhoAmIRequest) returns (Member);
  rpc Read(DocumentRequest) returns (Document);
  rpc Delete(DocumentRequest) returns (Document);
}

message WhoAmIRequest {}
message Member {
  string member_id = 1;
  string organization_id = 2;
  repeated string roles = 3;
  string auth_method = 4;
}
message DocumentRequest { string id = 1; }
message Document { string id = 1; string member_id = 2; }
"#;

/// The service implementation: every method reads the member the layer authenticated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Library;

/// The request's member, or the rejection as a gRPC status.
async fn member<T>(request: &Request<T>) -> Result<AuthenticatedMember, Status> {
    AuthenticatedMember::from_extensions(request.extensions())
        .await
        .map_err(|r| Status::new(Code::from(r.grpc_code()), r.grpc_message()))
}

impl Documents for Library {
    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<Member>, Status> {
        let member = member(&request).await?;
        Ok(Response::new(Member {
            member_id: member.member_id().to_owned(),
            organization_id: member.organization_id().to_owned(),
            roles: member.roles().to_vec(),
            auth_method: format!("{:?}", member.auth_method()),
        }))
    }

    async fn read(&self, request: Request<DocumentRequest>) -> Result<Response<Document>, Status> {
        let member = member(&request).await?;
        Ok(Response::new(Document {
            id: request.into_inner().id,
            member_id: member.member_id().to_owned(),
        }))
    }

    async fn delete(
        &self,
        request: Request<DocumentRequest>,
    ) -> Result<Response<Document>, Status> {
        self.read(request).await
    }
}

/// The gRPC server behind the layer: a permission on two methods' paths, a session on
/// every method of the service.
pub fn router(auth: &StytchAuth) -> Router {
    let documents = DocumentsServer::new(Library);
    Router::new()
        .route(
            "/demo.Documents/Read",
            post_service(documents.clone()).route_layer(RequireAuthz::new("document", "read")),
        )
        .route(
            "/demo.Documents/Delete",
            post_service(documents.clone()).route_layer(RequireAuthz::new("document", "delete")),
        )
        // tonic's router for the whole service (`/demo.Documents/*`): WhoAmI and any
        // method added later.
        .merge(
            tonic::service::Routes::new(documents)
                .into_axum_router()
                .route_layer(RequireSession::new()),
        )
        .layer(auth.layer())
}

/// The emulator and its seeded project.
pub struct Demo {
    /// The Stytch the layer asks.
    pub emulator: StytchEmulator,
    /// May read documents.
    pub viewer: SessionTokens,
    /// May read and delete documents.
    pub editor: SessionTokens,
    /// Their organization.
    pub organization_id: String,
}

impl Demo {
    /// An emulator with a policy (`viewer` reads documents, `editor` also deletes
    /// them) and one organization with a viewer and an editor, a session each.
    pub async fn start() -> Demo {
        let emulator = StytchEmulator::start().await;
        emulator.set_policy(
            Policy::new()
                .role(Role::new("viewer").allow("document", ["read"]))
                .role(Role::new("editor").allow("document", ["read", "delete"])),
        );
        let organization_id = emulator.create_organization("acme");
        let viewer = emulator.create_member(&organization_id, "viewer@acme.test", &["viewer"]);
        let editor = emulator.create_member(&organization_id, "editor@acme.test", &["editor"]);
        Demo {
            viewer: emulator.create_session(&viewer),
            editor: emulator.create_session(&editor),
            emulator,
            organization_id,
        }
    }

    /// The layer for gRPC: gRPC statuses, bearer tokens.
    pub fn auth(&self) -> StytchAuth {
        self.emulator
            .auth_builder()
            .grpc_status_errors()
            .build()
            .expect("the emulator's settings are valid")
    }
}

/// Serves `app` over HTTP/1 and HTTP/2 (gRPC) on a port of 127.0.0.1 chosen by the OS.
pub async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("server stopped: {error}");
        }
    });
    Ok(addr)
}

/// `message` with `authorization: Bearer <credential>` metadata.
pub fn with_bearer<T>(message: T, credential: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {credential}"))
        .expect("a session JWT or token is visible ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = Demo::start().await;
    let addr = serve(router(&demo.auth())).await?;
    println!(
        "gRPC server on http://{addr} (Stytch emulator at {})",
        demo.emulator.base_url()
    );

    let mut client = proto::DocumentsClient::connect(addr).await?;
    let me = client
        .who_am_i(with_bearer(WhoAmIRequest {}, &demo.viewer.session_jwt))
        .await?
        .into_inner();
    println!("WhoAmI as the viewer -> OK {me:?}");
    let read = DocumentRequest { id: "plan".into() };
    let doc = client
        .read(with_bearer(read.clone(), &demo.viewer.session_jwt))
        .await?;
    println!("Read as the viewer -> OK {:?}", doc.into_inner());
    let denied = client
        .delete(with_bearer(read.clone(), &demo.viewer.session_jwt))
        .await
        .expect_err("a viewer may not delete");
    println!(
        "Delete as the viewer -> {:?}: {}",
        denied.code(),
        denied.message()
    );
    let deleted = client
        .delete(with_bearer(read.clone(), &demo.editor.session_jwt))
        .await?;
    println!("Delete as the editor -> OK {:?}", deleted.into_inner());
    let signed_out = client
        .who_am_i(Request::new(WhoAmIRequest {}))
        .await
        .expect_err("no session");
    println!(
        "WhoAmI without credentials -> {:?}: {}",
        signed_out.code(),
        signed_out.message()
    );

    if std::env::args().any(|a| a == "--serve") {
        let dir = std::env::temp_dir().join("axum-stytch-grpc-example");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("documents.proto"), PROTO)?;
        let grpcurl = format!(
            "grpcurl -plaintext -import-path {} -proto documents.proto",
            dir.display()
        );
        println!();
        println!("Paste these into a shell (test credentials of the in-process emulator):");
        println!();
        println!("VIEWER='{}'", demo.viewer.session_jwt);
        println!("EDITOR='{}'", demo.editor.session_jwt);
        println!("{grpcurl} -H \"authorization: Bearer $VIEWER\" {addr} demo.Documents/WhoAmI");
        println!(
            "{grpcurl} -H \"authorization: Bearer $VIEWER\" -d '{{\"id\": \"plan\"}}' {addr} demo.Documents/Delete   # PermissionDenied"
        );
        println!(
            "{grpcurl} -H \"authorization: Bearer $EDITOR\" -d '{{\"id\": \"plan\"}}' {addr} demo.Documents/Delete"
        );
        println!(
            "{grpcurl} -H \"cookie: stytch_session_jwt=$VIEWER\" {addr} demo.Documents/WhoAmI"
        );
        println!("{grpcurl} {addr} demo.Documents/WhoAmI   # Unauthenticated");
        println!();
        println!("serving; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// What `tonic-build` would generate from [`PROTO`]: the messages, the service trait,
/// its server and a client.
pub mod proto {
    use std::convert::Infallible;
    use std::future::Future;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
    use tonic::server::{Grpc, NamedService};
    use tonic::transport::Channel;
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    /// `demo.WhoAmIRequest`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct WhoAmIRequest {}

    /// `demo.Member`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Member {
        /// The member id.
        #[prost(string, tag = "1")]
        pub member_id: String,
        /// The member's organization.
        #[prost(string, tag = "2")]
        pub organization_id: String,
        /// The session's roles.
        #[prost(string, repeated, tag = "3")]
        pub roles: Vec<String>,
        /// `LocalJwt` or `Remote`.
        #[prost(string, tag = "4")]
        pub auth_method: String,
    }

    /// `demo.DocumentRequest`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DocumentRequest {
        /// The document.
        #[prost(string, tag = "1")]
        pub id: String,
    }

    /// `demo.Document`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Document {
        /// The document.
        #[prost(string, tag = "1")]
        pub id: String,
        /// Who asked.
        #[prost(string, tag = "2")]
        pub member_id: String,
    }

    type Reply<T> = Result<Response<T>, Status>;

    /// The `demo.Documents` service, to implement.
    pub trait Documents: Send + Sync + 'static {
        /// `WhoAmI`.
        fn who_am_i(
            &self,
            request: Request<WhoAmIRequest>,
        ) -> impl Future<Output = Reply<Member>> + Send;
        /// `Read`.
        fn read(
            &self,
            request: Request<DocumentRequest>,
        ) -> impl Future<Output = Reply<Document>> + Send;
        /// `Delete`.
        fn delete(
            &self,
            request: Request<DocumentRequest>,
        ) -> impl Future<Output = Reply<Document>> + Send;
    }

    /// The `demo.Documents` server: a tower service over HTTP/2 requests.
    #[derive(Debug)]
    pub struct DocumentsServer<T>(Arc<T>);

    impl<T> DocumentsServer<T> {
        /// Serves `service`.
        pub fn new(service: T) -> Self {
            Self(Arc::new(service))
        }
    }

    impl<T> Clone for DocumentsServer<T> {
        fn clone(&self) -> Self {
            Self(Arc::clone(&self.0))
        }
    }

    impl<T> NamedService for DocumentsServer<T> {
        const NAME: &'static str = "demo.Documents";
    }

    impl<T, B> Service<http::Request<B>> for DocumentsServer<T>
    where
        T: Documents,
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Infallible>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let service = Arc::clone(&self.0);
            match req.uri().path() {
                "/demo.Documents/WhoAmI" => Box::pin(async move {
                    let method = tower::service_fn(|r| {
                        let service = Arc::clone(&service);
                        async move { service.who_am_i(r).await }
                    });
                    Ok(Grpc::new(ProstCodec::default()).unary(method, req).await)
                }),
                "/demo.Documents/Read" => Box::pin(async move {
                    let method = tower::service_fn(|r| {
                        let service = Arc::clone(&service);
                        async move { service.read(r).await }
                    });
                    Ok(Grpc::new(ProstCodec::default()).unary(method, req).await)
                }),
                "/demo.Documents/Delete" => Box::pin(async move {
                    let method = tower::service_fn(|r| {
                        let service = Arc::clone(&service);
                        async move { service.delete(r).await }
                    });
                    Ok(Grpc::new(ProstCodec::default()).unary(method, req).await)
                }),
                _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
            }
        }
    }

    /// A `demo.Documents` client.
    #[derive(Debug, Clone)]
    pub struct DocumentsClient(tonic::client::Grpc<Channel>);

    impl DocumentsClient {
        /// A client of the server at `addr` (plaintext HTTP/2).
        pub async fn connect(addr: SocketAddr) -> Result<Self, tonic::transport::Error> {
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("a valid URI")
                .connect()
                .await?;
            Ok(Self(tonic::client::Grpc::new(channel)))
        }

        async fn unary<M1, M2>(&mut self, request: Request<M1>, path: &'static str) -> Reply<M2>
        where
            M1: prost::Message + Send + Sync + 'static,
            M2: prost::Message + Default + Send + Sync + 'static,
        {
            self.0
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
            let path = http::uri::PathAndQuery::from_static(path);
            self.0.unary(request, path, ProstCodec::default()).await
        }

        /// `WhoAmI`.
        pub async fn who_am_i(&mut self, request: Request<WhoAmIRequest>) -> Reply<Member> {
            self.unary(request, "/demo.Documents/WhoAmI").await
        }

        /// `Read`.
        pub async fn read(&mut self, request: Request<DocumentRequest>) -> Reply<Document> {
            self.unary(request, "/demo.Documents/Read").await
        }

        /// `Delete`.
        pub async fn delete(&mut self, request: Request<DocumentRequest>) -> Reply<Document> {
            self.unary(request, "/demo.Documents/Delete").await
        }
    }
}
