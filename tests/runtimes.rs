//! One `StytchAuth` shared by several Tokio runtimes, the way `#[tokio::test]` suites
//! use a static one: a runtime that goes away, or sits idle, must not fail or hang the
//! requests of the others.
//!
//! The emulator runs on a runtime of its own, alive for the whole test; the requests
//! run on runtimes each test builds and drops.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum_stytch::StytchAuth;
use axum_stytch::testing::{Endpoint, Fault, SessionTokens, StytchEmulator};
use common::{TestResponse, app, cookies, send_request};
use http::{Request, StatusCode};
use tokio::runtime::Runtime;

/// How long a test waits for something that must happen.
const BOUND: Duration = Duration::from_secs(20);

/// The emulator, on a runtime of its own.
struct Stytch {
    emu: StytchEmulator,
    session: SessionTokens,
    // Dropped last: the emulator's server runs on it.
    _runtime: Runtime,
}

fn stytch() -> Stytch {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let emu = runtime.block_on(StytchEmulator::start());
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let session = emu.create_session(&member);
    Stytch {
        emu,
        session,
        _runtime: runtime,
    }
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn request(cookie: &str) -> Request<Body> {
    Request::get("/me")
        .header(http::header::COOKIE, cookie)
        .body(Body::empty())
        .expect("a request")
}

/// Waits (real time, at most `BOUND`) until `done`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `fut` on `runtime`, failing the test if it takes longer than `BOUND`.
fn bounded<T>(runtime: &Runtime, fut: impl Future<Output = T>) -> T {
    runtime
        .block_on(async { tokio::time::timeout(BOUND, fut).await })
        .expect("answered within the bound (no hang)")
}

/// Polls `fut` once on `runtime` (so it starts its work), and leaves it pending.
fn poll_once(runtime: &Runtime, fut: &mut Pin<Box<dyn Future<Output = TestResponse> + Send>>) {
    runtime.block_on(std::future::poll_fn(|_| {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "answered at once");
        Poll::Ready(())
    }));
}

fn pending_request(
    app: &Router,
    cookie: &str,
) -> Pin<Box<dyn Future<Output = TestResponse> + Send>> {
    let app = app.clone();
    let req = request(cookie);
    Box::pin(async move { send_request(&app, req).await })
}

