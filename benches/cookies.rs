//! Reading the session credentials from the `Cookie` header
//! (`internals::extract_credentials`, the layer's first step).
//!
//! * `cookies/browser_header`: one ~1.6 KB `Cookie` header: analytics and preference
//!   cookies around `stytch_session` and a ~1.4 KB `stytch_session_jwt`.
//! * `cookies/split_headers`: the same cookies in four `Cookie` headers (HTTP/2
//!   clients may split them).
//! * `cookies/no_session`: a browser without a session (only other cookies).
//!
//! `cargo bench --bench cookies`

mod common;

use std::hint::black_box;

use axum_stytch::internals::{default_credential_settings, extract_credentials};
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

    let mut group = c.benchmark_group("cookies");
    for (name, headers) in [("browser_header", &one), ("split_headers", &split)] {
        group.bench_function(name, |b| {
            b.iter(|| extract_credentials(black_box(headers), &settings))
        });
    }
    group.bench_function("no_session", |b| {
        b.iter(|| extract_credentials(black_box(&none), &settings))
    });
    group.finish();
}

criterion_group!(cookies, benches);
criterion_main!(cookies);
