//! Bounded resources under a flood of distinct, valid-looking credentials.
//!
//! * `flood_of_5000_tokens_stays_within_the_cache_capacity` (runs with `cargo test`):
//!   5,000 distinct credentials against a layer with `token_cache_capacity(100)`. The
//!   cache's size is not public; what is observable is the counters: replaying the 500
//!   valid JWTs afterwards is mostly answered by RSA work again (`local_verifications`),
//!   not from the cache (`cache_hits`), which shows the cache kept about 100 of them and
//!   not all 500.
//! * `flood_of_100k_tokens_keeps_memory_bounded` (ignored by default): 100,000 forged
//!   JWTs that pass structural parsing (50,000 with random `kid`s, 50,000 with the real
//!   `kid` and a bad signature), 20,000 plausible session tokens (each costs one call to
//!   Stytch, which answers 404; twice the default 10,000-entry cap of the "dead
//!   credentials" cache) and 2,000 validly signed JWTs (minting 100,000 real RS256 JWTs
//!   would take minutes), sent twice, with default settings. It measures the growth of
//!   the process's resident set (`VmRSS` in `/proc/self/status`) and asserts it stays
//!   under 200 MB. Run it with:
//!
//!   ```sh
//!   cargo test --release --test resource_bounds -- --ignored --nocapture
//!   ```
//!
//! RSS is a coarse measure (the allocator keeps freed memory, the emulator lives in the
//! same process): the bound is deliberately loose, and the figures are printed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum_stytch::testing::{Endpoint, SessionOptions};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
use serde_json::json;

/// The documented bound on RSS growth for the 100k flood.
const RSS_BOUND_MB: f64 = 200.0;
/// Requests in flight at once.
const CONCURRENCY: usize = 64;

/// One credential of the flood, made from its index so the flood is never held in
/// memory by the test itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A structurally valid JWT whose `kid` Stytch does not publish.
    RandomKid,
    /// The real header and payload with a bad signature: costs RSA work, then 401.
    BadSignature,
    /// A plausible session token Stytch does not know: one call, then 401.
    UnknownSessionToken,
    /// A validly signed JWT of a live session.
    Valid,
}

struct Flood {
    /// (kind, how many), in the order sent.
    plan: Vec<(Kind, usize)>,
    header: String,
    payload: String,
    signature: Vec<u8>,
    valid: Vec<String>,
    salt: u64,
}

impl Flood {
    fn new(f: &Fixture, plan: Vec<(Kind, usize)>) -> Self {
        let jwt = &f.session.session_jwt;
        let mut parts = jwt.split('.');
        let header = parts.next().unwrap().to_owned();
        let payload = parts.next().unwrap().to_owned();
        let signature = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        let valid_count = plan
            .iter()
            .filter(|(k, _)| *k == Kind::Valid)
            .map(|(_, n)| n)
            .sum();
        let options = SessionOptions::default().duration(Duration::from_secs(3 * 3600));
        let valid = (0..valid_count)
            .map(|_| {
                f.emu
                    .create_session_with(&f.member, options.clone())
                    .session_jwt
            })
            .collect();
        let mut salt = [0u8; 8];
        aws_lc_rs::rand::fill(&mut salt).unwrap();
        Self {
            plan,
            header,
            payload,
            signature,
            valid,
            salt: u64::from_le_bytes(salt),
        }
    }

    fn len(&self) -> usize {
        self.plan.iter().map(|(_, n)| n).sum()
    }

    fn count(&self, kind: Kind) -> usize {
        self.plan
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// The `i`-th credential as a `Cookie` header, and its kind.
    fn cookie(&self, mut i: usize) -> (Kind, String) {
        let (kind, n) = self
            .plan
            .iter()
            .copied()
            .find(|(_, n)| {
                let here = i < *n;
                if !here {
                    i -= n;
                }
                here
            })
            .expect("index within the plan");
        debug_assert!(i < n);
        let cookie = match kind {
            Kind::RandomKid => {
                let header = json!({
                    "alg": "RS256",
                    "typ": "JWT",
                    "kid": format!("jwk-test-{:016x}{i:08x}", self.salt),
                });
                let header = URL_SAFE_NO_PAD.encode(header.to_string());
                let signature = URL_SAFE_NO_PAD.encode(&self.signature);
                cookies(
                    Some(&format!("{header}.{}.{signature}", self.payload)),
                    None,
                )
            }
            Kind::BadSignature => {
                let mut signature = self.signature.clone();
                for (byte, x) in signature.iter_mut().zip((i as u64 + 1).to_be_bytes()) {
                    *byte ^= x;
                }
                let signature = URL_SAFE_NO_PAD.encode(signature);
                let jwt = format!("{}.{}.{signature}", self.header, self.payload);
                cookies(Some(&jwt), None)
            }
            Kind::UnknownSessionToken => {
                cookies(None, Some(&format!("flood{:x}{i:024}", self.salt)))
            }
            Kind::Valid => cookies(Some(&self.valid[i]), None),
        };
        (kind, cookie)
    }

    /// Sends every credential once, `CONCURRENCY` at a time, checking each answer.
    async fn send_all(self: &Arc<Self>, app: &Router, member: &str) {
        let next = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                let (this, app, next) = (Arc::clone(self), app.clone(), Arc::clone(&next));
                let member = member.to_owned();
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= this.len() {
                            break;
                        }
                        let (kind, cookie) = this.cookie(i);
                        let res = get_with(&app, "/me", &cookie).await;
                        if kind == Kind::Valid {
                            assert_eq!(res.status, StatusCode::OK, "{kind:?}: {}", res.body);
                            assert_eq!(res.body, member);
                        } else {
                            assert_eq!(
                                res.status,
                                StatusCode::UNAUTHORIZED,
                                "{kind:?}: {}",
                                res.body
                            );
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("flood worker");
        }
    }
}

/// The process's resident set size in MB, from `/proc/self/status`.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flood_of_5000_tokens_stays_within_the_cache_capacity() {
    const CAPACITY: usize = 100;
    const VALID: usize = 500;
    // Every unknown session token is sent to Stytch here: the budget for them
    // (tested in tests/rate_limits.rs) is lifted for this memory bound.
    let f = fixture_with(|b| {
        b.token_cache_capacity(CAPACITY)
            .unverified_authentications_per_second(u32::MAX)
            .max_concurrent_unverified_authentications(1_000)
    })
    .await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let flood = Arc::new(Flood::new(
        &f,
        vec![
            (Kind::RandomKid, 2_000),
            (Kind::BadSignature, 2_000),
            (Kind::UnknownSessionToken, 500),
            (Kind::Valid, VALID),
        ],
    ));
    assert_eq!(flood.len(), 5_000);

