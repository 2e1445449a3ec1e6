//! The S3 state backend against a real moto server (real conditional writes): two applies at
//! once, a holder SIGKILLed inside its lease and taken over after it, a save racing a foreign
//! write, a lock taken over under a paused holder (fencing), ciphertext only in the bucket,
//! versions and restore, `init`, and local -> S3 -> local migration.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use vaultform::aws::AwsSettings;
use vaultform::state::lease::Lease;
use vaultform::state::s3::{S3Backend, S3Location};
use vaultform::state::{Backend, State, StateError};

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{aws_command, stderr, stdout, vaultform_aws};

const BUCKET: &str = "team-vaultform-state";
const STATE_KEY: &str = "envs/rs.json";
const STATE_REGION: &str = "eu-west-1";
const KMS_ALIAS: &str = "alias/rs-state";
const REGIONS: [&str; 2] = ["eu-west-1", "eu-north-1"];

/// Keys and buckets in two regions (the AWS part only: no Vault), state in S3; `extra` adds a
/// bucket so that a second writer has something to do.
fn topology(stack: &str, extra: bool) -> String {
    let mut s = format!(
        "stack \"{stack}\"\nstate \"s3\" bucket=\"{BUCKET}\" key=\"{STATE_KEY}\" region=\"{STATE_REGION}\" kms-key=\"{KMS_ALIAS}\"\n\ndefaults {{\n    key deletion-window=7\n    bucket versioning=#true force-destroy=#true\n}}\n"
    );
    for r in REGIONS {
        s.push_str(&format!(
            "\nregion \"{r}\" {{\n    key \"unseal\" alias=\"alias/{stack}-unseal\"\n    bucket \"{stack}-{r}\" key=\"unseal\"\n"
        ));
        if extra && r == REGIONS[0] {
            s.push_str(&format!("    bucket \"{stack}-extra\" key=\"unseal\"\n"));
        }
        s.push_str("}\n");
    }
    s
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ok(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// `vaultform init`, then the topology in `dir`.
fn setup(dir: &Path, ep: &str, stack: &str) {
    std::fs::write(dir.join("stack.kdl"), topology(stack, false)).unwrap();
    std::fs::write(dir.join("more.kdl"), topology(stack, true)).unwrap();
    let out = vaultform_aws(dir, ep, &["init", "stack.kdl"]);
    ok(&out);
}

fn backend(ep: &str, stack: &str, kms_key: &str, lease: Option<Lease>) -> S3Backend {
    let mut settings = AwsSettings::resolve(Some(ep));
    settings.endpoint = Some(ep.to_string());
    settings.static_credentials = Some(("test".into(), "test".into()));
    let loc = S3Location {
        bucket: BUCKET.into(),
        key: STATE_KEY.into(),
        region: STATE_REGION.into(),
        kms_key: kms_key.into(),
        stack: stack.into(),
    };
    let b = S3Backend::new(loc, settings);
    match lease {
        Some(l) => b.with_lease(l),
        None => b,
    }
}

/// The lock object as JSON, when there is one.
async fn lock_object(api: &Api) -> Option<serde_json::Value> {
    let got = api
        .s3(STATE_REGION)
        .get_object()
        .bucket(BUCKET)
        .key(format!("{STATE_KEY}.lock"))
        .send()
        .await
        .ok()?;
    let body = got.body.collect().await.ok()?.into_bytes();
    serde_json::from_slice(&body).ok()
}

/// Waits until a run other than `pid` holds the lock; returns the lock object.
fn wait_for_holder_other_than(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    child: &mut Child,
    pid: u64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(o) = rt.block_on(lock_object(api))
            && o["pid"].as_u64() != Some(pid)
        {
            return o;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended without the lock"
        );
        assert!(Instant::now() < deadline, "no run took the lock over");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until a run holds the lock (not released); returns the lock object.
fn wait_for_holder(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    child: &mut Child,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(o) = rt.block_on(lock_object(api))
            && o["released"] == false
        {
            return o;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first apply ended before it was seen holding the lock"
        );
        assert!(Instant::now() < deadline, "no run took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(dir: &Path, ep: &str, args: &[&str], lease: &str) -> Child {
    aws_command(dir, ep, args)
        .env("VAULTFORM_LOCK_LEASE", lease)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vaultform")
}

fn run(dir: &Path, ep: &str, args: &[&str], lease: &str) -> std::process::Output {
    spawn(dir, ep, args, lease).wait_with_output().unwrap()
}

/// Buckets and enabled keys tagged with the stack, counted through the API.
fn created(rt: &tokio::runtime::Runtime, api: &Api, stack: &str) -> (usize, usize) {
    rt.block_on(async {
        let buckets = api.stack_buckets(stack).await.len();
        let mut keys = 0;
        for r in REGIONS {
            keys += api
                .stack_keys(r, stack)
                .await
                .get("Enabled")
                .map_or(0, Vec::len);
        }
        (buckets, keys)
    })
}

fn pulled(dir: &Path, ep: &str, file: &str) -> serde_json::Value {
    let out = vaultform_aws(dir, ep, &["state", "pull", file]);
    ok(&out);
    serde_json::from_str(&stdout(&out)).expect("state pull prints JSON")
}

#[test]
fn two_applies_at_once_one_runs_the_other_fails_fast_or_waits() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rs2";
    setup(d, &ep, stack);
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));

    let mut first = spawn(d, &ep, &["apply", "stack.kdl", "--auto-approve"], "60s");
    let holder = wait_for_holder(&rt, &api, &mut first);
    let pid = holder["pid"].as_u64().unwrap();
    assert_eq!(pid, u64::from(first.id()));

    // Without --lock-timeout: refused at once, naming the holder.
    let started = Instant::now();
    let out = run(d, &ep, &["apply", "more.kdl", "--auto-approve"], "60s");
    let refused_in = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the state is locked by apply"), "{err}");
    assert!(err.contains(&format!("(PID {pid})")), "{err}");
    // Refused without waiting for the lease (60 s); generous for a loaded 2-core machine.
    assert!(
        refused_in < Duration::from_secs(20),
        "refused after {refused_in:?}"
    );
    eprintln!("MEASURE second run refused in {refused_in:?} (process start to exit)");

    // The same apply started with it at once ends cleanly too: nothing to do, or it waited.
    let again = spawn(
        d,
        &ep,
        &[
            "apply",
            "stack.kdl",
            "--auto-approve",
            "--lock-timeout",
            "2m",
        ],
        "60s",
    );
    let first = first.wait_with_output().unwrap();
    ok(&first);
    ok(&again.wait_with_output().unwrap());

    // With --lock-timeout: waits while the lock is held (here by this test), then runs and
    // has a bucket to add.
    let held = backend(&ep, stack, KMS_ALIAS, None);
    let guard = rt.block_on(held.lock("test")).unwrap();
    let mut second = spawn(
        d,
        &ep,
        &[
            "apply",
            "more.kdl",
            "--auto-approve",
            "--lock-timeout",
            "2m",
        ],
        "60s",
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        second.try_wait().unwrap().is_none(),
        "it waits for the lock"
    );
    rt.block_on(async move { drop(guard) });
    let second = second.wait_with_output().unwrap();
    ok(&second);
    let err = stderr(&second);
    assert!(err.contains("The state is locked by test"), "{err}");
    assert!(err.contains("waiting up to 120s"), "{err}");

    // Nothing created twice: 3 buckets (2 + the extra one) and 2 keys.
    assert_eq!(created(&rt, &api, stack), (3, 2));
    // The serial counts every save of both runs: one stored version per save.
    let state = pulled(d, &ep, "stack.kdl");
    let out = vaultform_aws(d, &ep, &["state", "versions", "stack.kdl", "--json"]);
    ok(&out);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        state["serial"].as_u64().unwrap() as usize,
        versions.len(),
        "{versions:#?}"
    );
    assert_eq!(state["resources"].as_object().unwrap().len(), 5);
    // The lock was released; its fencing token counts the four locks taken.
    let lock = rt.block_on(lock_object(&api)).unwrap();
    assert_eq!(lock["released"], true);
    assert_eq!(lock["fence"], 4);
}

