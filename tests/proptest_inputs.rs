//! Property tests: arbitrary credentials through the real layer, and the pure
//! credential extraction and token parsing underneath it.
//!
//! Through the layer (tower `oneshot` on the test app, against the in-process Stytch
//! emulator): arbitrary `Cookie` header bytes, arbitrary strings as the session JWT
//! cookie, arbitrary bearer values, forged tokens that parse, and every single-byte
//! mutation class (flip, truncate, insert) of a valid session JWT never panic, never
//! yield a member (`/me` answers 401, `/maybe` answers "anonymous"), never set a
//! non-empty session cookie, and never cost more than one JWKS refresh per cooldown
//! (the emulator's clock does not move during a run).
//!
//! Each property shares one emulator and one runtime across its cases. Case counts are
//! modest so the suite runs in seconds (each runner sets its own count, so
//! `PROPTEST_CASES` is not consulted: raise `LAYER_CASES` / `PURE_CASES` locally for a
//! longer soak). A failure panics with the shrunk input; nothing is persisted.

mod common;

use axum::Router;
use axum::body::Body;
use axum_stytch::internals::{
    default_credential_settings, extract_credentials, parse_token_unverified,
};
use axum_stytch::testing::Endpoint;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

const LAYER_CASES: u32 = 192;
const PURE_CASES: u32 = 512;

const JWT_COOKIE: &str = "stytch_session_jwt";
const TOKEN_COOKIE: &str = "stytch_session";

// ----------------------------------------------------------------------------------
// Harness

/// One emulator, one app (cookies only) and one with bearer tokens enabled, on a
/// runtime that outlives the cases.
struct World {
    rt: tokio::runtime::Runtime,
    f: Fixture,
    app: Router,
    bearer_app: Router,
    /// JWKS fetches made by setting up (one per `StytchAuth`).
    jwks_at_start: u64,
}

impl World {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // Plausible made-up session tokens each cost a call: the budget for them
        // (unverified_authentications_per_second, tested in tests/rate_limits.rs) is
        // lifted, so that every case is answered by Stytch on a frozen clock.
        let unlimited = |b: axum_stytch::StytchAuthBuilder| {
            b.unverified_authentications_per_second(u32::MAX)
                .max_concurrent_unverified_authentications(1_000)
        };
        let (f, bearer_app) = rt.block_on(async {
            let f = fixture_with(unlimited).await;
            let bearer = unlimited(f.emu.auth_builder().bearer_tokens(true))
                .build()
                .unwrap();
            f.auth.warm_up().await.expect("the keys");
            bearer.warm_up().await.expect("the keys");
            let bearer_app = app(&bearer);
            (f, bearer_app)
        });
        let app = app(&f.auth);
        let jwks_at_start = f.emu.requests(Endpoint::Jwks);
        let world = Self {
            rt,
            f,
            app,
            bearer_app,
            jwks_at_start,
        };
        // Controls: the real credentials are accepted by both apps, so a 401 below is
        // about the input, not the setup.
        let res = world.get(&world.app, "/me", &[(COOKIE, world.real_jwt_cookie())]);
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        let bearer = format!("Bearer {}", world.f.session.session_jwt);
        let res = world.get(&world.bearer_app, "/me", &[(AUTHORIZATION, bearer.into())]);
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        world
    }

    /// The fixture's real session JWT as a `Cookie` header.
    fn real_jwt_cookie(&self) -> Vec<u8> {
        jwt_cookie(&self.f.session.session_jwt).into_bytes()
    }

    fn get(&self, app: &Router, path: &str, headers: &[(HeaderName, Vec<u8>)]) -> TestResponse {
        let mut req = Request::builder().method("GET").uri(path);
        for (name, value) in headers {
            req = req.header(
                name,
                HeaderValue::from_bytes(value).expect("strategies only make valid headers"),
            );
        }
        let req = req.body(Body::empty()).unwrap();
        self.rt.block_on(send_request(app, req))
    }

    /// The property every non-credential must satisfy through the layer.
    fn assert_no_member(
        &self,
        app: &Router,
        headers: &[(HeaderName, Vec<u8>)],
    ) -> Result<(), TestCaseError> {
        let res = self.get(app, "/me", headers);
        prop_assert_eq!(res.status, StatusCode::UNAUTHORIZED, "/me: {}", res.body);
        prop_assert!(res.headers.contains_key("www-authenticate"));
        for line in res.headers.get_all(SET_COOKIE) {
            // Only ever a clearing cookie: never credentials for this input.
            let line = line.to_str().unwrap_or_default();
            for name in [JWT_COOKIE, TOKEN_COOKIE] {
                if let Some(rest) = line.strip_prefix(&format!("{name}=")) {
                    prop_assert!(rest.starts_with(';'), "set a session cookie: {}", line);
                }
            }
        }
        let res = self.get(app, "/maybe", headers);
        prop_assert_eq!(
            (res.status, res.body.as_str()),
            (StatusCode::OK, "anonymous")
        );
        Ok(())
    }

    /// No JWKS refresh beyond the one an unknown `kid` may cause per cooldown (each
    /// property drives one of the two `StytchAuth`s), and no revocation call, whatever
    /// was sent.
    fn assert_outbound_bounded(&self) {
        let fetched = self.f.emu.requests(Endpoint::Jwks) - self.jwks_at_start;
        assert!(fetched <= 1, "{fetched} JWKS fetches with a frozen clock");
        assert_eq!(self.f.emu.requests(Endpoint::Revoke), 0);
    }
}

