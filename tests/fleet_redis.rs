//! Revocations shared by a fleet through a real Redis (feature `redis`):
//! `cargo test --features redis --test fleet_redis`. Each test starts its own
//! `redis-server` (a free loopback port, no persistence, killed at the end) and
//! several separately built `StytchAuth`s against one emulator.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum_stytch::StytchAuth;
use axum_stytch::testing::{Endpoint, SessionTokens};
use common::redis_server::RedisServer;
use common::{Fixture, app, cookies, fixture, get_with, send};
use http::StatusCode;

/// How long a test waits for the fleet (real time): far beyond the milliseconds a
/// revocation takes, for a loaded machine.
const BOUND: Duration = Duration::from_secs(20);

struct Instance {
    auth: StytchAuth,
    app: Router,
}

async fn instance(f: &Fixture, redis: &RedisServer) -> Instance {
    instance_with(f, redis, |b| b).await
}

async fn instance_with(
    f: &Fixture,
    redis: &RedisServer,
    configure: impl FnOnce(axum_stytch::StytchAuthBuilder) -> axum_stytch::StytchAuthBuilder,
) -> Instance {
    let auth = configure(f.emu.auth_builder().revocations_in_redis(redis.url()))
        .build()
        .expect("a valid configuration");
    auth.warm_up().await.expect("the keys");
    Instance {
        app: app(&auth),
        auth,
    }
}

fn jwt(session: &SessionTokens) -> String {
    cookies(Some(&session.session_jwt), None)
}

/// Polls `/me` on `on` with `cookie` until it answers `status` (at most `BOUND`).
async fn until_status(on: &Instance, cookie: &str, status: StatusCode) -> common::TestResponse {
    let deadline = Instant::now() + BOUND;
    loop {
        let res = get_with(&on.app, "/me", cookie).await;
        if res.status == status {
            return res;
        }
        assert!(
            res.status != StatusCode::SERVICE_UNAVAILABLE && res.status.as_u16() < 500,
            "a 5xx while waiting: {} {}",
            res.status,
            res.body
        );
        assert!(
            Instant::now() < deadline,
            "never {status}: {} {}",
            res.status,
            res.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A logout on A is refused by B and C within moments, without them asking Stytch;
/// an instance started after the logout refuses it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_refused_by_the_others() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let (a, b, c) = (
        instance(&f, &redis).await,
        instance(&f, &redis).await,
        instance(&f, &redis).await,
    );
    let cookie = jwt(&f.session);
    for on in [&a, &b, &c] {
        assert_eq!(
            get_with(&on.app, "/me", &cookie).await.status,
            StatusCode::OK
        );
    }
    let res = send(&a.app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let calls = f.emu.requests(Endpoint::Authenticate);
    for on in [&b, &c] {
        let res = until_status(on, &cookie, StatusCode::UNAUTHORIZED).await;
        assert_eq!(res.reason(), "session_revoked");
    }
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        calls,
        "refused locally"
    );

    let d = instance(&f, &redis).await;
    let res = get_with(&d.app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "session_revoked");
    assert!(d.auth.metrics().revocations_received >= 1);
}

/// A session Stytch said is gone on A (its stale JWT answered "not found") is refused
/// on B without B asking Stytch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stytch_said_is_gone_on_one_instance_is_refused_by_the_others() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&f, &redis).await, instance(&f, &redis).await);
    // Revoked elsewhere (the dashboard), and the JWT stale: A asks Stytch.
    f.emu.revoke_session(&f.session.member_session_id);
    f.emu.clock().advance(Duration::from_secs(301));
    let res = get_with(&a.app, "/me", &jwt(&f.session)).await;
    assert_eq!(res.reason(), "session_revoked", "{}", res.body);
    let calls = f.emu.requests(Endpoint::Authenticate);
    // A JWT of that session B would otherwise trust locally.
    let fresh = cookies(Some(&f.emu.mint_jwt(&f.session.member_session_id)), None);
    let res = until_status(&b, &fresh, StatusCode::UNAUTHORIZED).await;
    assert_eq!(res.reason(), "session_revoked");
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        calls,
        "B did not ask Stytch"
    );
}

