//! The emulator example's command line, parsed by hand: `--port N`, `--host IP`,
//! `--project-id ID`, `--secret S`, `--frozen-clock`, `--help`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum_stytch::testing::EmulatorOptions;

/// The port when none is given.
pub const DEFAULT_PORT: u16 = 4000;

pub const USAGE: &str = "\
Runs a Stytch B2B emulator with seeded test credentials until Ctrl-C.

Usage: cargo run --example emulator -- [OPTIONS]

Options:
  --port N          port to listen on (default 4000; 0: any free port)
  --host IP         address to listen on (default 127.0.0.1; anything else exposes
                    the printed test credentials to other machines)
  --project-id ID   project id (default: a random project-test-<uuid>)
  --secret S        project secret (default: a random secret-test-...)
  --frozen-clock    keep the emulator's clock still (default: it follows real time,
                    as clients that read the system clock need)
  -h, --help        print this help";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub host: IpAddr,
    pub port: u16,
    pub project_id: Option<String>,
    pub secret: Option<String>,
    pub frozen_clock: bool,
}

/// What the command line said: run, or print the help.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            project_id: None,
            secret: None,
            frozen_clock: false,
        }
    }
}

impl Args {
    /// Parses the arguments after the program name; `--name value` and
    /// `--name=value` both work.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                match inline {
                    Some(value) => Ok(value.to_owned()),
                    None => args.next().ok_or_else(|| format!("{name} needs {what}")),
                }
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--port" => {
                    let port = value("a port number")?;
                    parsed.port = port
                        .parse()
                        .map_err(|_| format!("--port: not a port number: {port:?}"))?;
                }
                "--host" => {
                    let host = value("an IP address")?;
                    parsed.host = host
                        .parse()
                        .map_err(|_| format!("--host: not an IP address: {host:?}"))?;
                }
                "--project-id" => parsed.project_id = Some(value("a project id")?),
                "--secret" => parsed.secret = Some(value("a secret")?),
                "--frozen-clock" if inline.is_none() => parsed.frozen_clock = true,
                _ => return Err(format!("unknown argument {arg:?} (see --help)")),
            }
        }
        Ok(Command::Run(parsed))
    }

    /// The emulator's options.
    pub fn options(&self) -> EmulatorOptions {
        let mut options = EmulatorOptions::new().bind(SocketAddr::new(self.host, self.port));
        if let Some(project_id) = &self.project_id {
            options = options.project_id(project_id);
        }
        if let Some(secret) = &self.secret {
            options = options.secret(secret);
        }
        if !self.frozen_clock {
            options = options.follow_real_time();
        }
        options
    }
}
