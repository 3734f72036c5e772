//! HTTP load harness: axum-stytch against bare axum and hand-written middlewares
//! (`jsonwebtoken`, aws-lc-rs with and without a token cache), side by side in one run.
//!
//! ```text
//! cargo run --release --example load_harness
//! ```
//!
//! The harness starts itself again as a server child process pinned to one core
//! (`LOAD_SERVER_CPU`, default 0). The child starts the in-process Stytch emulator,
//! mints thousands of distinct session JWTs (~1.4 KB each), loads the JWKS and the
//! RBAC policy, and serves thirteen apps on 127.0.0.1, one port each:
//!
//! | scenario | app | requests |
//! |---|---|---|
//! | `bare` | axum hello world | the repeated token's cookies (ignored) |
//! | `repeated` | axum-stytch layer + `AuthenticatedMember` handler | one JWT, repeated |
//! | `repeated_outer` | the same with the layer around the whole `Router` instead of `Router::layer` | one JWT, repeated |
//! | `repeated_redis` | `repeated` with `revocations_in_redis` (feature `redis`; `REDIS_URL`, or a `redis-server` it starts) | one JWT, repeated |
//! | `repeated_m2m` | axum-stytch layer with `m2m_tokens(true)` + an `M2mCaller` handler | one M2M token as `Authorization: Bearer`, repeated (no cookies) |
//! | `fresh` | the same, verified-token cache of 64 entries | 4,096 distinct JWTs, cycled |
//! | `rbac` | axum-stytch + `.route_layer(RequireAuthz::new("document", "read"))`, as in the README | one JWT, repeated |
//! | `rbac_handler` | the same guard on the handler: `get(handler.layer(RequireAuthz::new(..)))`, without the second boxing `route_layer` adds | one JWT, repeated |
//! | `rbac_extractor` | the same permission checked by the handler's `Authorized<ReadDocument>` extractor, no guard layer | one JWT, repeated |
//! | `jsonwebtoken` | hand-written middleware: `jsonwebtoken::decode` per request | 4,096 distinct JWTs, cycled |
//! | `aws_lc_direct` | hand-written middleware: aws-lc-rs RS256 on a key parsed once per `kid`, minimal claims (the per-request floor) | 4,096 distinct JWTs, cycled |
//! | `aws_lc_cached` | `aws_lc_direct` behind a `RwLock<HashMap>` of verified tokens, `exp` checked on a hit (our version of the issue's "hand-written middleware + a cache") | one JWT, repeated |
//! | `extension_only` | `Router::layer(Extension(member))` with a member verified at start-up: no cookie read, no lookup (axum's own layer for handing handlers a value) | one JWT, repeated (unread) |
//!
//! The parent is the load generator, pinned to another core (`LOAD_CLIENT_CPU`,
//! default 1): a closed-loop HTTP/1.1 keep-alive client on raw TCP (64 connections, one
//! request in flight each, pre-serialised requests) so that it costs far less per
//! request than the server. In each round, each scenario runs `LOAD_WARMUP_SECS` (2)
//! unmeasured, then `LOAD_SECS` (10) measured in slices of `LOAD_SLICE_SECS` (1) taken
//! in turn with the other scenarios, so that the machine's slow drifts (this VM's speed
//! wanders by ±15% over tens of seconds) fall on every scenario alike. The rounds are
//! repeated `LOAD_ROUNDS` (3) times, each starting one scenario later, and the medians of
//! the per-round ratios are reported.
//!
//! Environment: `LOAD_SECS`, `LOAD_WARMUP_SECS`, `LOAD_SLICE_SECS` (`0`: one contiguous
//! window per scenario), `LOAD_ROUNDS`, `LOAD_CONNECTIONS`
//! (64), `LOAD_TOKENS` (4096), `LOAD_SCENARIOS` (comma-separated subset, `bare`
//! always included), `LOAD_SERVER_CPU`, `LOAD_CLIENT_CPU`.
//!
//! Loopback only, bounded in time: a connection still waiting 5 s after its scenario
//! ended is abandoned (and counted as an error), the harness kills the server and
//! exits if the run overruns its plan by two minutes, and the server exits when the
//! harness goes away (its stdin closes) or at a deadline of its own.

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::{StatusCode, header::COOKIE};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum_stytch::testing::{EmulatorOptions, MockClock, StytchEmulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const SCENARIOS: [&str; 13] = [
    "bare",
    "repeated",
    "repeated_outer",
    // With `--features redis` only: `repeated` with the fleet's revocations in Redis.
    "repeated_redis",
    "repeated_m2m",
    "fresh",
    "rbac",
    "rbac_handler",
    "rbac_extractor",
    "jsonwebtoken",
    "aws_lc_direct",
    "aws_lc_cached",
    "extension_only",
];
const SESSIONS: usize = 64;
const FRESH_CACHE_CAPACITY: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        server::main(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: cargo run --release --example load_harness\n\
             env: LOAD_SECS (10) LOAD_WARMUP_SECS (2) LOAD_SLICE_SECS (1) LOAD_ROUNDS (3)\n\
             \x20    LOAD_CONNECTIONS (64)\n\
             \x20    LOAD_TOKENS (4096) LOAD_SCENARIOS ({}) LOAD_SERVER_CPU (0) LOAD_CLIENT_CPU (1)",
            SCENARIOS.join(",")
        );
        return;
    }
    client::main();
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// Pins the calling thread (and every thread it starts afterwards) to `cpu`.
fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty set; CPU_SET bounds-checks.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `Cpus_allowed_list` of a process (`self` or a pid), as the kernel reports it.
fn cpus_allowed(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

// ----------------------------------------------------------------------------------
// Server (child process)

mod server {
    use super::*;

    pub(super) fn main(args: &[String]) {
        let arg = |i: usize| -> u64 {
            args.get(i)
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("serve: argument {i} missing in {args:?}"))
        };
        let (cpu, tokens, lifetime_secs) = (arg(0), arg(1) as usize, arg(2));
        if cpu != u64::MAX
            && let Err(e) = pin_to_cpu(cpu as usize)
        {
            eprintln!("server: could not pin to CPU {cpu}: {e}");
        }
        // Exit when the harness goes away, or at the deadline whatever happens.
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            redis::stop();
            std::process::exit(0);
        });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(lifetime_secs));
            eprintln!("server: lifetime of {lifetime_secs} s reached, exiting");
            redis::stop();
            std::process::exit(3);
        });
        // The default multi-thread runtime: one worker per CPU it may run on.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(serve(tokens, lifetime_secs));
    }

    /// Checks that `service` answers `GET /` with `cookie` 200 (and, for the guarded
    /// apps, loads the RBAC policy).
    async fn assert_answers_ok<S>(name: &str, service: S, cookie: &str)
    where
        S: tower::Service<
                axum::extract::Request,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            >,
    {
        assert_header_ok(name, service, COOKIE, cookie).await;
    }

    /// Checks that `service` answers 200 to a `GET /` with `header: value`.
    async fn assert_header_ok<S>(
        name: &str,
        service: S,
        header: axum::http::HeaderName,
        value: &str,
    ) where
        S: tower::Service<
                axum::extract::Request,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            >,
    {
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/")
            .header(header, value)
            .body(axum::body::Body::empty())
            .expect("a request");
        let status = service.oneshot(req).await.expect("infallible").status();
        assert_eq!(status, StatusCode::OK, "{name} does not answer 200");
    }

    /// Serves `service` as `axum::serve` would a `Router`, on a new loopback port;
    /// returns `name=port`.
    async fn serve_on_loopback<S>(name: &str, service: S) -> String
    where
        S: tower::Service<
                axum::extract::Request,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(service);
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        format!("{name}={port}")
    }

    async fn serve(tokens: usize, lifetime_secs: u64) {
        let started = Instant::now();
        let span = common::Fixture::minting_seconds(SESSIONS, tokens);
        // Start the emulator's clock in the past so that every token is already issued
        // by the system clock too (the jsonwebtoken middleware reads that one).
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let clock = MockClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(secs - span - 1));
        let emulator =
            StytchEmulator::start_with(EmulatorOptions::new().clock(clock.clone())).await;
        let fixture = common::Fixture::with_emulator(emulator, SESSIONS, tokens);
        let minted = started.elapsed();

        let repeated_auth = fixture.auth(10_000).await;
        #[cfg(feature = "redis")]
        let redis_auth = fixture
            .auth_with(10_000, |b| b.revocations_in_redis(redis::url()))
            .await;
        let fresh_auth = fixture.auth(FRESH_CACHE_CAPACITY).await;
        let rbac_auth = fixture.auth(10_000).await;
        let rbac_handler_auth = fixture.auth(10_000).await;
        let rbac_extractor_auth = fixture.auth(10_000).await;
        let m2m_auth = fixture.auth_with(10_000, |b| b.m2m_tokens(true)).await;
        let m2m_client = fixture.emulator.create_m2m_client(&["read:documents"]);
        let m2m_token = fixture.emulator.mint_m2m_token(&m2m_client.client_id, None);
        // The hand-written apps check exp against the system clock; the leeway covers
        // the tokens' 300 s lifetime being shorter than a long run.
        let references = common::reference::References::new(&fixture, 5 + lifetime_secs).await;

        let bare = common::bare_app();
        let repeated = common::member_app(&repeated_auth);
        #[cfg(feature = "redis")]
        let repeated_redis = common::member_app(&redis_auth);
        let outer_auth = fixture.auth(10_000).await;
        let repeated_outer = common::member_app_outer(&outer_auth);
        let fresh = common::member_app(&fresh_auth);
        let rbac = common::rbac_app(&rbac_auth);
        let rbac_handler = common::rbac_handler_app(&rbac_handler_auth);
        let rbac_extractor = common::rbac_extractor_app(&rbac_extractor_auth);
        let repeated_m2m = common::m2m_app(&m2m_auth);
        let jsonwebtoken = references.jsonwebtoken;
        let aws_lc_direct = references.aws_lc_direct;
        let aws_lc_cached = references.aws_lc_cached;
        let extension_only = references.extension_only;

        // Load the RBAC policy (and check every app answers 200) before any load.
        let cookie = common::cookie_header(fixture.repeated(), &fixture.sessions[0].session_token);
        for (name, app) in [
            ("bare", &bare),
            ("repeated", &repeated),
            ("fresh", &fresh),
            ("rbac", &rbac),
            ("rbac_handler", &rbac_handler),
            ("rbac_extractor", &rbac_extractor),
            ("jsonwebtoken", &jsonwebtoken),
            ("aws_lc_direct", &aws_lc_direct),
            ("aws_lc_cached", &aws_lc_cached),
            ("extension_only", &extension_only),
        ] {
            assert_answers_ok(name, app.clone(), &cookie).await;
        }
        assert_answers_ok("repeated_outer", repeated_outer.clone(), &cookie).await;
        let bearer = format!("Bearer {m2m_token}");
        assert_header_ok(
            "repeated_m2m",
            repeated_m2m.clone(),
            axum::http::header::AUTHORIZATION,
            &bearer,
        )
        .await;
        #[cfg(feature = "redis")]
        assert_answers_ok("repeated_redis", repeated_redis.clone(), &cookie).await;

        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut auths = vec![
            ("repeated", repeated_auth),
            ("repeated_outer", outer_auth),
            ("fresh", fresh_auth),
            ("rbac", rbac_auth),
            ("rbac_handler", rbac_handler_auth),
            ("rbac_extractor", rbac_extractor_auth),
            ("repeated_m2m", m2m_auth),
        ];
        #[cfg(feature = "redis")]
        auths.push(("repeated_redis", redis_auth));
        let counters = references.jsonwebtoken_counters;
        let direct_counters = references.aws_lc_direct_counters;
        let cached_counters = references.aws_lc_cached_counters;
        let stats = Router::new().route(
            "/stats",
            get(move || {
                let mut out = String::new();
                for (name, auth) in &auths {
                    let m = auth.metrics();
                    let failures: u64 = m.failures().map(|(_, n)| n).sum();
                    out.push_str(&format!(
                        "{name} {} {} {} {failures} {} {}\n",
                        m.local_verifications,
                        m.cache_hits,
                        m.remote_authentications,
                        m.policy_fetches,
                        m.jwks_fetches
                    ));
                }
                for (name, c) in [
                    ("jsonwebtoken", &counters),
                    ("aws_lc_direct", &direct_counters),
                    ("aws_lc_cached", &cached_counters),
                ] {
                    out.push_str(&format!(
                        "{name} {} {} 0 {} 0 0\n",
                        c.verified.load(Ordering::Relaxed),
                        c.hits.load(Ordering::Relaxed),
                        c.rejected.load(Ordering::Relaxed)
                    ));
                }
                async move { out }
            }),
        );

        let mut ports = Vec::new();
        for (name, app) in [
            ("bare", bare),
            ("repeated", repeated),
            ("fresh", fresh),
            ("rbac", rbac),
            ("rbac_handler", rbac_handler),
            ("rbac_extractor", rbac_extractor),
            ("jsonwebtoken", jsonwebtoken),
            ("aws_lc_direct", aws_lc_direct),
            ("aws_lc_cached", aws_lc_cached),
            ("extension_only", extension_only),
            ("stats", stats),
        ] {
            ports.push(serve_on_loopback(name, app).await);
        }
        ports.push(serve_on_loopback("repeated_outer", repeated_outer).await);
        ports.push(serve_on_loopback("repeated_m2m", repeated_m2m).await);
        #[cfg(feature = "redis")]
        ports.push(serve_on_loopback("repeated_redis", repeated_redis).await);

        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "READY {} workers={workers} cpus={} minted_in_ms={} jwt_bytes={}",
            ports.join(" "),
            cpus_allowed("self"),
            minted.as_millis(),
            fixture.repeated().len(),
        )
        .expect("stdout");
        writeln!(out, "TOKENS {}", fixture.fresh.len()).expect("stdout");
        for (i, jwt) in fixture.fresh.iter().enumerate() {
            let token = &fixture.sessions[i % fixture.sessions.len()].session_token;
            writeln!(out, "{jwt} {token}").expect("stdout");
        }
        writeln!(out, "M2M {m2m_token}").expect("stdout");
        out.flush().expect("stdout");
        drop(out);
        // Serve until the harness closes stdin (or the lifetime ends).
        std::future::pending::<()>().await;
    }
}

