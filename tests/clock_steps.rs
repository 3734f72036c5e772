//! The server's wall clock stepping (NTP corrections, a VM resumed, a skewed host) and
//! Stytch retiring a signing key: what the layer trusts must follow real time and the
//! keys it serves, whatever the wall clock does.
//!
//! The layer gets a clock of its own here, apart from the emulator's (Stytch's):
//! `Clocks::pass` lets real time pass on both, `MockClock::set` steps one wall clock.

mod common;

use std::time::{Duration, SystemTime};

use axum_stytch::testing::{Endpoint, Fault, MockClock, StytchEmulator};
use axum_stytch::{Clock, StytchAuth};
use common::{CapturedLogs, app, cookies, get_with, send};
use http::StatusCode;

const HOUR: Duration = Duration::from_secs(3600);

/// Stytch's clock (the emulator's) and this server's (the layer's).
struct Clocks {
    stytch: MockClock,
    server: MockClock,
}

impl Clocks {
    /// The server's clock `offset_secs` ahead of Stytch's (behind when negative).
    fn skewed(emu: &StytchEmulator, offset_secs: i64) -> Self {
        let stytch = emu.clock();
        let server = MockClock::at(shifted(stytch.now(), offset_secs));
        Self { stytch, server }
    }

    /// Real time passes: both clocks move.
    fn pass(&self, by: Duration) {
        self.stytch.advance(by);
        self.server.advance(by);
    }
}

fn shifted(t: SystemTime, secs: i64) -> SystemTime {
    if secs >= 0 {
        t + Duration::from_secs(secs.unsigned_abs())
    } else {
        t - Duration::from_secs(secs.unsigned_abs())
    }
}

struct Setup {
    emu: StytchEmulator,
    clocks: Clocks,
    auth: StytchAuth,
    session: axum_stytch::testing::SessionTokens,
}

/// An emulator with one member's session, and a layer whose clock is `offset_secs`
/// off Stytch's.
async fn setup(offset_secs: i64) -> Setup {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let session = emu.create_session(&member);
    let clocks = Clocks::skewed(&emu, offset_secs);
    let auth = emu
        .auth_builder()
        .clock(clocks.server.clone())
        .build()
        .expect("a valid configuration");
    Setup {
        emu,
        clocks,
        auth,
        session,
    }
}

fn jwt(jwt: &str) -> String {
    cookies(Some(jwt), None)
}

/// 1. A JWT verified and cached, then the server's clock steps back two hours while
///    the session is revoked elsewhere: the cache trusts it for at most the
///    `max_token_age` of real time it had left, not for the two hours; then the JWT
///    (issued "ahead" of the stepped clock) goes to Stytch, which refuses it.
#[tokio::test]
async fn a_cached_jwt_is_not_trusted_longer_after_the_clock_steps_back() {
    let s = setup(0).await;
    let app = app(&s.auth);
    let cookie = jwt(&s.session.session_jwt);
    assert_eq!(get_with(&app, "/me", &cookie).await.status, StatusCode::OK);
    assert_eq!(s.auth.metrics().local_verifications, 1);

    s.clocks.server.set(s.clocks.server.now() - 2 * HOUR);
    s.emu.revoke_session(&s.session.member_session_id);
    // Within the JWT's 300 s of real time: still the cached answer, as on any other
    // instance that has not heard of the revocation.
    s.clocks.pass(Duration::from_secs(299));
    assert_eq!(get_with(&app, "/me", &cookie).await.status, StatusCode::OK);
    assert_eq!(s.auth.metrics().cache_hits, 1);
    assert_eq!(s.emu.requests(Endpoint::Authenticate), 0);

    // 300 s of real time after its verification, however the wall clock reads.
    s.clocks.pass(Duration::from_secs(1));
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "session_revoked");
    assert_eq!(s.emu.requests(Endpoint::Authenticate), 1);
    // And it stays refused for the two hours the wall clock would have allowed.
    for _ in 0..4 {
        s.clocks.pass(Duration::from_secs(1_800));
        let res = get_with(&app, "/me", &cookie).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    }
}