fn run<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..Config::default()
    });
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{error}");
    }
}

fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Bytes `HeaderValue::from_bytes` accepts: visible ASCII, space, tab, obs-text.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => 0x80u8..=0xff,
        1 => Just(b'\t'),
        // Bytes that matter to the cookie grammar, more often than chance.
        2 => prop::sample::select(b";=\" ,\\.".to_vec()),
    ]
}

fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(header_byte(), 0..max)
}

/// JWT-shaped text: base64url-ish segments separated by dots.
fn jwt_shaped() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_=+/-]{0,120}", 1..5).prop_map(|s| s.join("."))
}

/// Tokens that pass structural parsing (RS256, a `kid`, claims of the right shape):
/// the real payload or one with hostile claim values, a random signature, and either
/// the real `kid` (RSA work, then a bad signature) or a random one.
fn forged_token(real_kid: String, real_payload: String) -> impl Strategy<Value = String> {
    let kid = prop_oneof![Just(real_kid), "[ -~]{1,128}"];
    let payload = prop_oneof![
        Just(real_payload.clone()),
        (any::<u64>(), "\\PC{0,20}", any::<bool>()).prop_map(move |(n, s, flag)| {
            let mut claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&real_payload).unwrap()).unwrap();
            claims["exp"] = json!(n);
            claims["sub"] = json!(s);
            if flag {
                claims["aud"] = json!(s);
            }
            b64(claims.to_string())
        }),
    ];
    let signature = prop::collection::vec(any::<u8>(), 0..600);
    (kid, payload, signature).prop_map(|(kid, payload, signature)| {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string();
        format!("{}.{payload}.{}", b64(header), b64(signature))
    })
}

// ----------------------------------------------------------------------------------
// Through the layer

#[test]
fn arbitrary_cookie_headers_never_yield_a_member() {
    let world = World::new();
    let prefixes = prop::sample::select(vec![
        String::new(),
        format!("{JWT_COOKIE}="),
        format!("{TOKEN_COOKIE}="),
        format!("a=b; {JWT_COOKIE}="),
        format!("{TOKEN_COOKIE}=x; {JWT_COOKIE}="),
        format!("{JWT_COOKIE}=\""),
    ]);
    let one_header = (prefixes, header_bytes(300)).prop_map(|(p, rest)| {
        let mut value = p.into_bytes();
        value.extend(rest);
        value
    });
    let headers = prop::collection::vec(one_header, 1..4);
    run(LAYER_CASES, headers, |values| {
        let headers: Vec<_> = values.into_iter().map(|v| (COOKIE, v)).collect();
        world.assert_no_member(&world.app, &headers)
    });
    world.assert_outbound_bounded();
}

#[test]
fn arbitrary_jwt_cookie_values_never_yield_a_member() {
    let world = World::new();
    let payload = world.f.session.session_jwt.split('.').nth(1).unwrap();
    let kid = world.f.emu.signing_kid();
    let value = prop_oneof![
        "\\PC{0,300}",
        jwt_shaped(),
        forged_token(kid, payload.to_owned()),
    ];
    run(LAYER_CASES, value, |value| {
        let cookie = format!("{JWT_COOKIE}={value}").into_bytes();
        world.assert_no_member(&world.app, &[(COOKIE, cookie)])
    });
    world.assert_outbound_bounded();
    // Forged tokens with the real kid did reach the signature check (and failed it).
    assert!(world.f.auth.metrics().local_verifications > 1);
    // Forged JWTs never reach Stytch: only strings that could be a session token
    // (16..=128 URL-safe characters, no dots) are ever sent, and only as tokens.
    assert_eq!(world.f.emu.requests(Endpoint::Authenticate), 0);
}

