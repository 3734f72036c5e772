//! The emulator's HTTP server: the state it shares with the test handle, axum
//! routes, the request pipeline (count, faults, Basic auth, endpoint logic) and
//! the answers it sends.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::endpoints::Project;
use super::faults::{Endpoint, Fault, Faults};
use super::listener::RefusingListener;
use super::model::Config;
use super::oauth::OAuthRequest;
use super::wire::ApiError;
use crate::clock::{Clock, MockClock};

/// Everything the HTTP server and the test handle share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: MockClock,
    /// While `true`, connections are refused ([`RefusingListener`]).
    pub(crate) refusing: Arc<AtomicBool>,
    project: Mutex<Project>,
    faults: Mutex<Faults>,
}

impl Shared {
    /// The state of a new server.
    pub(crate) fn new(config: Config, clock: MockClock) -> Self {
        let project = Project::new(config.clone(), clock.now());
        Self {
            config,
            clock,
            refusing: Arc::new(AtomicBool::new(false)),
            project: Mutex::new(project),
            faults: Mutex::new(Faults::default()),
        }
    }

    /// Locks the project, recovering from a poisoned lock (a panicking test).
    pub(crate) fn project(&self) -> MutexGuard<'_, Project> {
        self.project.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the faults and counters, recovering from a poisoned lock.
    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The clock's reading.
    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

/// Binds `addr` (`127.0.0.1:0` unless configured): the emulator's address is known
/// before its state is built.
pub(crate) async fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let tcp = TcpListener::bind(addr).await?;
    let addr = tcp.local_addr()?;
    Ok((tcp, addr))
}

/// A running server. Dropping it answers held calls, then stops the server.
pub(crate) struct Running {
    pub(crate) shared: Arc<Shared>,
    pub(crate) addr: SocketAddr,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Held calls are answered first: the server's graceful shutdown waits for them.
        self.shared.faults().clear();
        let sender = self
            .shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

/// Spawns the server on `tcp` (bound to `addr`) as a task.
pub(crate) fn spawn(tcp: TcpListener, addr: SocketAddr, shared: Shared) -> Running {
    let shared = Arc::new(shared);
    let listener = RefusingListener::new(tcp, Arc::clone(&shared.refusing));
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(Arc::clone(&shared));
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // Either an explicit signal or the sender being dropped.
                let _ = rx.await;
            })
            .await;
        if let Err(error) = served {
            tracing::debug!(%error, "Stytch emulator server stopped with an error");
        }
    });
    Running {
        shared,
        addr,
        shutdown: Mutex::new(Some(tx)),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/b2b/sessions/authenticate", post(authenticate))
        .route("/v1/b2b/sessions/revoke", post(revoke))
        .route("/v1/b2b/sessions/jwks/{project_id}", get(jwks))
        .route("/v1/b2b/rbac/policy", get(policy))
        .route(
            "/v1/b2b/rbac/organizations/{organization_id}",
            get(org_policy),
        )
        .route("/v1/public/{project_id}/oauth2/token", post(m2m_token))
        .route("/v1/oauth2/introspect", post(introspect))
        .route(
            "/v1/public/{project_id}/oauth2/introspect",
            post(introspect),
        )
        .route("/.well-known/jwks.json", get(public_jwks))
        .route(
            "/v1/public/{project_id}/.well-known/jwks.json",
            get(public_jwks),
        )
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route(
            "/v1/public/{project_id}/.well-known/openid-configuration",
            get(discovery),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

type Emu = AxumState<Arc<Shared>>;

async fn authenticate(AxumState(shared): Emu, headers: HeaderMap, body: Bytes) -> Response {
    handle(
        &shared,
        Endpoint::Authenticate,
        Some(&headers),
        |project, now| project.authenticate(&parse_body(&body)?, now),
    )
    .await
}

async fn revoke(AxumState(shared): Emu, headers: HeaderMap, body: Bytes) -> Response {
    handle(&shared, Endpoint::Revoke, Some(&headers), |project, now| {
        project.revoke(&parse_body(&body)?, now)
    })
    .await
}

async fn jwks(AxumState(shared): Emu, Path(project_id): Path<String>) -> Response {
    handle(&shared, Endpoint::Jwks, None, |project, _| {
        project.jwks(&project_id)
    })
    .await
}

async fn policy(AxumState(shared): Emu, headers: HeaderMap) -> Response {
    handle(&shared, Endpoint::Policy, Some(&headers), |project, _| {
        project.policy()
    })
    .await
}

async fn org_policy(
    AxumState(shared): Emu,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> Response {
    handle(
        &shared,
        Endpoint::OrganizationPolicy,
        Some(&headers),
        |project, _| project.organization_policy(&org),
    )
    .await
}

async fn m2m_token(
    AxumState(shared): Emu,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&shared, Endpoint::M2mToken, None, |project, now| {
        project.oauth_token(&project_id, &oauth_request(&headers, &body)?, now)
    })
    .await
}

/// Both introspection paths: with the project id in the path, and without.
async fn introspect(
    AxumState(shared): Emu,
    project_id: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let project_id = project_id.map(|Path(p)| p);
    handle(&shared, Endpoint::Introspect, None, |project, now| {
        let request = oauth_request(&headers, &body)?;
        project.introspect(project_id.as_deref(), &request, now)
    })
    .await
}

/// Both JWKS paths of the project domain; without a project id in the path, the
/// emulator's.
async fn public_jwks(AxumState(shared): Emu, project_id: Option<Path<String>>) -> Response {
    let project_id = project_id.map_or_else(|| shared.config.project_id.clone(), |Path(p)| p);
    handle(&shared, Endpoint::PublicJwks, None, |project, _| {
        project.jwks(&project_id)
    })
    .await
}

/// The three metadata paths.
async fn discovery(AxumState(shared): Emu, project_id: Option<Path<String>>) -> Response {
    let project_id = project_id.map(|Path(p)| p);
    handle(&shared, Endpoint::Discovery, None, |project, _| {
        project.discovery(project_id.as_deref())
    })
    .await
}

/// The request to an OAuth endpoint, from its `Content-Type`, `Authorization` and body.
fn oauth_request(headers: &HeaderMap, body: &[u8]) -> Result<OAuthRequest, ApiError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    OAuthRequest::parse(
        header(header::CONTENT_TYPE),
        header(header::AUTHORIZATION),
        body,
    )
}

async fn not_found(AxumState(shared): Emu) -> Response {
    error_response(
        &shared,
        &ApiError::new(404, "not_found", "The requested route does not exist."),
    )
}

async fn method_not_allowed(AxumState(shared): Emu) -> Response {
    error_response(
        &shared,
        &ApiError::new(
            405,
            "method_not_allowed",
            "The HTTP method is not allowed on this route.",
        ),
    )
}

/// Common request pipeline: count, faults, Basic auth (when `auth_headers`
/// is given), then the endpoint logic under the project lock.
async fn handle(
    shared: &Shared,
    endpoint: Endpoint,
    auth_headers: Option<&HeaderMap>,
    logic: impl FnOnce(&mut Project, SystemTime) -> Result<Value, ApiError>,
) -> Response {
    let arrival = shared.faults().arrive(endpoint);
    if let Some(hold) = arrival.hold {
        hold.released().await;
    }
    if let Some(delay) = arrival.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(fault) = arrival.fault {
        return fault_response(shared, &fault, endpoint.oauth_errors());
    }
    if let Some(headers) = auth_headers
        && !basic_auth_ok(shared, headers)
    {
        return error_response(
            shared,
            &ApiError::new(
                401,
                "unauthorized_credentials",
                "Unauthorized credentials. Check the project_id and secret.",
            ),
        );
    }
    let now = shared.now();
    let result = logic(&mut shared.project(), now);
    match result {
        Ok(body) => json_response(StatusCode::OK, body.to_string()),
        Err(error) => error_response(shared, &error),
    }
}

/// Parses a JSON request body; empty and `null` bodies count as `{}`.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(ApiError::bad_request(
            "The request body must be a JSON object.",
        )),
        Err(_) => Err(ApiError::bad_request("The request body is not valid JSON.")),
    }
}