/// A clock stepped forward ends no cached trust early either: the JWT is 10 s old in
/// real time (the server then goes to Stytch only for new JWTs it cannot place).
#[tokio::test]
async fn a_cached_jwt_keeps_its_real_time_after_the_clock_steps_forward() {
    let s = setup(0).await;
    let app = app(&s.auth);
    let cookie = jwt(&s.session.session_jwt);
    assert_eq!(get_with(&app, "/me", &cookie).await.status, StatusCode::OK);
    s.clocks.pass(Duration::from_secs(10));
    s.clocks.server.set(s.clocks.server.now() + 2 * HOUR);
    assert_eq!(get_with(&app, "/me", &cookie).await.status, StatusCode::OK);
    assert_eq!(s.auth.metrics().cache_hits, 1);
    assert_eq!(s.emu.requests(Endpoint::Authenticate), 0);
}

/// The `Expires` attribute of a cookie that lives until `end` (whole seconds).
fn expires_attr(end: SystemTime) -> String {
    let secs = end
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .unwrap();
    format!("Expires={}", date.format(&format).unwrap())
}

/// 2. With the server two days ahead of Stytch, every JWT looks expired and is renewed
///    by Stytch: the renewed cookies must live until the session's end as Stytch
///    states it, not be deleted (`Max-Age=0`) by the server's own skew.
#[tokio::test]
async fn renewed_cookies_follow_stytchs_session_end_whatever_the_server_clock() {
    for offset in [2 * 86_400, 600, -600] {
        let s = setup(offset).await;
        let app = app(&s.auth);
        let res = get_with(&app, "/me", &jwt(&s.session.session_jwt)).await;
        assert_eq!(res.status, StatusCode::OK, "{offset}: {}", res.body);
        assert_eq!(s.emu.requests(Endpoint::Authenticate), 1, "{offset}");
        let end = s
            .emu
            .session(&s.session.member_session_id)
            .unwrap()
            .expires_at;
        let set = res.set_cookies();
        assert_eq!(set.len(), 2, "{offset}: {set:?}");
        for line in &set {
            assert!(line.contains(&expires_attr(end)), "{offset}: {line}");
            assert!(!line.contains("Max-Age"), "{offset}: {line}");
        }
    }
}

/// 3. A logout made while the server's clock was two hours behind is still refused
///    on this instance after NTP corrects the clock a minute later (the logged-out
///    JWT then verifies locally again).
#[tokio::test]
async fn a_logout_survives_the_correction_of_a_slow_clock() {
    let s = setup(-7_200).await;
    let app = app(&s.auth);
    let cookie = jwt(&s.session.session_jwt);
    // Issued "ahead" of the slow clock: Stytch decides, and the logout goes through.
    let res = send(&app, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);

    s.clocks.pass(Duration::from_secs(60));
    s.clocks.server.set(s.clocks.stytch.now());
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "session_revoked");
    // Refused locally: the JWT verified and the denylist answered.
    assert!(s.auth.metrics().local_verifications >= 1);

    // Still refused when the JWT is as old as local trust allows.
    s.clocks.pass(Duration::from_secs(230));
    let res = get_with(&app, "/me", &cookie).await;
    assert_eq!(res.reason(), "session_revoked", "{}", res.body);
}

/// 4. After a forward jump of the server's clock is corrected, failed calls to
///    Stytch are still warned about once a minute: the last warning's stamp, an hour
///    "ahead", is a step, not a reason for an hour of silence.
#[tokio::test]
async fn warnings_are_not_silenced_by_a_corrected_forward_jump() {
    let s = setup(HOUR.as_secs() as i64).await;
    let app = app(&s.auth);
    let logs = CapturedLogs::default();
    let _recording = logs.on_this_thread();
    let token = |i: u32| cookies(None, Some(&format!("made-up-session-token-{i:08}")));
    s.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Status {
            status: 500,
            times: 100,
        },
    );
    let res = get_with(&app, "/me", &token(0)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    let warned = || logs.text().matches("Stytch unavailable").count();
    assert_eq!(warned(), 1, "{}", logs.text());

    // NTP steps the clock back to Stytch's; then an hour of failures, one a minute.
    s.clocks.server.set(s.clocks.stytch.now());
    for i in 1..=5 {
        s.clocks.pass(Duration::from_secs(61));
        let res = get_with(&app, "/me", &token(i)).await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    }
    assert_eq!(warned(), 6, "{}", logs.text());
}