// ----------------------------------------------------------------------------------
// Load generator (parent process)

mod client {
    use super::*;

    struct Config {
        secs: u64,
        warmup_secs: u64,
        /// Measured seconds per slice: a round runs every scenario for one slice, then
        /// again, until each has `secs`. `0`: one contiguous window per scenario.
        slice_secs: u64,
        rounds: usize,
        connections: usize,
        tokens: usize,
        scenarios: Vec<&'static str>,
        server_cpu: usize,
        client_cpu: usize,
    }

    impl Config {
        fn from_env() -> Self {
            let wanted: String = env_or("LOAD_SCENARIOS", SCENARIOS.join(","));
            let mut scenarios: Vec<&'static str> = SCENARIOS
                .iter()
                .copied()
                .filter(|s| *s == "bare" || wanted.split(',').any(|w| w.trim() == *s))
                .filter(|s| cfg!(feature = "redis") || *s != "repeated_redis")
                .collect();
            scenarios.dedup();
            Self {
                secs: env_or("LOAD_SECS", 10u64).max(1),
                warmup_secs: env_or("LOAD_WARMUP_SECS", 2u64),
                slice_secs: env_or("LOAD_SLICE_SECS", 1u64),
                rounds: env_or("LOAD_ROUNDS", 3usize).max(1),
                connections: env_or("LOAD_CONNECTIONS", 64usize).max(1),
                tokens: env_or("LOAD_TOKENS", 4096usize).clamp(1, 12_800),
                scenarios,
                server_cpu: env_or("LOAD_SERVER_CPU", 0usize),
                client_cpu: env_or("LOAD_CLIENT_CPU", 1usize),
            }
        }

