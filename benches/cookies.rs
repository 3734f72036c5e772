//! Reading the session credentials from the `Cookie` header
//! (`internals::extract_credentials`, the layer's first step).
//!
//! * `cookies/browser_header`: one ~1.7 KB `Cookie` header: analytics and preference
//!   cookies around `stytch_session` and a ~1.5 KB `stytch_session_jwt`; both values
//!   checked, as on a token-cache miss.
//! * `cookies/browser_header_found`: the same header, the values only found
//!   (`internals::find_credentials`), as on a cache hit: the JWT's characters are not
//!   checked, and the token's are not needed beside a JWT.
//! * `cookies/many_cookies_found`: the same, after 60 other cookies (a site with
//!   consent, analytics and A/B-test cookies; about 3.6 KB in all).
//! * `cookies/split_headers`: the same cookies in four `Cookie` headers (HTTP/2
//!   clients may split them).
//! * `cookies/no_session`: a browser without a session (only other cookies).
//!
//! `cargo bench --bench cookies`

mod common;

use std::hint::black_box;

use axum_stytch::internals::{default_credential_settings, extract_credentials, find_credentials};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header::COOKIE};

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let fixture = rt.block_on(common::Fixture::new(1, 1));
    let jwt = fixture.repeated().to_owned();
    let token = fixture.sessions[0].session_token.clone();
    let settings = default_credential_settings();
    let header = common::cookie_header(&jwt, &token);
    eprintln!(
        "JWT {} bytes, Cookie header {} bytes",
        jwt.len(),
        header.len()
    );

    let mut one = HeaderMap::new();
    one.insert(COOKIE, HeaderValue::from_str(&header).expect("valid"));
    let mut split = HeaderMap::new();
    let pairs: Vec<&str> = header.split("; ").collect();
    for chunk in pairs.chunks(pairs.len().div_ceil(4)) {
        split.append(
            COOKIE,
            HeaderValue::from_str(&chunk.join("; ")).expect("valid"),
        );
    }
    // A site with many cookies (consent, analytics, A/B tests): 60 others before ours.
    let mut many = HeaderMap::new();
    let others: Vec<String> = (0..60)
        .map(|i| format!("_exp_{i}=v{i}.1767225600.{}", i * 7919))
        .collect();
    many.insert(
        COOKIE,
        HeaderValue::from_str(&format!("{}; {header}", others.join("; "))).expect("valid"),
    );
    let mut none = HeaderMap::new();
    none.insert(
        COOKIE,
        HeaderValue::from_static(
            "_ga=GA1.1.1843012745.1767225600; _ga_Q7X3ZP1K2D=GS1.1.1767225600.3.1.1767229200.0.0.0; \
             theme=dark; csrftoken=9f2c1e7a4b8d6f3e0a5c7b9d1e3f5a7c",
        ),
    );
    let expected = (Some(jwt.as_str()), Some(token.as_str()));
    assert_eq!(extract_credentials(&one, &settings), Some(expected));
    assert_eq!(extract_credentials(&split, &settings), Some(expected));
    assert_eq!(extract_credentials(&none, &settings), Some((None, None)));
    for headers in [&one, &many] {
        assert_eq!(
            find_credentials(headers, &settings),
            Some((Some(jwt.len()), Some(token.len())))
        );
    }

    let mut group = c.benchmark_group("cookies");
    for (name, headers) in [("browser_header", &one), ("split_headers", &split)] {
        group.bench_function(name, |b| {
            b.iter(|| extract_credentials(black_box(headers), &settings))
        });
    }
    for (name, headers) in [
        ("browser_header_found", &one),
        ("many_cookies_found", &many),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| find_credentials(black_box(headers), &settings))
        });
    }
    group.bench_function("no_session", |b| {
        b.iter(|| extract_credentials(black_box(&none), &settings))
    });
    group.finish();
}

criterion_group!(cookies, benches);
criterion_main!(cookies);
