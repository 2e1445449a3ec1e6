//! Every manifest of a Vault member on Kubernetes: pinned as YAML snapshots and validated
//! offline against the Kubernetes 1.31 schemas with `kubernetes-validate` (strict: unknown
//! fields are errors).

use std::path::Path;

use vaultform::runtime::kubernetes::manifests::{
    self, KubeMember, KubeSeal, KubeVault, node_ports,
};

use crate::support::testbed::bin_dir;

pub fn vault() -> KubeVault {
    KubeVault {
        name: "bv".into(),
        namespace: "vault".into(),
        program: "bao".into(),
        image: "quay.io/openbao/openbao".into(),
        version: "2.7.2".into(),
        api_port: 8200,
        cluster_port: 8201,
        cpu_request: "250m".into(),
        memory_request: "256Mi".into(),
        memory_limit: "512Mi".into(),
        storage: "10Gi".into(),
        storage_class: Some("gp3".into()),
        mlock: true,
    }
}

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

pub fn member(index: u16, region: &str) -> KubeMember {
    let nlb = |i: u16| format!("bv-{i}-0123456789abcdef.elb.{region}.amazonaws.com");
    KubeMember {
        name: format!("vault-{index}"),
        region: region.into(),
        advertise_host: nlb(index),
        join_url: (index > 0).then(|| {
            "https://bv-0-0123456789abcdef.elb.eu-central-1.amazonaws.com:8200".to_string()
        }),
        seal: KubeSeal::Awskms {
            kms_key_id: format!("arn:aws:kms:{region}:123456789012:key/mrk-1234"),
        },
        role_arn: format!("arn:aws:iam::123456789012:role/bv-vault-{index}"),
        node_ports: node_ports(0),
        tls_cert: PEM.into(),
        tls_key: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n".into(),
        tls_ca: PEM.into(),
    }
}

fn yaml<T: serde::Serialize>(obj: &T) -> String {
    serde_yaml::to_string(obj).unwrap()
}

/// The documents of the cluster-wide objects and of one member, in creation order.
fn documents(v: &KubeVault, m: &KubeMember) -> Vec<(String, String)> {
    let o = manifests::member(v, m);
    vec![
        ("namespace".into(), yaml(&manifests::namespace(v))),
        ("pdb".into(), yaml(&manifests::disruption_budget(v))),
        ("serviceaccount".into(), yaml(&o.service_account)),
        ("configmap".into(), yaml(&o.config)),
        ("secret".into(), yaml(&o.tls)),
        ("service-headless".into(), yaml(&o.headless)),
        ("service-nodeport".into(), yaml(&o.node_port)),
        ("statefulset".into(), yaml(&o.statefulset)),
    ]
}

/// `kubernetes-validate -k 1.31.0 --strict` over `files`: exit status and output.
fn validate(files: &[&Path]) -> (bool, String) {
    let out = std::process::Command::new(bin_dir().join("kubernetes-validate"))
        .args(["-k", "1.31.0", "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate (scripts/testbed setup installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_manifest_is_pinned_and_valid_for_kubernetes_1_31() {
    let v = vault();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, region) in [(0, "eu-central-1"), (1, "eu-west-1")] {
        let m = member(i, region);
        let docs = documents(&v, &m);
        let all: String = docs.iter().map(|(_, d)| format!("---\n{d}")).collect();
        insta::with_settings!({snapshot_path => "snapshots/kube", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(format!("member-{}", m.name), all);
        });
        for (name, doc) in docs {
            let path = dir.path().join(format!("{}-{name}.yaml", m.name));
            std::fs::write(&path, doc).unwrap();
            files.push(path);
        }
    }
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, text) = validate(&paths);
    assert!(ok, "{text}");
    assert_eq!(
        text.matches("passed for resource").count(),
        files.len(),
        "{text}"
    );
}

#[test]
fn the_validator_refuses_what_kubernetes_1_31_would() {
    // Not a vacuous check: an unknown field and a wrong type are caught.
    let dir = tempfile::tempdir().unwrap();
    let mut sts: serde_json::Value =
        serde_json::to_value(manifests::statefulset(&vault(), &member(1, "eu-west-1"))).unwrap();
    sts["spec"]["replicas"] = serde_json::json!("one");
    let bad_type = dir.path().join("type.yaml");
    std::fs::write(&bad_type, serde_yaml::to_string(&sts).unwrap()).unwrap();
    let mut svc: serde_json::Value =
        serde_json::to_value(manifests::node_port(&vault(), &member(1, "eu-west-1"))).unwrap();
    svc["spec"]["nodePorts"] = serde_json::json!([32000]);
    let unknown = dir.path().join("unknown.yaml");
    std::fs::write(&unknown, serde_yaml::to_string(&svc).unwrap()).unwrap();
    for file in [&bad_type, &unknown] {
        let (ok, text) = validate(&[file]);
        assert!(!ok, "{}: {text}", file.display());
    }
}
