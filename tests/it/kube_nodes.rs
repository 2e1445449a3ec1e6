//! The test bed's nodes (`scripts/testbed kube-up` without `--no-nodes`): a real kubelet,
//! containerd and kube-proxy per cluster run an OpenBao pod from the server image built here,
//! as a non-root user with its fsGroup on a volume the node's provisioner made, ready by its
//! own readiness probe, reachable on its NodePort, replaced by the StatefulSet controller when
//! deleted; its volume goes with its claim, and `kube-down` leaves no process, mount or network
//! namespace behind. `nlb-up` puts an NLB-like HAProxy in front of the NodePort, from what
//! moto's ELBv2 holds, and its DNS name resolves for `kube-exec` and inside the pods.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::control_plane::ControlPlanes;
use crate::support::testbed::{Moto, bin_dir};

const CLUSTER: &str = "kn-a";

/// The OpenBao version of the test bed (the server image's tag).
fn bao_version() -> String {
    let out = Command::new(bin_dir().join("bao"))
        .arg("version")
        .output()
        .expect("bao version");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().nth(1).expect("OpenBao vX.Y.Z");
    v.trim_start_matches('v').to_string()
}

/// The AWS side of one NLB in front of cluster `kn-a`'s node pool, made with boto3 as a user
/// would with any AWS client: a VPC, the EKS cluster and node group, the auto scaling group
/// real EKS makes (moto does not), a target group on NodePort 30200 checked like vaultform's
/// (HTTP, a path, 5 s, 2 and 2; an uninitialised server answers it 501, so the target is
/// unhealthy), a TCP listener on 8200, the group attached to the ASG.
const AWS_FIXTURE: &str = r#"
import boto3, sys
s = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1")
ec2, eks, elb, asg = (s.client(n, endpoint_url=sys.argv[1]) for n in ("ec2", "eks", "elbv2", "autoscaling"))
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
role = "arn:aws:iam::123456789012:role/eks"
eks.create_cluster(name="kn-a", roleArn=role, resourcesVpcConfig={"subnetIds": [sub]})
ng = eks.create_nodegroup(clusterName="kn-a", nodegroupName="pool1", nodeRole=role, subnets=[sub])
name = ng["nodegroup"]["resources"]["autoScalingGroups"][0]["name"]
ec2.create_launch_template(LaunchTemplateName="lt-kn-a", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c5.large"})
asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateName": "lt-kn-a"}, MinSize=1, MaxSize=1, VPCZoneIdentifier=sub)
lb = elb.create_load_balancer(Name="kn-a", Type="network", Subnets=[sub])["LoadBalancers"][0]
tg = elb.create_target_group(Name="kn-a-api", Protocol="TCP", Port=30200, VpcId=vpc, TargetType="instance",
    HealthCheckProtocol="HTTP", HealthCheckPath="/v1/sys/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2, UnhealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=8200,
    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
asg.attach_load_balancer_target_groups(AutoScalingGroupName=name, TargetGroupARNs=[tg])
print(lb["DNSName"])
"#;

fn manifest(version: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: vault}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: server, namespace: vault}}
data:
  config.hcl: |
    disable_mlock = true
    api_addr      = "http://127.0.0.1:8200"
    cluster_addr  = "http://127.0.0.1:8201"
    listener "tcp" {{
      address     = "[::]:8200"
      tls_disable = true
    }}
    storage "raft" {{
      path    = "/vault/data"
      node_id = "kn-0"
    }}
---
apiVersion: v1
kind: Service
metadata: {{name: kn, namespace: vault}}
spec:
  type: NodePort
  selector: {{app: kn}}
  ports: [{{name: api, port: 8200, nodePort: 30200}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: kn, namespace: vault}}
