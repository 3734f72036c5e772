//! Shared by the benches (`mod common;`) and the load harness
//! (`#[path = "../benches/common/mod.rs"]`): an emulated Stytch project with an RBAC
//! policy, members with sessions, and pre-minted session JWTs of about 1.4 KiB, like
//! the ones a browser sends.
#![allow(dead_code)]

pub mod reference;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::handler::Handler as _;
use axum::routing::get;
use axum_stytch::testing::{Policy, Resource, Role};
use axum_stytch::testing::{SessionOptions, StytchEmulator};
use axum_stytch::{AuthenticatedMember, Authorized, Clock, RequireAuthz, StytchAuth};
use tower::Layer as _;

/// The permission the RBAC-guarded routes require (granted by `viewer` and `editor`).
pub const RESOURCE: &str = "document";
/// See [`RESOURCE`].
pub const ACTION: &str = "read";

axum_stytch::permission!(
    /// [`RESOURCE`] and [`ACTION`] as a type, for the [`Authorized`] extractor.
    pub ReadDocument = RESOURCE, ACTION
);

/// Roles of a mid-sized B2B product: a dozen custom roles over six resources.
pub fn project_roles() -> Vec<Role> {
    vec![
        Role::new("stytch_admin")
            .allow("stytch.organization", ["*"])
            .allow("stytch.member", ["*"])
            .allow("stytch.sso", ["*"])
            .allow("stytch.scim", ["*"])
            .allow("stytch.self", ["*"]),
        Role::new("stytch_member").allow("stytch.self", ["*"]),
        Role::new("viewer")
            .allow("document", ["read"])
            .allow("comment", ["read"])
            .allow("project", ["read"]),
        Role::new("commenter")
            .allow("document", ["read"])
            .allow("comment", ["read", "create"]),
        Role::new("editor")
            .allow("document", ["read", "create", "update"])
            .allow("comment", ["read", "create", "update", "delete"])
            .allow("project", ["read"]),
        Role::new("publisher").allow("document", ["read", "publish", "unpublish"]),
        Role::new("project_admin")
            .allow("project", ["*"])
            .allow("document", ["*"]),
        Role::new("billing_viewer").allow("invoice", ["read"]),
        Role::new("billing_admin")
            .allow("invoice", ["*"])
            .allow("subscription", ["*"]),
        Role::new("auditor")
            .allow("audit_log", ["read", "export"])
            .allow("invoice", ["read"]),
        Role::new("support")
            .allow("document", ["read"])
            .allow("project", ["read"])
            .allow("audit_log", ["read"]),
        Role::new("integration").allow("document", ["read", "create"]),
    ]
}

/// A clock frozen at a given time (so minted tokens stay valid however long a run
/// takes) that still reads the system clock, so each call costs what the default
/// `SystemClock` costs (a mock clock's mutex would cost more).
#[derive(Clone, Copy)]
pub struct FrozenClock(pub SystemTime);

impl Clock for FrozenClock {
    fn now(&self) -> SystemTime {
        std::hint::black_box(SystemTime::now());
        self.0
    }
}

/// What every app answers.
pub const BODY: &str = "Hello, World!";

/// The bare app's handler.
pub async fn hello() -> &'static str {
    BODY
}

/// The handler of the axum-stytch apps: requires a member.
pub async fn hello_member(_member: AuthenticatedMember) -> &'static str {
    BODY
}

/// The bare app: `GET /` answers [`BODY`].
///
/// Every app is returned the way `axum::serve` runs it: `with_state(())` turns each
/// route's handler into a service once, where calling a `Router` directly would do it on
/// every request.
pub fn bare_app() -> Router {
    Router::new().route("/", get(hello)).with_state(())
}

/// `GET /` for a member, behind `auth`'s layer.
pub fn member_app(auth: &StytchAuth) -> Router {
    Router::new()
        .route("/", get(hello_member))
        .layer(auth.layer())
        .with_state(())
}

/// A handler that takes the M2M caller (and ignores it).
pub async fn hello_service(_service: axum_stytch::M2mCaller) -> &'static str {
    "hello"
}

