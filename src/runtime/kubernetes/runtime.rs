//! The Kubernetes runtime behind the runtime contract: a member is a pod of a one-replica
//! StatefulSet, taken away by deleting the pod (its controller makes a new one) or by scaling
//! the StatefulSet to 0, and back when its load balancer answers again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::actions;
use super::clusters::Clusters;
use super::member::{KubeMember, pod_name};
use crate::provider::{Cx, OpError, Provider};
use crate::retry::{Backoff, poll};
use crate::runtime::Runtime;
use crate::vault::spec::{MemberSpec, VaultSpec, Vaults};

/// How long a member's new pod may take to serve again (image cached, volume reattached).
const BACK_TIMEOUT: Duration = Duration::from_secs(600);

/// How long each step of wiping a member's data may take (its pod to go, its claim and
/// volume to go).
const WIPE_TIMEOUT: Duration = Duration::from_secs(300);

/// The Kubernetes runtime: pods on the EKS clusters.
pub struct KubeRuntime {
    member: KubeMember,
    clusters: Arc<Clusters>,
}

impl KubeRuntime {
    pub fn new(vaults: Arc<Vaults>, clusters: Arc<Clusters>) -> Self {
        KubeRuntime {
            member: KubeMember {
                vaults,
                clusters: clusters.clone(),
            },
            clusters,
        }
    }

    async fn client(&self, cx: &Cx<'_>, m: &MemberSpec) -> Result<kube::Client, OpError> {
        self.clusters.client(cx.aws, &m.region, &m.cluster).await
    }

    /// The member's pod must be there for its StatefulSet to replace.
    async fn check_pod(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        let ns = v.namespace();
        let pod = pod_name(m);
        if actions::pod_exists(&self.client(cx, m).await?, ns, &pod).await? {
            return Ok(());
        }
        Err(OpError::fatal(format!(
            "pod {ns}/{pod} of {} is not there: `vaultform apply FILE` brings it back",
            m.name
        )))
    }
}

#[async_trait::async_trait]
impl Runtime for KubeRuntime {
    fn member(&self) -> &dyn Provider {
        &self.member
    }

    fn member_desired(
        &self,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Option<(String, Map<String, Value>)> {
        super::member::desired(v, m)
    }

    /// The member's StatefulSet at 0, its claim deleted, at 1 again: its new pod starts on an
    /// empty volume (the caller waits for it to answer).
    async fn wipe(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        let pod = pod_name(m);
        actions::wipe_data(
            &self.client(cx, m).await?,
            v.namespace(),
            &m.name,
            &pod,
            &format!("data-{pod}"),
            WIPE_TIMEOUT,
        )
        .await
    }

    async fn check_member(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Result<(), OpError> {
        self.check_pod(cx, v, m).await
    }

    async fn stop_member(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
        grace: Option<Duration>,
    ) -> Result<String, OpError> {
        let ns = v.namespace();
        let pod = pod_name(m);
        let seconds = grace.map_or(0, |g| g.as_secs() as u32);
        actions::delete_pod(&self.client(cx, m).await?, ns, &pod, seconds).await?;
        Ok(format!(
            "pod {ns}/{pod} on {} deleted with a {seconds} s grace period",
            m.cluster
        ))
    }

    /// Waits until the member's new pod (the StatefulSet's controller makes it) answers
    /// through its load balancer.
    async fn start_member(
        &self,
        _cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
    ) -> Result<(), OpError> {
        let c = v
            .client(&v.member_url(m))
            .map_err(|e| OpError::fatal(e.to_string()))?;
        poll(
            Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10))
                .deadline(BACK_TIMEOUT),
            &format!("{} to serve again", m.name),
            || async { c.health().await.map(drop).map_err(|e| e.to_string()) },
        )
        .await
        .map_err(|e| OpError::fatal(e.to_string()))
    }

    async fn check_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        _region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError> {
        for m in lost {
            self.check_pod(cx, v, m).await?;
        }
        Ok(())
    }

    /// Scales the region's members' StatefulSets to 0; the NLBs are AWS's and stay.
    async fn lose_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        _region: &str,
        lost: &[MemberSpec],
    ) -> Result<Vec<String>, OpError> {
        for m in lost {
            actions::scale(&self.client(cx, m).await?, v.namespace(), &m.name, 0).await?;
        }
        Ok(Vec::new())
    }

    async fn restore_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        _region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError> {
        for m in lost {
            actions::scale(&self.client(cx, m).await?, v.namespace(), &m.name, 1).await?;
        }
        for m in lost {
            self.start_member(cx, v, m).await?;
        }
        Ok(())
    }

    fn process_dir(&self, _v: &VaultSpec) -> Option<PathBuf> {
        None
    }
}
