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
//! sends it some requests to warm its caches, and then counts only inside the loop
//! that sends `INSTR_REQUESTS` (default 2,000) more, in-process through
//! `tower::ServiceExt::oneshot` (no sockets, no HTTP parsing: the kernel and hyper
//! work that makes up most of a served request is not counted). Instructions come from
//! callgrind's total for that loop, allocations from its count of calls to `malloc`,
//! `calloc`, `realloc` and `posix_memalign`. Each scenario runs twice, with
//! `INSTR_REQUESTS` requests and with twice as many; the difference, divided by
//! `INSTR_REQUESTS`, is the cost of one request. About two minutes in all.
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
use std::path::Path;
use std::process::Command;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header::COOKIE};
use axum_stytch::StytchAuth;
use tower::ServiceExt as _;

const SCENARIOS: [&str; 7] = [
    "bare",
    "repeated",
    "rbac",
    "rbac_handler",
    "fresh",
    "jsonwebtoken",
    "aws_lc_direct",
];
const SESSIONS: usize = 64;
const TOKENS: usize = 128;
const FRESH_CACHE_CAPACITY: u64 = 16;
const WARM_UP_REQUESTS: usize = 300;
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
             env: INSTR_REQUESTS (2000) INSTR_SCENARIOS ({})",
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
        .unwrap_or(2_000);
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
        "{requests} requests per scenario (the difference of runs of {requests} and {}), \
         in-process (`oneshot`), counted by callgrind\n",
        2 * requests
    );
    println!(
        "| scenario | instructions / request | vs bare | allocations / request | vs bare | notes |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let mut bare: Option<(f64, f64)> = None;
    for scenario in scenarios {
        // Two runs, of `requests` and twice as many: their difference leaves out what
        // happens once (setup, warm-up, the first request's lazy initialisations), in
        // the instructions and in the allocations alike (callgrind records calls made
        // outside the counted function too).
        let [(i1, a1, _), (i2, a2, notes)] = [requests, 2 * requests].map(|n| {
            let out = dir.join(format!("{scenario}-{n}.callgrind"));
            let run = Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg("--collect-atstart=no")
                .arg("--toggle-collect=*measured_requests*")
                .arg(&exe)
                .args(["measure", scenario, &n.to_string()])
                .output()
                .expect("valgrind runs");
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(
                run.status.success(),
                "{scenario} failed under valgrind:\n{stderr}"
            );
            let instructions = collected(&stderr).expect("callgrind's `Collected` line");
            let notes = String::from_utf8_lossy(&run.stdout).trim().to_owned();
            (instructions, allocator_calls(&out), notes)
        });
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / requests as f64;
        let (i, a) = (per(i1, i2), per(a1, a2));
        let (di, da) = match bare {
            None => {
                bare = Some((i, a));
                ("-".to_owned(), "-".to_owned())
            }
            Some((bi, ba)) => (format!("{:+.0}", i - bi), format!("{:+.1}", a - ba)),
        };
        println!("| {scenario} | {i:.0} | {di} | {a:.1} | {da} | {notes} |");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `==pid== Collected : N` from callgrind's summary.
fn collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        l.split_once("Collected :")
            .and_then(|(_, n)| n.trim().parse().ok())
    })
}

/// Calls to the allocator's functions recorded in a callgrind output file. Function
/// names are compressed: `cfn=(id) name` the first time, `cfn=(id)` afterwards (one id
/// space shared with `fn=`); each `calls=N ...` line counts calls to the last `cfn`.
fn allocator_calls(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("callgrind's output file");
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
    let cookies = fixture.cookie_values();
    let auth = |capacity: u64| -> StytchAuth { rt.block_on(fixture.auth(capacity)) };
    let mut counted: Option<StytchAuth> = None;
    let (app, cycle): (Router, bool) = match scenario {
        "bare" => (common::bare_app(), false),
        "repeated" => (common::member_app(counted.insert(auth(10_000))), false),
        "rbac" => (common::rbac_app(counted.insert(auth(10_000))), false),
        "rbac_handler" => (
            common::rbac_handler_app(counted.insert(auth(10_000))),
            false,
        ),
        "fresh" => (
            common::member_app(counted.insert(auth(FRESH_CACHE_CAPACITY))),
            true,
        ),
        "jsonwebtoken" | "aws_lc_direct" => {
            // exp is checked against the system clock: a leeway for the run's length.
            let refs = rt.block_on(common::reference::References::new(&fixture, 3600));
            let app = if scenario == "jsonwebtoken" {
                refs.jsonwebtoken
            } else {
                refs.aws_lc_direct
            };
            (app, true)
        }
        other => panic!("unknown scenario {other:?}; one of {SCENARIOS:?}"),
    };
    let pick = |i: usize| &cookies[if cycle { i % cookies.len() } else { 0 }];
    rt.block_on(async {
        for i in 0..WARM_UP_REQUESTS {
            send(&app, pick(i)).await;
        }
    });
    let before = counted.as_ref().map(StytchAuth::metrics);
    measured_requests(&rt, &app, &pick, requests);
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
    app: &Router,
    pick: &dyn Fn(usize) -> &'a HeaderValue,
    requests: usize,
) {
    rt.block_on(async {
        for i in 0..requests {
            send(app, pick(i)).await;
        }
    });
}

async fn send(app: &Router, cookie: &HeaderValue) {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = axum::http::Uri::from_static("/");
    req.headers_mut().insert(COOKIE, cookie.clone());
    let response = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}