#[test]
fn arbitrary_bearer_values_never_yield_a_member() {
    let world = World::new();
    let payload = world.f.session.session_jwt.split('.').nth(1).unwrap();
    let kid = world.f.emu.signing_kid();
    let value = prop_oneof![
        "\\PC{0,300}",
        jwt_shaped(),
        "[A-Za-z0-9_-]{16,128}",
        forged_token(kid, payload.to_owned()),
    ];
    let scheme = prop::sample::select(vec!["Bearer ", "bearer ", "BEARER  "]);
    run(LAYER_CASES, (scheme, value), |(scheme, value)| {
        let header = format!("{scheme}{value}").into_bytes();
        // Bearer wins over cookies: even with the real JWT cookie beside it.
        world.assert_no_member(&world.bearer_app, &[(AUTHORIZATION, header.clone())])?;
        world.assert_no_member(
            &world.bearer_app,
            &[(AUTHORIZATION, header), (COOKIE, world.real_jwt_cookie())],
        )
    });
    world.assert_outbound_bounded();
}

/// A single flip, truncation or insertion anywhere in a valid session JWT never
/// yields a member, and never causes a call to `sessions/authenticate` (only a
/// validly signed JWT may).
#[test]
fn mutated_valid_jwts_never_yield_a_member() {
    let world = World::new();
    let jwt = world.f.session.session_jwt.clone();
    let len = jwt.len();
    let mutation = prop_oneof![
        (0..len, 0x21u8..=0x7e).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (0..len).prop_map(Mutation::Truncate),
        (0..=len, header_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ];
    let settings = default_credential_settings();
    run(LAYER_CASES, mutation, |mutation| {
        let mutated = mutation.apply(jwt.as_bytes());
        // Never panics on the mutated text either.
        if let Ok(text) = std::str::from_utf8(&mutated) {
            let _ = parse_token_unverified(text);
        }
        let mut cookie = format!("{JWT_COOKIE}=").into_bytes();
        cookie.extend(&mutated);
        // Mutations the cookie grammar undoes (a space before or after the value, a
        // `;` after it) leave the same token: not a mutation of the credential.
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_bytes(&cookie).unwrap());
        let read = extract_credentials(&headers, &settings);
        prop_assume!(read != Some((Some(jwt.as_str()), None)));
        world.assert_no_member(&world.app, &[(COOKIE, cookie)])
    });
    world.assert_outbound_bounded();
    assert_eq!(world.f.emu.requests(Endpoint::Authenticate), 0);
    // Mutations of the payload and signature did reach the signature check.
    assert!(world.f.auth.metrics().local_verifications > 1);
    // The original still works after all that.
    let res = world.get(&world.app, "/me", &[(COOKIE, world.real_jwt_cookie())]);
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at `.0` with `.1` (a different visible ASCII byte).
    Flip(usize, u8),
    /// Keep the first `.0` bytes.
    Truncate(usize),
    /// Insert `.1` before index `.0`.
    Insert(usize, u8),
}

impl Mutation {
    fn apply(&self, token: &[u8]) -> Vec<u8> {
        let mut out = token.to_vec();
        match *self {
            Mutation::Flip(i, b) => {
                // Always a different byte, still visible ASCII.
                out[i] = match b {
                    _ if b != token[i] => b,
                    b'~' => b'!',
                    _ => b + 1,
                };
            }
            Mutation::Truncate(n) => out.truncate(n),
            Mutation::Insert(i, b) => out.insert(i, b),
        }
        out
    }
}

// ----------------------------------------------------------------------------------
// Pure functions: extract_credentials