/// The layer (M2M tokens on) and a handler that takes the `M2mCaller`: a service's
/// route, called with `Authorization: Bearer <M2M token>`.
pub fn m2m_app(auth: &StytchAuth) -> Router {
    Router::new()
        .route("/", get(hello_service))
        .layer(auth.layer())
        .with_state(())
}

/// [`member_app`] with the layer around the whole router instead of on its routes
/// (`Router::layer` boxes each route again): the service `axum::serve` gets through
/// `axum::ServiceExt::into_make_service`.
pub fn member_app_outer(auth: &StytchAuth) -> axum_stytch::layer::StytchAuthService<Router> {
    auth.layer()
        .layer(Router::new().route("/", get(hello_member)).with_state(()))
}

/// [`member_app`] with `RequireAuthz(RESOURCE, ACTION)` as a `route_layer`, the form
/// the README shows.
pub fn rbac_app(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/",
            get(hello_member).route_layer(RequireAuthz::new(RESOURCE, ACTION)),
        )
        .layer(auth.layer())
        .with_state(())
}

/// [`rbac_app`] with the guard on the handler (`Handler::layer`) instead.
pub fn rbac_handler_app(auth: &StytchAuth) -> Router {
    Router::new()
        .route(
            "/",
            get(hello_member.layer(RequireAuthz::new(RESOURCE, ACTION))),
        )
        .layer(auth.layer())
        .with_state(())
}

/// The handler of [`rbac_extractor_app`]: the permission checked by its extractor.
pub async fn hello_authorized(_auth: Authorized<ReadDocument>) -> &'static str {
    BODY
}

/// [`member_app`] with the permission checked by the handler's [`Authorized`]
/// extractor instead of a guard layer (no layer of axum's around the handler).
pub fn rbac_extractor_app(auth: &StytchAuth) -> Router {
    Router::new()
        .route("/", get(hello_authorized))
        .layer(auth.layer())
        .with_state(())
}

/// [`project_roles`] as a policy, with its resources.
pub fn policy() -> Policy {
    let resources = [
        (
            "document",
            &["read", "create", "update", "delete", "publish", "unpublish"][..],
        ),
        ("comment", &["read", "create", "update", "delete"][..]),
        ("project", &["read", "create", "update", "delete"][..]),
        ("invoice", &["read", "pay"][..]),
        ("subscription", &["read", "update", "cancel"][..]),
        ("audit_log", &["read", "export"][..]),
    ];
    let mut policy = Policy::new();
    for (id, actions) in resources {
        policy = policy.resource(Resource::new(id, actions.iter().copied()));
    }
    for role in project_roles() {
        policy = policy.role(role);
    }
    policy
}

/// The criterion benches' runtime: one worker, like the harness's pinned server.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One member's session.
pub struct Session {
    pub member_session_id: String,
    pub session_token: String,
}

/// An emulated project with sessions and distinct valid JWTs.
pub struct Fixture {
    pub emulator: StytchEmulator,
    pub organization_id: String,
    pub sessions: Vec<Session>,
    /// `fresh[i]` are pairwise distinct, valid (at the emulator's clock, which stays
    /// frozen) and about 1.4 KB each. `fresh[0]` doubles as the repeated token.
    pub fresh: Vec<String>,
}

impl Fixture {
    /// A `StytchAuth` on this emulator with a `capacity`-entry verified-token cache,
    /// its JWKS already loaded, and a [`FrozenClock`] at the emulator's time.
    pub async fn auth(&self, capacity: usize) -> StytchAuth {
        self.auth_with(capacity, |b| b).await
    }

    /// [`auth`](Self::auth), with more settings.
    pub async fn auth_with(
        &self,
        capacity: usize,
        configure: impl FnOnce(axum_stytch::StytchAuthBuilder) -> axum_stytch::StytchAuthBuilder,
    ) -> StytchAuth {
        let auth = configure(
            self.emulator
                .auth_builder()
                .clock(FrozenClock(self.emulator.clock().now()))
                .token_cache_capacity(capacity),
        )
        .build()
        .expect("a valid configuration");
        auth.warm_up().await.expect("JWKS warm-up");
        auth
    }

