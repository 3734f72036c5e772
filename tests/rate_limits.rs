//! Stytch's rate limits, and the budget of calls for credentials that prove nothing:
//! a later 429 never shortens the wait Stytch asked for, a 429 that is not Stytch's
//! JSON (a CDN's or a WAF's page) backs off too, and a flood of made-up session tokens
//! cannot starve the renewals of members whose JWTs are validly signed.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_stytch::StytchAuth;
use axum_stytch::testing::{Endpoint, Fault, MockClock, SessionTokens};
use common::{app, cookies, fixture_with, get_with, wait_until};
use http::StatusCode;
use tokio::sync::Notify;

/// One answer of [`Upstream`]: a status, an optional `Retry-After`, a body, and
/// whether to wait for [`Upstream::proceed`] first.
#[derive(Clone)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: &'static str,
    wait: bool,
}

const STYTCH_429: &str = r#"{"status_code":429,"request_id":"request-id-test-1","error_type":"too_many_requests","error_message":"Too many requests.","error_url":"https://stytch.com/docs/api/errors/429"}"#;
const CDN_429: &str = "<html><body><h1>429 Too Many Requests</h1></body></html>";

/// A stand-in for Stytch (or a CDN in front of it) that answers
/// `sessions/authenticate` calls in order from a script, and counts them.
struct Upstream {
    answers: Mutex<VecDeque<Answer>>,
    calls: AtomicU64,
    answered: AtomicU64,
    proceed: Notify,
}