        /// The measured length of each slice of a scenario in a round.
        fn slices(&self) -> Vec<Duration> {
            let slice = if self.slice_secs == 0 {
                self.secs
            } else {
                self.slice_secs.min(self.secs)
            };
            let mut left = self.secs;
            let mut out = Vec::new();
            while left > 0 {
                let this = slice.min(left);
                out.push(Duration::from_secs(this));
                left -= this;
            }
            out
        }

        fn planned(&self) -> Duration {
            let per_scenario = Duration::from_secs(self.secs + self.warmup_secs)
                + SLICE_SETTLE * (self.slices().len() as u32 - 1);
            per_scenario * (self.rounds * self.scenarios.len()) as u32
        }
    }

    /// Unmeasured time at the start of every slice after a scenario's first (its
    /// connections are opened again).
    const SLICE_SETTLE: Duration = Duration::from_millis(300);

    /// One measured window of one scenario.
    struct Window {
        latencies: Vec<u64>,
        errors: u64,
        measured: Duration,
        server_secs: f64,
        client_secs: f64,
        steal_secs: f64,
        wall_secs: f64,
    }

    /// One scenario's measured window.
    struct Sample {
        requests: u64,
        errors: u64,
        rps: f64,
        p50_us: f64,
        p99_us: f64,
        server_cpu: f64,
        /// Server CPU time (user + system) per answered request, in µs: unlike req/s,
        /// not lowered when other processes take CPU time from the server's core.
        server_us: f64,
        client_cpu: f64,
        /// Share of the server core's time the hypervisor took (steal).
        steal: f64,
        /// Deltas of the server's counters: (verified locally, cache hits, remote, failures).
        counters: Option<[u64; 4]>,
    }