/// 6. Two threads each build and drop a current-thread runtime per "test", sharing one
///    `StytchAuth`: no request fails because another runtime (which opened a pooled
///    connection to Stytch) went away.
#[test]
fn requests_on_runtimes_built_and_dropped_in_turn_all_succeed() {
    let stytch = stytch();
    let auth = stytch
        .emu
        .auth_builder()
        .build()
        .expect("a valid configuration");
    let member_id = stytch
        .emu
        .session(&stytch.session.member_session_id)
        .expect("the session")
        .member_id;
    // A session token alone, one per thread: every request calls Stytch.
    let tokens = [
        stytch.session.session_token.clone(),
        stytch.emu.create_session(&member_id).session_token,
    ];
    let statuses: Vec<StatusCode> = std::thread::scope(|scope| {
        let threads: Vec<_> = tokens
            .iter()
            .map(|token| {
                let (auth, cookie) = (auth.clone(), cookies(None, Some(token)));
                scope.spawn(move || {
                    (0..40)
                        .map(|_| {
                            let runtime = current_thread();
                            let app = app(&auth);
                            runtime
                                .block_on(send_request(&app, request(&cookie)))
                                .status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a thread"))
            .collect()
    });
    let failed = statuses.iter().filter(|s| **s != StatusCode::OK).count();
    assert_eq!(failed, 0, "{statuses:?}");
    assert_eq!(stytch.emu.requests(Endpoint::Authenticate), 80);
}

/// 6, for the keys: a cold JWKS fetch on runtime B must not be sent over the pooled
/// connection runtime A opened and no longer drives (A is idle, kept for a later
/// `block_on`): that call would hang to its timeout, and the failed fetch start the
/// 30 s cooldown (every JWT answered 503).
#[test]
fn a_cold_jwks_fetch_does_not_use_another_runtimes_connection() {
    let stytch = stytch();
    let auth = stytch
        .emu
        .auth_builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("a valid configuration");
    let app = app(&auth);
    let idle = current_thread();
    let token = cookies(None, Some(&stytch.session.session_token));
    assert_eq!(
        bounded(&idle, send_request(&app, request(&token))).status,
        StatusCode::OK
    );

    let jwt = cookies(Some(&stytch.session.session_jwt), None);
    let res = bounded(&current_thread(), send_request(&app, request(&jwt)));
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(auth.metrics().jwks_fetch_failures, 0);
    drop(idle);
}

/// 7. Runtime A starts the `sessions/authenticate` call for a token; runtime B joins
///    it; A is dropped mid-call: B carries on with a call of its own and gets the
///    member.
#[test]
fn a_joined_authentication_survives_the_starters_runtime() {
    let stytch = stytch();
    let auth = stytch
        .emu
        .auth_builder()
        .build()
        .expect("a valid configuration");
    let app = app(&auth);
    let cookie = cookies(None, Some(&stytch.session.session_token));
    stytch.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);

    let a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = a.spawn({
        let app = app.clone();
        let req = request(&cookie);
        async move { send_request(&app, req).await }
    });
    wait_for("A's call", || {
        stytch.emu.requests(Endpoint::Authenticate) == 1
    });

    let b = current_thread();
    let mut joined = pending_request(&app, &cookie);
    poll_once(&b, &mut joined);
    assert_eq!(
        auth.metrics().coalesced_authentications,
        1,
        "B joined A's call"
    );
    drop(started);
    a.shutdown_background();

    let answer = std::thread::spawn(move || bounded(&b, joined));
    wait_for("B's own call", || {
        stytch.emu.requests(Endpoint::Authenticate) == 2
    });
    stytch.emu.release(Endpoint::Authenticate);
    let res = answer.join().expect("B's thread");
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

/// 7, for the keys: B joins the JWKS fetch runtime A started; A is dropped: B fetches
/// the keys itself, with no 503 and no failure counted.
#[test]
fn a_joined_jwks_fetch_survives_the_starters_runtime() {
    let stytch = stytch();
    let auth = stytch
        .emu
        .auth_builder()
        .build()
        .expect("a valid configuration");
    let app = app(&auth);
    let cookie = cookies(Some(&stytch.session.session_jwt), None);
    stytch.emu.inject_fault(Endpoint::Jwks, Fault::Hold);

    let a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = a.spawn({
        let app = app.clone();
        let req = request(&cookie);
        async move { send_request(&app, req).await }
    });
    wait_for("A's fetch", || stytch.emu.requests(Endpoint::Jwks) == 1);

    let b = current_thread();
    let mut joined = pending_request(&app, &cookie);
    poll_once(&b, &mut joined);
    drop(started);
    a.shutdown_background();

    let answer = std::thread::spawn(move || bounded(&b, joined));
    wait_for("B's own fetch", || stytch.emu.requests(Endpoint::Jwks) == 2);
    stytch.emu.release(Endpoint::Jwks);
    let res = answer.join().expect("B's thread");
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(auth.metrics().jwks_fetch_failures, 0);
}

/// A layer whose calls to Stytch time out after `timeout`.
fn auth_with_timeout(stytch: &Stytch, timeout: Duration, calls: usize) -> StytchAuth {
    stytch
        .emu
        .auth_builder()
        .request_timeout(timeout)
        .max_concurrent_authentications(calls)
        .build()
        .expect("a valid configuration")
}

/// 8. A call started on a runtime that then sits idle (kept for a later `block_on`)
///    never finishes: a request on another runtime that joined it gives up at its own
///    deadline and makes its own call; later requests do not join the stuck call.
#[test]
fn a_call_stuck_on_an_idle_runtime_hangs_no_one() {
    let stytch = stytch();
    let auth = auth_with_timeout(&stytch, Duration::from_secs(2), 256);
    let app = app(&auth);
    let cookie = cookies(None, Some(&stytch.session.session_token));
    stytch.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);

    // A's call reaches Stytch, then A goes idle with it in flight.
    let idle = current_thread();
    let mut stuck = pending_request(&app, &cookie);
    poll_once(&idle, &mut stuck);
    idle.block_on(async {
        let deadline = Instant::now() + BOUND;
        while stytch.emu.requests(Endpoint::Authenticate) == 0 {
            assert!(Instant::now() < deadline, "A's call never left");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    stytch.emu.release(Endpoint::Authenticate);

    for _ in 0..3 {
        let res = bounded(&current_thread(), send_request(&app, request(&cookie)));
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
    drop(stuck);
    drop(idle);
}

/// 8, with the cap on calls in flight at one: the stuck call's permit counts only
/// until its deadline, after which other requests get theirs.
#[test]
fn a_call_stuck_on_an_idle_runtime_does_not_keep_its_permit() {
    let stytch = stytch();
    let auth = auth_with_timeout(&stytch, Duration::from_secs(2), 1);
    let app = app(&auth);
    let other = stytch.emu.create_session(
        &stytch
            .emu
            .session(&stytch.session.member_session_id)
            .expect("the session")
            .member_id,
    );
    stytch.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);

    let idle = current_thread();
    let mut stuck = pending_request(&app, &cookies(None, Some(&stytch.session.session_token)));
    poll_once(&idle, &mut stuck);
    idle.block_on(async {
        let deadline = Instant::now() + BOUND;
        while stytch.emu.requests(Endpoint::Authenticate) == 0 {
            assert!(Instant::now() < deadline, "A's call never left");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    stytch.emu.release(Endpoint::Authenticate);

    let cookie = cookies(None, Some(&other.session_token));
    let deadline = Instant::now() + BOUND;
    let runtime = current_thread();
    loop {
        let res = bounded(&runtime, send_request(&app, request(&cookie)));
        if res.status == StatusCode::OK {
            break;
        }
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
        assert!(
            Instant::now() < deadline,
            "the stuck call kept the only permit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stuck);
    drop(idle);
}

/// Machine tokens on many runtimes: two threads, each building and dropping a
/// current-thread runtime per request, share one `StytchAuth` whose keys are cold. The
/// first requests fetch the JWKS (on whichever runtime comes first); every request is
/// answered, and each token is verified once and then served from the cache.
#[test]
fn machine_tokens_on_runtimes_built_and_dropped_in_turn() {
    use axum::routing::get;
    use axum_stytch::{M2mCaller, RequireScope};

    let stytch = stytch();
    let auth = stytch
        .emu
        .auth_builder()
        .m2m_tokens(true)
        .build()
        .expect("a valid configuration");
    // Two clients, so that the tokens differ (one client's tokens minted in the same
    // second with the same scopes are the same bytes).
    let tokens = [0, 1].map(|_| {
        let client = stytch.emu.create_m2m_client(&["read:users"]);
        stytch.emu.mint_m2m_token(&client.client_id, None)
    });
    assert_ne!(tokens[0], tokens[1]);
    let app = |auth: &StytchAuth| {
        Router::new()
            .route(
                "/users",
                get(|s: M2mCaller| async move { s.client_id().to_owned() })
                    .route_layer(RequireScope::new("read:users")),
            )
            .layer(auth.layer())
    };
    let statuses: Vec<StatusCode> = std::thread::scope(|scope| {
        let threads: Vec<_> = tokens
            .iter()
            .map(|token| {
                let auth = auth.clone();
                scope.spawn(move || {
                    (0..20)
                        .map(|_| {
                            let runtime = current_thread();
                            let req = Request::get("/users")
                                .header("authorization", format!("Bearer {token}"))
                                .body(Body::empty())
                                .expect("a request");
                            bounded(&runtime, send_request(&app(&auth), req)).status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a thread"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let metrics = auth.metrics();
    // Two tokens, each verified once (two racing first requests of the same token may
    // both verify it before either has cached it).
    assert!(
        (2..=4).contains(&metrics.local_verifications),
        "{}",
        metrics.local_verifications
    );
    assert_eq!(metrics.local_verifications + metrics.cache_hits, 40);
    assert_eq!(stytch.emu.requests(Endpoint::Jwks), 1, "one fetch, shared");
}
