//! The two ways to deploy Stytch, as a browser sees them. Each test keeps a cookie jar
//! that stores every `Set-Cookie` the way browsers do (one cookie per name, domain and
//! path; a script can neither set `HttpOnly` nor write over an `HttpOnly` cookie,
//! RFC 6265 §5.3 steps 10 and 11), and writes Stytch's browser SDK's cookies the way the
//! SDK does (`document.cookie`, see `/work/shared/stytch-frontend-cookies.md` §1.2).
//!
//! * Browser SDK (`browser_sdk_cookies()`): the layer writes nothing back, renewal or
//!   dead session; the SDK's cookies stay readable, single and rewritable; the cookies
//!   a handler returns carry the SDK's attributes.
//! * Server-owned (the default): renewals and clearing written back `HttpOnly`, as
//!   before; such cookies would lock an SDK out.

#[path = "../examples/browser_sdk.rs"]
#[allow(dead_code)]
mod browser_sdk;
mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use axum_stytch::testing::{EmulatorOptions, Endpoint};
use axum_stytch::{ConfigError, SameSite, SessionCookies, StytchAuth, StytchAuthBuilder};
use common::{Fixture, app, example_binary, fixture, fixture_with, send, spawn_until};
use http::StatusCode;

const JWT: &str = "stytch_session_jwt";
const TOKEN: &str = "stytch_session";

/// Where a cookie lives: `domain` is `None` for a host-only cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    domain: Option<String>,
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    name: String,
    value: String,
    scope: Scope,
    http_only: bool,
    secure: bool,
    same_site: Option<String>,
    expires: Option<String>,
}

/// A cookie line parsed: the cookie, and whether it deletes (`Max-Age` <= 0).
fn parse(line: &str) -> (Stored, bool) {
    let mut parts = line.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').expect("name=value");
    let mut cookie = Stored {
        name: name.to_owned(),
        value: value.to_owned(),
        scope: Scope {
            domain: None,
            path: String::new(),
        },
        http_only: false,
        secure: false,
        same_site: None,
        expires: None,
    };
    let mut deletes = false;
    for attribute in parts {
        let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
        match key.to_ascii_lowercase().as_str() {
            "path" => cookie.scope.path = val.to_owned(),
            "domain" => cookie.scope.domain = Some(val.trim_start_matches('.').to_lowercase()),
            "httponly" => cookie.http_only = true,
            "secure" => cookie.secure = true,
            "samesite" => cookie.same_site = Some(val.to_ascii_lowercase()),
            "expires" => cookie.expires = Some(val.to_owned()),
            "max-age" => deletes = val.parse::<i64>().expect("Max-Age") <= 0,
            other => panic!("unexpected attribute {other:?} in {line:?}"),
        }
    }
    // Every cookie of the crate and of the SDK names its path: no default-path.
    assert!(cookie.scope.path.starts_with('/'), "no Path in {line:?}");
    (cookie, deletes)
}

/// The browser's cookies for one host (`app.example.com`).
#[derive(Debug, Default, Clone, PartialEq)]
struct Jar {
    cookies: Vec<Stored>,
}

impl Jar {
    fn store(&mut self, cookie: Stored, deletes: bool, set_by_script: bool) -> bool {
        let same = |c: &Stored| c.name == cookie.name && c.scope == cookie.scope;
        if set_by_script
            && (cookie.http_only || self.cookies.iter().any(|c| same(c) && c.http_only))
        {
            return false;
        }
        self.cookies.retain(|c| !same(c));
        if !deletes {
            self.cookies.push(cookie);
        }
        true
    }

    /// Applies `Set-Cookie` lines from the server.
    fn set_by_server(&mut self, lines: Vec<String>) {
        for line in lines {
            let (cookie, deletes) = parse(&line);
            self.store(cookie, deletes, false);
        }
    }

    /// A `document.cookie = line` write; false when the browser ignores it.
    fn set_by_script(&mut self, line: &str) -> bool {
        let (cookie, deletes) = parse(line);
        self.store(cookie, deletes, true)
    }

    /// What `document.cookie` shows: the names of the cookies a script can read.
    fn readable_by_script(&self) -> Vec<&str> {
        let names = self.cookies.iter().filter(|c| !c.http_only);
        names.map(|c| c.name.as_str()).collect()
    }