    let rss_before = rss_mb();
    let before = f.auth.metrics();
    flood.send_all(&app, &f.member).await;
    let after = f.auth.metrics();
    println!(
        "5,000-token flood: RSS {rss_before:.1} MB -> {:.1} MB",
        rss_mb()
    );

    // Outbound calls: none for forged JWTs, one per unknown session token, at most one
    // JWKS refresh for all the unknown kids (the clock does not move).
    assert_eq!(
        f.emu.requests(Endpoint::Authenticate),
        flood.count(Kind::UnknownSessionToken) as u64
    );
    assert!(f.emu.requests(Endpoint::Jwks) <= 2);
    // RSA work for every JWT whose kid is known, none for the unknown kids.
    assert_eq!(
        after.local_verifications - before.local_verifications,
        (flood.count(Kind::BadSignature) + VALID) as u64
    );

    // Replay the valid JWTs: only what the cache kept is answered without RSA work.
    let before = f.auth.metrics();
    for jwt in &flood.valid {
        let res = get_with(&app, "/me", &cookies(Some(jwt), None)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
    let after = f.auth.metrics();
    let hits = after.cache_hits - before.cache_hits;
    let verified = after.local_verifications - before.local_verifications;
    println!("replay of {VALID} valid JWTs: {hits} cache hits, {verified} verified again");
    assert_eq!(hits + verified, VALID as u64);
    // The cache applies its bound in batches, so allow slack over the capacity; an
    // unbounded cache would answer all 500 from memory.
    assert!(
        hits <= VALID as u64 / 2,
        "{hits} of {VALID} replayed JWTs came from a cache of capacity {CAPACITY}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stress test, slow in debug builds: cargo test --release --test resource_bounds -- --ignored --nocapture"]
async fn flood_of_100k_tokens_keeps_memory_bounded() {
    let f = fixture_with(|b| {
        b.unverified_authentications_per_second(u32::MAX)
            .max_concurrent_unverified_authentications(1_000)
    })
    .await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let started = Instant::now();
    let flood = Arc::new(Flood::new(
        &f,
        vec![
            (Kind::RandomKid, 50_000),
            (Kind::BadSignature, 50_000),
            (Kind::UnknownSessionToken, 20_000),
            (Kind::Valid, 2_000),
        ],
    ));
    println!(
        "minted {} valid JWTs in {:.1?}",
        flood.count(Kind::Valid),
        started.elapsed()
    );

    let rss_before = rss_mb();
    let started = Instant::now();
    flood.send_all(&app, &f.member).await;
    let rss_first = rss_mb();
    let first = started.elapsed();
    // The same flood again: a bounded layer does not keep growing.
    flood.send_all(&app, &f.member).await;
    let rss_second = rss_mb();
    let m = f.auth.metrics();
    println!(
        "flood of {} credentials, twice: {first:.1?} for the first pass",
        flood.len()
    );
    println!(
        "RSS {rss_before:.1} MB -> {rss_first:.1} MB after the first pass (+{:.1} MB) \
         -> {rss_second:.1} MB after the second (+{:.1} MB)",
        rss_first - rss_before,
        rss_second - rss_first
    );
    println!(
        "calls to Stytch: {} authenticate, {} JWKS; {} local verifications, {} cache hits",
        f.emu.requests(Endpoint::Authenticate),
        f.emu.requests(Endpoint::Jwks),
        m.local_verifications,
        m.cache_hits
    );

    let growth = rss_second - rss_before;
    assert!(
        growth < RSS_BOUND_MB,
        "RSS grew by {growth:.1} MB (bound {RSS_BOUND_MB} MB)"
    );
    // Valid JWTs were answered from the cache on the second pass (2,000 < 10,000).
    assert!(m.cache_hits >= flood.count(Kind::Valid) as u64);
    // Unknown kids: the warm-up fetch plus at most one refresh (the clock is frozen).
    assert!(f.emu.requests(Endpoint::Jwks) <= 2);
    // Unknown session tokens: asked once each on the first pass; the second pass is
    // answered from the dead-credential cache for those it kept (at most 10,000).
    let tokens = flood.count(Kind::UnknownSessionToken) as u64;
    let calls = f.emu.requests(Endpoint::Authenticate);
    assert!(
        (tokens..2 * tokens).contains(&calls),
        "{calls} authenticate calls for {tokens} unknown tokens sent twice"
    );
}