#[test]
fn a_holder_killed_inside_its_lease_is_named_then_taken_over() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rsk";
    setup(d, &ep, stack);
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let lease = "3s";

    let mut first = spawn(d, &ep, &["apply", "stack.kdl", "--auto-approve"], lease);
    let holder = wait_for_holder(&rt, &api, &mut first);
    let pid = first.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = first.wait();
    let killed = Instant::now();

    // Within the lease: refused, naming the dead holder.
    let out = run(d, &ep, &["apply", "stack.kdl", "--auto-approve"], lease);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("(PID {pid})")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("lease until"), "{}", stderr(&out));

    // After the lease: taken over by itself, said so, and converged.
    let expires = time::OffsetDateTime::parse(
        holder["lease_expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = expires - time::OffsetDateTime::now_utc();
    if wait.is_positive() {
        std::thread::sleep(wait.unsigned_abs() + Duration::from_millis(50));
    }
    let expired = Instant::now();
    let mut taker = spawn(d, &ep, &["apply", "stack.kdl", "--auto-approve"], lease);
    let new_holder = wait_for_holder_other_than(&rt, &api, &mut taker, u64::from(pid));
    let taken_in = expired.elapsed();
    let since_kill = killed.elapsed();
    assert_eq!(
        new_holder["fence"].as_u64(),
        holder["fence"].as_u64().map(|f| f + 1)
    );
    let out = taker.wait_with_output().unwrap();
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("Took over a stale lock"), "{err}");
    assert!(err.contains(&format!("(PID {pid})")), "{err}");
    assert!(err.contains("its lease expired"), "{err}");
    eprintln!(
        "MEASURE an expired lease taken over {taken_in:?} after it expired (process start to the new lock written); {:?} from the SIGKILL (lease {lease})",
        since_kill
    );
    let out = run(d, &ep, &["plan", "stack.kdl", "--detailed-exitcode"], lease);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(created(&rt, &api, stack), (2, 2));
}