    /// The emulator's JWKS, for the hand-written comparison middlewares.
    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        reqwest::get(format!(
            "{}/v1/b2b/sessions/jwks/{}",
            self.emulator.base_url(),
            self.emulator.project_id()
        ))
        .await
        .expect("JWKS")
        .json()
        .await
        .expect("JWKS JSON")
    }

    /// Starts an emulator and mints at least `tokens` distinct JWTs over `sessions`
    /// sessions: one JWT per session per emulated second (a JWT is a pure function of
    /// the session and the second it is minted in), so the clock moves
    /// `tokens / sessions` seconds; that must stay well under the 300 s token age.
    pub async fn new(sessions: usize, tokens: usize) -> Fixture {
        Self::with_emulator(StytchEmulator::start().await, sessions, tokens)
    }

    /// How many emulated seconds minting `tokens` over `sessions` takes.
    pub fn minting_seconds(sessions: usize, tokens: usize) -> u64 {
        tokens.div_ceil(sessions.max(1)).max(1) as u64
    }

    /// [`Fixture::new`] on a given emulator.
    pub fn with_emulator(emulator: StytchEmulator, sessions: usize, tokens: usize) -> Fixture {
        let sessions = sessions.max(1);
        let seconds = tokens.div_ceil(sessions).max(1);
        assert!(
            seconds <= 200,
            "{tokens} tokens over {sessions} sessions would span {seconds} s: add sessions"
        );
        emulator.set_policy(policy());
        let organization_id = emulator.create_organization("acme-corporation");
        let mut all = Vec::with_capacity(sessions);
        for i in 0..sessions {
            let email = format!("member.{i:05}@acme.example");
            let member = emulator.create_member(&organization_id, &email, &["editor"]);
            // The default factor (a password); with Stytch-length ids this makes a JWT of
            // about 1.4 KiB, like a real Stytch B2B session JWT.
            let tokens = emulator.create_session_with(
                &member,
                SessionOptions::default().duration(Duration::from_secs(24 * 3600)),
            );
            all.push(Session {
                member_session_id: tokens.member_session_id,
                session_token: tokens.session_token,
            });
        }
        let mut fresh = Vec::with_capacity(seconds * sessions);
        for second in 0..seconds {
            if second > 0 {
                emulator.clock().advance(Duration::from_secs(1));
            }
            for s in &all {
                fresh.push(emulator.mint_jwt(&s.member_session_id));
            }
        }
        fresh.truncate(tokens.max(1));
        Fixture {
            emulator,
            organization_id,
            sessions: all,
            fresh,
        }
    }

    /// The token every "repeated" scenario sends.
    pub fn repeated(&self) -> &str {
        &self.fresh[0]
    }

    /// A browser-like `Cookie` header value for each fresh JWT (index 0 is the
    /// repeated one), with the session token of the JWT's session.
    pub fn cookie_values(&self) -> Vec<axum::http::HeaderValue> {
        self.fresh
            .iter()
            .enumerate()
            .map(|(i, jwt)| {
                let token = &self.sessions[i % self.sessions.len()].session_token;
                axum::http::HeaderValue::from_maybe_shared(axum::body::Bytes::from(cookie_header(
                    jwt, token,
                )))
                .expect("a valid header value")
            })
            .collect()
    }
}

/// A browser-like `Cookie` header: analytics and preference cookies around the two
/// Stytch session cookies (about 1.6 KB in all).
pub fn cookie_header(session_jwt: &str, session_token: &str) -> String {
    format!(
        "_ga=GA1.1.1843012745.1767225600; _ga_Q7X3ZP1K2D=GS1.1.1767225600.3.1.1767229200.0.0.0; \
         theme=dark; stytch_session={session_token}; stytch_session_jwt={session_jwt}; \
         csrftoken=9f2c1e7a4b8d6f3e0a5c7b9d1e3f5a7c"
    )
}