fn basic_auth_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", shared.config.project_id, shared.config.secret);
    decoded == expected.as_bytes()
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(shared: &Shared, error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error = ApiError {
        status: status.as_u16(),
        ..error.clone()
    };
    let body = error.body(shared.config.env);
    let mut response = json_response(status, body.to_string());
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The answer of a one-shot `fault`, with OAuth's error field names if `oauth`.
fn fault_response(shared: &Shared, fault: &Fault, oauth: bool) -> Response {
    let injected = |status: u16, error_type: &'static str| ApiError {
        oauth,
        ..ApiError::new(status, error_type, "Injected by the Stytch emulator.")
    };
    match fault {
        Fault::Status { status, .. } => {
            let error_type = match status {
                400 => "bad_request",
                401 => "unauthorized_credentials",
                403 => "forbidden",
                404 => "not_found",
                408 => "request_timeout",
                429 => "too_many_requests",
                500 => "internal_server_error",
                502 => "bad_gateway",
                503 => "service_unavailable",
                504 => "gateway_timeout",
                _ => "emulated_error",
            };
            error_response(shared, &injected(*status, error_type))
        }
        Fault::RateLimited { retry_after, .. } => {
            let mut response = error_response(shared, &injected(429, "too_many_requests"));
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs()),
            );
            response
        }
        Fault::Garbage { .. } => json_response(
            StatusCode::OK,
            "<html><body>502 Bad Gateway</body></html>{\"request_id\":".to_owned(),
        ),
        Fault::Body { status, body, .. } => json_response(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body.clone(),
        ),
        // Holds and delays never reach the one-shot queue.
        Fault::Hold | Fault::Delay(_) => error_response(
            shared,
            &ApiError::new(500, "internal_server_error", "Unexpected fault."),
        ),
    }
}
