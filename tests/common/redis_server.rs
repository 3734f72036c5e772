//! A real `redis-server` for the fleet tests: started on a free loopback port in a
//! temporary directory, without persistence, and killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// `--tls-port` and its arguments, when serving TLS too.
    tls: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port. Panics with the way to install it when the binary
    /// is missing.
    pub fn start() -> Self {
        Self::start_with_tls(Vec::new())
    }

    /// Starts one that also serves TLS with `args` (`--tls-port`, certificates).
    pub fn start_with_tls(tls: Vec<String>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("axum-stytch-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut server = Self {
            child: None,
            port,
            dir,
            tls,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.tls)
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start redis-server ({e}): the `redis` feature's tests need it \
                     on the PATH (Debian: apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); [`restart`](Self::restart) brings it back on the
    /// same port, empty.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs one command with `redis-cli`-free plain RESP over TCP, and returns the
    /// first line of the answer without its type byte (enough for PING, INFO and
    /// integer replies).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_owned();
        if let Some(len) = line.strip_prefix('$') {
            let len: usize = len.parse().ok()?;
            let mut body = vec![0; len];
            reader.read_exact(&mut body).ok()?;
            return String::from_utf8(body).ok();
        }
        Some(line.get(1..)?.to_owned())
    }

    /// The members of a sorted set, in score order (`ZRANGE key 0 -1`).
    pub fn zrange(&self, key: &str) -> Vec<String> {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return Vec::new();
        };
        let request = format!(
            "*4\r\n$6\r\nZRANGE\r\n${}\r\n{key}\r\n$1\r\n0\r\n$2\r\n-1\r\n",
            key.len()
        );
        stream.write_all(request.as_bytes()).expect("a request");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("an answer");
        let count: usize = line.trim_end()[1..].parse().unwrap_or(0);
        (0..count)
            .map(|_| {
                line.clear();
                reader.read_line(&mut line).expect("a member's length");
                let len: usize = line.trim_end()[1..].parse().expect("a length");
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body).expect("a member");
                String::from_utf8_lossy(&body[..len]).into_owned()
            })
            .collect()
    }

    /// How many times a command ran (`INFO commandstats`), by lower-case name.
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Every command's calls but those of `except` (lowercase names), summed, from
    /// one reading of the server's statistics (a heartbeat between two readings
    /// would otherwise count).
    pub fn calls_except(&self, except: &[&str]) -> u64 {
        let info = self.command(&["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(":calls="))
            .filter(|(command, _)| !except.contains(command))
            .filter_map(|(_, rest)| rest.split(',').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
