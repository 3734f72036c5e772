//! `cargo run --example emulator`: its command line, what it seeds and prints (each
//! printed credential works), and the built binary.

#[path = "../examples/emulator/cli.rs"]
mod cli;
mod common;
#[path = "../examples/emulator/seed.rs"]
mod seed;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::Command;

use axum_stytch::StytchAuth;
use axum_stytch::testing::StytchEmulator;
use cli::{Args, Command as Cli};
use common::{app, example_binary, get_with, jwt_cookie, spawn_until};
use http::StatusCode;
use serde_json::{Value, json};

fn parse(args: &[&str]) -> Result<Cli, String> {
    Args::parse(args.iter().map(|a| (*a).to_owned()))
}

#[test]
fn the_command_line() {
    assert_eq!(parse(&[]), Ok(Cli::Run(Args::default())));
    assert_eq!(Args::default().port, 4000);
    assert_eq!(Args::default().host, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(!Args::default().frozen_clock);

    let Ok(Cli::Run(args)) = parse(&[
        "--port",
        "4100",
        "--project-id=project-test-x",
        "--secret",
        "secret-test-y",
        "--frozen-clock",
        "--host",
        "0.0.0.0",
    ]) else {
        panic!("parsed")
    };
    assert_eq!(args.port, 4100);
    assert_eq!(args.project_id.as_deref(), Some("project-test-x"));
    assert_eq!(args.secret.as_deref(), Some("secret-test-y"));
    assert!(args.frozen_clock);
    assert_eq!(args.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(
        parse(&["--port=0"]).map(|c| c
            == Cli::Run(Args {
                port: 0,
                ..Args::default()
            })),
        Ok(true)
    );

    assert_eq!(parse(&["-h"]), Ok(Cli::Help));
    for flag in [
        "--port",
        "--host",
        "--project-id",
        "--secret",
        "--frozen-clock",
    ] {
        assert!(cli::USAGE.contains(flag), "{flag} undocumented");
    }
    assert_eq!(parse(&["--port", "1", "--help"]), Ok(Cli::Help));
    for bad in [
        &["--port"][..],
        &["--port", "x"],
        &["--port", "70000"],
        &["--host", "localhost"],
        &["--frozen-clock=yes"],
        &["--verbose"],
        &["4000"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
}

/// The seeded project, on an emulator started as the example starts it.
async fn seeded() -> (StytchEmulator, seed::Seeded) {
    let args = Args {
        port: 0,
        ..Args::default()
    };
    let emulator = StytchEmulator::start_with(args.options()).await;
    let seeded = seed::seed(&emulator);
    (emulator, seeded)
}

/// POSTs to the emulator: `body` as JSON with the project's Basic credentials, or
/// as a form (the OAuth endpoints, whose client credentials are in it).
async fn post(seeded: &seed::Seeded, path: &str, body: Body) -> (u16, Value) {
    let request = reqwest::Client::new().post(format!("{}{path}", seeded.base_url));
    let request = match body {
        Body::Json(body) => request
            .basic_auth(&seeded.project_id, Some(&seeded.secret))
            .json(&body),
        Body::Form(form) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

enum Body {
    Json(Value),
    Form(String),
}

#[tokio::test]
async fn every_printed_credential_works() {
    let (emulator, s) = seeded().await;
    assert_eq!(s.base_url, emulator.base_url());

    // Sessions, by token and by JWT, with the roles of the policy.
    let authenticate = "/v1/b2b/sessions/authenticate";
    let body = json!({ "session_token": s.admin.session.session_token });
    let (status, answer) = post(&s, authenticate, Body::Json(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["member"]["member_id"], s.admin.member_id.as_str());
    assert_eq!(
        answer["member_session"]["roles"],
        json!(["stytch_member", "admin"])
    );
    let body = json!({ "session_jwt": s.viewer.session.session_jwt });
    let (status, answer) = post(&s, authenticate, Body::Json(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["member"]["email_address"], "viewer@acme.test");
    let check = |action| {
        json!({
            "session_token": s.viewer.session.session_token,
            "authorization_check": {
                "organization_id": s.organization_id,
                "resource_id": "document",
                "action": action,
            },
        })
    };
    let (status, _) = post(&s, authenticate, Body::Json(check("read"))).await;
    assert_eq!(status, 200, "the viewer reads");
    let (status, answer) = post(&s, authenticate, Body::Json(check("create"))).await;
    assert_eq!(status, 403, "the viewer does not create");
    assert_eq!(answer["error_type"], "session_authorization_error");
    let lifetime = emulator
        .session(&s.viewer.session.member_session_id)
        .map(|info| info.expires_at.duration_since(info.started_at).unwrap());
    assert_eq!(lifetime, Some(seed::SESSION_LIFETIME));

    // The M2M client gets tokens; the Connected App's token introspects active.
    let token_path = format!("/v1/public/{}/oauth2/token", s.project_id);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        s.m2m_client.client_id, s.m2m_client.client_secret
    );
    let (status, answer) = post(&s, &token_path, Body::Form(form)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["access_token"].as_str().unwrap().starts_with("eyJ"));
    let form = format!(
        "token={}&client_id={}&client_secret={}",
        s.connected_app_token, s.connected_app.client_id, s.connected_app.client_secret
    );
    let (status, answer) = post(&s, "/v1/oauth2/introspect", Body::Form(form)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], s.admin.member_id.as_str());
    assert_eq!(answer["scope"], "openid read:documents");

    // A layer configured from the printed variables, on the system clock, accepts the
    // printed JWT.
    let var = |name| {
        s.env()
            .into_iter()
            .find_map(|(n, v)| (n == name).then_some(v))
            .unwrap()
    };
    let auth = StytchAuth::builder(var("STYTCH_PROJECT_ID"), var("STYTCH_SECRET"))
        .base_url(var("STYTCH_BASE_URL"))
        .build()
        .unwrap();
    let res = get_with(
        &app(&auth),
        "/me",
        &jwt_cookie(&var("STYTCH_ADMIN_SESSION_JWT")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, s.admin.member_id);
}

#[tokio::test]
async fn exports_and_json_say_the_same() {
    let (_emulator, s) = seeded().await;
    let env = s.env();
    assert_eq!(env.len(), 15);
    let exports = s.shell_exports();
    assert_eq!(exports.lines().count(), env.len());
    for (name, value) in &env {
        let line = format!("export {name}='{value}'");
        assert!(exports.lines().any(|l| l == line), "{line} missing");
    }
    let doc = s.json();
    let pairs = [
        ("STYTCH_PROJECT_ID", &doc["project_id"]),
        ("STYTCH_SECRET", &doc["secret"]),
        ("STYTCH_BASE_URL", &doc["base_url"]),
        ("STYTCH_ORGANIZATION_ID", &doc["organization_id"]),
        ("STYTCH_ADMIN_MEMBER_ID", &doc["admin"]["member_id"]),
        ("STYTCH_ADMIN_SESSION_TOKEN", &doc["admin"]["session_token"]),
        ("STYTCH_VIEWER_SESSION_JWT", &doc["viewer"]["session_jwt"]),
        (
            "STYTCH_M2M_CLIENT_SECRET",
            &doc["m2m_client"]["client_secret"],
        ),
        (
            "STYTCH_CONNECTED_APP_ACCESS_TOKEN",
            &doc["connected_app"]["access_token"],
        ),
    ];
    for (name, value) in pairs {
        let exported = env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str());
        assert_eq!(value.as_str(), exported, "{name}");
    }
    assert_eq!(seed::shell_quote("it's"), r"'it'\''s'");
}

#[tokio::test]
async fn the_binary_prints_working_credentials() {
    let mut command = Command::new(example_binary("emulator"));
    command.args(["--port", "0"]);
    let (_guard, lines) = spawn_until(command, "emulator ready on ");

    let doc: Value = lines
        .iter()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a JSON line");
    let base = doc["base_url"].as_str().unwrap();
    assert_eq!(lines.last().unwrap(), &format!("emulator ready on {base}"));
    assert!(lines.iter().any(|l| l.contains("clock: follows real time")));
    let exports = lines
        .iter()
        .filter(|l| l.starts_with("export STYTCH_"))
        .count();
    assert_eq!(exports, 15);

    let response = reqwest::Client::new()
        .post(format!("{base}/v1/b2b/sessions/authenticate"))
        .basic_auth(doc["project_id"].as_str().unwrap(), doc["secret"].as_str())
        .json(&json!({ "session_token": doc["viewer"]["session_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["member"]["member_id"], doc["viewer"]["member_id"]);
}

#[test]
fn the_binary_refuses_a_taken_port_and_a_bad_argument() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(example_binary("emulator"))
        .args(["--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on 127.0.0.1:"), "{stderr}");
    assert!(output.stdout.is_empty(), "no credentials printed");

    let output = Command::new(example_binary("emulator"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(example_binary("emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("--frozen-clock"));
}