/// Redis killed mid-traffic: every request keeps its answer (no 5xx, no wait); a
/// logout during the outage is refused at once where it was made, and reaches the
/// other instance once Redis is back (from the outbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_traffic_changes_no_answer_and_logouts_arrive_after() {
    let f = fixture().await;
    let mut redis = RedisServer::start();
    let (a, b) = (instance(&f, &redis).await, instance(&f, &redis).await);
    let other = f.emu.create_session(&f.member);
    let (cookie, other_cookie) = (jwt(&f.session), jwt(&other));
    redis.kill();
    let started = Instant::now();
    for _ in 0..200 {
        for on in [&a, &b] {
            let res = get_with(&on.app, "/me", &other_cookie).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        }
    }
    assert!(started.elapsed() < BOUND, "requests waited for Redis");
    let res = send(&a.app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        get_with(&a.app, "/me", &cookie).await.reason(),
        "session_revoked"
    );
    // B cannot hear it yet: the single-instance window.
    assert_eq!(
        get_with(&b.app, "/me", &cookie).await.status,
        StatusCode::OK
    );

    redis.restart();
    let res = until_status(&b, &cookie, StatusCode::UNAUTHORIZED).await;
    assert_eq!(res.reason(), "session_revoked");
    assert!(a.auth.metrics().revocation_feed_failures >= 1);
    // B may apply it before A's thread has read Redis's reply and counted it.
    common::wait_until("A counts its publication", || {
        a.auth.metrics().revocations_published >= 1
    })
    .await;
}

/// A subscriber cut off (its pub/sub connection killed) while another instance
/// publishes catches up when it reconnects: it reloads the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_cut_off_catches_up_on_reconnect() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&f, &redis).await, instance(&f, &redis).await);
    let cookie = jwt(&f.session);
    assert_eq!(
        get_with(&b.app, "/me", &cookie).await.status,
        StatusCode::OK
    );
    // Every subscriber is disconnected; A's publishing connection is not.
    redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let res = send(&a.app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = until_status(&b, &cookie, StatusCode::UNAUTHORIZED).await;
    assert_eq!(res.reason(), "session_revoked");
    assert!(
        b.auth.metrics().revocation_feed_failures >= 1,
        "B reconnected"
    );
}

/// The set is scored by the time until which a session must be refused
/// (`max_token_age` + leeway), on the injected clock, and trimmed by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_by_score_with_the_injected_clock() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let a = instance(&f, &redis).await;
    let key = format!("axum-stytch:{{{}}}:revoked", f.emu.project_id());
    let first = f.emu.create_session(&f.member);
    let res = send(&a.app, "POST", "/logout", Some(&jwt(&first))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    common::wait_until("the first revocation in Redis", || {
        redis.zrange(&key) == [first.member_session_id.clone()]
    })
    .await;
    let score: u64 = redis
        .command(&["ZSCORE", &key, &first.member_session_id])
        .and_then(|s| s.parse().ok())
        .expect("a score");
    let now_ms = axum_stytch::Clock::now(&f.emu.clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(score, now_ms + 305_000, "now + max_token_age + leeway");

    f.emu.clock().advance(Duration::from_secs(306));
    let second = f.emu.create_session(&f.member);
    let res = send(&a.app, "POST", "/logout", Some(&jwt(&second))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    common::wait_until("the first revocation trimmed", || {
        redis.zrange(&key) == [second.member_session_id.clone()]
    })
    .await;
    // An instance started now loads only what may still be needed.
    let late = instance(&f, &redis).await;
    assert_eq!(late.auth.metrics().revocations_received, 1);
}

/// A burst of 1,000 logouts on one instance reaches every other one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_logouts_reaches_every_instance() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let (a, b, c) = (
        instance(&f, &redis).await,
        instance(&f, &redis).await,
        instance(&f, &redis).await,
    );
    let sessions: Vec<SessionTokens> = (0..1_000)
        .map(|_| f.emu.create_session(&f.member))
        .collect();
    for session in &sessions {
        let res = send(&a.app, "POST", "/logout", Some(&jwt(session))).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
    for on in [&b, &c] {
        common::wait_until("every revocation", || {
            on.auth.metrics().revocations_received >= 1_000
        })
        .await;
        for session in sessions.iter().step_by(97) {
            let res = get_with(&on.app, "/me", &jwt(session)).await;
            assert_eq!(res.reason(), "session_revoked", "{}", res.body);
        }
    }
    common::wait_until("A counts its publications", || {
        a.auth.metrics().revocations_published >= 1_000
    })
    .await;
    assert_eq!(a.auth.metrics().revocations_published, 1_000);
    assert_eq!(a.auth.metrics().revocations_unpublished, 0);
}

/// Nothing on the request path touches Redis: 10,000 requests leave every command's
/// count as it was, but the background threads' once-a-second heartbeat (`PING`)
/// and this test's own `INFO`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_send_no_command_to_redis() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let (a, b) = (instance(&f, &redis).await, instance(&f, &redis).await);
    let (cookie, token) = (
        jwt(&f.session),
        cookies(None, Some(&f.session.session_token)),
    );
    let before = redis.calls_except(&["ping", "info"]);
    let started = Instant::now();
    for i in 0..10_000 {
        let on = if i % 2 == 0 { &a } else { &b };
        // Cached JWTs, and now and then a remote session token and a refusal.
        let res = match i % 100 {
            0 => get_with(&on.app, "/me", &token).await,
            1 => get_with(&on.app, "/me", "stytch_session_jwt=junk").await,
            _ => get_with(&on.app, "/me", &cookie).await,
        };
        assert!(res.status.as_u16() < 500, "{}", res.body);
    }
    let seconds = started.elapsed().as_secs() + 2;
    let after = redis.calls_except(&["ping", "info"]);
    assert_eq!(after, before, "commands other than the heartbeat");
    assert!(redis.calls("ping") <= 2 * (seconds + 4), "heartbeats only");
}

