//! `vaultform doctor FILE`, the real binary against a real moto: a healthy bed, a dead AWS
//! endpoint, an S3 state without its KMS key, a loopback address another process holds and a
//! missing server binary; each a line with what to do, exit 1 when an apply would stop, in
//! seconds.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::aws::Api;
use crate::support::stack::LocalStack;
use crate::support::testbed::Moto;
use crate::support::{aws_command, stderr, stdout};

const STATE_BUCKET: &str = "doctor-state";

/// One local OpenBao member behind its load balancer, on loopback addresses 127.0.`net`.x of
/// its own; the state local or in S3.
fn topology(net: u8, s3_state: bool) -> String {
    let state = if s3_state {
        format!(
            "state \"s3\" bucket=\"{STATE_BUCKET}\" key=\"doc{net}.json\" region=\"eu-west-1\" kms-key=\"alias/doc{net}-state\""
        )
    } else {
        format!("state \"local\" path=\".vaultform/doc{net}.state.json\"")
    };
    format!(
        r#"stack "doc{net}"
{state}

region "eu-west-1" {{
    network vpc-cidr="10.{net}.0.0/16" azs=2
    cluster "doc{net}-eu-west-1" version="1.31" endpoint-access="public" {{
        node-pool "pool1" instance-types="c5.large" min=1 desired=1 max=1
    }}
    key "unseal" alias="alias/doc{net}-unseal" deletion-window=7
    bucket "doc{net}-unseal-eu-west-1" key="unseal" force-destroy=#true
    load-balancer "doc{net}-eu-west-1" local-address="127.0.{net}.1"
}}

vault "dc" {{
    server "bao" version="2.7.2" binary="bao"
    runtime "local" work-dir=".vaultform/doc{net}"
    shares 3
    threshold 2
    member "vault-0" cluster="doc{net}-eu-west-1" load-balancer="doc{net}-eu-west-1" bootstrap=#true address="127.0.{net}.11"
    unseal-store prefix="vault/dc/" {{
        bucket "doc{net}-unseal-eu-west-1"
    }}
}}
"#
    )
}

/// `doctor stack.kdl` (and `extra`) in `dir` against `endpoint`, with `path` as PATH; the
/// output and how long it took.
fn doctor(dir: &Path, endpoint: &str, path: &str, extra: &[&str]) -> (Output, Duration) {
    let mut args = vec!["doctor", "stack.kdl"];
    args.extend(extra);
    let started = Instant::now();
    let out = aws_command(dir, endpoint, &args)
        .env("PATH", path)
        .output()
        .expect("run vaultform doctor");
    (out, started.elapsed())
}

/// The line of the check on `subject`.
fn line<'a>(out: &'a str, subject: &str) -> &'a str {
    out.lines()
        .find(|l| l.get(5..).is_some_and(|rest| rest.starts_with(subject)))
        .unwrap_or_else(|| panic!("no check of {subject}:\n{out}"))
}

fn write(dir: &Path, net: u8, s3_state: bool) {
    std::fs::write(dir.join("stack.kdl"), topology(net, s3_state)).unwrap();
}