    /// The `Cookie` header the browser sends for `/`.
    fn header(&self) -> String {
        let pairs = self
            .cookies
            .iter()
            .map(|c| format!("{}={}", c.name, c.value));
        pairs.collect::<Vec<_>>().join("; ")
    }

    /// The only cookie named `name` (panics if there are two: a duplicate).
    #[track_caller]
    fn only(&self, name: &str) -> &Stored {
        let mut found = self.cookies.iter().filter(|c| c.name == name);
        let cookie = found
            .next()
            .unwrap_or_else(|| panic!("no {name}: {self:?}"));
        assert!(found.next().is_none(), "{name} twice: {self:?}");
        cookie
    }
}

/// The SDK's `cookieOptions`, as its cookies' attributes: no `Domain` unless
/// `availableToSubdomains` with a `domain`.
struct SdkOptions {
    path: &'static str,
    domain: Option<&'static str>,
}

const SDK_DEFAULTS: SdkOptions = SdkOptions {
    path: "/",
    domain: None,
};

/// What the SDK passes to `document.cookie` (js-cookie: path, expires, sameSite,
/// domain, secure; never HttpOnly).
fn sdk_line(options: &SdkOptions, name: &str, value: &str, expires: &str) -> String {
    let domain = options.domain.map(|d| format!("; domain={d}"));
    let path = options.path;
    let domain = domain.unwrap_or_default();
    format!("{name}={value}; path={path}; expires={expires}; sameSite=lax{domain}; secure")
}

/// A jar after the SDK's login (or refresh): both cookies, written by its script.
fn sdk_login(jar: &mut Jar, options: &SdkOptions, jwt: &str, token: &str, expires: &str) {
    for (name, value) in [(TOKEN, token), (JWT, jwt)] {
        let line = sdk_line(options, name, value, expires);
        assert!(
            jar.set_by_script(&line),
            "the SDK's write was ignored: {jar:?}"
        );
    }
}

