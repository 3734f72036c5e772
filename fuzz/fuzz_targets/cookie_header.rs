//! Fuzzes credential extraction from request headers
//! (`axum_stytch::internals::extract_credentials`, default settings: cookies
//! `stytch_session_jwt` / `stytch_session`, 4,096-byte cap, no bearer).
//!
//! The input is split on `\n` into header values; values `http` accepts become
//! `Cookie` headers (and, for every third one, an `Authorization` header, which the
//! default settings must ignore). Besides "never panics", checks that what is returned
//! is non-empty, within the cap, visible ASCII without `"`, `,`, `;` or `\`, and
//! borrowed from a `Cookie` header.
#![no_main]

use axum_stytch::internals::{default_credential_settings, extract_credentials};
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            continue;
        };
        let name = if i % 3 == 2 { AUTHORIZATION } else { COOKIE };
        headers.append(name, value);
    }
    let settings = default_credential_settings();
    let Some((jwt, token)) = extract_credentials(&headers, &settings) else {
        return;
    };
    for value in [jwt, token].into_iter().flatten() {
        assert!(!value.is_empty());
        assert!(value.len() <= 4096, "{} bytes", value.len());
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"\";,\\".contains(&b)),
            "{value:?}"
        );
        let start = value.as_ptr() as usize;
        let borrowed = headers.get_all(COOKIE).iter().any(|h| {
            let base = h.as_bytes().as_ptr() as usize;
            start >= base && start + value.len() <= base + h.as_bytes().len()
        });
        assert!(borrowed, "not taken from a Cookie header");
    }
});
