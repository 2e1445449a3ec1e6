//! Orphans: what carries a stack's tags (or runs under its work-dir) but its state does not
//! record -- left by lost state, a crash before the state was saved, or a run elsewhere --
//! found through the APIs and deleted in dependency order through the providers.

pub mod billable;
pub mod expired;
pub mod expiry;
pub mod inventory;
mod remove;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::graph::Kind;
use crate::state::{State, Status};

pub use inventory::{Query, inventory};
pub use remove::{Removed, remove};

/// What kind of thing was found: the resource kinds vaultform makes, and what AWS or
/// Kubernetes makes for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Thing {
    VaultMember,
    LocalProxy,
    Listener,
    EksNodeGroup,
    LoadBalancer,
    EksCluster,
    TargetGroup,
    NetworkInterface,
    EbsVolume,
    S3Bucket,
    KmsKey,
    IamRole,
    OidcProvider,
    SecurityGroup,
    RouteTable,
    InternetGateway,
    Subnet,
    Vpc,
}

impl Thing {
    /// The provider kind that deletes it, when vaultform has one.
    pub fn kind(self) -> Option<Kind> {
        Some(match self {
            Thing::VaultMember => Kind::VaultMember,
            Thing::LocalProxy => Kind::LocalProxy,
            Thing::Listener => Kind::Listener,
            Thing::EksNodeGroup => Kind::EksNodeGroup,
            Thing::LoadBalancer => Kind::LoadBalancer,
            Thing::EksCluster => Kind::EksCluster,
            Thing::TargetGroup => Kind::TargetGroup,
            Thing::S3Bucket => Kind::S3Bucket,
            Thing::KmsKey => Kind::KmsKey,
            Thing::IamRole => Kind::IamRole,
            Thing::SecurityGroup => Kind::SecurityGroup,
            Thing::RouteTable => Kind::RouteTable,
            Thing::InternetGateway => Kind::InternetGateway,
            Thing::Subnet => Kind::Subnet,
            Thing::Vpc => Kind::Vpc,
            Thing::NetworkInterface | Thing::EbsVolume | Thing::OidcProvider => return None,
        })
    }

    /// The deletion wave: everything of one wave goes before the next starts (what uses a
    /// thing goes before it: node groups before clusters, load balancers before their target
    /// groups and network interfaces, those before security groups and subnets, the VPC last).
    pub fn wave(self) -> u8 {
        match self {
            Thing::VaultMember | Thing::LocalProxy | Thing::Listener | Thing::EksNodeGroup => 0,
            Thing::LoadBalancer | Thing::EksCluster => 1,
            Thing::TargetGroup
            | Thing::NetworkInterface
            | Thing::EbsVolume
            | Thing::S3Bucket
            | Thing::KmsKey => 2,
            Thing::IamRole
            | Thing::OidcProvider
            | Thing::SecurityGroup
            | Thing::RouteTable
            | Thing::InternetGateway => 3,
            Thing::Subnet => 4,
            Thing::Vpc => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Thing::NetworkInterface => "network-interface",
            Thing::EbsVolume => "ebs-volume",
            Thing::OidcProvider => "oidc-provider",
            other => other.kind().map(Kind::as_str).unwrap_or("?"),
        }
    }
}

/// One thing of the stack, as the APIs show it.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub thing: Thing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its cloud identifier (ID, ARN or name), or `pid N` for a process.
    pub id: String,
    /// It carries the stack's tag (or is a process under its work-dir).
    #[serde(skip)]
    pub tagged: bool,
    /// Its `vaultform:address` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// A name, an alias, a size: for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What it belongs to when it has no tag of the stack (a VPC's network interface, a volume
    /// Kubernetes made for a cluster, a listener of a load balancer): it is an orphan when that
    /// is.
    #[serde(skip)]
    pub belongs_to: Option<(Thing, String)>,
    /// A KMS key scheduled for deletion: when AWS deletes it (RFC 3339). Billable until then,
    /// but not an orphan: its deletion is under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deletion: Option<String>,
    /// What its provider's delete reads from a state entry.
    #[serde(skip)]
    pub ids: BTreeMap<String, String>,
    /// All its tags.
    #[serde(skip)]
    pub tags: BTreeMap<String, String>,
}

/// Whether `state` records `f`: its address with the same cloud identifier, or a create of
/// that address under way (the next apply adopts what it left).
fn recorded(state: &State, f: &Found) -> bool {
    let Some(rs) = f
        .address
        .as_deref()
        .and_then(|a| state.resources.iter().find(|(k, _)| k.as_str() == a))
        .map(|(_, v)| v)
    else {
        return false;
    };
    matches!(rs.status, Status::Creating { .. })
        || f.thing.kind().is_some_and(Kind::is_process)
        || rs.ids.values().any(|v| *v == f.id)
}

/// What the state does not record, in deletion order; keys already pending deletion are not
/// orphans (nothing is left to do but wait).
pub fn orphans(found: &[Found], state: &State) -> Vec<Found> {
    // What is recorded, by kind and identifier (an EKS cluster's is its name, the name
    // Kubernetes tags with).
    let live: BTreeSet<(Thing, &str)> = found
        .iter()
        .filter(|f| recorded(state, f))
        .map(|f| (f.thing, f.id.as_str()))
        .collect();
    let mut out: Vec<Found> = found
        .iter()
        .filter(|f| f.pending_deletion.is_none())
        .filter(|f| match &f.belongs_to {
            _ if f.tagged => !recorded(state, f),
            // An untagged bucket the topology names, found empty (inventory's rule): the
            // stack's when the state does not record it.
            None if f.thing == Thing::S3Bucket && f.detail.is_some() => !recorded(state, f),
            // Untagged: the orphan's when what it belongs to is not recorded.
            Some((owner, id)) => !live.contains(&(*owner, id.as_str())),
            None => false,
        })
        .cloned()
        .collect();
    out.sort_by(|a, b| {
        (a.thing.wave(), &a.region, &a.address, &a.id).cmp(&(
            b.thing.wave(),
            &b.region,
            &b.address,
            &b.id,
        ))
    });
    out
}

/// A sweep's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stack: String,
    pub regions: Vec<String>,
    /// What carries the stack's tags and the state does not record.
    pub orphans: Vec<Found>,
    /// Everything of the stack found, recorded or not.
    pub found: usize,
    /// Requests per service.
    pub api_calls: BTreeMap<String, u64>,
    pub seconds: f64,
}