#[test]
fn a_save_racing_a_foreign_write_fails_and_a_fenced_holder_cannot_save() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let stack = "rsr";
    setup(dir.path(), &ep, stack);
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        let a = backend(&ep, stack, KMS_ALIAS, None);
        let guard = a.lock("apply").await.unwrap();
        assert!(a.load().await.unwrap().is_none());
        let mut state = State::new(stack);
        state.serial = 1;
        a.save(&state).await.unwrap();

        // Someone writes the object behind this run's back.
        let s3 = api.s3(STATE_REGION);
        s3.put_object()
            .bucket(BUCKET)
            .key(STATE_KEY)
            .metadata("vaultform-writer", "apply by mallory on laptop (PID 7)")
            .body(b"foreign bytes".to_vec().into())
            .send()
            .await
            .unwrap();
        state.serial = 2;
        let err = a.save(&state).await.unwrap_err();
        assert!(matches!(err, StateError::Conflict { .. }), "{err:?}");
        assert!(err.to_string().contains("mallory on laptop"), "{err}");
        let body = s3
            .get_object()
            .bucket(BUCKET)
            .key(STATE_KEY)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(&body[..], b"foreign bytes", "nothing was overwritten");
        drop(guard);

        // A holder paused past its lease, its lock taken over: it can never save again.
        let short = Lease {
            length: Duration::from_millis(600),
            heartbeat: Duration::from_secs(3600),
        };
        let paused = backend(&ep, stack, KMS_ALIAS, Some(short));
        let _paused_guard = paused.lock("apply").await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let b = backend(&ep, stack, KMS_ALIAS, None);
        let b_guard = b.lock("apply").await.unwrap();
        assert!(b_guard.took_over.is_some());
        let lock = lock_object(&api).await.unwrap();
        let err = paused.save(&State::new(stack)).await.unwrap_err();
        assert!(matches!(err, StateError::Fenced { .. }), "{err:?}");
        assert!(
            err.to_string().contains(lock["id"].as_str().unwrap()),
            "{err}"
        );
        assert!(lock["fence"].as_u64().unwrap() > 1);
        drop(b_guard);

        // A live holder renews its lease (heartbeat) and is never taken over, however long it
        // runs; its saves go on.
        let quick = Lease {
            length: Duration::from_millis(900),
            heartbeat: Duration::from_millis(300),
        };
        let live = backend(&ep, stack, KMS_ALIAS, Some(quick));
        let live_guard = live.lock("apply").await.unwrap();
        let first_lease = lock_object(&api).await.unwrap()["lease_expires"].clone();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let other = backend(&ep, stack, KMS_ALIAS, Some(quick));
        let err = other.lock("apply").await.unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
        let renewed = lock_object(&api).await.unwrap();
        assert_ne!(
            renewed["lease_expires"], first_lease,
            "the lease was renewed"
        );
        // (The foreign bytes are not a state: reading them is an error, never an empty state.)
        assert!(matches!(live.load().await, Err(StateError::Decrypt { .. })));
        s3.delete_object()
            .bucket(BUCKET)
            .key(STATE_KEY)
            .send()
            .await
            .unwrap();
        assert!(live.load().await.unwrap().is_none());
        live.save(&State::new(stack)).await.unwrap();
        // force-unlock from the command line removes it by its ID (a blocking call: the other
        // worker thread keeps the heartbeat going)...
        let out = vaultform_aws(
            dir.path(),
            &ep,
            &["force-unlock", "stack.kdl", &live_guard.info.id],
        );
        ok(&out);
        assert!(
            stderr(&out).contains("Removed the lock held by apply"),
            "{}",
            stderr(&out)
        );
        // ...and the holder's next save is refused.
        let err = live.save(&State::new(stack)).await.unwrap_err();
        assert!(matches!(err, StateError::Fenced { .. }), "{err:?}");
        drop(live_guard);
    });
}