/// 5. Stytch rotates its key and retires the old one (the emergency path after a key
///    leak): once the layer has loaded the new key set, a JWT signed with the retired
///    key is refused, also when it was verified and cached before.
#[tokio::test]
async fn a_cached_jwt_is_refused_once_its_signing_key_is_retired() {
    let s = setup(0).await;
    let app = app(&s.auth);
    let old_cookie = jwt(&s.session.session_jwt);
    assert_eq!(
        get_with(&app, "/me", &old_cookie).await.status,
        StatusCode::OK
    );
    let old_kid = s.emu.signing_kid();
    s.emu.rotate_keys();
    s.emu.retire_key(&old_kid);

    // Still cached (the layer has not seen the new key set yet): the answer of an
    // instance that has not refreshed, bounded by max_token_age.
    assert_eq!(
        get_with(&app, "/me", &old_cookie).await.status,
        StatusCode::OK
    );
    // A JWT of the new key makes the layer load the new key set.
    let fresh = s.emu.mint_jwt(&s.session.member_session_id);
    assert_eq!(
        get_with(&app, "/me", &jwt(&fresh)).await.status,
        StatusCode::OK
    );
    assert_eq!(s.emu.requests(Endpoint::Jwks), 2);

    let res = get_with(&app, "/me", &old_cookie).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "invalid_token");
    assert_eq!(s.emu.requests(Endpoint::Authenticate), 0, "refused locally");
    // The new key's JWT stays trusted from the cache.
    let hits = s.auth.metrics().cache_hits;
    assert_eq!(
        get_with(&app, "/me", &jwt(&fresh)).await.status,
        StatusCode::OK
    );
    assert_eq!(s.auth.metrics().cache_hits, hits + 1);
}

/// 5, by a scheduled refresh: the new key set arrives in the background when the
/// JWKS is due, and the retired key's cached JWTs are refused from then on.
#[tokio::test]
async fn a_background_refresh_that_retires_a_key_empties_its_tokens() {
    let emu = StytchEmulator::start().await;
    let org = emu.create_organization("acme");
    let member = emu.create_member(&org, "ada@acme.test", &["editor"]);
    let first = emu.create_session(&member);
    let second = emu.create_session(&member);
    let auth = emu
        .auth_builder()
        .jwks_refresh_interval(Duration::from_secs(60))
        .build()
        .expect("a valid configuration");
    let app = app(&auth);
    let first = jwt(&first.session_jwt);
    assert_eq!(get_with(&app, "/me", &first).await.status, StatusCode::OK);
    let old_kid = emu.signing_kid();
    emu.rotate_keys();
    emu.retire_key(&old_kid);
    emu.clock().advance(Duration::from_secs(61));
    // A JWT of the old key not seen yet is verified with the loaded keys (still served
    // while their refresh runs in the background) and cached too.
    let second = jwt(&second.session_jwt);
    assert_eq!(get_with(&app, "/me", &second).await.status, StatusCode::OK);
    // The refresh lands in the background: poll (each poll is a cache hit or a
    // refusal, and calls no one).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get_with(&app, "/me", &first).await.status == StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the key was never retired"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The scheduled refresh, and at most one refresh for the now unknown kid.
    let fetched = emu.requests(Endpoint::Jwks);
    assert!((2..=3).contains(&fetched), "{fetched}");
    for cookie in [&first, &second] {
        let res = get_with(&app, "/me", cookie).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
        assert_eq!(res.reason(), "invalid_token");
    }
    assert_eq!(
        emu.requests(Endpoint::Jwks),
        3,
        "one forced refresh per cooldown"
    );
    assert_eq!(emu.requests(Endpoint::Authenticate), 0, "refused locally");
}
