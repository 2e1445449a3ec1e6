//! The seed's topology (a copy of `topologies/aws-eu.kdl` with the `shamir` seal: the OpenBao
//! build here has no awskms) applied end to end on the real Kubernetes test bed: moto, three
//! control planes each with a real node (kubelet, containerd, kube-proxy), and NLB-like
//! HAProxies in front of the nodes' NodePorts (`scripts/testbed kube-up`, `nlb-up`).
//! vaultform runs through `scripts/testbed kube-exec`, where the load balancers' names
//! resolve. Apply starts the pods from vaultform's own manifests and bootstraps them through
//! the load balancers to three voters; the real `bao` CLI writes through the front endpoint
//! and reads through each region's load balancer; the drills run on pods; drift made with the
//! real `kubectl` shows and is taken back; destroy leaves nothing in any API.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use crate::support::aws::Api as AwsApi;
use crate::support::control_plane::ControlPlanes;
use crate::support::testbed::{Moto, bin_dir};
use crate::support::{root, stderr, stdout};

const CLUSTERS: [(&str, &str, &str); 3] = [
    ("bv-eu-central-1", "eu-central-1", "vault-0"),
    ("bv-eu-west-1", "eu-west-1", "vault-1"),
    ("bv-eu-north-1", "eu-north-1", "vault-2"),
];