/// A header map from `(name, value)` pairs, skipping values `http` refuses.
fn header_map(pairs: &[(u8, Vec<u8>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (kind, value) in pairs {
        let name = match kind % 3 {
            0 => COOKIE,
            1 => AUTHORIZATION,
            _ => HeaderName::from_static("x-other"),
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    headers
}

/// Whether `inner` lies inside one of the `Cookie` values in `headers` (borrowed from
/// them, not made up).
fn borrowed_from(headers: &HeaderMap, inner: &str) -> bool {
    let start = inner.as_ptr() as usize;
    headers.get_all(COOKIE).iter().any(|v| {
        let bytes = v.as_bytes();
        let base = bytes.as_ptr() as usize;
        start >= base && start + inner.len() <= base + bytes.len()
    })
}

#[test]
fn extract_credentials_never_panics_and_returns_only_well_formed_values() {
    let settings = default_credential_settings();
    let prefix = prop::sample::select(vec![
        Vec::new(),
        format!("{JWT_COOKIE}=").into_bytes(),
        format!("{TOKEN_COOKIE}=").into_bytes(),
        format!(" {TOKEN_COOKIE} = ").into_bytes(),
        b"Bearer ".to_vec(),
    ]);
    // Values around the 4,096-byte cap (cheap to generate: a short pattern repeated).
    let long =
        (prop::collection::vec(0x21u8..=0x7e, 1..8), 4000usize..4200).prop_map(|(pattern, len)| {
            pattern
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect::<Vec<u8>>()
        });
    let value = prop_oneof![
        3 => header_bytes(200),
        1 => long,
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    let pair = (any::<u8>(), prefix, value).prop_map(|(kind, mut p, v)| {
        p.extend(v);
        (kind, p)
    });
    run(PURE_CASES, prop::collection::vec(pair, 0..6), |pairs| {
        let headers = header_map(&pairs);
        if let Some((jwt, token)) = extract_credentials(&headers, &settings) {
            for value in [jwt, token].into_iter().flatten() {
                prop_assert!(!value.is_empty());
                prop_assert!(value.len() <= 4096, "{} bytes", value.len());
                prop_assert!(
                    value
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"\";,\\".contains(&b)),
                    "{:?}",
                    value
                );
                prop_assert!(borrowed_from(&headers, value));
            }
        }
        Ok(())
    });
}

/// Our two cookies among arbitrary other cookies, in any order, with optional spaces
/// and quotes, are found exactly; the same cookie twice refuses the credentials.
#[test]
fn extract_credentials_finds_exactly_our_cookies_among_others() {
    let settings = default_credential_settings();
    let other = ("[a-z_]{1,20}", "[!#-+\\--:<-\\[\\]-~]{0,30}")
        .prop_filter("not one of ours", |(n, _)| {
            n != JWT_COOKIE && n != TOKEN_COOKIE
        })
        .prop_map(|(n, v)| format!("{n}={v}"));
    let ours = "[A-Za-z0-9._-]{1,300}";
    let case = (
        prop::collection::vec(other, 0..8),
        ours,
        ours,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    run(
        PURE_CASES,
        case,
        |(mut cookies, jwt, token, at_jwt, at_token, quoted, spaced, duplicate)| {
            let jwt_pair = if quoted {
                format!("{JWT_COOKIE}=\"{jwt}\"")
            } else {
                format!("{JWT_COOKIE}={jwt}")
            };
            cookies.insert(at_jwt.index(cookies.len() + 1), jwt_pair.clone());
            cookies.insert(
                at_token.index(cookies.len() + 1),
                format!("{TOKEN_COOKIE}={token}"),
            );
            if duplicate {
                cookies.push(jwt_pair);
            }
            let separator = if spaced { " ;  " } else { ";" };
            let mut headers = HeaderMap::new();
            headers.insert(
                COOKIE,
                HeaderValue::from_str(&cookies.join(separator)).unwrap(),
            );
            let got = extract_credentials(&headers, &settings);
            if duplicate {
                prop_assert_eq!(got, None);
            } else {
                prop_assert_eq!(got, Some((Some(jwt.as_str()), Some(token.as_str()))));
            }
            Ok(())
        },
    );
}

// ----------------------------------------------------------------------------------
// Pure functions: parse_token_unverified

#[test]
fn parse_token_unverified_never_panics_and_accepts_only_three_segment_tokens() {
    let text = prop_oneof![
        "\\PC{0,400}",
        jwt_shaped(),
        prop::collection::vec(any::<char>(), 0..200).prop_map(|c| c.into_iter().collect()),
        // Long inputs around the 8 KiB cap (a short pattern repeated).
        ("[A-Za-z0-9_.-]{1,16}", 8100usize..8300).prop_map(|(pattern, len)| pattern
            .chars()
            .cycle()
            .take(len)
            .collect()),
    ];
    run(PURE_CASES, text, |text: String| {
        if let Some(kid) = parse_token_unverified(&text) {
            prop_assert!(text.len() <= 8 * 1024);
            let segments: Vec<&str> = text.split('.').collect();
            prop_assert_eq!(segments.len(), 3);
            prop_assert!(segments.iter().all(|s| !s.is_empty()));
            prop_assert!(!kid.is_empty() && kid.len() <= 128, "kid {:?}", kid);
        }
        Ok(())
    });
}

/// Any `kid` of 1..=128 bytes round-trips through the parser with a real payload;
/// longer ones and any algorithm but RS256 (`none`, HMAC, other RSA and EC ones, a
/// lower-case spelling) are refused.
#[test]
fn parse_token_unverified_reads_the_kid_and_refuses_hostile_headers() {
    let world = World::new();
    let jwt = &world.f.session.session_jwt;
    assert_eq!(parse_token_unverified(jwt), Some(world.f.emu.signing_kid()));
    let (_, rest) = jwt.split_once('.').unwrap();
    let kid = prop_oneof![
        3 => "\\PC{1,128}",
        1 => "\\PC{129,300}",
    ];
    let alg = prop::sample::select(vec![
        "RS256", "none", "HS256", "RS384", "PS256", "ES256", "rs256",
    ]);
    run(PURE_CASES, (kid, alg), |(kid, alg)| {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string();
        let token = format!("{}.{rest}", b64(header));
        let got = parse_token_unverified(&token);
        if alg == "RS256" && kid.len() <= 128 {
            prop_assert_eq!(got, Some(kid));
        } else {
            prop_assert_eq!(got, None);
        }
        Ok(())
    });
}