impl Upstream {
    async fn start(answers: Vec<Answer>) -> (Arc<Self>, SocketAddr) {
        let this = Arc::new(Self {
            answers: Mutex::new(answers.into()),
            calls: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            proceed: Notify::new(),
        });
        let state = Arc::clone(&this);
        let router = Router::new().route(
            "/v1/b2b/sessions/authenticate",
            post(move || {
                let state = Arc::clone(&state);
                async move { state.answer().await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (this, addr)
    }

    async fn answer(&self) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("an answer scripted for every call");
        if answer.wait {
            self.proceed.notified().await;
        }
        let mut response = (
            StatusCode::from_u16(answer.status).unwrap(),
            [(http::header::CONTENT_TYPE, "application/json")],
            answer.body,
        )
            .into_response();
        if let Some(secs) = answer.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, secs.into());
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        response
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

fn auth_for(addr: SocketAddr, clock: &MockClock) -> StytchAuth {
    StytchAuth::builder(
        "project-test-00000000-0000-0000-0000-000000000000",
        "secret",
    )
    .base_url(format!("http://{addr}"))
    .clock(clock.clone())
    .build()
    .expect("a valid configuration")
}

/// A made-up session token of a plausible shape.
fn token(i: usize) -> String {
    cookies(None, Some(&format!("made-up-session-token-{i:08}")))
}

/// 9. A 429 with `Retry-After: 60`, then (from a call that was in flight meanwhile) a
///    429 without the header: the 60 s wait stands, and Stytch is not called again
///    1.5 s into it.
#[tokio::test]
async fn a_later_429_does_not_shorten_the_wait() {
    let (upstream, addr) = Upstream::start(vec![
        Answer {
            status: 429,
            retry_after: None,
            body: STYTCH_429,
            wait: true,
        },
        Answer {
            status: 429,
            retry_after: Some(60),
            body: STYTCH_429,
            wait: false,
        },
    ])
    .await;
    let clock = MockClock::new();
    let app = app(&auth_for(addr, &clock));
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { get_with(&app, "/me", &token(0)).await })
    };
    wait_until("the first call", || upstream.calls() == 1).await;
    let res = get_with(&app, "/me", &token(1)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(res.retry_after_secs(), 60);
    // The call in flight meanwhile is answered 429 without Retry-After.
    upstream.proceed.notify_one();
    let res = slow.await.expect("the first request");
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);

    clock.advance(Duration::from_millis(1_500));
    let res = get_with(&app, "/me", &token(2)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert!(res.retry_after_secs() >= 58, "{:?}", res.headers);
    assert_eq!(upstream.calls(), 2, "called during the 60 s wait");
}

/// 10. A 429 that is not Stytch's JSON (a CDN's or a WAF's page in front of Stytch)
///     backs off like Stytch's own: ten requests make one call, not ten.
#[tokio::test]
async fn a_429_page_that_is_not_stytchs_json_backs_off() {
    for (retry_after, wait) in [(None, 1), (Some(30), 30)] {
        let (upstream, addr) = Upstream::start(vec![Answer {
            status: 429,
            retry_after,
            body: CDN_429,
            wait: false,
        }])
        .await;
        let clock = MockClock::new();
        let app = app(&auth_for(addr, &clock));
        for i in 0..10 {
            let res = get_with(&app, "/me", &token(i)).await;
            assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
            assert_eq!(res.retry_after_secs(), wait, "{retry_after:?}");
        }
        assert_eq!(upstream.calls(), 1, "{retry_after:?}");
    }
}

/// 11. A flood of made-up session tokens (each a call, if made) while members' stale
///     JWTs need renewing: the flood gets its own small budget, and every renewal is
///     still made. Without it, the flood took every permit and the renewals got 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_junk_tokens_does_not_starve_renewals() {
    let f = fixture_with(|b| {
        b.max_concurrent_authentications(8)
            .max_concurrent_unverified_authentications(2)
            .unverified_authentications_per_second(5)
            // The held calls wait for the release, however slow the machine.
            .request_timeout(Duration::from_secs(60))
    })
    .await;
    let app = app(&f.auth);
    f.auth.warm_up().await.expect("the keys");
    let members: Vec<SessionTokens> = (0..8).map(|_| f.emu.create_session(&f.member)).collect();
    // Past max_token_age: every JWT needs Stytch.
    f.emu.clock().advance(Duration::from_secs(301));
    f.emu.inject_fault(Endpoint::Authenticate, Fault::Hold);

    let flood: Vec<_> = (0..200)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { get_with(&app, "/me", &token(i)).await })
        })
        .collect();
    // Two junk calls in flight (the cap); every other junk request is answered 503 at
    // once, without a call.
    wait_until("the flood answered, two junk calls at Stytch", || {
        f.auth.metrics().unverified_authentications_refused == 198
            && f.emu.requests(Endpoint::Authenticate) == 2
    })
    .await;

    // Meanwhile every member's renewal is made.
    let renewals: Vec<_> = members
        .iter()
        .map(|m| {
            let (app, cookie) = (app.clone(), cookies(Some(&m.session_jwt), None));
            tokio::spawn(async move { get_with(&app, "/me", &cookie).await })
        })
        .collect();
    wait_until("the renewals in flight", || {
        f.emu.requests(Endpoint::Authenticate) == 10
    })
    .await;
    f.emu.release(Endpoint::Authenticate);
    for renewal in renewals {
        let res = renewal.await.expect("a renewal");
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        assert_eq!(res.set_cookies().len(), 2, "renewed cookies");
    }
    let mut statuses = Vec::new();
    for request in flood {
        statuses.push(request.await.expect("a junk request").status);
    }
    let unavailable = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(unavailable, 198);
    // The two calls made: Stytch knows no such session.
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(unauthorized, 2, "{statuses:?}");
}

/// 11, the rate: unconfirmed tokens get `unverified_authentications_per_second` calls
/// per second of the injected clock; a token Stytch confirmed once is no longer
/// counted, and goes through while the budget is spent.
#[tokio::test]
async fn unconfirmed_tokens_are_rate_limited_and_confirmed_ones_are_not() {
    let f = fixture_with(|b| b.unverified_authentications_per_second(3)).await;
    let app = app(&f.auth);
    let real = cookies(None, Some(&f.session.session_token));
    // The real token, not yet confirmed, spends one call of the three.
    assert_eq!(get_with(&app, "/me", &real).await.status, StatusCode::OK);
    for i in 0..2 {
        let res = get_with(&app, "/me", &token(i)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    }
    let res = get_with(&app, "/me", &token(2)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(res.retry_after_secs(), 1);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 3);
    // Confirmed: not limited.
    for _ in 0..5 {
        assert_eq!(get_with(&app, "/me", &real).await.status, StatusCode::OK);
    }
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 8);
    // A third of a second later, one more unconfirmed call.
    f.emu.clock().advance(Duration::from_millis(334));
    let res = get_with(&app, "/me", &token(3)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    let res = get_with(&app, "/me", &token(4)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    assert_eq!(f.auth.metrics().unverified_authentications_refused, 2);
}
