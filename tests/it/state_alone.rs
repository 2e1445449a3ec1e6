//! Teardown from the state alone: `topologies/local.kdl` applied for real (moto, OpenBao,
//! HAProxy) with a short `--ttl`, then `expired --destroy` run from a directory that holds no
//! topology. Every delete works from what the state recorded: nothing is left live in AWS
//! (but the KMS keys pending deletion), no process runs, the state records nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use super::support::{recorded_processes, root, stderr, stdout, testbed::Moto, vaultform_aws};
use vaultform::runtime::local::process;

/// This test's loopback network: nothing else in the suite uses 127.0.97.x.
const NET: &str = "127.0.97.";
const REGIONS: &str = "eu-central-1,eu-west-1,eu-north-1";

/// Stops every process the stack recorded, by its PID, whatever the test's outcome.
struct Processes(Vec<process::ProcessRecord>);

impl Drop for Processes {
    fn drop(&mut self) {
        for r in &self.0 {
            process::kill(r);
        }
    }
}

fn with_search_path(dir: &Path, ep: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = super::support::aws_command(dir, ep, args);
    cmd.env("PATH", super::support::stack::LocalStack::search_path());
    cmd.output().expect("run vaultform")
}

#[test]
fn an_expired_local_stack_is_destroyed_from_its_state_without_the_topology() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let stack = tempfile::tempdir().unwrap();
    let nowhere = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("topologies/local.kdl"))
        .unwrap()
        .replace("127.0.10.", NET);
    std::fs::write(stack.path().join("local.kdl"), text).unwrap();
    let work = stack.path().join(".vaultform/bv-local");

    let ttl = Duration::from_secs(2);
    let out = with_search_path(
        stack.path(),
        &ep,
        &["apply", "local.kdl", "--auto-approve", "--ttl", "2s"],
    );
    let mut started = Processes(recorded_processes(&work));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let applied = Instant::now();
    assert_eq!(
        started.0.len(),
        7,
        "3 members and 4 proxies: {:?}",
        started.0
    );
    assert!(started.0.iter().all(process::is_running));
    // The topology goes: only the state (and the stack's tags) are left to destroy it by.
    std::fs::remove_file(stack.path().join("local.kdl")).unwrap();

    if let Some(left) = ttl.checked_sub(applied.elapsed()) {
        std::thread::sleep(left + Duration::from_millis(500));
    }
    let out = with_search_path(
        nowhere.path(),
        &ep,
        &[
            "expired",
            "--regions",
            REGIONS,
            "--destroy",
            "--auto-approve",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Destroyed bv-local: ") && stderr(&out).contains("through its state"),
        "{}",
        stderr(&out)
    );

    // Nothing live but the two keys pending deletion; no process; nothing recorded.
    let out = vaultform_aws(
        nowhere.path(),
        &ep,
        &[
            "sweep",
            "--stack",
            "bv-local",
            "--regions",
            REGIONS,
            "--json",
        ],
    );
    let swept: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(swept["orphans"], serde_json::json!([]), "{swept}");
    assert_eq!(swept["found"], 2, "only the two pending keys: {swept}");
    let running: Vec<_> = started
        .0
        .iter()
        .filter(|r| process::is_running(r))
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
    assert!(!work.exists(), "{} is left", work.display());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(stack.path().join(".vaultform/bv-local.state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["resources"], serde_json::json!({}), "{state}");
    started.0.clear();
}
