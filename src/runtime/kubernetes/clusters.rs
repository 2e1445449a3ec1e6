//! One Kubernetes client per EKS cluster for a run, made on first use: the endpoint and CA
//! from `DescribeCluster` (or from [`ENDPOINTS_ENV`]), an EKS token renewed before it expires.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::Mutex;

use super::client::{ClusterAccess, client, describe};
use super::token::EksTokens;
use crate::aws::Aws;
use crate::provider::OpError;

/// A JSON file naming, per EKS cluster, the Kubernetes API to use instead of the one
/// `DescribeCluster` gives: `{"<cluster>": {"server": "https://...", "ca_file": "<PEM file>"}}`.
/// For emulators (moto's EKS has no API server) and for reaching a private endpoint through a
/// tunnel; a cluster it does not name is described as usual.
pub const ENDPOINTS_ENV: &str = "VAULTFORM_KUBE_ENDPOINTS";

/// The run's clients, by cluster name.
#[derive(Default)]
pub struct Clusters {
    clients: Mutex<HashMap<String, kube::Client>>,
}

fn failed(cluster: &str, message: impl std::fmt::Display) -> OpError {
    OpError::fatal(format!("Kubernetes API of {cluster}: {message}"))
}

/// The override of `cluster` in the [`ENDPOINTS_ENV`] file, if any.
pub(super) fn override_of(cluster: &str, region: &str) -> Result<Option<ClusterAccess>, OpError> {
    let Some(file) = std::env::var_os(ENDPOINTS_ENV) else {
        return Ok(None);
    };
    let path = Path::new(&file);
    let text = std::fs::read_to_string(path)
        .map_err(|e| failed(cluster, format!("{ENDPOINTS_ENV}={}: {e}", path.display())))?;
    let all: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| failed(cluster, format!("{ENDPOINTS_ENV}={}: {e}", path.display())))?;
    let Some(entry) = all.get(cluster) else {
        return Ok(None);
    };
    let field = |k: &str| {
        entry.get(k).and_then(|v| v.as_str()).ok_or_else(|| {
            failed(
                cluster,
                format!("{ENDPOINTS_ENV}={}: no \"{k}\"", path.display()),
            )
        })
    };
    let ca_file = field("ca_file")?;
    let pem = std::fs::read(ca_file).map_err(|e| failed(cluster, format!("{ca_file}: {e}")))?;
    Ok(Some(ClusterAccess {
        name: cluster.to_string(),
        region: region.to_string(),
        endpoint: field("server")?.to_string(),
        ca_data: STANDARD.encode(pem),
    }))
}

/// How to reach `cluster`: the [`ENDPOINTS_ENV`] file's entry for it, else what
/// `DescribeCluster` says.
pub async fn access(aws: &Aws, region: &str, cluster: &str) -> Result<ClusterAccess, OpError> {
    match override_of(cluster, region)? {
        Some(a) => Ok(a),
        None => describe(aws, region, cluster)
            .await
            .map_err(|e| failed(cluster, e)),
    }
}

/// Whether EKS says `cluster` does not exist (deleted outside vaultform): its objects went
/// with it. Any other answer, or none, is not proof.
pub async fn cluster_gone(aws: &Aws, region: &str, cluster: &str) -> bool {
    use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;
    match aws
        .eks(region)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
    {
        Err(e) => e.code() == Some("ResourceNotFoundException"),
        Ok(_) => false,
    }
}

impl Clusters {
    /// The client of `cluster` in `region`.
    pub async fn client(
        &self,
        aws: &Aws,
        region: &str,
        cluster: &str,
    ) -> Result<kube::Client, OpError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(cluster) {
            return Ok(c.clone());
        }
        let access = access(aws, region, cluster).await?;
        let tokens = EksTokens::new(aws, region, cluster).map_err(|e| failed(cluster, e))?;
        let c = client(&access, Arc::new(tokens)).map_err(|e| failed(cluster, e))?;
        clients.insert(cluster.to_string(), c.clone());
        Ok(c)
    }
}