    pub(super) fn main() {
        let cfg = Config::from_env();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinned = cores >= 2;
        if pinned {
            pin_to_cpu(cfg.client_cpu).expect("pin the load generator");
        } else {
            eprintln!("only {cores} CPU available: server and load generator run unpinned");
        }
        let lifetime = cfg.planned() + Duration::from_secs(180);
        let exe = std::env::current_exe().expect("own executable");
        let server_cpu = if pinned {
            cfg.server_cpu.to_string()
        } else {
            u64::MAX.to_string()
        };
        eprintln!(
            "starting the server (minting {} JWTs, this takes a few seconds)...",
            cfg.tokens
        );
        let mut child = Command::new(exe)
            .args([
                "serve".to_owned(),
                server_cpu,
                cfg.tokens.to_string(),
                lifetime.as_secs().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server");
        let child_pid = child.id();
        // Watchdog: never run past the plan by more than two minutes.
        let overrun = cfg.planned() + Duration::from_secs(120);
        std::thread::spawn(move || {
            std::thread::sleep(overrun);
            eprintln!("load harness overran its plan; killing the server and exiting");
            // SAFETY: kill(2) on the pid of our own child.
            unsafe { libc::kill(child_pid as libc::pid_t, libc::SIGKILL) };
            std::process::exit(2);
        });

        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server output");
        let Some(ready) = line.strip_prefix("READY ") else {
            let _ = child.kill();
            panic!("the server did not start: {line:?}");
        };
        let info: BTreeMap<String, String> = ready
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        line.clear();
        stdout.read_line(&mut line).expect("server output");
        let count: usize = line
            .trim()
            .strip_prefix("TOKENS ")
            .and_then(|n| n.parse().ok())
            .expect("TOKENS line");
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count {
            line.clear();
            stdout.read_line(&mut line).expect("server output");
            let (jwt, token) = line.trim().split_once(' ').expect("jwt and session token");
            tokens.push((jwt.to_owned(), token.to_owned()));
        }
        let distinct: std::collections::HashSet<&str> =
            tokens.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(distinct.len(), tokens.len(), "minted JWTs must be distinct");
        line.clear();
        stdout.read_line(&mut line).expect("server output");
        let m2m_token = line
            .trim()
            .strip_prefix("M2M ")
            .expect("M2M line")
            .to_owned();

        let port = |name: &str| -> u16 {
            info.get(name)
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port for {name}"))
        };
        let addr = |name: &str| SocketAddr::from(([127, 0, 0, 1], port(name)));
        let stats_addr = addr("stats");
        let request = |addr: SocketAddr, jwt: &str, token: &str| -> Vec<u8> {
            format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: axum-stytch-load-harness\r\n\
                 Accept: */*\r\nCookie: {}\r\n\r\n",
                common::cookie_header(jwt, token)
            )
            .into_bytes()
        };
        let (jwt0, token0) = &tokens[0];
        let requests: BTreeMap<&str, Arc<Vec<Vec<u8>>>> = cfg
            .scenarios
            .iter()
            .map(|&name| {
                let a = addr(name);
                                let set = match name {
                    "fresh" | "jsonwebtoken" | "aws_lc_direct" => {
                        tokens.iter().map(|(j, t)| request(a, j, t)).collect()
                    }
                    // A service's request: the token, no browser cookies.
                    "repeated_m2m" => vec![
                        format!(
                            "GET / HTTP/1.1\r\nHost: {a}\r\nUser-Agent: axum-stytch-load-harness\r\n\
                             Accept: */*\r\nAuthorization: Bearer {m2m_token}\r\n\r\n"
                        )
                        .into_bytes(),
                    ],
                    _ => vec![request(a, jwt0, token0)],
                };
                (name, Arc::new(set))
            })
            .collect();

        println!("# axum-stytch load harness");
        println!(
            "machine: {cores} CPUs; server pinned to CPU {} ({} tokio worker(s), allowed CPUs {}), \
             load generator pinned to CPU {} (allowed CPUs {}){}",
            cfg.server_cpu,
            info.get("workers").map_or("?", String::as_str),
            info.get("cpus").map_or("?", String::as_str),
            cfg.client_cpu,
            cpus_allowed("self"),
            if pinned { "" } else { " [UNPINNED]" }
        );
        println!(
            "load: {} connections, HTTP/1.1 keep-alive, {} s warm-up + {} s measured per scenario \
             and round, in slices of {} s taken in turn; {} rounds; JWT {} bytes, request {} bytes; \
             {} distinct JWTs ({} ms to mint); load average at start: {}",
            cfg.connections,
            cfg.warmup_secs,
            cfg.secs,
            cfg.slices().first().map_or(0, Duration::as_secs),
            cfg.rounds,
            info.get("jwt_bytes").map_or("?", String::as_str),
            requests["bare"][0].len(),
            tokens.len(),
            info.get("minted_in_ms").map_or("?", String::as_str),
            loadavg()
        );

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut results: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
        for round in 0..cfg.rounds {
            println!("\n## round {}", round + 1);
            header();
            let n = cfg.scenarios.len();
            let order: Vec<&str> = (0..n).map(|k| cfg.scenarios[(round + k) % n]).collect();
            let before = rt.block_on(server_counters(stats_addr));
            let mut windows: BTreeMap<&str, Vec<Window>> = BTreeMap::new();
            for (i, measured) in cfg.slices().into_iter().enumerate() {
                for &name in &order {
                    let warmup = if i == 0 {
                        Duration::from_secs(cfg.warmup_secs)
                    } else {
                        SLICE_SETTLE
                    };
                    let window = rt.block_on(run_window(
                        addr(name),
                        Arc::clone(&requests[name]),
                        &cfg,
                        child_pid,
                        warmup,
                        measured,
                    ));
                    windows.entry(name).or_default().push(window);
                }
            }
            let after = rt.block_on(server_counters(stats_addr));
            for &name in &order {
                let sample = Sample {
                    counters: match (before.get(name), after.get(name)) {
                        (Some(b), Some(a)) => Some([0, 1, 2, 3].map(|i| a[i] - b[i])),
                        _ => None,
                    },
                    ..Sample::from_windows(windows.remove(name).unwrap_or_default())
                };
                row(name, &sample, None);
                results.entry(name).or_default().push(sample);
            }
        }

        println!(
            "\n## medians over {} rounds (ratio: median of the per-round ratios to bare)",
            cfg.rounds
        );
        header();
        let bare = &results["bare"];
        let mut ratios: BTreeMap<&str, f64> = BTreeMap::new();
        let mut cost_ratios: BTreeMap<&str, f64> = BTreeMap::new();
        for name in &cfg.scenarios {
            let samples = &results[name];
            let ratio = median(
                samples
                    .iter()
                    .zip(bare)
                    .map(|(s, b)| s.rps / b.rps)
                    .collect(),
            );
            ratios.insert(name, ratio);
            let cost_ratio = median(
                samples
                    .iter()
                    .zip(bare)
                    .map(|(s, b)| b.server_us / s.server_us)
                    .collect(),
            );
            cost_ratios.insert(name, cost_ratio);
            let med = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
            let summed = |i: usize| {
                samples
                    .iter()
                    .filter_map(|s| s.counters)
                    .map(|c| c[i])
                    .sum()
            };
            let sample = Sample {
                requests: samples.iter().map(|s| s.requests).sum(),
                errors: samples.iter().map(|s| s.errors).sum(),
                rps: med(|s| s.rps),
                p50_us: med(|s| s.p50_us),
                p99_us: med(|s| s.p99_us),
                server_cpu: med(|s| s.server_cpu),
                server_us: med(|s| s.server_us),
                client_cpu: med(|s| s.client_cpu),
                steal: med(|s| s.steal),
                counters: samples[0]
                    .counters
                    .map(|_| [summed(0), summed(1), summed(2), summed(3)]),
            };
            row(name, &sample, Some((ratio, cost_ratio)));
        }
        let pair = |a: &str, b: &str, f: fn(&Sample, &Sample) -> f64| -> Option<f64> {
            Some(median(
                results
                    .get(a)?
                    .iter()
                    .zip(results.get(b)?)
                    .map(|(x, y)| f(x, y))
                    .collect(),
            ))
        };
        println!(
            "\n## issue 7 targets (req/s ratio; in brackets the server-CPU-per-request ratio, which \
             CPU contention from other processes does not lower)"
        );
        let check = |what: &str, got: Option<f64>, by_cost: Option<f64>, target: f64| {
            let Some(got) = got else { return };
            let verdict = if got >= target {
                "met".to_owned()
            } else {
                format!("MISSED by {:.0}%", (1.0 - got / target) * 100.0)
            };
            let by_cost = by_cost.map_or_else(String::new, |c| format!("[{c:.2}x]"));
            println!("{what:<44} {got:>5.2}x {by_cost:>8}  (target >= {target:.2}x)  {verdict}");
        };
        let rps = |x: &Sample, y: &Sample| x.rps / y.rps;
        let cost = |x: &Sample, y: &Sample| y.server_us / x.server_us;
        let vs_bare = |s: &str| (ratios.get(s).copied(), cost_ratios.get(s).copied());
        let vs_jsonwebtoken = (
            pair("fresh", "jsonwebtoken", rps),
            pair("fresh", "jsonwebtoken", cost),
        );
        for (what, (got, by_cost), target) in [
            ("repeated tokens vs bare", vs_bare("repeated"), 0.90),
            ("fresh tokens vs bare", vs_bare("fresh"), 0.30),
            (
                "fresh tokens vs hand-written jsonwebtoken",
                vs_jsonwebtoken,
                1.35,
            ),
            (
                "RBAC-guarded route, repeated tokens vs bare",
                vs_bare("rbac"),
                0.85,
            ),
            (
                "RBAC, guard as Handler::layer, vs bare",
                vs_bare("rbac_handler"),
                0.85,
            ),
            (
                "RBAC, Authorized<P> extractor, vs bare",
                vs_bare("rbac_extractor"),
                0.85,
            ),
        ] {
            check(what, got, by_cost, target);
        }
        for (a, b, meaning) in [
            (
                "repeated_redis",
                "repeated",
                "the fleet's revocations in Redis: nothing on the request path",
            ),
            ("rbac_handler", "repeated", "the guard's own cost"),
            (
                "repeated_m2m",
                "repeated",
                "a repeated M2M bearer token against a repeated session JWT cookie",
            ),
            (
                "repeated_outer",
                "repeated",
                "the layer around the Router, not on its routes",
            ),
            (
                "rbac",
                "rbac_handler",
                "what route_layer's extra boxing costs",
            ),
            (
                "aws_lc_direct",
                "jsonwebtoken",
                "what verifying every request can reach",
            ),
            (
                "repeated",
                "aws_lc_cached",
                "the layer against a hand-written middleware + cache",
            ),
            (
                "repeated",
                "extension_only",
                "the layer against axum's Extension layer",
            ),
        ] {
            if let (Some(r), Some(c)) = (pair(a, b, rps), pair(a, b, cost)) {
                let what = format!("reference: {a} vs {b}");
                println!("{what:<44} {r:>5.2}x [{c:.2}x]  ({meaning})");
            }
        }
        println!("\nload average at end: {}", loadavg());

        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn header() {
        println!(
            "{:<14} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>6}  server counters",
            "scenario",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs bare",
            "srv µs",
            "(cost)",
            "srv CPU",
            "gen CPU",
            "steal",
            "requests",
            "errors"
        );
    }

    fn row(name: &str, s: &Sample, ratios: Option<(f64, f64)>) {
        let (ratio, cost) = ratios.map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |(r, c)| (format!("{r:.2}x"), format!("[{c:.2}x]")),
        );
        let counters = s.counters.map_or_else(
            || "-".to_owned(),
            |c| format!("{}/{}/{}/{}", c[0], c[1], c[2], c[3]),
        );
        println!(
            "{name:<14} {:>9.0} {:>8.3} {:>8.3} {ratio:>8} {:>8.1} {cost:>8} {:>7.0}% {:>7.0}% {:>5.1}% {:>9} {:>6}  {counters}",
            s.rps,
            s.p50_us / 1000.0,
            s.p99_us / 1000.0,
            s.server_us,
            s.server_cpu * 100.0,
            s.client_cpu * 100.0,
            s.steal * 100.0,
            s.requests,
            s.errors
        );
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    fn loadavg() -> String {
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into())
    }

    /// Seconds the hypervisor took from `cpu` (the `steal` column of /proc/stat).
    fn steal_seconds(cpu: usize) -> f64 {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let label = format!("cpu{cpu} ");
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        stat.lines()
            .find_map(|l| l.strip_prefix(&label))
            .and_then(|rest| rest.split_whitespace().nth(7))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |t| t / ticks)
    }

    /// CPU seconds (user + system) a process has used.
    fn cpu_seconds(pid: &str) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15; `rest` starts at field 3.
        (field(11) + field(12)) / ticks
    }

    async fn run_window(
        addr: SocketAddr,
        requests: Arc<Vec<Vec<u8>>>,
        cfg: &Config,
        server_pid: u32,
        warmup: Duration,
        measured: Duration,
    ) -> Window {
        let start = Instant::now();
        let measure_from = start + warmup;
        let end = measure_from + measured;
        let tasks: Vec<_> = (0..cfg.connections)
            .map(|c| {
                let requests = Arc::clone(&requests);
                let step = cfg.connections;
                tokio::spawn(connection(addr, requests, c, step, measure_from, end))
            })
            .collect();
        tokio::time::sleep_until(measure_from.into()).await;
        let server = server_pid.to_string();
        let steal0 = steal_seconds(cfg.server_cpu);
        let (srv0, gen0, t0) = (cpu_seconds(&server), cpu_seconds("self"), Instant::now());
        tokio::time::sleep_until(end.into()).await;
        let (srv1, gen1, t1) = (cpu_seconds(&server), cpu_seconds("self"), Instant::now());
        let steal1 = steal_seconds(cfg.server_cpu);
        let mut latencies = Vec::new();
        let mut errors = 0;
        // No per-request timer (it would cost the generator CPU time): a connection
        // still waiting for an answer this long after the window is abandoned.
        let give_up = tokio::time::Instant::from(end + REQUEST_TIMEOUT);
        for mut task in tasks {
            match tokio::time::timeout_at(give_up, &mut task).await {
                Ok(result) => {
                    let (lat, err) = result.expect("connection task");
                    latencies.extend(lat);
                    errors += err;
                }
                Err(_) => {
                    task.abort();
                    errors += 1;
                }
            }
        }
        Window {
            latencies,
            errors,
            measured,
            server_secs: srv1 - srv0,
            client_secs: gen1 - gen0,
            steal_secs: steal1 - steal0,
            wall_secs: (t1 - t0).as_secs_f64(),
        }
    }

    impl Sample {
        /// The windows of one scenario in one round, taken together.
        fn from_windows(windows: Vec<Window>) -> Self {
            let mut latencies: Vec<u64> = Vec::new();
            let (mut errors, mut measured) = (0, Duration::ZERO);
            let (mut srv, mut gen_, mut steal, mut wall) = (0.0, 0.0, 0.0, 0.0);
            for w in windows {
                latencies.extend(w.latencies);
                errors += w.errors;
                measured += w.measured;
                srv += w.server_secs;
                gen_ += w.client_secs;
                steal += w.steal_secs;
                wall += w.wall_secs;
            }
            latencies.sort_unstable();
            let pct = |p: f64| -> f64 {
                if latencies.is_empty() {
                    f64::NAN
                } else {
                    let i = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
                    latencies[i] as f64 / 1000.0
                }
            };
            let wall = if wall > 0.0 { wall } else { f64::NAN };
            Sample {
                requests: latencies.len() as u64,
                errors,
                rps: latencies.len() as f64 / measured.as_secs_f64(),
                p50_us: pct(0.50),
                p99_us: pct(0.99),
                server_cpu: srv / wall,
                server_us: srv * 1e6 / latencies.len().max(1) as f64,
                client_cpu: gen_ / wall,
                steal: steal / wall,
                counters: None,
            }
        }
    }

    /// One keep-alive connection, one request in flight: returns the latencies (ns) of
    /// the requests sent and answered 200 within the measured window, and the count of
    /// failures (non-200, errors, timeouts) in it.
    async fn connection(
        addr: SocketAddr,
        requests: Arc<Vec<Vec<u8>>>,
        first: usize,
        step: usize,
        measure_from: Instant,
        end: Instant,
    ) -> (Vec<u64>, u64) {
        let mut latencies = Vec::with_capacity(64 * 1024);
        let mut errors = 0;
        let mut next = first % requests.len();
        let mut buf = Vec::with_capacity(8 * 1024);
        let mut stream: Option<TcpStream> = None;
        loop {
            let sent = Instant::now();
            if sent >= end {
                break;
            }
            if stream.is_none() {
                match tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        stream = Some(s);
                    }
                    _ => {
                        if sent >= measure_from {
                            errors += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
            let Some(conn) = stream.as_mut() else {
                continue;
            };
            let req = &requests[next];
            next = (next + step) % requests.len();
            let outcome = async {
                conn.write_all(req).await?;
                read_response(conn, &mut buf).await
            }
            .await;
            let done = Instant::now();
            let ok = matches!(outcome, Ok(200));
            if outcome.is_err() {
                stream = None;
            }
            if sent >= measure_from && done <= end {
                if ok {
                    latencies.push((done - sent).as_nanos() as u64);
                } else {
                    errors += 1;
                }
            }
        }
        (latencies, errors)
    }

    /// Reads one HTTP/1.1 response with a `Content-Length` body; returns its status.
    async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
        use std::io::{Error, ErrorKind};
        buf.clear();
        loop {
            if let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..head_len])
                    .map_err(|_| Error::new(ErrorKind::InvalidData, "non-UTF-8 head"))?;
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status"))?;
                let length: usize = head
                    .split("\r\n")
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no content-length"))?;
                let total = head_len + 4 + length;
                while buf.len() < total {
                    buf.reserve(total - buf.len());
                    if stream.read_buf(buf).await? == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                }
                if buf.len() > total {
                    return Err(Error::new(ErrorKind::InvalidData, "unexpected extra bytes"));
                }
                return Ok(status);
            }
            buf.reserve(4096);
            if stream.read_buf(buf).await? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// The server's counters by scenario: (verified, cached, remote, failures).
    async fn server_counters(addr: SocketAddr) -> BTreeMap<String, [u64; 4]> {
        let fetch = async {
            let mut s = TcpStream::connect(addr).await?;
            s.write_all(b"GET /stats HTTP/1.1\r\nHost: stats\r\nConnection: close\r\n\r\n")
                .await?;
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
        };
        let text = match tokio::time::timeout(REQUEST_TIMEOUT, fetch).await {
            Ok(Ok(t)) => t,
            _ => return BTreeMap::new(),
        };
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        body.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let name = it.next()?.to_owned();
                let v: Vec<u64> = it.filter_map(|n| n.parse().ok()).collect();
                Some((name, [*v.first()?, *v.get(1)?, *v.get(2)?, *v.get(3)?]))
            })
            .collect()
    }
}

/// The `repeated_redis` scenario's Redis: `REDIS_URL`, or a `redis-server` the server
/// process starts (and stops before it exits).
mod redis {
    #[cfg(feature = "redis")]
    static CHILD: std::sync::Mutex<Option<std::process::Child>> = std::sync::Mutex::new(None);

    /// The URL, starting a server when `REDIS_URL` is not set.
    #[cfg(feature = "redis")]
    pub fn url() -> String {
        if let Ok(url) = std::env::var("REDIS_URL") {
            return url;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server), or set REDIS_URL");
        *CHILD.lock().expect("the child") = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        format!("redis://127.0.0.1:{port}")
    }

    /// Stops the server started by [`url`], if any.
    pub fn stop() {
        #[cfg(feature = "redis")]
        if let Some(mut child) = CHILD.lock().ok().and_then(|mut c| c.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
