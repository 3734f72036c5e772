//! `EmulatorOptions::follow_real_time`, `port` and `bind`, and
//! `StytchEmulator::try_start_with`: an emulator at a known address whose clock
//! moves with real time, for clients that read the system clock.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, SystemTime};

use axum_stytch::testing::{EmulatorOptions, Endpoint, MockClock, StytchEmulator};
use axum_stytch::{Clock as _, StytchAuth};
use common::{app, claims_of, get_with, jwt_cookie, wait_until};
use http::StatusCode;

async fn real_time() -> StytchEmulator {
    StytchEmulator::start_with(EmulatorOptions::new().follow_real_time()).await
}

/// Seconds from the Unix epoch.
fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn the_clock_moves_by_itself() {
    let emulator = real_time().await;
    let clock = emulator.clock();
    let (wall, mono) = (clock.now(), clock.monotonic());
    // Read through the handle only, not through the emulator: the clock itself
    // follows real time.
    wait_until("the clock to move", || clock.now() > wall).await;
    assert!(clock.monotonic() > mono, "both readings move");
    let (now, reading) = (SystemTime::now(), clock.now());
    let apart = now
        .duration_since(reading)
        .unwrap_or_else(|ahead| ahead.duration());
    assert!(
        apart < Duration::from_secs(1),
        "{apart:?} from the system clock"
    );
}

#[tokio::test]
async fn a_frozen_clock_stays_put() {
    let emulator = StytchEmulator::start().await;
    let wall = emulator.clock().now();
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    emulator.create_session(&member);
    assert_eq!(emulator.clock().now(), wall);
}

#[tokio::test]
async fn minted_tokens_carry_the_current_time() {
    let emulator = real_time().await;
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    let before = unix(SystemTime::now());
    let jwt = emulator.create_session(&member).session_jwt;
    let after = unix(SystemTime::now());
    let iat = claims_of(&jwt)["iat"].as_u64().unwrap();
    // A second's slack below: the clock may trail the system clock by a moment.
    assert!(
        (before - 1..=after).contains(&iat),
        "{before} <= {iat} <= {after}"
    );
}

#[tokio::test]
async fn a_test_can_still_jump() {
    let emulator = real_time().await;
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    let session = emulator.create_session(&member);

    // An hour on: the session (60 minutes) has expired, and time keeps going from there.
    emulator.clock().advance(Duration::from_secs(3601));
    let ahead = emulator
        .clock()
        .now()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(ahead >= Duration::from_secs(3600), "{ahead:?}");
    let info = emulator.session(&session.member_session_id).unwrap();
    assert!(info.expires_at < emulator.clock().now());

    // A wall-clock step back is kept as well.
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    emulator.clock().set(start);
    let jwt = emulator.mint_jwt(&session.member_session_id);
    let iat = claims_of(&jwt)["iat"].as_u64().unwrap();
    assert!((2_000_000_000..2_000_000_010).contains(&iat), "{iat}");
}

#[tokio::test]
async fn a_layer_on_the_system_clock_verifies_its_jwts_locally() {
    let emulator = real_time().await;
    // No `.clock(..)`: the layer reads the system clock, as another process would.
    let auth = StytchAuth::builder(emulator.project_id(), emulator.secret())
        .base_url(emulator.base_url())
        .build()
        .unwrap();
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &[]);
    let session = emulator.create_session(&member);
    let res = get_with(&app(&auth), "/me", &jwt_cookie(&session.session_jwt)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(emulator.requests(Endpoint::Authenticate), 0);
}

#[tokio::test]
async fn a_given_clock_follows_real_time_from_its_reading() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let clock = MockClock::at(start);
    let emulator = StytchEmulator::start_with(
        EmulatorOptions::new()
            .clock(clock.clone())
            .follow_real_time(),
    )
    .await;
    wait_until("the clock to move", || clock.now() > start).await;
    let moved = clock.now().duration_since(start).unwrap();
    assert!(moved < Duration::from_secs(10), "{moved:?}");
    // One clock, moving: the emulator's reading falls between two of the test's.
    let (before, shared, after) = (clock.now(), emulator.clock().now(), clock.now());
    assert!(before <= shared && shared <= after);
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_fixed_port_is_used_and_a_taken_one_is_an_error() {
    let port = free_port();
    let emulator = StytchEmulator::start_with(EmulatorOptions::new().port(port)).await;
    assert_eq!(
        emulator.addr(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    );
    assert_eq!(emulator.base_url(), format!("http://127.0.0.1:{port}"));
    let jwks = format!(
        "{}/v1/b2b/sessions/jwks/{}",
        emulator.base_url(),
        emulator.project_id()
    );
    assert_eq!(reqwest::get(jwks).await.unwrap().status(), 200);

    let error = StytchEmulator::try_start_with(EmulatorOptions::new().port(port))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn bind_takes_an_address() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let emulator = StytchEmulator::start_with(EmulatorOptions::new().bind(addr)).await;
    assert!(emulator.addr().ip().is_loopback());
    assert_ne!(emulator.addr().port(), 0);
    assert_eq!(emulator.base_url(), format!("http://{}", emulator.addr()));
}

#[tokio::test]
async fn the_default_is_a_free_loopback_port() {
    let emulator = StytchEmulator::start().await;
    assert_eq!(emulator.addr().ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(emulator.addr().port(), 0);
}
