//! plan / apply / destroy end to end against a real moto server: idempotence, drift, updates,
//! saved plans, locks, and crash safety under SIGKILL.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{aws_command, stderr, stdout, vaultform_aws};

const REGIONS: [&str; 3] = ["eu-west-1", "eu-north-1", "eu-central-1"];

/// Keys and buckets in three regions; `versioning` and `force` vary per test.
fn topology(stack: &str, versioning: bool, force: bool) -> String {
    let mut s = format!(
        "stack \"{stack}\"\nstate \"local\" path=\"state/{stack}.json\"\n\ndefaults {{\n    key deletion-window=7\n    bucket versioning=#{versioning} force-destroy=#{force}\n}}\n"
    );
    for r in REGIONS {
        s.push_str(&format!(
            "\nregion \"{r}\" {{\n    key \"unseal\" alias=\"alias/{stack}-unseal\"\n    bucket \"{stack}-{r}\" key=\"unseal\"\n}}\n"
        ));
    }
    s
}

fn write(dir: &Path, text: &str) {
    std::fs::write(dir.join("stack.kdl"), text).unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn state_json(dir: &Path, stack: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(dir.join(format!("state/{stack}.json"))).expect("state file");
    serde_json::from_str(&text).expect("state is valid JSON")
}

#[test]
fn apply_is_idempotent_updates_in_place_and_destroy_leaves_nothing() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rt";
    write(d, &topology(stack, true, false));

    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("6 created"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("AWS API calls: kms"),
        "{}",
        stderr(&out)
    );

    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        let buckets = api.stack_buckets(stack).await;
        assert_eq!(buckets.len(), 3, "{buckets:?}");
        for r in REGIONS {
            let name = format!("{stack}-{r}");
            let s3 = api.s3(r);
            assert_eq!(api.versioning(r, &name).await, "Enabled");
            let enc = s3
                .get_bucket_encryption()
                .bucket(&name)
                .send()
                .await
                .unwrap();
            let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
            let by_default = rule.apply_server_side_encryption_by_default().unwrap();
            assert_eq!(by_default.sse_algorithm().as_str(), "aws:kms");
            let keys = api.stack_keys(r, stack).await;
            let key_id = &keys["Enabled"][0];
            assert!(
                by_default
                    .kms_master_key_id()
                    .unwrap()
                    .contains(key_id.as_str()),
                "SSE-KMS names the region's key"
            );
            let pab = s3
                .get_public_access_block()
                .bucket(&name)
                .send()
                .await
                .unwrap();
            assert_eq!(
                pab.public_access_block_configuration()
                    .unwrap()
                    .block_public_acls(),
                Some(true)
            );
            let tags = api.bucket_tags(r, &name).await;
            assert_eq!(
                tags.get("vaultform:address"),
                Some(&format!("region.{r}.bucket.{name}"))
            );
            assert_eq!(tags.get("vaultform:stack").map(String::as_str), Some(stack));
        }
    });

    // A second apply changes nothing and says so.
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));
    let out = vaultform_aws(d, &ep, &["plan", "stack.kdl", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );

    // Versioning off is an update in place.
    write(d, &topology(stack, false, false));
    let out = vaultform_aws(
        d,
        &ep,
        &["plan", "stack.kdl", "--detailed-exitcode", "--json"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let actions: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
            )
        })
        .filter(|(_, a)| *a != "no-op")
        .collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(
        actions
            .iter()
            .all(|(a, act)| a.contains(".bucket.") && *act == "update"),
        "{actions:?}"
    );
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 updated"), "{}", stderr(&out));

    // Drift: a bucket deleted outside vaultform is planned for creation again.
    rt.block_on(async {
        api.s3("eu-north-1")
            .delete_bucket()
            .bucket(format!("{stack}-eu-north-1"))
            .send()
            .await
            .unwrap();
    });
    let out = vaultform_aws(d, &ep, &["plan", "stack.kdl"]);
    assert!(
        stdout(&out).contains(&format!(
            "region.eu-north-1.bucket.{stack}-eu-north-1 was deleted"
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("deleted outside vaultform"),
        "{}",
        stdout(&out)
    );

    // Destroy leaves nothing of the stack; keys are pending deletion.
    let out = vaultform_aws(d, &ep, &["destroy", "stack.kdl", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    rt.block_on(async {
        assert!(api.stack_buckets(stack).await.is_empty());
        for r in REGIONS {
            let keys = api.stack_keys(r, stack).await;
            assert!(keys.keys().all(|s| s == "PendingDeletion"), "{r}: {keys:?}");
            assert_eq!(
                keys.get("PendingDeletion").map(Vec::len),
                Some(1),
                "{r}: {keys:?}"
            );
        }
    });
    let state = state_json(d, stack);
    assert!(state["resources"].as_object().unwrap().is_empty());

    // Applying again within the deletion window revives the same keys.
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rt.block_on(async {
        for r in REGIONS {
            let keys = api.stack_keys(r, stack).await;
            assert_eq!(keys.get("Enabled").map(Vec::len), Some(1), "{r}: {keys:?}");
            assert!(!keys.contains_key("PendingDeletion"), "{r}: {keys:?}");
        }
    });
}

#[test]
fn a_bucket_holding_objects_is_only_destroyed_with_force_destroy() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "keep";
    write(d, &topology(stack, true, false));
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        let s3 = api.s3("eu-west-1");
        for i in 0..2 {
            s3.put_object()
                .bucket(format!("{stack}-eu-west-1"))
                .key("vault-unseal-0")
                .body(vec![i; 8].into())
                .send()
                .await
                .unwrap();
        }
    });
    let out = vaultform_aws(d, &ep, &["destroy", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing to delete"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("force-destroy"), "{}", stderr(&out));
    assert_eq!(
        rt.block_on(api.stack_buckets(stack)).len(),
        3,
        "nothing was deleted"
    );

    write(d, &topology(stack, true, true));
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = vaultform_aws(d, &ep, &["destroy", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        rt.block_on(api.stack_buckets(stack)).is_empty(),
        "every version emptied, then deleted"
    );
}

/// Several operations failing for one cause (credentials that may not create KMS keys; each
/// answer with its own request id) are one error line naming the cause once and every
/// address it hit; the progress says it once too.
#[test]
fn one_cause_of_several_failures_is_said_once() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, &topology("once", true, true));
    let proxy = crate::support::testbed::FaultProxy::start_with(
        &ep,
        &["--fail-rate", "0", "--deny", "CreateKey"],
    );
    let out = vaultform_aws(
        d,
        &proxy.endpoint(),
        &["apply", "stack.kdl", "--auto-approve"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].contains("kms:CreateKey"), "{err}");
    assert!(!errors[0].contains("request id"), "{err}");
    assert!(err.contains("\n  at 3 addresses: "), "{err}");
    for r in REGIONS {
        assert!(err.contains(&format!("region.{r}.key.unseal")), "{err}");
    }
    assert_eq!(
        err.matches("not authorized").count(),
        2,
        "progress once, summary once: {err}"
    );
    assert!(err.contains("3 failed, 3 skipped"), "{err}");
    assert!(
        proxy.counts().contains("\"denied\": 3"),
        "{}",
        proxy.counts()
    );
    eprintln!("{err}");
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_once_stale() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "saved";
    write(d, &topology(stack, true, true));
    let out = vaultform_aws(d, &ep, &["plan", "stack.kdl", "--out", "first.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = vaultform_aws(d, &ep, &["plan", "stack.kdl", "--out", "second.plan"]);
    assert_eq!(out.status.code(), Some(0));
    let out = vaultform_aws(d, &ep, &["apply", "first.plan"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a saved plan needs no confirmation: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("6 created"), "{}", stderr(&out));
    let out = vaultform_aws(d, &ep, &["apply", "second.plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is stale"), "{}", stderr(&out));
    assert_eq!(rt_buckets(&ep, stack), 3, "the stale plan created nothing");
}

fn rt_buckets(ep: &str, stack: &str) -> usize {
    let rt = runtime();
    let api = rt.block_on(Api::new(ep));
    rt.block_on(api.stack_buckets(stack)).len()
}

#[test]
fn without_a_terminal_or_auto_approve_apply_refuses() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &topology("ask", true, true));
    let out = aws_command(dir.path(), &moto.endpoint(), &["apply", "stack.kdl"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("without confirmation"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--auto-approve"), "{}", stderr(&out));
    assert_eq!(rt_buckets(&moto.endpoint(), "ask"), 0);
}

#[test]
fn a_second_apply_fails_at_once_naming_the_lock_holder() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, &topology("locked", true, true));
    std::fs::create_dir_all(d.join("state")).unwrap();
    // This test process holds the lock, as a running apply would.
    let backend = vaultform::state::local::LocalBackend::new(d.join("state/locked.json"));
    let guard = runtime()
        .block_on(vaultform::state::Backend::lock(&backend, "apply"))
        .unwrap();
    let started = Instant::now();
    let out = vaultform_aws(
        d,
        &moto.endpoint(),
        &["apply", "stack.kdl", "--auto-approve"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    // Refused, not waiting for a lock that is never released; the bound is generous for a
    // loaded 2-core machine (a run that waited would never end).
    assert!(took < Duration::from_secs(20), "refused in {took:?}");
    let err = stderr(&out);
    assert!(err.contains("locked by apply"), "{err}");
    assert!(
        err.contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains(&guard.info.id), "{err}");
    // force-unlock with that ID frees it.
    let out = vaultform_aws(
        d,
        &moto.endpoint(),
        &["force-unlock", "stack.kdl", &guard.info.id],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::mem::forget(guard);
    let out = vaultform_aws(
        d,
        &moto.endpoint(),
        &["apply", "stack.kdl", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn two_concurrent_applies_one_proceeds_the_other_names_the_holder() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "race";
    write(d, &topology(stack, true, true));
    let mut a = aws_command(d, &ep, &["apply", "stack.kdl", "--auto-approve", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first apply is really working (it holds the lock by then).
    let mut lines = BufReader::new(a.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"started\""), "{first}");
    // Refused, not queued: a run that waited for the lock would succeed once `a` is done.
    let b = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(b.status.code(), Some(1), "{}", stderr(&b));
    assert!(
        stderr(&b).contains(&format!("PID {}", a.id())),
        "{}",
        stderr(&b)
    );
    for _ in lines.by_ref() {}
    assert!(a.wait().unwrap().success());
    let state = state_json(d, stack);
    assert_eq!(state["resources"].as_object().unwrap().len(), 6);
    // One intent record and one completion per resource: 12 saves.
    assert_eq!(state["serial"], 12);
}

/// Kills `apply` (or `destroy`) with SIGKILL after its `n`th progress event; whether it died of
/// the signal (it was still running, not already exited on its own).
fn kill_after_event(d: &Path, ep: &str, cmd: &str, n: usize) -> bool {
    let mut child = aws_command(d, ep, &[cmd, "stack.kdl", "--auto-approve", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = 0;
    let mut killed = false;
    while let Some(Ok(line)) = lines.next() {
        if line.contains("\"event\":\"started\"") || line.contains("\"event\":\"finished\"") {
            seen += 1;
            if seen == n {
                // Not reaped yet: if it exited already, the signal changes nothing and its
                // exit status says so.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed = true;
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    killed && status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
}

#[test]
fn apply_converges_after_sigkill_at_every_moment() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let mut moments = 0;
    // 6 resources: 12 progress events in an apply, 12 in a destroy.
    for n in 1..=12 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stack = format!("kill{n}");
        write(d, &topology(&stack, true, true));
        if kill_after_event(d, &ep, "apply", n) {
            moments += 1;
        }
        let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "re-run after kill at event {n}: {}",
            stderr(&out)
        );
        rt.block_on(async {
            assert_eq!(api.stack_buckets(&stack).await.len(), 3, "kill at {n}");
            for r in REGIONS {
                let keys = api.stack_keys(r, &stack).await;
                assert_eq!(
                    keys.get("Enabled").map(Vec::len),
                    Some(1),
                    "kill at {n}, {r}: no duplicate, no orphan: {keys:?}"
                );
                assert_eq!(keys.len(), 1, "kill at {n}, {r}: {keys:?}");
            }
        });
        let state = state_json(d, &stack);
        assert_eq!(state["resources"].as_object().unwrap().len(), 6);

        // And the same for destroy, killed at the same moment.
        if kill_after_event(d, &ep, "destroy", n) {
            moments += 1;
        }
        let out = vaultform_aws(d, &ep, &["destroy", "stack.kdl", "--auto-approve"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "destroy re-run after kill at event {n}: {}",
            stderr(&out)
        );
        rt.block_on(async {
            assert!(
                api.stack_buckets(&stack).await.is_empty(),
                "destroy kill at {n}"
            );
            for r in REGIONS {
                let keys = api.stack_keys(r, &stack).await;
                // An empty map would pass `all`: the key must be there, pending deletion.
                assert!(
                    !keys.is_empty() && keys.keys().all(|s| s == "PendingDeletion"),
                    "destroy kill at {n}, {r}: {keys:?}"
                );
            }
        });
    }
    // Only the last event of each run may come too late (the process exits right after it).
    eprintln!("killed alive at {moments} of 24 moments");
    assert!(moments >= 22, "killed alive at {moments} moments");
}

#[test]
fn ctrl_c_starts_nothing_new_saves_state_and_the_next_run_converges() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "intr";
    write(d, &topology(stack, true, true));
    // One operation at a time, so that most work is still to start when Ctrl-C comes.
    let mut child = aws_command(
        d,
        &ep,
        &[
            "apply",
            "stack.kdl",
            "--auto-approve",
            "--json",
            "--parallelism",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"started\""), "{first}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "an interrupted apply exits non-zero"
    );
    let summary: serde_json::Value = serde_json::from_str(rest.last().expect("a summary")).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert!(summary["not_started"].as_u64().unwrap() > 0, "{summary}");
    // What finished is recorded, as valid JSON; the next run does the rest.
    let state = state_json(d, stack);
    let recorded = state["resources"].as_object().unwrap().len();
    assert!(recorded < 6, "{recorded} recorded");
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rt_buckets(&ep, stack), 3);
    assert_eq!(
        state_json(d, stack)["resources"].as_object().unwrap().len(),
        6
    );
}

#[test]
fn apply_and_destroy_converge_through_20_percent_injected_faults() {
    let moto = Moto::start();
    let proxy = crate::support::testbed::FaultProxy::start(&moto.endpoint(), 0.2, 7);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "faults";
    write(d, &topology(stack, true, true));
    let out = vaultform_aws(
        d,
        &proxy.endpoint(),
        &["apply", "stack.kdl", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = vaultform_aws(
        d,
        &proxy.endpoint(),
        &["plan", "stack.kdl", "--detailed-exitcode"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let out = vaultform_aws(
        d,
        &proxy.endpoint(),
        &["destroy", "stack.kdl", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts: serde_json::Value = serde_json::from_str(&proxy.counts()).unwrap();
    let injected =
        counts["throttled"].as_u64().unwrap() + counts["server_errors"].as_u64().unwrap();
    assert!(injected >= 10, "faults were injected: {counts}");
    // Checked straight against moto, not through the proxy.
    let rt = runtime();
    let api = rt.block_on(Api::new(&moto.endpoint()));
    rt.block_on(async {
        assert!(api.stack_buckets(stack).await.is_empty());
        for r in REGIONS {
            let keys = api.stack_keys(r, stack).await;
            assert!(keys.keys().all(|s| s == "PendingDeletion"), "{r}: {keys:?}");
            assert_eq!(
                keys.get("PendingDeletion").map(Vec::len),
                Some(1),
                "{r}: no duplicate key: {keys:?}"
            );
        }
    });
}
