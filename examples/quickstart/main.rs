//! # quickstart
//!
//! A document API behind `StytchAuth` with RBAC routes, running against the embedded
//! Stytch emulator (no account, no network), or against your real Stytch project when
//! `STYTCH_PROJECT_ID` and `STYTCH_SECRET` are set.
//!
//! ```text
//! cargo run --example quickstart                 # emulator, http://127.0.0.1:3000
//! PORT=8080 cargo run --example quickstart       # another port (0 = any free port)
//! STYTCH_PROJECT_ID=project-test-... STYTCH_SECRET=secret-test-... cargo run --example quickstart
//! ```
//!
//! It prints ready-to-paste `curl` commands. Ctrl-C stops it.

mod app;

use axum_stytch::StytchAuth;
use axum_stytch::testing::EmulatorOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,axum_stytch=debug".into()),
        )
        .init();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");

    let real = std::env::var("STYTCH_PROJECT_ID").is_ok() && std::env::var("STYTCH_SECRET").is_ok();
    let (router, demo) = if real {
        let auth = StytchAuth::from_env()?;
        println!(
            "Using your Stytch project {} (no emulator).",
            auth.project_id()
        );
        if let Err(error) = auth.warm_up().await {
            println!("warning: could not fetch the JWKS yet ({error}); requests will retry");
        }
        (app::router(auth, None), None)
    } else {
        // The emulator's clock stands still unless told otherwise; the demo's follows
        // real time, as a browser's does.
        let demo = app::Demo::start_with(EmulatorOptions::new().follow_real_time()).await;
        let auth = demo
            .emulator
            .auth_builder()
            .allow_insecure_cookies()
            .build()?;
        println!(
            "Using the embedded Stytch emulator at {}.",
            demo.emulator.base_url()
        );
        (app::router(auth, Some(&demo)), Some(demo))
    };

    if let Some(demo) = &demo {
        let org = &demo.organization_id;
        println!();
        println!("Paste these into a shell (the viewer may read; the admin may also create):");
        println!();
        println!("VIEWER='{}'", app::Demo::cookie(&demo.viewer));
        println!("ADMIN='{}'", app::Demo::cookie(&demo.admin));
        println!("curl -i {base}/me -H \"Cookie: $VIEWER\"");
        println!("curl -i {base}/documents -H \"Cookie: $VIEWER\"");
        println!(
            "curl -i -X POST {base}/documents -H \"Cookie: $VIEWER\"   # 403 permission_denied"
        );
        println!("curl -i -X POST {base}/documents -H \"Cookie: $ADMIN\"    # 201");
        println!("curl -i {base}/orgs/{org}/documents -H \"Cookie: $ADMIN\"");
        println!(
            "curl -i {base}/me                                          # 401 missing_credentials"
        );
        println!(
            "curl -i -X POST {base}/logout -H \"Cookie: $VIEWER\"      # then /me with $VIEWER is 401"
        );
        println!();
        println!("Or in a browser: {base}/demo/login/viewer and {base}/demo/login/admin");
    }
    println!();
    println!("quickstart ready on {base}");

    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            println!("shutting down");
        })
        .await?;
    Ok(())
}
