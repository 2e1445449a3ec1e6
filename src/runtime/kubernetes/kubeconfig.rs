//! A kubeconfig for people who want `kubectl` on the stack's clusters, authenticating through
//! `vaultform eks-token` as its exec credential plugin, and that plugin's answer.

use std::collections::HashMap;
use std::time::SystemTime;

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};

use super::client::ClusterAccess;
use super::token::EksToken;

/// The exec credential API kubectl speaks with the plugin.
pub const EXEC_API: &str = "client.authentication.k8s.io/v1beta1";

/// A kubeconfig with a cluster, a user and a context per cluster (each named after the
/// cluster), the first one current. `program` is the vaultform to run for tokens; `env`
/// is passed to it (e.g. `AWS_PROFILE`).
pub fn kubeconfig(
    clusters: &[ClusterAccess],
    program: &str,
    env: &[(String, String)],
) -> Kubeconfig {
    let env: Vec<HashMap<String, String>> = env
        .iter()
        .map(|(k, v)| HashMap::from([("name".into(), k.clone()), ("value".into(), v.clone())]))
        .collect();
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        current_context: clusters.first().map(|c| c.name.clone()),
        clusters: clusters
            .iter()
            .map(|c| NamedCluster {
                name: c.name.clone(),
                cluster: Some(Cluster {
                    server: Some(c.endpoint.clone()),
                    certificate_authority_data: Some(c.ca_data.clone()),
                    ..Cluster::default()
                }),
            })
            .collect(),
        auth_infos: clusters
            .iter()
            .map(|c| NamedAuthInfo {
                name: c.name.clone(),
                auth_info: Some(AuthInfo {
                    exec: Some(ExecConfig {
                        api_version: Some(EXEC_API.into()),
                        command: Some(program.into()),
                        args: Some(vec![
                            "eks-token".into(),
                            "--cluster".into(),
                            c.name.clone(),
                            "--region".into(),
                            c.region.clone(),
                        ]),
                        env: (!env.is_empty()).then(|| env.clone()),
                        drop_env: None,
                        interactive_mode: Some(ExecInteractiveMode::Never),
                        provide_cluster_info: false,
                        cluster: None,
                    }),
                    ..AuthInfo::default()
                }),
            })
            .collect(),
        contexts: clusters
            .iter()
            .map(|c| NamedContext {
                name: c.name.clone(),
                context: Some(Context {
                    cluster: c.name.clone(),
                    user: Some(c.name.clone()),
                    ..Context::default()
                }),
            })
            .collect(),
        ..Kubeconfig::default()
    }
}

/// The kubeconfig as YAML.
pub fn to_yaml(config: &Kubeconfig) -> String {
    serde_yaml::to_string(config).unwrap_or_default()
}

/// RFC 3339 in UTC, seconds precision, as Kubernetes writes timestamps.
fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The `ExecCredential` a credential plugin prints on stdout for `token`.
pub fn exec_credential(token: &EksToken) -> serde_json::Value {
    serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": EXEC_API,
        "spec": {},
        "status": {
            "expirationTimestamp": rfc3339(token.expires_at),
            "token": token.expose(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_126_400_250);
        assert_eq!(rfc3339(t), "2026-12-01T12:00:00Z");
    }
}
