//! Instructions and heap allocations per request, counted by valgrind's callgrind:
//! figures that do not move with the machine's load, next to the criterion benches and
//! the load harness, whose timings on this VM wander by ±15%.
//!
//! ```text
//! cargo run --release --example instruction_counts
//! ```
//!
//! Needs `valgrind` on the `PATH` (Debian: `apt-get install valgrind`). For each
//! scenario the tool runs itself under `valgrind --tool=callgrind`, builds the app,
//! sends it some requests to warm its caches, and then sends five loops of
//! `INSTR_REQUESTS` (default 1,000) requests, in-process through
//! `tower::ServiceExt::oneshot` (no sockets, no HTTP parsing: the kernel and hyper
//! work that makes up most of a served request is not counted). Callgrind counts only
//! inside those loops and writes each loop's counts apart (`--dump-after`).
//! Instructions: the median loop's, per request, with the spread between the loops.
//! Allocations: calls to `malloc`, `calloc`, `realloc` and `posix_memalign` per request,
//! over the loops after the first (whose part also records the calls made before
//! counting began). About a minute in all.
//!
//! The scenarios are those of the load harness (`examples/load_harness.rs`), built by
//! the same code (`benches/common`), with fewer distinct tokens: 128 instead of 4,096,
//! and a 16-entry cache for `fresh`, whose line shows how many requests hit that cache.
//!
//! Two caveats. Valgrind's virtual CPU has no AVX-512, so code that picks its
//! implementation from the CPU's features (aws-lc-rs's RSA, memchr) runs its AVX2 path
//! here: the RSA scenarios' counts describe that path. And an instruction count is not
//! a time: a cache miss or an atomic read-modify-write costs many cycles for one
//! instruction. Use the counts to see where work goes and to catch regressions, the
//! harness for what a request costs.

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::Command;

use axum::Router;
use axum::body::Body;
use axum::http::header::{AUTHORIZATION, COOKIE, HeaderName};
use axum::http::{HeaderValue, Request, StatusCode};
use axum_stytch::StytchAuth;
use axum_stytch::layer::StytchAuthService;
use tower::ServiceExt as _;

const SCENARIOS: [&str; 12] = [
    "bare",
    "repeated",
    "repeated_outer",
    "repeated_m2m",
    "rbac",
    "rbac_handler",
    "rbac_extractor",
    "fresh",
    "jsonwebtoken",
    "aws_lc_direct",
    "aws_lc_cached",
    "extension_only",
];
const SESSIONS: usize = 64;
const TOKENS: usize = 128;
const FRESH_CACHE_CAPACITY: usize = 16;
const WARM_UP_REQUESTS: usize = 300;
/// Counted loops per scenario, each dumped by callgrind as a part of its own.
const CHUNKS: usize = 5;
/// The counted function, as callgrind names it.
const MEASURED: &str = "instruction_counts::measured_requests";
/// Functions whose calls are counted as heap allocations.
const ALLOCATORS: [&str; 4] = ["malloc", "calloc", "realloc", "posix_memalign"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("measure") => {
            let scenario = args.get(2).expect("measure: a scenario");
            let requests = args
                .get(3)
                .and_then(|n| n.parse().ok())
                .expect("measure: a number of requests");
            measure(scenario, requests);
        }
        Some("-h" | "--help") => println!(
            "usage: cargo run --release --example instruction_counts\n\
             env: INSTR_REQUESTS (1000) INSTR_SCENARIOS ({})",
            SCENARIOS.join(",")
        ),
        _ => report(),
    }
}

