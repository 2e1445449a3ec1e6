//! `status`: each member's role, seal, raft membership and index, each load balancer's view
//! of it, the front endpoint, the unseal store's buckets, and the verdict.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Ops;
use crate::runtime::local::haproxy;
use crate::topology::HealthMode;
use crate::vault::RaftServer;
use crate::vault::cluster::{cluster_urls, raft_servers};
use crate::vault::spec::{MemberSpec, VaultSpec};

/// One member, as `status` reports it.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    pub name: String,
    /// Where it runs: its AWS region, the EKS cluster it is placed on, and on Kubernetes its
    /// pod (`<namespace>/<pod>`).
    pub region: String,
    pub cluster: String,
    pub pod: Option<String>,
    pub address: String,
    pub reachable: bool,
    pub initialized: bool,
    pub sealed: bool,
    /// `active`, `standby`, `sealed`, `uninitialized` or `down`.
    pub role: String,
    pub voter: bool,
    pub leader: bool,
    pub applied_index: Option<u64>,
    /// Each load balancer in front of the member, and whether it sends traffic to it.
    pub load_balancers: BTreeMap<String, bool>,
}

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub members: Vec<MemberStatus>,
    /// The front endpoint and the member it serves.
    pub front: Option<String>,
    pub front_serves: Option<String>,
    /// Each bucket of the unseal store, and whether it holds the keys.
    pub unseal_store: Vec<StoreStatus>,
    /// How the members unseal, and whether what they unseal through answers.
    pub seal: SealReport,
    pub healthy: bool,
}

/// A cluster's seal as `status` reports it.
#[derive(Debug, Serialize)]
pub struct SealReport {
    /// `shamir`, `transit` or `awskms`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The transit server's URL.
    pub server: Option<String>,
    /// The transit server: `unsealed`, `sealed` or `down`.
    pub server_state: Option<String>,
    /// Why the seal cannot unseal a member that restarts, when it cannot.
    pub problem: Option<String>,
}

/// The seal, and for a transit seal whether its server answers unsealed: a member that
/// restarts while it does not stays sealed.
async fn seal_report(v: &VaultSpec) -> SealReport {
    let kind = v.seal.kind_name().to_string();
    let crate::vault::seal::SealSpec::Transit(t) = &v.seal else {
        return SealReport {
            kind,
            server: None,
            server_state: None,
            problem: None,
        };
    };
    let status = match t.client() {
        Ok(c) => c.seal_status().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // What brings it back: vaultform starts the server it runs; another is its owner's.
    let remedy = if t.managed.is_some() {
        "`vaultform apply FILE` starts vaultform's transit server again"
    } else {
        "vaultform does not run this server: bring it back where it runs"
    };
    let (state, problem) = match status {
        Ok(s) if !s.sealed => ("unsealed", None),
        Ok(_) => (
            "sealed",
            Some(format!(
                "the transit server {} is sealed: members that restart cannot unseal themselves; {remedy}",
                t.url
            )),
        ),
        Err(e) => (
            "down",
            Some(format!(
                "the transit server {} is down ({e}): members that restart cannot unseal themselves; {remedy}",
                t.url
            )),
        ),
    };
    SealReport {
        kind,
        server: Some(t.url.clone()),
        server_state: Some(state.to_string()),
        problem,
    }
}

#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub bucket: String,
    pub region: String,
    pub holds_keys: bool,
}