/// A malformed message on the channel, or a malformed entry in the set, is ignored
/// with a warning: never a panic, never a pass, never a refusal of someone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_and_entries_are_ignored() {
    let f = fixture().await;
    let redis = RedisServer::start();
    let project = f.emu.project_id().to_owned();
    let channel = format!("axum-stytch:{{{project}}}:revocations");
    let key = format!("axum-stytch:{{{project}}}:revoked");
    redis.command(&["ZADD", &key, "99999999999999", "bad id with spaces"]);
    let a = instance(&f, &redis).await;
    assert_eq!(a.auth.metrics().revocations_malformed, 1, "at load");
    for junk in ["", "v1", "v2 1 ms", "v1 x ms", "hello world"] {
        redis.command(&["PUBLISH", &channel, junk]);
    }
    // A real one after the junk: once it has arrived, so has the junk.
    let other = f.emu.create_session(&f.member);
    let message = format!("v1 99999999999999 {}", other.member_session_id);
    redis.command(&["PUBLISH", &channel, &message]);
    common::wait_until("the messages", || {
        a.auth.metrics().revocations_received >= 1
    })
    .await;
    assert_eq!(a.auth.metrics().revocations_malformed, 6);
    assert_eq!(
        get_with(&a.app, "/me", &jwt(&f.session)).await.status,
        StatusCode::OK
    );
    let res = get_with(&a.app, "/me", &jwt(&other)).await;
    assert_eq!(res.reason(), "session_revoked", "{}", res.body);
}

/// The stricter choice: past the configured staleness of the feed (Redis down), JWTs
/// are confirmed with Stytch instead of trusted locally, cached ones too; once the
/// feed is back, they are trusted locally again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_staleness_allowed_jwts_are_confirmed_with_stytch() {
    let f = fixture().await;
    let mut redis = RedisServer::start();
    let a = instance_with(&f, &redis, |b| {
        b.revocation_feed_max_staleness(Duration::from_secs(2))
    })
    .await;
    let cookie = jwt(&f.session);
    assert_eq!(
        get_with(&a.app, "/me", &cookie).await.status,
        StatusCode::OK
    );
    let calls = f.emu.requests(Endpoint::Authenticate);
    redis.kill();
    f.emu.clock().advance(Duration::from_secs(3));
    // Within moments the cached JWT is no longer trusted: Stytch confirms it.
    let deadline = Instant::now() + BOUND;
    while f.emu.requests(Endpoint::Authenticate) == calls {
        assert!(Instant::now() < deadline, "the JWT stayed trusted locally");
        let res = get_with(&a.app, "/me", &cookie).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.restart();
    common::wait_until("the feed back", || {
        a.auth.metrics().revocation_feed_failures > 0
    })
    .await;
    let deadline = Instant::now() + BOUND;
    loop {
        let before = f.emu.requests(Endpoint::Authenticate);
        let res = get_with(&a.app, "/me", &cookie).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        // Trusted locally again (a renewed JWT from Stytch would be in the response;
        // the old one is still fresh locally: no call).
        if f.emu.requests(Endpoint::Authenticate) == before {
            break;
        }
        assert!(Instant::now() < deadline, "never trusted locally again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
