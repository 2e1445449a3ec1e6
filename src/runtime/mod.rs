//! Where Vault nodes run, behind one contract ([`Runtime`]). The local runtime (`local/`):
//! detached processes on this machine (one Vault server per member, one HAProxy per load
//! balancer), each recorded by PID and start time; the Kubernetes runtime (`kubernetes/`): a
//! StatefulSet per member on the EKS clusters. `cert` is the members' certificates, which both
//! write to the cluster's files. The catalog registers one implementation per
//! [`Placement`](crate::vault::spec::Placement); nothing else asks which runtime a cluster is on.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::provider::{Cx, OpError, Provider};
use crate::vault::spec::{MemberSpec, VaultSpec};

pub mod cert;
pub mod kubernetes;
pub mod local;

/// What a runtime does for the members of one Vault cluster: the provider that runs a member,
/// and the actions a drill or a restart takes on one member or one region.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// The provider of `vault.<v>.member.<m>` on this runtime.
    fn member(&self) -> &dyn Provider;

    /// The name and desired attributes of member `m`.
    fn member_desired(&self, v: &VaultSpec, m: &MemberSpec)
    -> Option<(String, Map<String, Value>)>;

    /// Stops member `m`, removes the raft data vaultform made for it, and starts it again
    /// empty (an initialisation that never finished).
    async fn wipe(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError>;

    /// Whether member `m` can be taken away and brought back: checked before a drill takes
    /// anything.
    async fn check_member(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec)
    -> Result<(), OpError>;

    /// Takes member `m` away: at once (`grace` `None`: SIGKILL, a pod deleted with no grace
    /// period) or by a clean stop within `grace`. Returns what was done, for the drill's note.
    async fn stop_member(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        m: &MemberSpec,
        grace: Option<Duration>,
    ) -> Result<String, OpError>;

    /// Brings member `m` back until its API answers (sealed or not: unsealing is the
    /// bootstrap's).
    async fn start_member(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec)
    -> Result<(), OpError>;

    /// Checks that `region` can be lost and restored, given the members it holds.
    async fn check_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError>;

    /// Takes `region` away at once: its members and whatever this runtime runs there for the
    /// cluster. Returns the load balancers it took (the local runtime's HAProxies).
    async fn lose_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<Vec<String>, OpError>;

    /// Brings back what [`Runtime::lose_region`] took, until every lost member's API answers.
    async fn restore_region(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        region: &str,
        lost: &[MemberSpec],
    ) -> Result<(), OpError>;

    /// The directory whose processes a sweep looks for, when the runtime runs any here.
    fn process_dir(&self, v: &VaultSpec) -> Option<PathBuf>;
}
