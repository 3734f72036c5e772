//! # emulator
//!
//! The in-process Stytch emulator as a server of its own, for test suites in other
//! languages (a Node or Python backend, a browser test) to run against, with Stytch's
//! own SDKs:
//!
//! ```text
//! cargo run --example emulator -- --port 4000
//! cargo run --example emulator -- --help
//! ```
//!
//! It seeds a project: an RBAC policy (`viewer` reads documents, `admin` does anything
//! with them), the organization `acme` with an admin and a viewer, a 24-hour session
//! each, an M2M client and a Connected App with an access token for the admin. Then
//! it prints the base URL, project id, secret and every seeded credential, as shell
//! `export` lines and as one JSON line, and runs until Ctrl-C.
//!
//! **It prints secrets on purpose**: they are test credentials of a project that
//! lives only in this process, and printing them is what this program is for. It
//! listens on `127.0.0.1` unless `--host` says otherwise.
//!
//! Its clock follows real time (`EmulatorOptions::follow_real_time`), as clients
//! that read the system clock need; `--frozen-clock` keeps it still.

mod cli;
mod seed;

use std::io::Write as _;
use std::process::ExitCode;

use axum_stytch::testing::StytchEmulator;
use cli::{Args, Command, USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = match StytchEmulator::try_start_with(args.options()).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "error: cannot listen on {}:{}: {error} (try another --port, or 0)",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let seeded = seed::seed(&emulator);
    let clock = if args.frozen_clock {
        "frozen (moves only if a test moves it)"
    } else {
        "follows real time"
    };
    let base = emulator.base_url();
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "Stytch emulator on {base} (clock: {clock}). Test credentials, printed on purpose:\n\n\
         # For a shell:\n{}\n\
         # As JSON:\n{}\n\n\
         # Node: new stytch.B2BClient({{ project_id, secret, env: \"{base}/\" }})\n\
         #   (custom_base_url must be https://; `env` takes the emulator's http:// URL)\n\
         # Python: B2BClient(project_id, secret, environment=\"{base}/\")\n\n\
         emulator ready on {base}",
        seeded.shell_exports(),
        seeded.json(),
    )
    .and_then(|()| out.flush());
    drop(out);
    if let Err(error) = printed {
        eprintln!("error: cannot print the credentials: {error}");
        return ExitCode::FAILURE;
    }

    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for Ctrl-C: {error}");
        return ExitCode::FAILURE;
    }
    println!("shutting down");
    drop(emulator);
    ExitCode::SUCCESS
}