async fn member_status(v: &VaultSpec, m: &MemberSpec, raft: &[RaftServer]) -> MemberStatus {
    let c = v.client(&v.member_url(m)).ok();
    let health = match &c {
        Some(c) => c.health().await.ok(),
        None => None,
    };
    let leader = match (&c, &health) {
        (Some(c), Some(_)) => c.leader().await.ok(),
        _ => None,
    };
    let role = match &health {
        None => "down",
        Some(h) if !h.initialized => "uninitialized",
        Some(h) if h.sealed => "sealed",
        Some(h) if h.status == 200 => "active",
        Some(_) => "standby",
    };
    let server = raft.iter().find(|s| s.node_id == m.name);
    MemberStatus {
        name: m.name.clone(),
        region: m.region.clone(),
        cluster: m.cluster.clone(),
        pod: v.kube().map(|k| {
            format!(
                "{}/{}",
                k.namespace,
                crate::runtime::kubernetes::member::pod_name(m)
            )
        }),
        address: match v.kube() {
            // The member's pod, `<cluster>/<namespace>/<pod>`: where `kubectl` finds it.
            Some(k) => format!(
                "{}/{}/{}",
                m.cluster,
                k.namespace,
                crate::runtime::kubernetes::member::pod_name(m)
            ),
            None => format!("{}:{}", m.address, m.api_port),
        },
        reachable: health.is_some(),
        initialized: health.as_ref().is_some_and(|h| h.initialized),
        sealed: health.as_ref().is_none_or(|h| h.sealed),
        role: role.to_string(),
        voter: server.is_some_and(|s| s.voter),
        leader: server.is_some_and(|s| s.leader),
        applied_index: leader.and_then(|l| l.raft_applied_index),
        load_balancers: BTreeMap::new(),
    }
}

/// Whether a load balancer sends traffic to each member: HAProxy's own view from its stats
/// socket, or else its health rule applied to the members' health codes.
async fn load_balancer_view(
    v: &VaultSpec,
    lb: &str,
    members: &[MemberStatus],
) -> BTreeMap<String, bool> {
    let Some(p) = v.proxies.get(lb) else {
        return BTreeMap::new();
    };
    if let Ok(view) = haproxy::api_servers_up(&v.proxy_dir(lb).join("admin.sock")).await
        && !view.is_empty()
    {
        return view;
    }
    p.backends
        .iter()
        .map(|b| {
            let up = members
                .iter()
                .find(|m| m.name == b.name)
                .is_some_and(|m| match p.health {
                    HealthMode::Active => m.role == "active",
                    HealthMode::Unsealed => m.role == "active" || m.role == "standby",
                });
            (b.name.clone(), up)
        })
        .collect()
}

/// Healthy: one leader, an active member, and every member an unsealed voter.
fn healthy(members: &[MemberStatus]) -> bool {
    members.iter().filter(|m| m.leader).count() == 1
        && members.iter().any(|m| m.role == "active")
        && members
            .iter()
            .all(|m| m.voter && (m.role == "active" || m.role == "standby"))
}

pub async fn cluster_status(ops: &Ops, v: &VaultSpec) -> ClusterStatus {
    let raft = match ops.root_token(v).await {
        Ok(token) => raft_servers(&v.client_tls(), &cluster_urls(v), &token)
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut members =
        futures::future::join_all(v.members.iter().map(|m| member_status(v, m, &raft))).await;
    let mut views = BTreeMap::new();
    for lb in v.proxies.keys() {
        views.insert(lb.clone(), load_balancer_view(v, lb, &members).await);
    }
    for m in &mut members {
        for (lb, view) in &views {
            if let Some(up) = view.get(&m.name) {
                m.load_balancers.insert(lb.clone(), *up);
            }
        }
    }
    let front_serves = v.front.as_ref().and_then(|f| {
        views
            .get(f)?
            .iter()
            .find(|(_, up)| **up)
            .map(|(name, _)| name.clone())
    });
    let mut unseal_store = Vec::new();
    if let Ok(store) = ops.store(v) {
        for b in &store.buckets {
            unseal_store.push(StoreStatus {
                bucket: b.bucket.clone(),
                region: b.region.clone(),
                holds_keys: store.has_keys(&ops.aws, b).await,
            });
        }
    }
    let seal = seal_report(v).await;
    ClusterStatus {
        name: v.name.clone(),
        healthy: healthy(&members) && seal.problem.is_none(),
        seal,
        members,
        front: v.front.clone(),
        front_serves,
        unseal_store,
    }
}
