//! Fuzzes the session-JWT parser: structure, header (`alg`, `kid`, `typ`) and the
//! claims' shape, without signature verification
//! (`axum_stytch::internals::parse_token_unverified`).
//!
//! Besides "never panics", checks the parser's contract: it only ever accepts at most
//! 8 KiB of three non-empty dot-separated segments, and only returns a `kid` of
//! 1..=128 bytes.
#![no_main]

use axum_stytch::internals::parse_token_unverified;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(kid) = parse_token_unverified(text) {
        assert!(text.len() <= 8 * 1024, "accepted {} bytes", text.len());
        let segments: Vec<&str> = text.split('.').collect();
        assert_eq!(segments.len(), 3, "accepted {} segments", segments.len());
        assert!(
            segments.iter().all(|s| !s.is_empty()),
            "accepted an empty segment"
        );
        assert!(
            !kid.is_empty() && kid.len() <= 128,
            "kid of {} bytes",
            kid.len()
        );
    }
});