#[test]
fn the_bucket_holds_ciphertext_only_and_a_wrong_key_is_an_error() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Long enough that the ciphertext cannot hold it by chance (a 3-letter name did, once).
    let stack = "rscipher";
    setup(d, &ep, stack);
    ok(&run(
        d,
        &ep,
        &["apply", "stack.kdl", "--auto-approve"],
        "60s",
    ));
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let state = pulled(d, &ep, "stack.kdl");
    let resources = state["resources"].as_object().unwrap();
    assert_eq!(resources.len(), 4);
    let raw = rt.block_on(async {
        api.s3(STATE_REGION)
            .get_object()
            .bucket(BUCKET)
            .key(STATE_KEY)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
    });
    let raw = String::from_utf8_lossy(&raw);
    // Every known name, address and ARN of the state is absent from the stored object.
    let mut known = vec![
        stack.to_string(),
        format!("{stack}-eu-west-1"),
        "lineage".into(),
    ];
    for (address, r) in resources {
        known.push(address.clone());
        for v in r["ids"].as_object().unwrap().values() {
            known.push(v.as_str().unwrap().to_string());
        }
    }
    known.push(state["lineage"].as_str().unwrap().to_string());
    for k in &known {
        assert!(!raw.contains(k.as_str()), "{k} is in the stored object");
    }
    assert!(raw.contains("vaultform-envelope-1"));

    // Another key: KMS refuses, and the error says so (never an empty state).
    rt.block_on(async {
        let kms = api.kms(STATE_REGION);
        let other = kms.create_key().send().await.unwrap();
        let other = other.key_metadata().unwrap().key_id().to_string();
        let wrong = backend(&ep, stack, &other, None);
        let err = wrong.load().await.unwrap_err();
        assert!(matches!(err, StateError::Decrypt { .. }), "{err:?}");
        let missing = backend(&ep, stack, "alias/no-such-key", None);
        let err = missing.load().await.unwrap_err();
        assert!(err.to_string().contains("alias/no-such-key"), "{err}");
        // Bound to the stack: the same object read for another stack does not decrypt.
        let other_stack = backend(&ep, "someone-else", KMS_ALIAS, None);
        assert!(other_stack.load().await.is_err());
    });
    let text = topology(stack, false).replace(KMS_ALIAS, "alias/no-such-key");
    std::fs::write(d.join("nokey.kdl"), text).unwrap();
    let out = vaultform_aws(d, &ep, &["state", "list", "nokey.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot decrypt state"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn versions_restore_and_migration_local_s3_local() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rsm";
    // init twice: idempotent.
    setup(d, &ep, stack);
    let out = vaultform_aws(d, &ep, &["init", "stack.kdl"]);
    ok(&out);
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        let s3 = api.s3(STATE_REGION);
        assert_eq!(api.versioning(STATE_REGION, BUCKET).await, "Enabled");
        let pab = s3
            .get_public_access_block()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(
            pab.public_access_block_configuration()
                .unwrap()
                .restrict_public_buckets(),
            Some(true)
        );
        let enc = s3
            .get_bucket_encryption()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
        let by_default = rule.apply_server_side_encryption_by_default().unwrap();
        assert_eq!(by_default.sse_algorithm().as_str(), "aws:kms");
    });

    // A local state first.
    let local = topology(stack, false).replace(
        &format!(
            "state \"s3\" bucket=\"{BUCKET}\" key=\"{STATE_KEY}\" region=\"{STATE_REGION}\" kms-key=\"{KMS_ALIAS}\""
        ),
        "state \"local\" path=\"local/state.json\"",
    );
    std::fs::write(d.join("local.kdl"), &local).unwrap();
    ok(&vaultform_aws(
        d,
        &ep,
        &["apply", "local.kdl", "--auto-approve"],
    ));
    let before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("local/state.json")).unwrap())
            .unwrap();

    // local -> S3: the same serial, lineage and resources.
    let out = vaultform_aws(
        d,
        &ep,
        &["state", "migrate", "local.kdl", "--to", "stack.kdl"],
    );
    ok(&out);
    let in_s3 = pulled(d, &ep, "stack.kdl");
    for k in ["serial", "lineage", "resources", "stack"] {
        assert_eq!(before[k], in_s3[k], "{k}");
    }
    let out = vaultform_aws(d, &ep, &["plan", "stack.kdl", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A change through S3, then restore the migrated version.
    ok(&vaultform_aws(
        d,
        &ep,
        &["apply", "more.kdl", "--auto-approve"],
    ));
    let out = vaultform_aws(d, &ep, &["state", "versions", "stack.kdl", "--json"]);
    ok(&out);
    let versions: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let migrated = versions
        .iter()
        .find(|v| v["serial"] == before["serial"])
        .expect("the migrated version is listed");
    let latest = pulled(d, &ep, "stack.kdl");
    assert!(latest["serial"].as_u64() > before["serial"].as_u64());
    let out = vaultform_aws(
        d,
        &ep,
        &[
            "state",
            "restore",
            "stack.kdl",
            migrated["id"].as_str().unwrap(),
        ],
    );
    ok(&out);
    let restored = pulled(d, &ep, "stack.kdl");
    assert_eq!(restored["resources"], before["resources"]);
    assert_eq!(restored["lineage"], before["lineage"]);
    assert_eq!(
        restored["serial"].as_u64().unwrap(),
        latest["serial"].as_u64().unwrap() + 1
    );
    // Put the extra bucket back into the state, then S3 -> local.
    ok(&vaultform_aws(
        d,
        &ep,
        &["apply", "more.kdl", "--auto-approve"],
    ));
    let in_s3 = pulled(d, &ep, "stack.kdl");
    let out = vaultform_aws(
        d,
        &ep,
        &["state", "migrate", "stack.kdl", "--to", "local.kdl"],
    );
    ok(&out);
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("local/state.json")).unwrap())
            .unwrap();
    for k in ["serial", "lineage", "resources", "stack"] {
        assert_eq!(back[k], in_s3[k], "{k}");
    }
    // A version of another lineage is refused.
    rt.block_on(async {
        let b = backend(&ep, stack, KMS_ALIAS, None);
        let _g = b.lock("test").await.unwrap();
        b.load().await.unwrap();
        let other = State::new(stack);
        b.save(&other).await.unwrap();
    });
    let out = vaultform_aws(
        d,
        &ep,
        &[
            "state",
            "restore",
            "stack.kdl",
            migrated["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has lineage"), "{}", stderr(&out));
}

