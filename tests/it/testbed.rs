//! The test bed itself: the setup script is idempotent, and moto starts and stops by PID.

use crate::support::{root, testbed::Moto};

#[test]
fn moto_starts_on_a_free_port_and_stops_by_pid() {
    let moto = Moto::start();
    let pid = moto.pid();
    let stream = std::net::TcpStream::connect(("127.0.0.1", moto.port));
    assert!(stream.is_ok(), "moto answers on its port");
    drop(stream);
    drop(moto);
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "moto (pid {pid}) is gone after the test");
}

#[test]
fn setup_script_installs_nothing_on_a_second_run() {
    // scripts/test ran setup before the tests; running it again must find everything present.
    let out = std::process::Command::new(root().join("scripts/testbed"))
        .arg("setup")
        .output()
        .expect("run scripts/testbed setup");
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("python packages up to date"), "{log}");
    assert!(log.contains("haproxy present"), "{log}");
    assert!(!log.contains("installing"), "{log}");
}

#[test]
fn script_starts_and_stops_moto_by_pid() {
    let out = std::process::Command::new(root().join("scripts/testbed"))
        .arg("moto-start")
        .output()
        .expect("moto-start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (port, pid) = line.split_once(' ').expect("PORT PID");
    let port: u16 = port.parse().expect("port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let stop = std::process::Command::new(root().join("scripts/testbed"))
        .args(["moto-stop", pid])
        .status()
        .expect("moto-stop");
    assert!(stop.success());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