/// The parent: one callgrind run per scenario, then the table.
fn report() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("instruction_counts needs valgrind on the PATH (apt-get install valgrind)");
        std::process::exit(2);
    }
    let requests: usize = std::env::var("INSTR_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("INSTR_REQUESTS: a number"))
        .unwrap_or(1_000);
    let chosen = std::env::var("INSTR_SCENARIOS").ok();
    let scenarios: Vec<&str> = SCENARIOS
        .into_iter()
        .filter(|s| {
            *s == "bare"
                || chosen
                    .as_deref()
                    .is_none_or(|c| c.split(',').any(|x| x.trim() == *s))
        })
        .collect();
    let exe = std::env::current_exe().expect("the current executable");
    let dir = std::env::temp_dir().join(format!("axum-stytch-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");

    println!(
        "{CHUNKS} counted loops of {requests} requests per scenario, in-process (`oneshot`), \
         counted by callgrind; instructions: the median loop's, and the spread between \
         loops\n"
    );
    println!(
        "| scenario | instructions / request | spread | vs bare | allocations / request | vs bare | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut bare: Option<(f64, f64)> = None;
    for scenario in scenarios {
        let out = dir.join(format!("{scenario}.callgrind"));
        let run = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg("--collect-atstart=no")
            .arg(format!("--toggle-collect={MEASURED}"))
            .arg(format!("--dump-after={MEASURED}"))
            .arg(&exe)
            .args(["measure", scenario, &requests.to_string()])
            .output()
            .expect("valgrind runs");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            run.status.success(),
            "{scenario} failed under valgrind:\n{stderr}"
        );
        // One part per counted loop: `<out>.1` to `<out>.CHUNKS`.
        let parts: Vec<(u64, u64)> = (1..=CHUNKS)
            .map(|k| {
                let part = std::fs::read_to_string(format!("{}.{k}", out.display()))
                    .expect("a callgrind part per counted loop");
                (
                    summary(&part).expect("a `summary:` line"),
                    allocator_calls(&part),
                )
            })
            .collect();
        let per = |n: u64| n as f64 / requests as f64;
        let mut instructions: Vec<f64> = parts.iter().map(|p| per(p.0)).collect();
        instructions.sort_by(f64::total_cmp);
        let i = instructions[instructions.len() / 2];
        let spread = instructions[instructions.len() - 1] - instructions[0];
        // The first part also holds the calls made before counting started (callgrind
        // records calls outside the counted function too).
        let a = per(parts[1..].iter().map(|p| p.1).sum::<u64>()) / (CHUNKS - 1) as f64;
        let (di, da) = match bare {
            None => {
                bare = Some((i, a));
                ("-".to_owned(), "-".to_owned())
            }
            Some((bi, ba)) => (format!("{:+.0}", i - bi), format!("{:+.1}", a - ba)),
        };
        let notes = String::from_utf8_lossy(&run.stdout).trim().to_owned();
        println!("| {scenario} | {i:.0} | {spread:.0} | {di} | {a:.1} | {da} | {notes} |");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `summary: N` line of a callgrind part: instructions counted in it.
fn summary(part: &str) -> Option<u64> {
    part.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Calls to the allocator's functions recorded in a callgrind part. Function names are
/// compressed: `cfn=(id) name` the first time, `cfn=(id)` afterwards (one id space
/// shared with `fn=`); each `calls=N ...` line counts calls to the last `cfn`.
fn allocator_calls(text: &str) -> u64 {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut callee: Option<&str> = None;
    let mut total = 0;
    for line in text.lines() {
        let (is_call, rest) = if let Some(rest) = line.strip_prefix("cfn=") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("fn=") {
            (false, rest)
        } else {
            if let (Some(calls), Some(name)) = (line.strip_prefix("calls="), callee)
                && ALLOCATORS.contains(&name)
            {
                total += calls
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("a call count");
            }
            continue;
        };
        let (id, name) = match rest.split_once(' ') {
            Some((id, name)) => {
                names.insert(id, name);
                (id, Some(name))
            }
            None => (rest, None),
        };
        if is_call {
            callee = name.or_else(|| names.get(id).copied());
        }
    }
    total
}

/// The child, under callgrind: builds `scenario`'s app, warms it up, then sends
/// `requests` requests inside [`measured_requests`], the only function counted.
fn measure(scenario: &str, requests: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let fixture = rt.block_on(common::Fixture::new(SESSIONS, TOKENS));
    // Each request's credential header: a browser's cookies, or a service's token.
    let mut headers: Vec<(HeaderName, HeaderValue)> = fixture
        .cookie_values()
        .into_iter()
        .map(|cookie| (COOKIE, cookie))
        .collect();
    let auth = |capacity: usize| -> StytchAuth { rt.block_on(fixture.auth(capacity)) };
    let mut counted: Option<StytchAuth> = None;
    let (app, cycle): (App, bool) = match scenario {
        "bare" => (common::bare_app().into(), false),
        "repeated" => (
            common::member_app(counted.insert(auth(10_000))).into(),
            false,
        ),
        "repeated_outer" => (
            App::Outer(common::member_app_outer(counted.insert(auth(10_000)))),
            false,
        ),
        "repeated_m2m" => {
            let client = fixture.emulator.create_m2m_client(&["read:documents"]);
            let token = fixture.emulator.mint_m2m_token(&client.client_id, None);
            let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
            headers = vec![(AUTHORIZATION, bearer)];
            let m2m = rt.block_on(fixture.auth_with(10_000, |b| b.m2m_tokens(true)));
            (common::m2m_app(counted.insert(m2m)).into(), false)
        }
        "rbac" => (common::rbac_app(counted.insert(auth(10_000))).into(), false),
        "rbac_handler" => (
            common::rbac_handler_app(counted.insert(auth(10_000))).into(),
            false,
        ),
        "rbac_extractor" => (
            common::rbac_extractor_app(counted.insert(auth(10_000))).into(),
            false,
        ),
        "fresh" => (
            common::member_app(counted.insert(auth(FRESH_CACHE_CAPACITY))).into(),
            true,
        ),
        "jsonwebtoken" | "aws_lc_direct" | "aws_lc_cached" | "extension_only" => {
            // exp is checked against the system clock: a leeway for the run's length.
            let refs = rt.block_on(common::reference::References::new(&fixture, 3600));
            match scenario {
                "jsonwebtoken" => (refs.jsonwebtoken.into(), true),
                "aws_lc_direct" => (refs.aws_lc_direct.into(), true),
                "aws_lc_cached" => (refs.aws_lc_cached.into(), false),
                _ => (refs.extension_only.into(), false),
            }
        }
        other => panic!("unknown scenario {other:?}; one of {SCENARIOS:?}"),
    };
    let pick = |i: usize| &headers[if cycle { i % headers.len() } else { 0 }];
    rt.block_on(async {
        for i in 0..WARM_UP_REQUESTS {
            send(&app, pick(i)).await;
        }
    });
    let before = counted.as_ref().map(StytchAuth::metrics);
    for chunk in 0..CHUNKS {
        measured_requests(&rt, &app, &|i| pick(chunk * requests + i), requests);
    }
    let requests = requests * CHUNKS;
    if let (Some(auth), Some(before)) = (&counted, before) {
        let after = auth.metrics();
        let share = |n: u64| 100.0 * n as f64 / requests as f64;
        print!(
            "{:.0}% verified, {:.0}% cache hits",
            share(after.local_verifications - before.local_verifications),
            share(after.cache_hits - before.cache_hits)
        );
    }
}

/// The counted loop (callgrind's `--toggle-collect` names it).
#[inline(never)]
fn measured_requests<'a>(
    rt: &tokio::runtime::Runtime,
    app: &App,
    pick: &dyn Fn(usize) -> &'a (HeaderName, HeaderValue),
    requests: usize,
) {
    rt.block_on(async {
        for i in 0..requests {
            send(app, pick(i)).await;
        }
    });
}

/// A scenario's app: a `Router` (layers on its routes), or the layer around one.
enum App {
    Router(Router),
    Outer(StytchAuthService<Router>),
}

impl From<Router> for App {
    fn from(router: Router) -> Self {
        App::Router(router)
    }
}

async fn send(app: &App, (name, value): &(HeaderName, HeaderValue)) {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = axum::http::Uri::from_static("/");
    req.headers_mut().insert(name.clone(), value.clone());
    let response = match app {
        App::Router(router) => router.clone().oneshot(req).await,
        App::Outer(service) => service.clone().oneshot(req).await,
    }
    .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}