#[test]
fn a_healthy_bed_is_ready_to_apply_in_seconds() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 61, false);
    let (out, took) = doctor(
        dir.path(),
        &moto.endpoint(),
        &LocalStack::search_path(),
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        line(&text, "AWS in eu-west-1").contains("acts as arn:aws:"),
        "{text}"
    );
    assert!(line(&text, "program bao").contains("OpenBao"), "{text}");
    assert!(line(&text, "program haproxy").contains("HAProxy"), "{text}");
    for subject in [
        "address 127.0.61.11:8200 (member vault-0 API)",
        "address 127.0.61.11:8201 (member vault-0 cluster)",
        "address 127.0.61.1:8200 (load balancer doc61-eu-west-1 API)",
    ] {
        assert!(line(&text, subject).ends_with(": free"), "{text}");
    }
    assert!(
        line(&text, "state .vaultform/doc61.state.json").contains("nothing recorded yet"),
        "{text}"
    );
    // moto runs on this machine's clock.
    assert!(
        line(&text, "clock against AWS's").contains(": within "),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.ends_with(": ready to apply\n"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!("MEASURE doctor, healthy bed: {took:?}\n{text}");

    // For pipelines: the same checks as one JSON object.
    let (out, _) = doctor(
        dir.path(),
        &moto.endpoint(),
        &LocalStack::search_path(),
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let areas: std::collections::BTreeSet<&str> =
        checks.iter().map(|c| c["area"].as_str().unwrap()).collect();
    assert_eq!(
        areas.into_iter().collect::<Vec<_>>(),
        ["address", "aws", "binary", "clock", "state"]
    );
    assert!(checks.iter().all(|c| c["status"] == "ok"), "{report}");
    assert!(
        checks
            .iter()
            .all(|c| c["subject"].is_string() && c["detail"].is_string() && c.get("fix").is_none()),
        "{report}"
    );
}

#[test]
fn a_dead_endpoint_fails_fast_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 62, false);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (out, took) = doctor(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &LocalStack::search_path(),
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let aws = line(&text, "AWS in eu-west-1");
    assert!(aws.starts_with("FAIL"), "{text}");
    assert!(
        aws.contains(&port.to_string()),
        "names the endpoint: {text}"
    );
    assert!(
        text.contains("-> check the endpoint (AWS_ENDPOINT_URL"),
        "{text}"
    );
    assert!(
        text.ends_with(": 1 problem would stop an apply\n"),
        "{text}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    eprintln!("MEASURE doctor, dead endpoint: {took:?}\n{text}");
    let (out, _) = doctor(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        &LocalStack::search_path(),
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["area"], "aws");
    assert!(
        failed[0]["fix"]
            .as_str()
            .unwrap()
            .contains("AWS_ENDPOINT_URL")
    );
}

/// The S3 state without `vaultform init`: the same check every run makes, said with what to
/// do; the probe of conditional writes leaves nothing in the bucket. After `init`, ready.
#[test]
fn a_missing_state_key_is_named_with_init_and_nothing_is_left_behind() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 63, true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&ep));
    let s3 = api.s3("eu-west-1");
    rt.block_on(async {
        s3.create_bucket()
            .bucket(STATE_BUCKET)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint("eu-west-1".into())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        s3.put_bucket_versioning()
            .bucket(STATE_BUCKET)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let objects = || {
        rt.block_on(async {
            let listed = s3
                .list_object_versions()
                .bucket(STATE_BUCKET)
                .send()
                .await
                .unwrap();
            listed.versions().len() + listed.delete_markers().len()
        })
    };
    let (out, _) = doctor(dir.path(), &ep, &LocalStack::search_path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let key = line(&text, "state KMS key alias/doc63-state in eu-west-1");
    assert!(key.starts_with("FAIL"), "{text}");
    assert!(
        key.contains("the state's KMS key alias/doc63-state does not exist in eu-west-1"),
        "{text}"
    );
    assert!(
        text.contains("-> `vaultform init stack.kdl` creates the state's bucket and KMS key"),
        "{text}"
    );
    assert!(
        line(&text, "state bucket doctor-state in eu-west-1").starts_with("ok"),
        "{text}"
    );
    assert!(
        line(&text, "conditional writes in doctor-state").starts_with("ok"),
        "{text}"
    );
    assert!(
        line(&text, "state lock s3://doctor-state/doc63.json.lock").ends_with(": free"),
        "{text}"
    );
    assert_eq!(objects(), 0, "the probe and its version are gone: {text}");
    eprintln!("{text}");

    let out = aws_command(dir.path(), &ep, &["init", "stack.kdl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (out, _) = doctor(dir.path(), &ep, &LocalStack::search_path(), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        line(&text, "state KMS key alias/doc63-state in eu-west-1").contains("makes data keys"),
        "{text}"
    );
    assert_eq!(objects(), 0, "{text}");
}

#[test]
fn a_taken_address_is_named_with_what_to_do() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 64, false);
    let _squatter = std::net::TcpListener::bind("127.0.64.11:8200").unwrap();
    let (out, _) = doctor(
        dir.path(),
        &moto.endpoint(),
        &LocalStack::search_path(),
        &[],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert_eq!(
        line(&text, "address 127.0.64.11:8200 (member vault-0 API)"),
        "FAIL address 127.0.64.11:8200 (member vault-0 API): in use by another process",
        "{text}"
    );
    assert!(text.contains("`ss -ltnp 'sport = :8200'`"), "{text}");
    assert!(
        line(&text, "address 127.0.64.11:8201 (member vault-0 cluster)").ends_with(": free"),
        "{text}"
    );
    eprintln!("{text}");
}

#[test]
fn a_missing_binary_is_named_with_what_to_do() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 65, false);
    // A PATH without the test bed: no `bao` (HAProxy is found in the system's sbin).
    let (out, _) = doctor(dir.path(), &moto.endpoint(), "/nonexistent", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert_eq!(
        line(&text, "program bao"),
        "FAIL program bao: not found on PATH",
        "{text}"
    );
    assert!(
        text.contains("-> install bao (`scripts/testbed setup` does)"),
        "{text}"
    );
    assert!(line(&text, "program haproxy").starts_with("ok"), "{text}");
    eprintln!("{text}");
}

/// A cluster on the Kubernetes runtime: its EKS cluster's API, once the state records the
/// cluster, answers (a real control plane), then does not.
#[test]
fn each_eks_cluster_hosting_members_is_reached_once_created() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let planes = crate::support::control_plane::ControlPlanes::up(&["dock-eu-west-1"], Some(&ep));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("stack.kdl"),
        r#"stack "dock"
state "local" path=".vaultform/dock.state.json"

region "eu-west-1" {
    network vpc-cidr="10.66.0.0/16" azs=2
    cluster "dock-eu-west-1" version="1.31" endpoint-access="public" {
        node-pool "pool1" instance-types="c5.large" min=1 desired=1 max=1
    }
    key "unseal" alias="alias/dock-unseal" deletion-window=7
    bucket "dock-unseal-eu-west-1" key="unseal" force-destroy=#true
    load-balancer "dock-eu-west-1"
}

vault "dk" {
    server "bao" version="2.7.2" image="quay.io/openbao/openbao:2.7.2"
    runtime "kubernetes" namespace="vault"
    member "vault-0" cluster="dock-eu-west-1" load-balancer="dock-eu-west-1" bootstrap=#true
    unseal-store prefix="vault/dk/" {
        bucket "dock-unseal-eu-west-1"
    }
}
"#,
    )
    .unwrap();
    // Copies: the control plane's own go with it.
    let endpoints = d.join("endpoints.json");
    let ca = d.join("ca.crt");
    std::fs::write(&ca, planes.ca_pem("dock-eu-west-1")).unwrap();
    std::fs::write(
        &endpoints,
        serde_json::json!({"dock-eu-west-1": {"server": planes.server("dock-eu-west-1"), "ca_file": ca}})
            .to_string(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        aws_command(d, &ep, args)
            .env("VAULTFORM_KUBE_ENDPOINTS", &endpoints)
            .output()
            .unwrap()
    };
    let subject = "Kubernetes API of dock-eu-west-1 (eu-west-1)";

    let out = run(&["doctor", "stack.kdl"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        line(&text, subject).ends_with(": not created yet: apply creates it"),
        "{text}"
    );

    let cluster = "region.eu-west-1.cluster.dock-eu-west-1";
    let out = run(&["apply", "stack.kdl", "--auto-approve", "--target", cluster]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["doctor", "stack.kdl"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        line(&text, subject).contains(": answers (Kubernetes "),
        "{text}"
    );
    eprintln!("{text}");

    // A state that cannot be read: nothing said about the cluster but that.
    let state_file = d.join(".vaultform/dock.state.json");
    let kept = std::fs::read(&state_file).unwrap();
    std::fs::write(&state_file, b"not json").unwrap();
    let out = run(&["doctor", "stack.kdl"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        line(&text, "state .vaultform/dock.state.json").starts_with("FAIL"),
        "{text}"
    );
    assert_eq!(
        line(&text, subject),
        format!("warn {subject}: not checked: the state cannot be read"),
        "{text}"
    );
    std::fs::write(&state_file, kept).unwrap();

    drop(planes);
    let out = run(&["doctor", "stack.kdl"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let failed = line(&text, subject);
    assert!(failed.starts_with("FAIL"), "{text}");
    assert!(failed.contains("onnect"), "cannot connect: {text}");
    assert!(text.contains("`vaultform kubeconfig stack.kdl`"), "{text}");
    eprintln!("{text}");
}

/// A running stack's own listeners are not a problem: the state records the cluster that
/// holds them.
#[test]
fn a_running_stack_holds_its_own_addresses() {
    let stack = LocalStack::new("doctor.kdl", ".vaultform/doc60");
    stack.apply();
    let out = stack.run(&["doctor", "doctor.kdl"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    for subject in [
        "address 127.0.60.11:8200 (member vault-0 API)",
        "address 127.0.60.1:8200 (load balancer doc60-eu-west-1 API)",
    ] {
        assert!(
            line(&text, subject)
                .ends_with(": in use, by this stack's cluster dc (its state records it)"),
            "{text}"
        );
    }
    assert!(
        line(&text, "state .vaultform/doc60.state.json").contains("resources recorded"),
        "{text}"
    );
    eprintln!("{text}");
}
