//! `seal "transit"` on the local runtime, for real (moto, OpenBao, HAProxy on 127.0.91.x):
//! apply runs a transit server and three members that unseal through it; a member killed
//! with SIGKILL and started again by its recorded command line, with no vaultform involved,
//! comes back unsealed and a voter by itself; with the transit server killed, `status` says so
//! and exits non-zero, and apply brings it back; destroy leaves nothing. The secrets of the
//! seal appear in no output.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::aws::Api;
use crate::support::stack::LocalStack;
use crate::support::{stderr, stdout};
use vaultform::runtime::local::process::{self, ProcessRecord};
use vaultform::vault::seal::{TRANSIT_ROOT, TRANSIT_SHARE, TRANSIT_TOKEN};

const FILE: &str = "seal.kdl";
const STATE: &str = ".vaultform/seal.state.json";

fn record(stack: &LocalStack, dir: &str) -> ProcessRecord {
    let text = std::fs::read(stack.work.join(dir).join("process.json")).expect("process.json");
    serde_json::from_slice(&text).unwrap()
}

/// `status --json` of the cluster, whatever its exit code.
fn status(stack: &LocalStack) -> (Option<i32>, serde_json::Value, String) {
    let out = stack.run(&["status", FILE, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_default();
    (out.status.code(), json["vaults"][0].clone(), stderr(&out))
}

fn member<'a>(cluster: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    cluster["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

/// Polls `status` until member `name` is an unsealed voter of a healthy cluster.
fn wait_unsealed_voter(stack: &LocalStack, name: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (code, cluster, _) = status(stack);
        let m = member(&cluster, name);
        if code == Some(0) && m["sealed"] == false && m["voter"] == true {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{name} is not an unsealed voter after {within:?}: {m}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn members_unseal_themselves_through_the_transit_server_vaultform_runs() {
    let stack = LocalStack::new(FILE, ".vaultform/seal");
    let applied = stack.apply();
    assert!(applied.contains("vault.sl.seal.transit"), "{applied}");

    // The members' configuration carries the limited token and the CA, and is 0600.
    let hcl_path = stack.work.join("members/vault-1/server.hcl");
    let hcl = std::fs::read_to_string(&hcl_path).unwrap();
    assert!(hcl.contains("seal \"transit\""), "{hcl}");
    assert!(
        hcl.contains("address = \"https://127.0.91.20:8200\""),
        "{hcl}"
    );
    assert!(hcl.contains("key_name = \"autounseal-sl\""), "{hcl}");
    assert!(hcl.contains("tls_ca_cert"), "{hcl}");
    let mode = std::fs::metadata(&hcl_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Init made recovery keys: they are in the store as shares are, and the seal reports it.
    let store = stack.store(
        STATE,
        "seal",
        "sl",
        &[("eu-west-1", "seal-unseal-eu-west-1", "unseal")],
        "vault/sl/",
        2,
    );
    let keys = stack.keys(&store);
    assert_eq!(keys.shares.len(), 3, "three recovery keys");
    let (code, cluster, err) = status(&stack);
    assert_eq!(code, Some(0), "{cluster}\n{err}");
    assert_eq!(cluster["seal"]["type"], "transit");
    assert_eq!(cluster["seal"]["server_state"], "unsealed");

    // The member token is only a token for the one key: the transit root and share are not it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (transit_root, transit_share, member_token) = rt.block_on(async {
        let aws = crate::unseal_store::aws_for(&stack.moto.endpoint()).await;
        let get = |name| {
            let (store, aws) = (&store, &aws);
            async move {
                store
                    .load_object(aws, name)
                    .await
                    .unwrap()
                    .expect("in the store")
                    .expose()
                    .to_string()
            }
        };
        (
            get(TRANSIT_ROOT).await,
            get(TRANSIT_SHARE).await,
            get(TRANSIT_TOKEN).await,
        )
    });
    assert!(hcl.contains(&member_token));
    assert!(!hcl.contains(&transit_root));

    // A crash and a plain restart, by the recorded command line: no vaultform involved.
    let crashed = record(&stack, "members/vault-1");
    process::kill(&crashed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while process::is_running(&crashed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!process::is_running(&crashed));
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&crashed.log)
        .unwrap();
    let mut restarted = std::process::Command::new(&crashed.command[0])
        .args(&crashed.command[1..])
        .current_dir(stack.work.join("members/vault-1"))
        .env_clear()
        .env("PATH", LocalStack::search_path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the member again");
    let back = wait_unsealed_voter(&stack, "vault-1", Duration::from_secs(60));
    eprintln!("vault-1 back as an unsealed voter {back:?} after a plain restart");
    // Stopped by its PID; apply starts it again below.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(restarted.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = restarted.wait();

    // The transit server down: `status` says so and fails.
    let transit = record(&stack, "seal-transit");
    process::kill(&transit);
    let (code, cluster, _) = status(&stack);
    assert_eq!(code, Some(1), "{cluster}");
    assert_eq!(cluster["seal"]["server_state"], "down");
    let text = stack.run(&["status", FILE]);
    assert_eq!(text.status.code(), Some(1));
    let text = stdout(&text);
    assert!(
        text.contains("SEAL DOWN: the transit server https://127.0.91.20:8200 is down"),
        "{text}"
    );

    // Apply brings back the transit server (unsealed from the store) and the stopped member,
    // which unseals itself; the second apply changes nothing.
    stack.apply();
    let (code, cluster, err) = status(&stack);
    assert_eq!(code, Some(0), "{cluster}\n{err}");
    assert_eq!(cluster["seal"]["server_state"], "unsealed");
    assert_eq!(member(&cluster, "vault-1")["voter"], true);
    let plan = stack.ok(&["plan", FILE, "--detailed-exitcode"]);
    assert!(!plan.contains("vault.sl."), "{plan}");

    // Dropping the seal from the topology is refused, and the transit server stays.
    let file = stack.path().join(FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("seal \"transit\"", "// no seal")).unwrap();
    let out = stack.run(&["apply", FILE, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is initialised with a transit seal, the topology asks for shamir; vaultform does not migrate seals"),
        "{err}"
    );
    assert!(process::is_running(&record(&stack, "seal-transit")));
    std::fs::write(&file, text).unwrap();
    let (code, _, err) = status(&stack);
    assert_eq!(code, Some(0), "{err}");

    // `unseal` brings a stopped member back: started again, it unseals itself.
    process::kill(&record(&stack, "members/vault-2"));
    stack.ok(&["unseal", FILE]);
    wait_unsealed_voter(&stack, "vault-2", Duration::from_secs(30));

    for secret in [&transit_root, &transit_share, &member_token] {
        stack.assert_absent(secret, &[]);
    }
    for share in &keys.shares {
        stack.assert_absent(share.expose(), &[]);
    }
    stack.assert_absent(keys.root_token.expose(), &[]);

    // Destroying the transit server (and so the cluster on it) removes its secrets from the
    // store; then the rest goes: no process, no directory, no bucket.
    let all = crate::support::recorded_processes(&stack.work);
    stack.ok(&[
        "destroy",
        FILE,
        "--target",
        "vault.sl.seal.transit",
        "--auto-approve",
    ]);
    rt.block_on(async {
        let aws = crate::unseal_store::aws_for(&stack.moto.endpoint()).await;
        for name in [TRANSIT_ROOT, TRANSIT_SHARE, TRANSIT_TOKEN] {
            assert!(
                store.load_object(&aws, name).await.unwrap().is_none(),
                "{name} is still in the store"
            );
        }
    });
    stack.ok(&["destroy", FILE, "--auto-approve"]);
    for r in &all {
        assert!(!process::is_running(r), "{:?} still runs", r.command);
    }
    assert!(!stack.work.exists(), "the working directory is removed");
    rt.block_on(async {
        let api = Api::new(&stack.moto.endpoint()).await;
        assert!(api.stack_buckets("seal").await.is_empty());
    });
}
