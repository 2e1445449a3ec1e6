//! The local runtime's pieces: detached processes recorded and stopped by PID and start time,
//! and HAProxy in front of a real OpenBao server, checking `/v1/sys/health`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use vaultform::runtime::local::haproxy;
use vaultform::runtime::local::process::{self, ProcessRecord};
use vaultform::topology::HealthMode;
use vaultform::vault::spec::{Backend, ProxyConfig};

/// Stops a detached process by its own PID when the test ends, even on a panic.
struct Stopped(ProcessRecord);

impl Drop for Stopped {
    fn drop(&mut self) {
        process::kill(&self.0);
    }
}

/// This file's loopback network, with fixed ports: nothing else in the suite uses 127.0.82.x,
/// so no port is picked, released and taken by another test in between.
const NET: [u8; 3] = [127, 0, 82];

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET[0], NET[1], NET[2], last)
}

fn which(name: &str) -> std::path::PathBuf {
    let tb = crate::support::testbed::bin_dir().join(name);
    if tb.exists() {
        return tb;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/testbed setup");
}

#[tokio::test]
async fn detached_processes_are_stopped_only_when_the_record_still_matches() {
    let dir = tempfile::tempdir().unwrap();
    let r = process::spawn_detached(
        Path::new("/bin/sleep"),
        &["30".into()],
        &dir.path().join("sleep.log"),
        dir.path(),
    )
    .unwrap();
    let _guard = Stopped(r.clone());
    assert!(process::is_running(&r));
    // A record whose start time differs names another process that reused the PID: hands off.
    let stale = ProcessRecord {
        start_time: r.start_time + 1,
        ..r.clone()
    };
    assert!(!process::is_running(&stale));
    process::stop(&stale, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(
        process::is_running(&r),
        "the real process was not signalled"
    );
    process::stop(&r, Duration::from_secs(5)).await.unwrap();
    assert!(!process::is_running(&r));
    // Stopping again is a no-op.
    process::stop(&r, Duration::from_secs(1)).await.unwrap();
}

#[tokio::test]
async fn haproxy_forwards_to_a_member_whose_health_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A real OpenBao server in dev mode: initialised, unsealed, active (health 200).
    // `-dev` listens on the address given and on its port + 1 for the cluster.
    let api = 8200;
    let bao = process::spawn_detached(
        &which("bao"),
        &[
            "server".into(),
            "-dev".into(),
            format!("-dev-listen-address={}:{api}", ip(1)),
            "-dev-no-store-token".into(),
        ],
        &d.join("bao.log"),
        d,
    )
    .unwrap();
    let _bao_guard = Stopped(bao.clone());
    let (front_api, front_cluster) = (8200, 8201);
    let config = ProxyConfig {
        name: "lb1".into(),
        address: ip(2),
        api_port: front_api,
        cluster_port: front_cluster,
        health: HealthMode::Active,
        backends: vec![Backend {
            name: "m0".into(),
            address: ip(1),
            api_port: api,
            cluster_port: api + 1,
        }],
        ca_file: None,
    };
    let text = haproxy::render(&config);
    let file = d.join("lb1.cfg");
    std::fs::write(&file, &text).unwrap();
    let check = std::process::Command::new(which("haproxy"))
        .args(["-c", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(text.contains("http-check expect status 200"), "{text}");
    let proxy = process::spawn_detached(
        &which("haproxy"),
        &["-f".into(), file.display().to_string()],
        &d.join("lb1.log"),
        d,
    )
    .unwrap();
    let _proxy_guard = Stopped(proxy.clone());

    // Through the proxy, once the health check marks the member up: poll with backoff.
    let client = vaultform::vault::Client::new(
        &format!("http://{}:{front_api}", ip(2)),
        &Default::default(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delay = Duration::from_millis(20);
    let health = loop {
        match client.health().await {
            Ok(h) if h.status == 200 => break h,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            other => panic!("no healthy member behind the proxy: {other:?}"),
        }
    };
    assert!(health.initialized && !health.sealed);
    process::stop(&proxy, Duration::from_secs(5)).await.unwrap();
    process::stop(&bao, Duration::from_secs(10)).await.unwrap();
    assert!(!process::is_running(&proxy) && !process::is_running(&bao));
}

#[test]
fn unsealed_mode_accepts_standbys_too() {
    let config = ProxyConfig {
        name: "lb".into(),
        address: Ipv4Addr::new(127, 0, 10, 1),
        api_port: 8200,
        cluster_port: 8201,
        health: HealthMode::Unsealed,
        backends: vec![Backend {
            name: "m1".into(),
            address: Ipv4Addr::new(127, 0, 10, 12),
            api_port: 8200,
            cluster_port: 8201,
        }],
        ca_file: None,
    };
    let text = haproxy::render(&config);
    assert!(
        text.contains("http-check expect rstatus ^(200|429)$"),
        "{text}"
    );
    assert!(text.contains("bind 127.0.10.1:8201"), "{text}");
    assert!(
        text.contains("server m1 127.0.10.12:8201 check port 8200 inter 200ms fall 1 rise 1"),
        "{text}"
    );
}

#[test]
fn haproxy_stats_give_each_api_server_up_or_down() {
    let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
        api,FRONTEND,,,0,1,4096,1,0,0,0,0,0,,,,,OPEN,\n\
        api,vault-0,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1\n\
        api,vault-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n\
        api,vault-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/2,1\n\
        api,BACKEND,0,0,0,1,410,1,0,0,0,0,,0,0,0,0,UP,2\n\
        cluster,vault-1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1\n";
    let view = haproxy::parse_stat(csv);
    assert_eq!(
        view.into_iter().collect::<Vec<_>>(),
        [
            ("vault-0".to_string(), true),
            ("vault-1".to_string(), false),
            ("vault-2".to_string(), true),
        ]
    );
}

/// A process that dies at start says how: its exit status or the signal, read by reaping it
/// (regression: "exited; the end of .../server.log:" followed by nothing).
#[test]
fn a_process_that_dies_says_how() {
    let dir = tempfile::tempdir().unwrap();
    for (script, expected) in [
        // A moment alive first: the record is made of a running process.
        ("sleep 0.2; exit 3", "exited with status 3"),
        ("sleep 0.2; kill -9 $$", "was killed by SIGKILL"),
    ] {
        let r = process::spawn_detached(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            &dir.path().join("dies.log"),
            dir.path(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // A zombie keeps its start time; its command line is gone.
        while process::is_running(&r) {
            assert!(Instant::now() < deadline, "{script} still runs");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(process::exit_of(r.pid), expected, "{script}");
    }
}

/// The runtime contract as the engine and the plan see it: a member's operations run in its
/// own runtime's concurrency pool, and only a process reads as "stopped" (a pod does not).
#[test]
fn a_member_takes_its_runtimes_pool_and_only_a_process_is_one() {
    use vaultform::provider::Providers as _;
    for (file, pool, process) in [
        ("topologies/local.kdl", "local", true),
        ("topologies/aws-eu.kdl", "kubernetes", false),
    ] {
        let text = std::fs::read_to_string(super::support::root().join(file)).unwrap();
        let loaded = vaultform::load(file, text);
        let (t, _) = loaded.valid().expect("a valid topology");
        let vaults = vaultform::vault::spec::specs(t, Path::new(""));
        let catalog = vaultform::catalog::Catalog::new(std::sync::Arc::new(vaults));
        let member: vaultform::address::Address = "vault.bv.member.vault-0".parse().unwrap();
        let kind = vaultform::graph::Kind::VaultMember;
        let provider = catalog.provider(kind).expect("a member provider");
        assert_eq!(provider.pool(&member), pool, "{file}");
        assert_eq!(catalog.is_process(kind, &member), process, "{file}");
    }
}