/// `topologies/aws-eu.kdl` keeps its state in S3: `init` makes the bucket and key, and it plans
/// against that state, its AWS part and its Kubernetes objects.
#[test]
fn the_shipped_s3_topology_plans_against_its_remote_state() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let root = crate::support::root();
    let out = vaultform_aws(&root, &ep, &["init", "topologies/aws-eu.kdl"]);
    ok(&out);
    let out = vaultform_aws(
        &root,
        &ep,
        &[
            "plan",
            "topologies/aws-eu.kdl",
            "--target",
            "region.eu-central-1.key.unseal",
        ],
    );
    ok(&out);
    assert!(
        stdout(&out).contains("region.eu-central-1.key.unseal"),
        "{}",
        stdout(&out)
    );
    let out = vaultform_aws(&root, &ep, &["plan", "topologies/aws-eu.kdl"]);
    ok(&out);
    assert!(
        stdout(&out).contains("vault.bv.kube.bv-eu-north-1.statefulset.vault-2"),
        "{}",
        stdout(&out)
    );
}

/// The figures of docs/pipelines.md: what the S3 backend costs one apply, in API calls.
#[test]
fn an_apply_reports_what_the_state_backend_cost() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, &ep, "rsn");
    let out = run(d, &ep, &["apply", "stack.kdl", "--auto-approve"], "60s");
    ok(&out);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("State backend API calls:"))
        .unwrap_or_else(|| panic!("{err}"));
    let state = pulled(d, &ep, "stack.kdl");
    eprintln!(
        "MEASURE {line} for {} saves (serial), one apply creating 4 resources",
        state["serial"]
    );
    let count = |service: &str| -> u64 {
        line.split(&format!("{service} "))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let saves = state["serial"].as_u64().unwrap();
    // The check before the run: the bucket looked up; lock: read + write + 2 probes; state:
    // 1 read; per save: the fence check + the write.
    assert_eq!(count("s3"), 1 + 4 + 1 + 2 * saves, "{line}");
    // One data key per run, made by the check; the first apply has nothing to decrypt.
    assert_eq!(count("kms"), 1, "{line}");
    // A later apply (one bucket more) also decrypts the state it reads.
    let out = run(d, &ep, &["apply", "more.kdl", "--auto-approve"], "60s");
    ok(&out);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("State backend API calls:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("kms 2,"), "{line}");
}

/// Objects in the state bucket, counted through the API.
fn state_objects(rt: &tokio::runtime::Runtime, api: &Api) -> usize {
    rt.block_on(async {
        let listed = api
            .s3(STATE_REGION)
            .list_object_versions()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        listed.versions().len() + listed.delete_markers().len()
    })
}

/// A state bucket made by hand without `vaultform init` (so no `kms-key`), then no bucket at
/// all: `plan`, `apply` and `destroy` stop before anything runs with one message naming what
/// is missing and `vaultform init FILE`; nothing is created, not even the lock object.
#[test]
fn a_missing_state_key_or_bucket_stops_every_run_before_it_starts() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rsk";
    std::fs::write(d.join("stack.kdl"), topology(stack, false)).unwrap();
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        api.s3(STATE_REGION)
            .create_bucket()
            .bucket(BUCKET)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(STATE_REGION.into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    // The diagnostic as one line (miette wraps it at the terminal's width).
    let flat = |text: &str| {
        let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "│").collect();
        words.join(" ")
    };
    let refused = |args: &[&str], missing: &str| {
        let out = vaultform_aws(d, &ep, args);
        let err = flat(&stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            stdout(&out).is_empty(),
            "{args:?} printed a plan: {}",
            stdout(&out)
        );
        assert_eq!(
            err.matches(missing).count(),
            1,
            "{args:?}: said once: {err}"
        );
        assert!(err.contains("vaultform init stack.kdl"), "{args:?}: {err}");
        assert!(
            !err.contains("decrypt"),
            "{args:?}: an encrypt is not a decrypt: {err}"
        );
        assert!(!err.contains("failed"), "{args:?}: nothing ran: {err}");
        eprintln!("{args:?}:\n{err}");
    };
    let no_key = format!("the state's KMS key {KMS_ALIAS} does not exist in {STATE_REGION}");
    refused(&["apply", "stack.kdl", "--auto-approve"], &no_key);
    refused(&["plan", "stack.kdl"], &no_key);
    refused(&["destroy", "stack.kdl", "--auto-approve"], &no_key);
    assert_eq!(created(&rt, &api, stack), (0, 0), "nothing was created");
    assert_eq!(state_objects(&rt, &api), 0, "no lock, no state, no probe");

    // No bucket either: both said, in one message.
    rt.block_on(async {
        api.s3(STATE_REGION)
            .delete_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
    });
    let no_bucket = format!("the state bucket {BUCKET} does not exist in {STATE_REGION}");
    refused(&["apply", "stack.kdl", "--auto-approve"], &no_bucket);
    // A command that only reads the state says so too (it read as "no state").
    let out = vaultform_aws(d, &ep, &["state", "list", "stack.kdl"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(flat(&stderr(&out)).contains(&no_bucket), "{}", stderr(&out));
    let out = vaultform_aws(d, &ep, &["apply", "stack.kdl", "--auto-approve"]);
    assert!(flat(&stderr(&out)).contains(&no_key), "{}", stderr(&out));
    assert_eq!(created(&rt, &api, stack), (0, 0), "nothing was created");

    // What the message says to do makes the next run work.
    ok(&vaultform_aws(d, &ep, &["init", "stack.kdl"]));
    ok(&vaultform_aws(
        d,
        &ep,
        &["apply", "stack.kdl", "--auto-approve"],
    ));
    assert_eq!(created(&rt, &api, stack), (2, 2));
}

/// A dead endpoint with the state in S3: said once, in seconds, before the state backend's
/// own retries.
#[test]
fn a_dead_endpoint_with_remote_state_is_said_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("stack.kdl"), topology("rsd", false)).unwrap();
    let started = Instant::now();
    let out = vaultform_aws(
        d,
        "http://127.0.0.1:1",
        &["apply", "stack.kdl", "--auto-approve"],
    );
    let took = started.elapsed();
    let err = stderr(&out).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the AWS endpoint http://127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.matches("cannot reach").count(), 1, "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}: {err}");
    eprintln!("MEASURE apply with S3 state, dead endpoint: {took:?}");
}

