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

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A moto server owned by one test; stopped (by its own PID) when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let exe = bin_dir().join("moto_server");
        assert!(
            exe.exists(),
            "{} is missing: run scripts/testbed setup (scripts/test does)",
            exe.display()
        );
        let port = free_port();
        let child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut delay = Duration::from_millis(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
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
