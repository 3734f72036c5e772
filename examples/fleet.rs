//! Three instances of an app, one Redis: a logout on one is refused by the others.
//!
//! ```text
//! cargo run --features redis --example fleet             # the demonstration
//! cargo run --features redis --example fleet -- --measure  # logout-to-refused latency, 1,000 logouts
//! cargo run --features redis --example fleet -- --serve    # keep the three apps serving
//! ```
//!
//! Uses `REDIS_URL` when set, else starts a `redis-server` of its own (on the `PATH`:
//! `apt-get install redis-server`) on a free port, without persistence. The Stytch
//! side is the embedded emulator. The apps serve `GET /me` and `POST /logout` on
//! `127.0.0.1:3001`, `:3002` and `:3003`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use axum_stytch::testing::{EmulatorOptions, SessionTokens, StytchEmulator};
use axum_stytch::{AuthenticatedMember, StytchAuth};

/// A `redis-server` this example started; killed on exit.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `REDIS_URL`, or one of our own.
fn redis() -> Result<(String, Option<OwnRedis>), Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok((url, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server could not start ({e}): install it, or set REDIS_URL"))?;
    let own = OwnRedis(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("redis://127.0.0.1:{port}"), Some(own)))
}

fn app(auth: &StytchAuth) -> Router {
    let logout = auth.clone();
    Router::new()
        .route(
            "/me",
            get(|m: AuthenticatedMember| async move { m.member_id().to_owned() }),
        )
        .route(
            "/logout",
            post(move |m: AuthenticatedMember| {
                let auth = logout.clone();
                async move { auth.logout(&m).await.map_err(|e| e.to_string()) }
            }),
        )
        .layer(auth.layer())
}

/// GET /me on `addr` with `session`'s JWT cookie: the status.
async fn me(http: &reqwest::Client, addr: SocketAddr, session: &SessionTokens) -> u16 {
    http.get(format!("http://{addr}/me"))
        .header(
            "cookie",
            format!("stytch_session_jwt={}", session.session_jwt),
        )
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, _own_redis) = redis()?;
    let emulator = StytchEmulator::start_with(EmulatorOptions::new().follow_real_time()).await;
    let org = emulator.create_organization("acme");
    let member = emulator.create_member(&org, "ada@acme.test", &["editor"]);

    let mut instances = Vec::new();
    for port in [3001, 3002, 3003] {
        let auth = emulator
            .auth_builder()
            .revocations_in_redis(url.clone())
            .build()?;
        auth.warm_up().await?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(axum::serve(listener, app(&auth)).into_future());
        instances.push((addr, auth));
    }
    println!(
        "three instances on {:?}, sharing {}",
        [3001, 3002, 3003],
        redacted(&url)
    );

    let http = reqwest::Client::new();
    if args.iter().any(|a| a == "--measure") {
        return measure(&emulator, &member, &instances).await;
    }
    let session = emulator.create_session(&member);
    for (addr, _) in &instances {
        println!(
            "GET http://{addr}/me -> {}",
            me(&http, *addr, &session).await
        );
    }
    let (first, _) = instances[0];
    let status = http
        .post(format!("http://{first}/logout"))
        .header(
            "cookie",
            format!("stytch_session_jwt={}", session.session_jwt),
        )
        .send()
        .await?
        .status();
    println!("POST http://{first}/logout -> {status}");
    for (addr, _) in &instances[1..] {
        let started = Instant::now();
        let mut status = me(&http, *addr, &session).await;
        while status == 200 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            status = me(&http, *addr, &session).await;
        }
        println!(
            "GET http://{addr}/me -> {status} (refused {} ms after the logout returned)",
            started.elapsed().as_millis()
        );
    }
    if args.iter().any(|a| a == "--serve") {
        println!("serving; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// 1,000 logouts through instance 1's handle; for each, the time until instance 2
/// has applied it (its counter of revocations received moves), polled in a tight loop.
async fn measure(
    emulator: &StytchEmulator,
    member: &str,
    instances: &[(SocketAddr, StytchAuth)],
) -> Result<(), Box<dyn std::error::Error>> {
    let (publisher, listener) = (&instances[0].1, &instances[1].1);
    let http = reqwest::Client::new();
    let first = instances[0].0;
    let mut latencies = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        let session = emulator.create_session(member);
        let before = listener.metrics().revocations_received;
        let started = Instant::now();
        http.post(format!("http://{first}/logout"))
            .header(
                "cookie",
                format!("stytch_session_jwt={}", session.session_jwt),
            )
            .send()
            .await?;
        while listener.metrics().revocations_received == before {
            if started.elapsed() > Duration::from_secs(5) {
                return Err("a revocation never arrived".into());
            }
            tokio::task::yield_now().await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "logout-to-refused across instances (HTTP logout on one, applied on another), 1,000 \
         logouts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; published {}",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        publisher.metrics().revocations_published,
    );
    Ok(())
}

fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, host)) => format!("redis://<redacted>@{host}"),
        None => url.to_owned(),
    }
}
