//! The Kubernetes API stand-in (`tests/kube_standin.py`), started and stopped by PID.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use base64::Engine;

use vaultform::runtime::kubernetes::client::ClusterAccess;

/// A stand-in API server owned by one test; stopped (by its own PID) when dropped.
pub struct StandIn {
    child: Child,
    pub url: String,
    /// Where its CA and server certificate are.
    pub tls: tempfile::TempDir,
}

impl StandIn {
    /// Starts it on a port it picks itself and reads the URL from its first line.
    pub fn start() -> StandIn {
        let tls = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(super::testbed::bin_dir().join("python"))
            .arg(super::root().join("tests/kube_standin.py"))
            .arg("--tls-dir")
            .arg(tls.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/kube_standin.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the stand-in prints its URL");
        let Some(url) = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string)
        else {
            let _ = child.kill();
            let status = child.wait();
            panic!("the stand-in did not start: {line:?} {status:?}");
        };
        StandIn { child, url, tls }
    }

    /// Its CA, PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.tls.path().join("ca.crt")).expect("ca.crt")
    }

    /// How to reach it, as `DescribeCluster` would say for an EKS cluster.
    pub fn access(&self, name: &str) -> ClusterAccess {
        ClusterAccess {
            name: name.to_string(),
            region: "eu-west-1".into(),
            endpoint: self.url.clone(),
            ca_data: base64::engine::general_purpose::STANDARD.encode(self.ca_pem()),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
