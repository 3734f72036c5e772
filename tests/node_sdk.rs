//! Stytch's Node SDK (the `stytch` npm package) against the emulator, as a Node
//! backend's tests would use it: `examples/node/check_session.mjs` run on the
//! project `cargo run --example emulator` seeds, with the variables it prints.
//!
//! Needs `node` and the script's packages, so it is ignored by default:
//!
//! ```text
//! (cd examples/node && npm install)
//! cargo test --test node_sdk -- --ignored --nocapture
//! ```

#[path = "../examples/emulator/cli.rs"]
#[allow(dead_code)]
mod cli;
#[path = "../examples/emulator/seed.rs"]
#[allow(dead_code)]
mod seed;

use std::path::Path;
use std::process::Command;

use axum_stytch::testing::{Endpoint, StytchEmulator};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm install` in examples/node; run: cargo test --test node_sdk -- --ignored"]
async fn the_node_sdk_authenticates_seeded_sessions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node");
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `node` is not installed; this test proves nothing here");
        return;
    }
    assert!(
        dir.join("node_modules/stytch").exists(),
        "run `npm install` in {} first",
        dir.display()
    );

    // The emulator as the example starts it (its clock following real time, as the
    // SDK reads the system clock), on a free port.
    let args = cli::Args {
        port: 0,
        ..cli::Args::default()
    };
    let emulator = StytchEmulator::start_with(args.options()).await;
    let seeded = seed::seed(&emulator);
    let env = seeded.env();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("check_session.mjs")
            .current_dir(dir)
            .envs(env)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("node stdout: {stdout}");
    println!("node stderr: {stderr}");
    assert!(output.status.success(), "node failed: {stderr}");

    let answer: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let viewer = seeded.viewer.member_id.as_str();
    assert_eq!(answer["remote_member_id"], viewer);
    assert_eq!(answer["local_member_id"], viewer);
    assert_eq!(answer["remote_roles"], json!(["stytch_member", "viewer"]));
    assert_eq!(answer["local_roles"], json!(["stytch_member", "viewer"]));
    assert_eq!(answer["create"], "invalid_permissions");
    assert_eq!(
        answer["m2m_client_id"],
        seeded.m2m_client.client_id.as_str()
    );
    assert_eq!(answer["m2m_scopes"], json!(seed::M2M_SCOPES));
    // What the SDK fetched: one remote authenticate, the keys, the policy, a token.
    assert_eq!(emulator.requests(Endpoint::Authenticate), 1);
    assert!(emulator.requests(Endpoint::Jwks) >= 1);
    assert!(emulator.requests(Endpoint::Policy) >= 1);
    assert_eq!(emulator.requests(Endpoint::M2mToken), 1);
}
