//! The test bed itself: the setup script is idempotent, moto starts and stops by PID, and so
//! do the Kubernetes control planes (`kube-up` / `kube-down`).

use crate::support::control_plane::ControlPlanes;
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
    assert!(log.contains("up to date in"), "{log}");
    assert!(!log.contains("building kubernetes"), "{log}");
}

/// `scripts/demo` runs the local runtime only: `setup --local` never builds (or looks at)
/// the Kubernetes components, even where none are cached.
#[test]
fn local_setup_skips_the_kubernetes_build() {
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(root().join("scripts/testbed"))
        .args(["setup", "--local"])
        .env("VAULTFORM_KUBE_CACHE", empty.path())
        .output()
        .expect("run scripts/testbed setup --local");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("haproxy present"), "{log}");
    assert!(!log.contains("kubernetes"), "{log}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0, "{log}");
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

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

fn pids(dir: &std::path::Path) -> std::collections::BTreeMap<String, u32> {
    let mut out = std::collections::BTreeMap::new();
    let cluster = dir.join("clusters/t1");
    for d in [dir.to_path_buf(), cluster] {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(component) = name.strip_suffix(".pid") {
                let pid = std::fs::read_to_string(e.path()).unwrap();
                out.insert(component.to_string(), pid.trim().parse().unwrap());
            }
        }
    }
    out
}

fn testbed(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(root().join("scripts/testbed"))
        .args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run scripts/testbed")
}

#[test]
fn kube_up_is_idempotent_and_kube_down_stops_every_pid() {
    let planes = ControlPlanes::up(&["t1"], None);
    let dir = planes.dir.path().to_path_buf();
    let up = || testbed(&["kube-up".as_ref(), dir.as_os_str(), "t1".as_ref()]);
    let started = pids(&dir);
    let components: Vec<&str> = started.keys().map(String::as_str).collect();
    assert_eq!(
        components,
        [
            "authenticator",
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "moto"
        ]
    );
    assert!(started.values().all(|p| alive(*p)), "{started:?}");
    planes.kubectl("t1", &["create", "namespace", "kept"]);

    // All up: nothing is started again.
    let out = up();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("t1: already up"));
    assert_eq!(pids(&dir), started);

    // One component gone: the cluster is started again, its etcd data kept.
    let scheduler = started["kube-scheduler"];
    let killed = std::process::Command::new("kill")
        .args(["-9", &scheduler.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(scheduler) {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduler outlived kill -9"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = up();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("t1: ready"));
    let restarted = pids(&dir);
    assert_ne!(restarted["kube-scheduler"], scheduler);
    assert_eq!(restarted["moto"], started["moto"]);
    assert!(
        planes
            .kubectl("t1", &["get", "namespace", "kept"])
            .contains("kept")
    );

    // Down: every process stopped, every PID file gone; a second down does nothing.
    let down = || testbed(&["kube-down".as_ref(), dir.as_os_str()]);
    assert!(down().status.success());
    for (component, pid) in &restarted {
        assert!(!alive(*pid), "{component} (pid {pid}) still runs");
    }
    assert!(pids(&dir).is_empty());
    assert!(down().status.success());
    drop(planes);
}