spec:
  serviceName: kn
  replicas: 1
  selector: {{matchLabels: {{app: kn}}}}
  template:
    metadata: {{labels: {{app: kn}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 100, runAsGroup: 1000, fsGroup: 1000}}
      containers:
      - name: server
        image: quay.io/openbao/openbao:{version}
        command: [bao, server, -config=/vault/config/config.hcl]
        readinessProbe:
          httpGet: {{path: "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204", port: 8200}}
          periodSeconds: 1
        volumeMounts:
        - {{name: config, mountPath: /vault/config}}
        - {{name: data, mountPath: /vault/data}}
      volumes:
      - name: config
        configMap: {{name: server}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

/// Polls `check` every 200 ms until it holds, for up to `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_runs_an_openbao_pod_from_the_image_built_here_and_kube_down_leaves_nothing() {
    let moto = Moto::start();
    let planes = ControlPlanes::with_nodes(&[CLUSTER], Some(&moto.endpoint()));
    let node = planes.node(CLUSTER);
    let kubectl = |args: &[&str]| planes.kubectl(CLUSTER, args);

    // The node registered with its own address, and the default storage class is the node's.
    let ip = kubectl(&[
        "get",
        "node",
        &node["node"],
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    assert_eq!(ip, node["node_ip"]);
    assert!(kubectl(&["get", "storageclass"]).contains("gp2 (default)"));

    let file = planes.dir.path().join("kn.yaml");
    std::fs::write(&file, manifest(&bao_version())).expect("manifest");
    kubectl(&["apply", "-f", file.to_str().expect("utf-8")]);
    kubectl(&[
        "-n",
        "vault",
        "rollout",
        "status",
        "statefulset/kn",
        "--timeout=120s",
    ]);

    // Started by the kubelet as the pod's user, its log read back through the kubelet.
    let logs = kubectl(&["-n", "vault", "logs", "kn-0"]);
    assert!(logs.contains("OpenBao server started"), "{logs}");
    let id = kubectl(&["-n", "vault", "exec", "kn-0", "--", "bao", "version"]);
    assert!(id.contains("OpenBao"), "{id}");

    // Through kube-proxy's NodePort on the node's address, from the machine, once kube-proxy
    // has seen the ready endpoint.
    eventually("the NodePort answers", Duration::from_secs(30), || {
        let health = Command::new("curl")
            .args(["-s", "-m", "2"])
            .arg(format!("http://{}:30200/v1/sys/health", node["node_ip"]))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&health.stdout).contains("\"initialized\":false")
    });

    // An NLB in front of it: its DNS name resolves to its HAProxy for a command run with
    // kube-exec, and inside the pod, which reaches itself through it; its only target is
    // unhealthy, and the NLB fails open as AWS's does.
    let fixture = Command::new(bin_dir().join("python"))
        .args(["-c", AWS_FIXTURE, &moto.endpoint()])
        .output()
        .expect("python");
    assert!(
        fixture.status.success(),
        "{}",
        String::from_utf8_lossy(&fixture.stderr)
    );
    let dns = String::from_utf8_lossy(&fixture.stdout).trim().to_string();
    let up = Command::new(crate::support::root().join("scripts/testbed"))
        .args(["nlb-up"])
        .arg(planes.dir.path())
        .arg("eu-west-1")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .output()
        .expect("nlb-up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let url = format!("http://{dns}:8200/v1/sys/health");
    eventually("the NLB answers by name", Duration::from_secs(60), || {
        let out = Command::new(crate::support::root().join("scripts/testbed"))
            .arg("kube-exec")
            .arg(planes.dir.path())
            .args(["--", "curl", "-s", "-m", "2", &url])
            .output()
            .expect("kube-exec curl");
        String::from_utf8_lossy(&out.stdout).contains("\"initialized\":false")
    });
    let cfg = std::fs::read_to_string(planes.dir.path().join("nlb/haproxy.cfg")).expect("cfg");
    assert!(
        cfg.contains(&format!(
            "server n0 {}:30200 check inter 5s rise 2 fall 2",
            node["node_ip"]
        )),
        "{cfg}"
    );
    assert!(cfg.contains("http-check expect rstatus ^(200)$"), "{cfg}");
    assert!(cfg.contains("option allbackups"), "{cfg}");
    // `bao status` exits 2 for a sealed server, with its status on stdout.
    let inside = Command::new(crate::support::root().join("scripts/testbed"))
        .arg("kube-exec")
        .arg(planes.dir.path())
        .args([
            "--",
            "kubectl",
            "--context",
            CLUSTER,
            "-n",
            "vault",
            "exec",
            "kn-0",
            "--",
        ])
        .args(["bao", "status", "-format=json"])
        .arg(format!("-address=http://{dns}:8200"))
        .output()
        .expect("kubectl exec");
    let inside = String::from_utf8_lossy(&inside.stdout);
    assert!(inside.contains("\"initialized\": false"), "{inside}");

    // The claim is bound to a local volume in the node's directory, written by the server
    // with the pod's fsGroup.
    let pv = kubectl(&[
        "-n",
        "vault",
        "get",
        "pvc",
        "data-kn-0",
        "-o",
        "jsonpath={.spec.volumeName}",
    ]);
    let path = kubectl(&["get", "pv", &pv, "-o", "jsonpath={.spec.local.path}"]);
    assert!(path.starts_with(planes.dir.path().to_str().expect("utf-8")));
    let meta = std::fs::metadata(std::path::Path::new(&path).join("vault.db")).expect("raft db");
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), 1000);

    // A deleted pod comes back from the StatefulSet controller, with the same volume.
    let uid = kubectl(&[
        "-n",
        "vault",
        "get",
        "pod",
        "kn-0",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    kubectl(&["-n", "vault", "delete", "pod", "kn-0", "--wait=false"]);
    eventually("the pod replaced", Duration::from_secs(60), || {
        let now = planes.kubectl(
            CLUSTER,
            &[
                "-n",
                "vault",
                "get",
                "pod",
                "kn-0",
                "-o",
                "jsonpath={.metadata.uid} {.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        now.split_once(' ')
            .is_some_and(|(u, ready)| u != uid && ready == "True")
    });

    // The claim deleted, its volume and directory go.
    kubectl(&["-n", "vault", "delete", "statefulset", "kn", "--wait=true"]);
    kubectl(&["-n", "vault", "delete", "pvc", "data-kn-0", "--wait=true"]);
    eventually("the volume deleted", Duration::from_secs(60), || {
        planes
            .kubectl(CLUSTER, &["get", "pv", "-o", "name"])
            .trim()
            .is_empty()
    });
    assert!(!std::path::Path::new(&path).exists(), "{path} is left");

    let dir = planes.dir.path().to_str().expect("utf-8").to_string();
    let addresses: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(planes.dir.path().join("nlb/addresses.json")).expect("addresses"),
    )
    .expect("JSON");
    let lb_address = format!(
        "{}/16",
        addresses[&dns].as_str().expect("the NLB's address")
    );
    drop(planes);
    let bridge = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&bridge.stdout).contains(&format!(" {lb_address} ")),
        "{lb_address} is left on the bridge"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    let procs = Command::new("pgrep")
        .args(["-f", &dir])
        .output()
        .expect("pgrep");
    assert!(
        procs.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
    assert!(
        !std::path::Path::new("/run/netns")
            .join(&node["netns"])
            .exists()
    );
}
