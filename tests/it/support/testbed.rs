//! The local test bed, started and stopped by PID: moto (AWS) on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the test bed's binaries are (`scripts/testbed env` sets `VAULTFORM_TESTBED`).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("VAULTFORM_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join(".venv/bin"))
}

/// A moto server owned by one test; stopped (by its own PID) when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto on a port it picks itself (`-p 0`) and reads the port from what it prints,
    /// so that no other test can take the port between a pick and the bind.
    pub fn start() -> Moto {
        Self::start_with(None)
    }

    /// Moto able to enforce IAM (`tests/moto_iam.py`: KMS requests authorised against their
    /// key, which moto alone checks against "*"): every request after the first `free` is
    /// authorised against its caller's policies (`INITIAL_NO_AUTH_ACTION_COUNT`; `None`, not
    /// until [`Moto::enforce_iam`]). Conditions other than `StringEquals` on `sts:ExternalId`
    /// are not evaluated.
    #[allow(dead_code)] // used by the pod role test
    pub fn start_enforcing_iam(free: Option<u32>) -> Moto {
        Self::start_with(Some(free.map_or("inf".to_string(), |n| n.to_string())))
    }

    /// Authorises every request from now on (moto's `reset-auth`: the same
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, set to 0 and its count restarted).
    #[allow(dead_code)] // used by the pod role test
    pub fn enforce_iam(&self) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.write_all(
            b"POST /moto-api/reset-auth HTTP/1.1\r\nHost: moto\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0",
        )
        .expect("reset-auth");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "moto reset-auth: {out}");
    }

    fn start_with(enforce_after: Option<String>) -> Moto {
        use std::io::BufRead;
        let exe = bin_dir().join("moto_server");
        assert!(
            exe.exists(),
            "{} is missing: run scripts/testbed setup (scripts/test does)",
            exe.display()
        );
        let mut cmd = match enforce_after {
            None => Command::new(exe),
            Some(free) => {
                let mut c = Command::new(bin_dir().join("python"));
                c.arg(super::root().join("tests/moto_iam.py"))
                    .env("INITIAL_NO_AUTH_ACTION_COUNT", free);
                c
            }
        };
        let mut child = cmd
            .args(["-H", "127.0.0.1", "-p", "0"])
            // Real AWS has its managed IAM policies; moto loads them on request.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut port = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                port = rest
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok();
                break;
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait();
            panic!("moto exited before it listened: {status:?}");
        };
        // Its request log must be read, or moto blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut delay = Duration::from_millis(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // A moto that died after printing its port is reported at once, not waited for.
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited after it printed port {port}: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(250));
        }
        moto
    }

    #[allow(dead_code)] // used by the engine tests
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/faultproxy` in front of an upstream (moto): injects throttling and 5xx errors.
pub struct FaultProxy {
    child: Child,
    pub port: u16,
}

impl FaultProxy {
    pub fn start(upstream: &str, fail_rate: f64, seed: u64) -> FaultProxy {
        Self::start_with(
            upstream,
            &[
                "--fail-rate",
                &fail_rate.to_string(),
                "--seed",
                &seed.to_string(),
            ],
        )
    }

    /// With any of the proxy's flags (`--drop-conditions`, ...).
    pub fn start_with(upstream: &str, flags: &[&str]) -> FaultProxy {
        use std::io::BufRead;
        let mut child = Command::new(super::root().join("scripts/faultproxy"))
            .args(["--upstream", upstream])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start faultproxy");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("faultproxy prints its port");
        let port = line.trim().parse().expect("a port");
        FaultProxy { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{"forwarded": n, "throttled": n, "server_errors": n}`.
    pub fn counts(&self) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        use std::io::{Read, Write};
        let _ = s.write_all(b"GET /__faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