/// The seed as shipped, but: state in a local file, buckets destroy may empty, no EBS CSI
/// add-on (moto has no add-on API; the nodes' provisioner gives the claims their volumes),
/// the shamir seal, and a KV engine with a policy to write it.
fn topology() -> String {
    std::fs::read_to_string(root().join("topologies/aws-eu.kdl"))
        .expect("aws-eu.kdl")
        .lines()
        .filter(|l| !l.starts_with("state "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("force-destroy=#false", "force-destroy=#true")
        .replace("        addon \"aws-ebs-csi-driver\"\n", "")
        .replace("seal \"awskms\" key=\"seal\"", "seal \"shamir\"")
        .replace(
            "    auth \"kubernetes\" type=\"kubernetes\"\n",
            "    auth \"kubernetes\" type=\"kubernetes\"\n    secrets \"kv\" type=\"kv-v2\"\n    policy \"kv-writer\" {\n        path \"kv/data/*\" capabilities=\"create,read,update,list\"\n    }\n",
        )
}

/// `scripts/testbed kube-exec DIR -- CMD...` with moto's endpoint and the test credentials.
fn kube_exec(planes: &ControlPlanes, d: &Path, ep: &str, cmd: &[&str]) -> Output {
    Command::new(root().join("scripts/testbed"))
        .arg("kube-exec")
        .arg(planes.dir.path())
        .arg("--")
        .args(cmd)
        .current_dir(d)
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", ep)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env_remove("AWS_PROFILE")
        .output()
        .expect("kube-exec")
}

fn vaultform(planes: &ControlPlanes, d: &Path, ep: &str, args: &[&str]) -> Output {
    let mut cmd = vec![env!("CARGO_BIN_EXE_vaultform")];
    cmd.extend(args);
    kube_exec(planes, d, ep, &cmd)
}

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}:\n{}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out) + &stderr(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_runs_on_real_nodes_behind_nlbs_and_destroys_to_nothing() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let names: Vec<&str> = CLUSTERS.iter().map(|(c, _, _)| *c).collect();
    let planes = ControlPlanes::with_nodes(&names, Some(&ep));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("aws-eu.kdl"), topology()).unwrap();

    // The node groups first; then their auto scaling groups, which real EKS makes and moto
    // does not (the target groups are attached to them, and nlb-up follows the attachment).
    let mut first = vec!["apply", "aws-eu.kdl", "--auto-approve"];
    let pools: Vec<String> = CLUSTERS
        .iter()
        .map(|(c, r, _)| format!("region.{r}.cluster.{c}.node-pool.pool1"))
        .collect();
    for p in &pools {
        first.extend(["--target", p.as_str()]);
    }
    ok(&vaultform(&planes, d, &ep, &first), "apply the node pools");
    let aws = AwsApi::new(&ep).await;
    for (c, r, _) in CLUSTERS {
        crate::eks_aws::make_node_group_asg(&aws, r, c).await;
    }
    let nlb = Command::new(root().join("scripts/testbed"))
        .arg("nlb-up")
        .arg(planes.dir.path())
        .args(CLUSTERS.iter().map(|(_, r, _)| *r))
        .env("AWS_ENDPOINT_URL", &ep)
        .output()
        .unwrap();
    assert!(nlb.status.success(), "{}", stderr(&nlb));

    // Apply: every AWS resource and object, the pods started by the kubelets from the
    // ConfigMap and Secret vaultform applied, the bootstrap through the load balancers.
    let start = Instant::now();
    let out = vaultform(&planes, d, &ep, &["apply", "aws-eu.kdl", "--auto-approve"]);
    let log = ok(&out, "apply");
    eprintln!(
        "apply from the node pools to three voters: {:.1?}",
        start.elapsed()
    );
    for m in ["vault-0", "vault-1", "vault-2"] {
        assert!(
            log.contains(&format!("vault.bv.member.{m}: created")),
            "{log}"
        );
    }
    assert!(log.contains("vault.bv.raft: created"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    for (c, _, m) in CLUSTERS {
        let pod = planes.kubectl(
            c,
            &[
                "-n",
                "vault",
                "get",
                "pod",
                &format!("{m}-0"),
                "-o",
                "jsonpath={.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.ownerReferences[0].kind}",
            ],
        );
        assert_eq!(pod, format!("{c}-node-1 True StatefulSet"), "{c}");
    }
    let status = ok(
        &vaultform(&planes, d, &ep, &["status", "aws-eu.kdl"]),
        "status",
    );
    assert!(
        status.contains("healthy: one leader, every member an unsealed voter"),
        "{status}"
    );
    // Each member by its pod, where kubectl finds it.
    for (c, _, m) in CLUSTERS {
        assert!(status.contains(&format!("{c}/vault/{m}-0")), "{status}");
    }

    // The real client: a write through the front endpoint, read back through each region's
    // load balancer.
    let script = format!(
        r#"set -e
eval "$({vf} env aws-eu.kdl)"
export BAO_TOKEN="$({vf} login aws-eu.kdl --policy kv-writer --ttl 10m)"
bao kv put kv/seed colour=green >/dev/null
for lb in bv-eu-central-1-1.eu-central-1 bv-eu-west-1-1.eu-west-1 bv-eu-north-1-1.eu-north-1; do
  echo "$(BAO_ADDR="https://$lb.elb.amazonaws.com:8200" bao kv get -field=colour kv/seed)"
done
"#,
        vf = env!("CARGO_BIN_EXE_vaultform")
    );
    let out = kube_exec(&planes, d, &ep, &["bash", "-c", &script]);
    assert_eq!(
        ok(&out, "bao kv")
            .trim_end()
            .lines()
            .filter(|l| *l == "green")
            .count(),
        3
    );

    // Idempotent.
    let plan = ok(&vaultform(&planes, d, &ep, &["plan", "aws-eu.kdl"]), "plan");
    assert!(plan.contains("No changes."), "{plan}");

    // The drills on pods: the leader's pod deleted, the StatefulSet controller brings it
    // back and vaultform unseals it; a region's load balancer and pods gone and restored.
    let drill = ok(
        &vaultform(&planes, d, &ep, &["drill", "failover", "aws-eu.kdl"]),
        "drill failover",
    );
    eprintln!("{drill}");
    assert!(drill.contains("back as an unsealed voter"), "{drill}");
    let drill = ok(
        &vaultform(
            &planes,
            d,
            &ep,
            &[
                "drill",
                "region-loss",
                "aws-eu.kdl",
                "--region",
                "eu-north-1",
            ],
        ),
        "drill region-loss",
    );
    eprintln!("{drill}");
    assert!(drill.contains("every member a voter"), "{drill}");

    // Drift made with kubectl: the StatefulSet scaled to nothing shows, and apply takes it
    // back.
    planes.kubectl(
        "bv-eu-west-1",
        &[
            "-n",
            "vault",
            "scale",
            "statefulset",
            "vault-1",
            "--replicas=0",
        ],
    );
    let plan = vaultform(&planes, d, &ep, &["plan", "aws-eu.kdl"]);
    let text = stdout(&plan) + &stderr(&plan);
    assert!(
        text.contains("vault.bv.kube.bv-eu-west-1.statefulset.vault-1"),
        "{text}"
    );
    assert!(text.contains("replicas"), "{text}");
    ok(
        &vaultform(&planes, d, &ep, &["apply", "aws-eu.kdl", "--auto-approve"]),
        "apply after drift",
    );
    let plan = ok(&vaultform(&planes, d, &ep, &["plan", "aws-eu.kdl"]), "plan");
    assert!(plan.contains("No changes."), "{plan}");

    // Destroy: nothing left in any API server (the namespace gone through its finalizers,
    // the claims and their volumes) nor in moto.
    let log = ok(
        &vaultform(
            &planes,
            d,
            &ep,
            &["destroy", "aws-eu.kdl", "--auto-approve"],
        ),
        "destroy",
    );
    assert!(log.contains("Nothing billable remains"), "{log}");
    for (c, r, _) in CLUSTERS {
        let left = planes.kubectl(c, &["get", "namespace", "vault", "--ignore-not-found"]);
        assert!(left.trim().is_empty(), "{c}: {left}");
        let pvs = planes.kubectl(c, &["get", "pv,pvc", "-A", "-o", "name"]);
        assert!(pvs.trim().is_empty(), "{c}: {pvs}");
        let eks = aws.eks(r).list_clusters().send().await.unwrap();
        assert!(eks.clusters().is_empty(), "{r}");
        let lbs = aws.elbv2(r).describe_load_balancers().send().await.unwrap();
        assert!(lbs.load_balancers().is_empty(), "{r}");
    }
}
