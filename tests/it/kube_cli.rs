//! `vaultform kubeconfig` and `vaultform eks-token` through the real binary: the kubeconfig
//! of clusters that exist in moto, and its exec plugin run as kubectl would run it.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use aws_sdk_eks::types::VpcConfigRequest;

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{aws_command, stderr, stdout, vaultform_aws};

const TOPOLOGY: &str = r#"stack "kc"

region "eu-west-1" {
    network vpc-cidr="10.20.0.0/16" azs=2
    cluster "kc-a" version="1.31" {
        node-pool "p" instance-types="t3.small" min=1 desired=1 max=1
    }
    cluster "kc-b" version="1.31" {
        node-pool "p" instance-types="t3.small" min=1 desired=1 max=1
    }
}
"#;

/// The JSON kubectl reads from an exec credential plugin.
fn exec_credential(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).expect("one JSON document")
}

#[test]
fn eks_token_prints_an_exec_credential() {
    let dir = tempfile::tempdir().unwrap();
    let before = SystemTime::now();
    let out = vaultform_aws(
        dir.path(),
        "http://127.0.0.1:9",
        &["eks-token", "--cluster", "kc-a", "--region", "eu-west-1"],
    );
    let cred = exec_credential(&out);
    assert_eq!(cred["kind"], "ExecCredential");
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let token = cred["status"]["token"].as_str().unwrap();
    let url = vaultform::runtime::kubernetes::token::decode(token).expect("an EKS token");
    assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"));
    assert!(
        url.contains("X-Amz-Credential=test%2F"),
        "signed with the session's key"
    );
    let expires = time::OffsetDateTime::parse(
        cred["status"]["expirationTimestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = SystemTime::from(expires).duration_since(before).unwrap();
    assert!(
        // Signed at some moment of the run: 14 minutes from then.
        left > Duration::from_secs(13 * 60)
            && left <= Duration::from_secs(14 * 60) + before.elapsed().unwrap(),
        "{left:?}"
    );
}

#[tokio::test]
async fn kubeconfig_describes_the_clusters_and_runs_eks_token() {
    let moto = Moto::start();
    let api = Api::new(&moto.endpoint()).await;
    let eks = api.eks("eu-west-1");
    for name in ["kc-a", "kc-b"] {
        eks.create_cluster()
            .name(name)
            .role_arn("arn:aws:iam::123456789012:role/eks")
            .resources_vpc_config(VpcConfigRequest::builder().build())
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kc.kdl"), TOPOLOGY).unwrap();
    let endpoint = moto.endpoint();

    // An unknown cluster is refused with the known ones.
    let out = vaultform_aws(
        dir.path(),
        &endpoint,
        &["kubeconfig", "kc.kdl", "--cluster", "kc-z"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kc-a, kc-b"), "{}", stderr(&out));

    // To stdout: both clusters.
    let out = vaultform_aws(dir.path(), &endpoint, &["kubeconfig", "kc.kdl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all: serde_yaml::Value = serde_yaml::from_str(&stdout(&out)).unwrap();
    assert_eq!(all["clusters"].as_sequence().unwrap().len(), 2);
    assert_eq!(all["current-context"], "kc-a");

    // To a file, 0600: one cluster.
    let out = vaultform_aws(
        dir.path(),
        &endpoint,
        &[
            "kubeconfig",
            "kc.kdl",
            "--cluster",
            "kc-b",
            "--out",
            "kc.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = dir.path().join("kc.yaml");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(config["apiVersion"], "v1");
    assert_eq!(config["kind"], "Config");
    assert_eq!(config["current-context"], "kc-b");
    let described = eks
        .describe_cluster()
        .name("kc-b")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    let cluster = &config["clusters"][0];
    assert_eq!(cluster["name"], "kc-b");
    assert_eq!(cluster["cluster"]["server"].as_str(), described.endpoint());
    assert_eq!(
        cluster["cluster"]["certificate-authority-data"].as_str(),
        described.certificate_authority().and_then(|c| c.data())
    );
    let context = &config["contexts"][0];
    assert_eq!(context["context"]["cluster"], "kc-b");
    assert_eq!(context["context"]["user"], "kc-b");
    let exec = &config["users"][0]["user"]["exec"];
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(exec["interactiveMode"], "Never");
    let args: Vec<&str> = exec["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["eks-token", "--cluster", "kc-b", "--region", "eu-west-1"]
    );

    // What kubectl does: run the plugin as written, read its ExecCredential.
    let program = exec["command"].as_str().unwrap();
    assert_eq!(program, env!("CARGO_BIN_EXE_vaultform"));
    let out = aws_command(dir.path(), &endpoint, &args)
        .env("KUBERNETES_EXEC_INFO", r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#)
        .output()
        .unwrap();
    let cred = exec_credential(&out);
    assert!(
        cred["status"]["token"]
            .as_str()
            .unwrap()
            .starts_with("k8s-aws-v1.")
    );
    drop(moto);
}
