//! A member on the Kubernetes runtime (`vault.<v>.member.<m>` of a cluster on EKS): its
//! StatefulSet's one pod ready, and its API answering through its own load balancer, which
//! is how the bootstrap reaches it. Waits with backoff up to a deadline, and says what the
//! pod is doing when the deadline passes (pending, pulling, crashing) instead of hanging.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{Map, Value, json};

use super::clusters::Clusters;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::retry::{Backoff, Jitter, TryPollError, try_poll};
use crate::state::ResourceState;
use crate::vault::spec::{MemberSpec, VaultSpec, Vaults};

/// How long a member's pod may take to be ready and answer (image pull, volume attach, a
/// node to schedule on): `VAULTFORM_KUBE_POD_TIMEOUT` (`90s`, `10m`), else 10 minutes.
pub const POD_TIMEOUT_ENV: &str = "VAULTFORM_KUBE_POD_TIMEOUT";
const POD_TIMEOUT: Duration = Duration::from_secs(600);

/// 500 ms doubling to 10 s: a pod is ready in seconds to minutes.
const POD_POLL: Backoff = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10))
    .jitter(Jitter::between(0.5, 1.0));

fn pod_timeout() -> Duration {
    std::env::var(POD_TIMEOUT_ENV)
        .ok()
        .and_then(|t| crate::topology::duration::parse(&t).ok())
        .unwrap_or(POD_TIMEOUT)
}

/// The name of a member's pod: its StatefulSet's first (and only) replica.
pub fn pod_name(m: &MemberSpec) -> String {
    format!("{}-0", m.name)
}

/// The desired attributes of a member on Kubernetes.
pub fn desired(v: &VaultSpec, m: &MemberSpec) -> Option<(String, Map<String, Value>)> {
    let k = v.kube()?;
    let attrs = json!({
        "cluster": m.cluster,
        "namespace": k.namespace,
        "pod": pod_name(m),
        "image": format!("{}:{}", k.image, k.version),
        "ready": true,
    });
    Some((
        format!("{}/{}/{}", m.cluster, k.namespace, pod_name(m)),
        attrs.as_object()?.clone(),
    ))
}

/// What a pod is doing, in one line: its phase, its conditions that are not true, and why its
/// containers wait or ended.
pub fn describe_pod(pod: &Pod) -> String {
    let Some(status) = &pod.status else {
        return "no status yet (not scheduled)".into();
    };
    let mut parts = vec![format!(
        "phase {}",
        status.phase.as_deref().unwrap_or("unknown")
    )];
    for c in status.conditions.iter().flatten() {
        if c.status != "True" {
            let why = [c.reason.as_deref(), c.message.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            parts.push(if why.is_empty() {
                format!("{} false", c.type_)
            } else {
                format!("{} false ({why})", c.type_)
            });
        }
    }
    for cs in status.container_statuses.iter().flatten() {
        if let Some(state) = &cs.state {
            if let Some(w) = &state.waiting {
                parts.push(format!(
                    "container {} waiting: {}{}",
                    cs.name,
                    w.reason.as_deref().unwrap_or("?"),
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
            if let Some(t) = &state.terminated {
                parts.push(format!(
                    "container {} exited {}{}",
                    cs.name,
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
        }
        if cs.restart_count > 0 {
            parts.push(format!(
                "container {} restarted {} times",
                cs.name, cs.restart_count
            ));
        }
    }
    parts.join("; ")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The provider of members on Kubernetes.
pub struct KubeMember {
    pub vaults: Arc<Vaults>,
    pub clusters: Arc<Clusters>,
}

impl KubeMember {
    async fn pods(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<Api<Pod>, OpError> {
        let client = self.clusters.client(cx.aws, &m.region, &m.cluster).await?;
        Ok(Api::namespaced(client, v.namespace()))
    }
}

/// Where the wait stood when it ended.
enum Waiting {
    NoPod,
    NotReady(String),
    Silent(String),
}

#[async_trait::async_trait]
impl Provider for KubeMember {
    fn service(&self) -> &'static str {
        "kubernetes"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, m) = self.vaults.member(&rs.address)?;
        let pods = self.pods(cx, v, m).await?;
        let pod = pods
            .get_opt(&pod_name(m))
            .await
            .map_err(|e| OpError::retryable(format!("reading pod {}: {e}", pod_name(m))))?;
        Ok(match pod {
            Some(p) if p.metadata.deletion_timestamp.is_none() => {
                let mut attrs = rs.attributes.clone();
                attrs.insert("ready".into(), json!(is_ready(&p)));
                Observed::Present {
                    attrs,
                    delete_blocker: None,
                }
            }
            _ => Observed::Gone,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, m) = self.vaults.member(&d.address)?;
        let pods = self.pods(cx, v, m).await?;
        let name = pod_name(m);
        let url = v.member_url(m);
        let timeout = pod_timeout();
        let last = std::sync::Mutex::new(Waiting::NoPod);
        let waited = try_poll(
            POD_POLL.deadline(timeout),
            &format!("{} to be ready", m.name),
            || async {
                let pod = pods
                    .get_opt(&name)
                    .await
                    .map_err(|e| OpError::retryable(format!("reading pod {name}: {e}")))?;
                let Some(pod) = pod else {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Waiting::NoPod;
                    return Ok(None);
                };
                if !is_ready(&pod) {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) =
                        Waiting::NotReady(describe_pod(&pod));
                    return Ok(None);
                }
                // Ready in the cluster: now through its load balancer, as the bootstrap will.
                match v.client(&url) {
                    Ok(c) => match c.health().await {
                        Ok(_) => Ok(Some(())),
                        Err(e) => {
                            *last.lock().unwrap_or_else(|e| e.into_inner()) =
                                Waiting::Silent(e.to_string());
                            Ok(None)
                        }
                    },
                    Err(e) => Err(OpError::fatal(e.to_string())),
                }
            },
        )
        .await;
        match waited {
            Ok(()) => Ok(Recorded {
                ids: BTreeMap::new(),
                outputs: BTreeMap::from([("api_addr".to_string(), url)]),
            }),
            Err(TryPollError::Failed(e)) => Err(e),
            Err(TryPollError::GaveUp(_)) => {
                let ns = v.namespace();
                let why = match last.into_inner().unwrap_or_else(|e| e.into_inner()) {
                    Waiting::NoPod => format!(
                        "pod {ns}/{name} does not exist on {} (is the StatefulSet's controller running?)",
                        m.cluster
                    ),
                    Waiting::NotReady(status) => {
                        format!("pod {ns}/{name} on {} is not ready: {status}", m.cluster)
                    }
                    Waiting::Silent(e) => format!(
                        "pod {ns}/{name} is ready, but {url} (its load balancer) does not answer: {e}"
                    ),
                };
                Err(OpError::fatal(format!(
                    "{} did not come up within {}s: {why}; `kubectl -n {ns} describe pod {name}` shows more (`vaultform kubeconfig` writes a kubeconfig), and {POD_TIMEOUT_ENV} waits longer",
                    m.name,
                    timeout.as_secs()
                )))
            }
        }
    }

    /// Nothing of its own: the StatefulSet's deletion removes the pod.
    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        Ok(())
    }
}
