//! Real Kubernetes control planes (`scripts/testbed kube-up`), one per named cluster, stopped
//! by their PIDs (`scripts/testbed kube-down`) when dropped.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;

use vaultform::runtime::kubernetes::client::ClusterAccess;

/// The control planes a test started, in a directory of its own.
pub struct ControlPlanes {
    pub dir: tempfile::TempDir,
    endpoints: serde_json::Value,
}

fn testbed(args: &[&std::ffi::OsStr], sts: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(super::root().join("scripts/testbed"));
    cmd.args(args);
    match sts {
        Some(url) => cmd.env("AWS_ENDPOINT_URL", url),
        None => cmd.env_remove("AWS_ENDPOINT_URL"),
    };
    cmd.output().expect("run scripts/testbed")
}

impl ControlPlanes {
    /// Starts one control plane per cluster, without nodes, and waits until each is ready.
    /// Their token webhooks ask the moto at `sts` whose key signed an EKS token (`None`: a
    /// moto of their own).
    pub fn up(clusters: &[&str], sts: Option<&str>) -> ControlPlanes {
        Self::start(clusters, sts, false)
    }

    /// The same, each with a node (a real kubelet, containerd and kube-proxy) that runs pods.
    pub fn with_nodes(clusters: &[&str], sts: Option<&str>) -> ControlPlanes {
        Self::start(clusters, sts, true)
    }

    fn start(clusters: &[&str], sts: Option<&str>, nodes: bool) -> ControlPlanes {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = vec![std::ffi::OsStr::new("kube-up"), dir.path().as_os_str()];
        if !nodes {
            args.push(std::ffi::OsStr::new("--no-nodes"));
        }
        args.extend(clusters.iter().map(std::ffi::OsStr::new));
        let out = testbed(&args, sts);
        let mut planes = ControlPlanes {
            endpoints: serde_json::Value::Null,
            dir,
        };
        assert!(
            out.status.success(),
            "scripts/testbed kube-up failed (scripts/testbed kube-build builds the binaries):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(planes.endpoints_file()).expect("endpoints.json");
        planes.endpoints = serde_json::from_str(&text).expect("endpoints.json is JSON");
        planes
    }

    /// The file vaultform reads (`VAULTFORM_KUBE_ENDPOINTS`).
    pub fn endpoints_file(&self) -> PathBuf {
        self.dir.path().join("endpoints.json")
    }

    /// Runs the real `kubectl` as a cluster admin of `cluster` (a context of
    /// `admin.kubeconfig`, through `scripts/testbed kube-exec`); panics unless it succeeds.
    pub fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        let mut all = vec![
            std::ffi::OsStr::new("kube-exec"),
            self.dir.path().as_os_str(),
            std::ffi::OsStr::new("--"),
            std::ffi::OsStr::new("kubectl"),
            std::ffi::OsStr::new("--context"),
            std::ffi::OsStr::new(cluster),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        let out = testbed(&all, None);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The API server's URL.
    pub fn server(&self, cluster: &str) -> String {
        self.endpoints[cluster]["server"]
            .as_str()
            .expect("a server per cluster")
            .to_string()
    }

    /// What `kube-up` wrote of cluster's node (`node`, `node_ip`, `netns`, `veth`).
    pub fn node(&self, cluster: &str) -> std::collections::BTreeMap<String, String> {
        let env = self
            .dir
            .path()
            .join("clusters")
            .join(cluster)
            .join("node/env");
        std::fs::read_to_string(&env)
            .unwrap_or_else(|e| panic!("{}: {e}", env.display()))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The cluster's CA, PEM.
    pub fn ca_pem(&self, cluster: &str) -> String {
        let file = self.endpoints[cluster]["ca_file"]
            .as_str()
            .expect("a CA per cluster");
        std::fs::read_to_string(file).expect("ca_file")
    }

    /// How to reach the cluster, as `DescribeCluster` would say for an EKS cluster.
    pub fn access(&self, cluster: &str, region: &str) -> ClusterAccess {
        ClusterAccess {
            name: cluster.to_string(),
            region: region.to_string(),
            endpoint: self.server(cluster),
            ca_data: base64::engine::general_purpose::STANDARD.encode(self.ca_pem(cluster)),
        }
    }
}

impl Drop for ControlPlanes {
    fn drop(&mut self) {
        let out = testbed(
            &[
                std::ffi::OsStr::new("kube-down"),
                self.dir.path().as_os_str(),
            ],
            None,
        );
        if !out.status.success() {
            eprintln!(
                "scripts/testbed kube-down: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The Kubernetes release the test bed builds (`tests/kube/go.mod` pins it), e.g. `v1.34.4`.
pub fn kube_version() -> String {
    let gomod = std::fs::read_to_string(super::root().join("tests/kube/go.mod")).expect("go.mod");
    gomod
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("k8s.io/kubernetes"))
                .then(|| words.next())
                .flatten()
                .filter(|v| v.starts_with('v'))
        })
        .expect("k8s.io/kubernetes in tests/kube/go.mod")
        .to_string()
}