/// A store that ignores conditional writes (lxc/incus#3651) is found out before anything is
/// changed, and named.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stack = "rsu";
    setup(d, &ep, stack);
    let proxy = crate::support::testbed::FaultProxy::start_with(
        &ep,
        &["--fail-rate", "0", "--drop-conditions"],
    );
    let out = vaultform_aws(
        d,
        &proxy.endpoint(),
        &["apply", "stack.kdl", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ignored a conditional write"), "{err}");
    assert!(err.contains(&proxy.endpoint()), "{err}");
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    assert_eq!(created(&rt, &api, stack), (0, 0), "nothing was created");
}

/// A YAML file as JSON, read by PyYAML from the test bed's Python.
fn yaml(path: &Path) -> serde_json::Value {
    let python = crate::support::testbed::bin_dir().join("python");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Runs every `vaultform` command of a pipeline job as written, with bash, in `dir`.
fn play(dir: &Path, ep: &str, env: &[(String, String)], commands: &[String]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_vaultform")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in commands {
        let out = std::process::Command::new("bash")
            .args(["-eo", "pipefail", "-c", command])
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", ep)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}` failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// The plain (expression-free) variables of a pipeline, plus the environment's name.
fn pipeline_env(vars: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vars
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .filter(|(_, v)| !v.contains('$'))
        .collect();
    env.push(("VAULTFORM_VAR_env".into(), name.into()));
    env
}

fn vaultform_lines(commands: impl IntoIterator<Item = String>) -> Vec<String> {
    commands
        .into_iter()
        .filter(|c| c.trim_start().starts_with("vaultform "))
        .collect()
}

/// The example pipelines are valid YAML, assume roles by OIDC (no static keys), and their
/// vaultform commands, played as written against moto, create a branch's environment from a
/// plan file and destroy it; a missing variable is a diagnostic pointing at its use.
#[test]
fn the_example_pipelines_run_as_written() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let root = crate::support::root();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("examples/pipelines")).unwrap();
    std::fs::copy(
        root.join("examples/pipelines/env.kdl"),
        d.join("examples/pipelines/env.kdl"),
    )
    .unwrap();
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));

    // GitHub Actions.
    let gh = yaml(&root.join("examples/pipelines/github-actions.yml"));
    let text = std::fs::read_to_string(root.join("examples/pipelines/github-actions.yml")).unwrap();
    assert!(!text.contains("aws-access-key-id"), "no static keys");
    assert_eq!(gh["permissions"]["id-token"], "write");
    let env = pipeline_env(&gh["env"], "br-feature-x");
    for job in ["plan", "apply", "destroy"] {
        let steps = gh["jobs"][job]["steps"].as_array().unwrap();
        assert!(
            steps
                .iter()
                .any(|s| s["with"]["role-to-assume"].is_string()),
            "{job} assumes a role"
        );
        let commands = vaultform_lines(
            steps
                .iter()
                .filter_map(|s| s["run"].as_str().map(str::to_owned)),
        );
        assert!(!commands.is_empty(), "{job}");
        play(d, &ep, &env, &commands);
        let buckets = rt.block_on(api.stack_buckets("vf-br-feature-x")).len();
        match job {
            "plan" => {
                assert_eq!(buckets, 0, "a plan changes nothing");
                let plan = std::fs::read_to_string(d.join("plan.txt")).unwrap();
                assert!(plan.contains("region.eu-west-1.bucket.vf-br-feature-x-unseal-euw1"));
            }
            "apply" => assert_eq!(buckets, 2, "the environment exists"),
            _ => assert_eq!(buckets, 0, "the environment is gone"),
        }
    }

    // GitLab CI.
    let gl = yaml(&root.join("examples/pipelines/gitlab-ci.yml"));
    assert_eq!(
        gl["default"]["id_tokens"]["AWS_OIDC_TOKEN"]["aud"],
        "https://gitlab.com"
    );
    let env = pipeline_env(&gl["variables"], "br-other");
    for job in ["plan", "apply", "destroy"] {
        let script = gl[job]["script"].as_array().unwrap();
        let commands = vaultform_lines(script.iter().filter_map(|s| s.as_str().map(str::to_owned)));
        assert!(!commands.is_empty(), "{job}");
        play(d, &ep, &env, &commands);
        let buckets = rt.block_on(api.stack_buckets("vf-br-other")).len();
        assert_eq!(buckets, if job == "apply" { 2 } else { 0 }, "{job}");
    }

    // Without the variable: a diagnostic at its use, and how to give it.
    let out = vaultform_aws(d, &ep, &["plan", "examples/pipelines/env.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the variable `env` has no value"), "{err}");
    assert!(err.contains("env.kdl:5:7"), "{err}");
    assert!(err.contains("--var env=VALUE"), "{err}");
    let out = vaultform_aws(
        d,
        &ep,
        &[
            "validate",
            "examples/pipelines/env.kdl",
            "--var",
            "env=pr-1",
        ],
    );
    ok(&out);
}