/// `t` as browsers and the crate write a cookie date (IMF-fixdate).
fn http_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let (weekday, month) = (t.weekday().to_string(), t.month().to_string());
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        &weekday[..3],
        t.day(),
        &month[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// When the fixture's session ends, by Stytch.
fn session_expires(f: &Fixture) -> SystemTime {
    f.emu
        .session(&f.session.member_session_id)
        .unwrap()
        .expires_at
}

/// The fixture's session end as a cookie date.
fn session_end(f: &Fixture) -> String {
    http_date(session_expires(f))
}

/// A jar after the SDK logged in with the fixture's session under `options`.
fn sdk_jar(f: &Fixture, options: &SdkOptions) -> Jar {
    let mut jar = Jar::default();
    let (jwt, token) = (&f.session.session_jwt, &f.session.session_token);
    sdk_login(&mut jar, options, jwt, token, &session_end(f));
    jar
}

/// A jar after a login this server stored with `session_cookies`.
fn server_jar(f: &Fixture) -> Jar {
    let mut jar = Jar::default();
    let (jwt, token) = (&f.session.session_jwt, &f.session.session_token);
    jar.set_by_server(lines(&f.auth.session_cookies(
        jwt,
        token,
        session_expires(f),
    )));
    jar
}

fn authenticate_calls(f: &Fixture) -> u64 {
    f.emu.requests(Endpoint::Authenticate)
}

#[track_caller]
fn assert_sdk_cookie(jar: &Jar, name: &str, options: &SdkOptions, expires: &str) {
    let cookie = jar.only(name);
    let domain = options.domain.map(str::to_owned);
    assert_eq!(
        cookie.scope,
        Scope {
            domain,
            path: options.path.into()
        },
        "{cookie:?}"
    );
    assert!(!cookie.http_only, "a script must read it: {cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("lax"), "{cookie:?}");
    assert_eq!(cookie.expires.as_deref(), Some(expires), "{cookie:?}");
}

#[tokio::test]
async fn browser_sdk_renewal_leaves_the_sdks_cookies_readable_single_and_rewritable() {
    let f = fixture_with(StytchAuthBuilder::browser_sdk_cookies).await;
    let app = app(&f.auth);
    let end = session_end(&f);
    let mut jar = sdk_jar(&f, &SDK_DEFAULTS);
    let before = jar.clone();

    // The JWT goes stale (no page ran the SDK for 5 minutes): Stytch renews it.
    f.emu.clock().advance(Duration::from_secs(301));
    let res = send(&app, "GET", "/me", Some(&jar.header())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1, "renewed at Stytch");
    assert!(
        res.set_cookies().is_empty(),
        "nothing written: {:?}",
        res.set_cookies()
    );
    jar.set_by_server(res.set_cookies());
    assert_eq!(jar, before, "the SDK's cookies as it wrote them");
    for name in [JWT, TOKEN] {
        assert_sdk_cookie(&jar, name, &SDK_DEFAULTS, &end);
    }
    assert_eq!(jar.readable_by_script().len(), 2);

    // The SDK's own refresh writes over both, and the fresh JWT verifies locally.
    let fresh = f.emu.mint_jwt(&f.session.member_session_id);
    sdk_login(
        &mut jar,
        &SDK_DEFAULTS,
        &fresh,
        &f.session.session_token,
        &end,
    );
    assert_eq!(jar.only(JWT).value, fresh);
    let res = send(&app, "GET", "/me", Some(&jar.header())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(authenticate_calls(&f), 1, "verified locally");
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
}

/// What a handler returns (`session_cookies` after a login made on the server,
/// `clear_cookies`) replaces the SDK's cookies under its `cookieOptions`, never adds
/// a second cookie beside them, and leaves them writable by the SDK.
#[tokio::test]
async fn browser_sdk_helpers_write_what_the_sdk_writes() {
    let options = SdkOptions {
        path: "/",
        domain: Some("example.com"),
    };
    // `HttpOnly` is dropped without `cookies_readable_by_javascript()`.
    let f = fixture_with(|b| b.browser_sdk_cookies().cookie_domain("example.com")).await;
    let end = session_end(&f);
    let mut jar = sdk_jar(&f, &options);

    let expires = session_expires(&f);
    let fresh = f.emu.mint_jwt(&f.session.member_session_id);
    let set = f
        .auth
        .session_cookies(&fresh, &f.session.session_token, expires);
    assert_eq!(lines(&set).len(), 2, "{set:?}");
    for line in lines(&set) {
        let (cookie, deletes) = parse(&line);
        assert!(!deletes && !cookie.http_only && cookie.secure, "{line}");
    }
    jar.set_by_server(lines(&set));
    for name in [JWT, TOKEN] {
        assert_sdk_cookie(&jar, name, &options, &end);
    }
    assert_eq!(jar.only(JWT).value, fresh, "replaced, not added");
    sdk_login(&mut jar, &options, "a.b.c", &f.session.session_token, &end);
    assert_eq!(
        jar.only(JWT).value,
        "a.b.c",
        "the SDK can still write over it"
    );

    jar.set_by_server(lines(&f.auth.clear_cookies()));
    assert!(jar.cookies.is_empty(), "both deleted: {jar:?}");
}

/// The `Set-Cookie` lines of cookies a handler returns.
fn lines(cookies: &SessionCookies) -> Vec<String> {
    let values = cookies.header_values().iter();
    values.map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The default, unchanged: renewals written back `HttpOnly`, `Secure`,
/// `SameSite=Lax`, `Path=/`, host-only, `Expires` at the session's end.
#[tokio::test]
async fn default_shape_renews_http_only_cookies() {
    let f = fixture().await;
    let app = app(&f.auth);
    let end = session_end(&f);
    let mut jar = server_jar(&f);

    f.emu.clock().advance(Duration::from_secs(301));
    let res = send(&app, "GET", "/me", Some(&jar.header())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.set_cookies().len(), 2, "{:?}", res.set_cookies());
    let old_jwt = jar.only(JWT).value.clone();
    jar.set_by_server(res.set_cookies());
    assert_ne!(jar.only(JWT).value, old_jwt, "renewed");
    for name in [JWT, TOKEN] {
        let cookie = jar.only(name);
        let scope = Scope {
            domain: None,
            path: "/".into(),
        };
        assert_eq!(cookie.scope, scope, "{cookie:?}");
        assert!(cookie.http_only && cookie.secure, "{cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("lax"), "{cookie:?}");
        assert_eq!(cookie.expires.as_deref(), Some(end.as_str()), "{cookie:?}");
    }
    assert!(jar.readable_by_script().is_empty());
}

/// Why the default is not for the browser SDK: once the server wrote its `HttpOnly`
/// renewal, the SDK reads no session and its writes are ignored.
#[tokio::test]
async fn default_shape_renewals_would_lock_the_browser_sdk_out() {
    let f = fixture().await;
    let app = app(&f.auth);
    let end = session_end(&f);
    let mut jar = sdk_jar(&f, &SDK_DEFAULTS);

    f.emu.clock().advance(Duration::from_secs(301));
    let res = send(&app, "GET", "/me", Some(&jar.header())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    jar.set_by_server(res.set_cookies());
    assert!(jar.readable_by_script().is_empty(), "{jar:?}");
    let line = sdk_line(&SDK_DEFAULTS, JWT, "a.b.c", &end);
    assert!(!jar.set_by_script(&line), "the SDK's refresh is ignored");
}

/// Sending `cookie` again is refused without asking Stytch: remembered as gone.
async fn replay_is_refused_without_stytch(f: &Fixture, app: &axum::Router, cookie: &str) {
    let calls = authenticate_calls(f);
    let res = send(app, "GET", "/me", Some(cookie)).await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "replayed: {}",
        res.body
    );
    assert_eq!(authenticate_calls(f), calls, "remembered as gone");
}

/// A dead session, server-owned: 401 and both cookies deleted under the attributes
/// they were written with.
#[tokio::test]
async fn default_shape_clears_a_dead_sessions_cookies() {
    let f = fixture().await;
    let app = app(&f.auth);
    let mut jar = server_jar(&f);
    f.emu.revoke_session(&f.session.member_session_id);
    f.emu.clock().advance(Duration::from_secs(301));

    let cookie = jar.header();
    let res = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "session_revoked");
    assert_eq!(res.set_cookies().len(), 2, "{:?}", res.set_cookies());
    for line in res.set_cookies() {
        assert!(
            line.contains("HttpOnly") && line.contains("Path=/"),
            "{line}"
        );
    }
    jar.set_by_server(res.set_cookies());
    assert!(jar.cookies.is_empty(), "both deleted: {jar:?}");
    replay_is_refused_without_stytch(&f, &app, &cookie).await;
}

/// A dead session under the browser SDK: refused and remembered as gone (so not
/// usable here, with any of its JWTs), while its cookies are left to the SDK, which
/// sends the token to Stytch, hears `session_not_found` and deletes them itself.
#[tokio::test]
async fn browser_sdk_dead_session_is_refused_and_its_cookies_left_to_the_sdk() {
    let f = fixture_with(StytchAuthBuilder::browser_sdk_cookies).await;
    let app = app(&f.auth);
    let mut jar = sdk_jar(&f, &SDK_DEFAULTS);
    let before = jar.clone();
    f.emu.revoke_session(&f.session.member_session_id);
    f.emu.clock().advance(Duration::from_secs(301));

    let res = send(&app, "GET", "/me", Some(&jar.header())).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.body);
    assert_eq!(res.reason(), "session_revoked");
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    jar.set_by_server(res.set_cookies());
    assert_eq!(
        jar, before,
        "the SDK still holds the token it will be told about"
    );

    replay_is_refused_without_stytch(&f, &app, &jar.header()).await;
    // A JWT of the session that would verify locally is refused too.
    let fresh = f.emu.mint_jwt(&f.session.member_session_id);
    let res = send(&app, "GET", "/me", Some(&format!("{JWT}={fresh}"))).await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "fresh JWT: {}",
        res.body
    );
    assert_eq!(res.reason(), "session_revoked");
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    let res = send(
        &app,
        "GET",
        "/me",
        Some(&format!("{TOKEN}={}", f.session.session_token)),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "token: {}", res.body);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
}

#[track_caller]
fn assert_refused(builder: StytchAuthBuilder, setting: &str, fix: &str) {
    match builder.build() {
        Err(error @ ConfigError::InvalidSetting { setting: named, .. }) => {
            assert_eq!(named, setting, "{error}");
            assert!(error.to_string().contains(fix), "{error}");
        }
        Err(other) => panic!("{setting}: {other}"),
        Ok(_) => panic!("{setting}: accepted"),
    }
}

/// Settings that would work against the SDK's cookies are refused by `build()`,
/// whatever the order of the calls, naming the setting and the fix.
#[test]
fn browser_sdk_cookies_refuses_settings_that_fight_the_sdk() {
    let builder = || {
        StytchAuth::builder(
            "project-test-00000000-0000-0000-0000-000000000000",
            "secret",
        )
    };
    let hour = Duration::from_secs(3600);
    for same_site in [SameSite::Strict, SameSite::None] {
        let b = builder().browser_sdk_cookies().cookie_same_site(same_site);
        assert_refused(b, "cookie_same_site", "SameSite=Lax");
        let b = builder().cookie_same_site(same_site).browser_sdk_cookies();
        assert_refused(b, "cookie_same_site", "browser_sdk_cookies()");
    }
    let b = builder().session_duration(hour).browser_sdk_cookies();
    assert_refused(b, "session_duration", "keepSessionAlive");
    let b = builder().browser_sdk_cookies().session_duration(hour);
    assert_refused(b, "session_duration", "drop session_duration(..)");

    // What the SDK's cookieOptions can ask for is accepted.
    let ok = builder()
        .browser_sdk_cookies()
        .cookie_same_site(SameSite::Lax)
        .cookie_domain("example.com")
        .cookie_path("/app")
        .session_jwt_cookie("app_jwt")
        .session_token_cookie("app_session")
        .bearer_tokens(true)
        .build();
    assert!(ok.is_ok(), "{:?}", ok.err());
    // Without it, each setting alone stays accepted.
    assert!(builder().cookie_same_site(SameSite::Strict).build().is_ok());
    assert!(builder().session_duration(hour).build().is_ok());
}

/// `examples/browser_sdk.rs`: the page, the SDK's stand-in, and an API that reads the
/// cookies, renews through Stytch and writes nothing back.
#[tokio::test]
async fn browser_sdk_example_serves_the_page_and_an_api_that_only_reads() {
    let demo = browser_sdk::Demo::start_with(EmulatorOptions::new()).await;
    let emulator = demo.emulator.clone();
    let auth = emulator
        .auth_builder()
        .browser_sdk_cookies()
        .build()
        .unwrap();
    let app = browser_sdk::router(&auth, demo);

    let res = send(&app, "GET", "/", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.contains("StytchB2BClient") && res.body.contains("sameSite=lax"));
    let session = send(&app, "GET", "/demo/session", None).await.json();
    let cookie = format!(
        "{TOKEN}={}; {JWT}={}",
        session["session_token"].as_str().unwrap(),
        session["session_jwt"].as_str().unwrap()
    );
    assert!(session["expires_at_ms"].as_u64().unwrap() > 0, "{session}");

    let res = send(&app, "GET", "/api/me", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.json()["organization_slug"], "acme");
    emulator.clock().advance(Duration::from_secs(301));
    let res = send(&app, "GET", "/api/me", Some(&cookie)).await;
    assert_eq!(res.status, StatusCode::OK, "stale JWT: {}", res.body);
    assert_eq!(emulator.requests(Endpoint::Authenticate), 1);
    assert!(res.set_cookies().is_empty(), "{:?}", res.set_cookies());
    let res = send(&app, "GET", "/api/me", None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

/// `cargo run --example browser_sdk` serves offline: the page, a session, the API.
#[tokio::test]
async fn browser_sdk_binary_serves_offline() {
    let mut command = Command::new(example_binary("browser_sdk"));
    command.env("PORT", "0").env("RUST_LOG", "warn");
    let (_guard, lines) = spawn_until(command, "browser_sdk ready on ");
    let base = lines
        .last()
        .and_then(|l| l.strip_prefix("browser_sdk ready on "))
        .unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let client = reqwest::Client::new();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("browser_sdk_cookies()"));
    let session: serde_json::Value = client
        .get(format!("{base}/demo/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = format!(
        "{TOKEN}={}; {JWT}={}",
        session["session_token"].as_str().unwrap(),
        session["session_jwt"].as_str().unwrap()
    );
    let res = client
        .get(format!("{base}/api/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
}
