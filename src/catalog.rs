//! The catalog of resource kinds, above the kinds themselves: which graph nodes a topology
//! yields (each area adds its own), which provider runs each kind, which kinds this build can
//! run, and the desired attributes of every node. Nothing below imports it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use petgraph::graph::NodeIndex;

use crate::graph::{Builder, Graph, Kind, Resource};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Providers, Recorded};
use crate::resources::{
    access_entry, eks, eks_addon, eks_runtime, elb, iam_role, kms_key, kube_volumes, network,
    oidc_provider, s3_bucket, target_attachment,
};
use crate::runtime::Runtime;
use crate::runtime::cert::{self, LocalCert};
use crate::runtime::kubernetes::clusters::Clusters;
use crate::runtime::kubernetes::objects::{self as kube_objects, KubeObjects};
use crate::runtime::kubernetes::runtime::KubeRuntime;
use crate::runtime::local::runtime::LocalRuntime;
use crate::runtime::local::transit::{self, LocalTransit};
use crate::state::ResourceState;
use crate::topology::{Problem, Topology};
use crate::vault::bootstrap::{self, RaftJoin, RaftVerify, UnsealKeys, VaultInit, VaultUnseal};
use crate::vault::ca::{self, VaultCa};
use crate::vault::config::{self, Config};
use crate::vault::revoke_root::{self, RevokeRoot};
use crate::vault::spec::{MemberSpec, Placement, VaultSpec, Vaults};

/// Builds the graph of a decoded topology, area by area in a fixed order (so that addresses,
/// DOT output and plans are stable): IAM, then per region its network, keys, buckets, EKS
/// clusters and load balancers, then the Vault clusters; then `depends-on` and cycles.
pub fn graph(t: &Topology, problems: &mut Vec<Problem>) -> Graph {
    let mut b = Builder::default();
    iam_role::graph(&mut b, t);
    for (ri, r) in t.regions.iter().enumerate() {
        network::graph(&mut b, r);
        kms_key::graph(&mut b, ri, r);
        s3_bucket::graph(&mut b, ri, r);
        eks::graph(&mut b, r);
        elb::graph(&mut b, r);
    }
    eks_runtime::graph(&mut b, t);
    bootstrap::graph(&mut b, t);
    kube_objects::graph(&mut b, t);
    b.finish(problems)
}

/// Every provider, the Vault and runtime kinds holding the run's resolved Vault clusters.
pub struct Catalog {
    vaults: Arc<Vaults>,
    ca: VaultCa,
    cert: LocalCert,
    runtimes: Arc<Runtimes>,
    member: Members,
    kube: KubeObjects,
    init: VaultInit,
    keys: UnsealKeys,
    unseal: VaultUnseal,
    join: RaftJoin,
    verify: RaftVerify,
    config: [Config; 6],
    revoke_root: RevokeRoot,
    transit: LocalTransit,
}

impl Catalog {
    pub fn new(vaults: Arc<Vaults>) -> Self {
        let v = || vaults.clone();
        let clusters = Arc::new(Clusters::default());
        let reviewer: Arc<dyn crate::vault::config::TokenReviewer> =
            Arc::new(crate::runtime::kubernetes::reviewer::Reviewer {
                clusters: clusters.clone(),
            });
        let config = |kind| Config {
            kind,
            vaults: v(),
            reviewer: Some(reviewer.clone()),
        };
        let runtimes = Arc::new(Runtimes {
            local: LocalRuntime::new(v()),
            kube: KubeRuntime::new(v(), clusters.clone()),
        });
        Catalog {
            ca: VaultCa(v()),
            cert: LocalCert(v()),
            member: Members {
                vaults: v(),
                runtimes: runtimes.clone(),
            },
            runtimes: runtimes.clone(),
            kube: KubeObjects {
                vaults: v(),
                clusters,
            },
            init: VaultInit {
                vaults: v(),
                data: runtimes,
            },
            keys: UnsealKeys(v()),
            unseal: VaultUnseal(v()),
            join: RaftJoin(v()),
            verify: RaftVerify(v()),
            config: [
                config(Kind::SecretsEngine),
                config(Kind::PkiRootCa),
                config(Kind::PkiRole),
                config(Kind::AuthMethod),
                config(Kind::AuthRole),
                config(Kind::VaultPolicy),
            ],
            revoke_root: RevokeRoot(v()),
            transit: LocalTransit(v()),
            vaults,
        }
    }

    pub fn vaults(&self) -> &Vaults {
        &self.vaults
    }

    /// The Kubernetes clients of the run, one per EKS cluster.
    pub fn kube_clusters(&self) -> &Clusters {
        &self.kube.clusters
    }

    /// The runtime cluster `v` runs on.
    pub fn runtime(&self, v: &VaultSpec) -> &dyn Runtime {
        self.runtimes.of(v)
    }

    /// Every cluster's directory whose processes a sweep looks for, by cluster name.
    pub fn process_dirs(&self) -> Vec<(String, std::path::PathBuf)> {
        self.vaults
            .0
            .values()
            .filter_map(|v| Some((v.name.clone(), self.runtime(v).process_dir(v)?)))
            .collect()
    }

    /// Whether this build can run the resource: every kind it has a provider for, on both
    /// runtimes, except what only the local runtime has (a managed transit seal server).
    fn supported(&self, t: &Topology, r: &Resource) -> bool {
        if self.provider(r.kind).is_none() {
            return false;
        }
        match r.address.vault_item() {
            Some((name, _)) if r.kind == Kind::SealTransit => t.vaults.iter().any(|v| {
                v.name.value == name
                    && matches!(v.runtime.value, crate::topology::Runtime::Local { .. })
            }),
            _ => true,
        }
    }

    /// Kinds that this build cannot create yet, with how many of each: in the whole graph, or
    /// with `targets`, among the targets and what they depend on.
    pub fn unsupported(
        &self,
        t: &Topology,
        g: &Graph,
        targets: &[String],
    ) -> BTreeMap<Kind, usize> {
        let nodes: Vec<NodeIndex> = if targets.is_empty() {
            g.dag.node_indices().collect()
        } else {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<_> = targets.iter().filter_map(|t| g.get(t)).collect();
            while let Some(ix) = stack.pop() {
                if seen.insert(ix) {
                    stack.extend(g.dependencies(ix));
                }
            }
            seen.into_iter().collect()
        };
        let mut out = BTreeMap::new();
        for ix in nodes {
            let r = g.resource(ix);
            if !self.supported(t, r) {
                *out.entry(r.kind).or_default() += 1;
            }
        }
        out
    }

    /// The desired attributes of every resource of the topology this build runs, in graph
    /// order.
    pub fn desired(&self, t: &Topology, g: &Graph) -> Vec<Desired> {
        let order = petgraph::algo::toposort(&g.dag, None)
            .unwrap_or_else(|_| g.dag.node_indices().collect());
        let mut out = Vec::new();
        for ix in order {
            let r = g.resource(ix);
            if !self.supported(t, r) {
                continue;
            }
            let Some((name, attrs)) = self.desired_of(t, r) else {
                continue;
            };
            out.push(Desired {
                address: r.address.clone(),
                kind: r.kind,
                region: r.region.clone(),
                name,
                attrs,
                deps: g
                    .dependencies(ix)
                    .map(|d| g.resource(d).address.clone())
                    .collect(),
                resumed: false,
            });
        }
        out
    }

    fn desired_of(
        &self,
        t: &Topology,
        r: &Resource,
    ) -> Option<(String, serde_json::Map<String, serde_json::Value>)> {
        match r.kind {
            Kind::KmsKey => kms_key::desired(t, r),
            Kind::S3Bucket => s3_bucket::desired(t, r),
            Kind::IamRole => iam_role::desired(t, r),
            Kind::EksCluster | Kind::EksNodeGroup => eks::desired(t, r),
            Kind::OidcProvider => oidc_provider::desired(t, r),
            Kind::AccessEntry => access_entry::desired(t, r),
            Kind::EksAddon => eks_addon::desired(t, r),
            Kind::KubeVolumes => kube_volumes::desired(t, r),
            Kind::TargetAttachment => target_attachment::desired(t, r),
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => elb::desired(t, r),
            Kind::Vpc
            | Kind::Subnet
            | Kind::InternetGateway
            | Kind::RouteTable
            | Kind::SecurityGroup => network::desired(t, r),
            Kind::ExistingNetwork => network::desired_existing(t, r),
            Kind::VaultCa
            | Kind::VaultCert
            | Kind::LocalProxy
            | Kind::VaultMember
            | Kind::VaultInit
            | Kind::UnsealKeys
            | Kind::VaultUnseal
            | Kind::RaftJoin
            | Kind::RaftVerify
            | Kind::SecretsEngine
            | Kind::PkiRootCa
            | Kind::PkiRole
            | Kind::AuthMethod
            | Kind::AuthRole
            | Kind::VaultPolicy
            | Kind::RevokeRoot
            | Kind::SealTransit
            | Kind::KubeObject => self.vault_desired(&r.address),
        }
    }

    /// The name and desired attributes of a part of a Vault cluster: a runtime piece, a
    /// bootstrap step or a configuration item.
    pub fn vault_desired(
        &self,
        address: &crate::address::Address,
    ) -> Option<(String, serde_json::Map<String, serde_json::Value>)> {
        use crate::address::VaultItem as V;
        let (v, what) = self.vaults.part(address).ok()?;
        match what {
            V::Ca => ca::desired(v),
            V::Cert(m) => cert::desired(v, v.member(m)?),
            V::Member(m) => self.runtime(v).member_desired(v, v.member(m)?),
            V::Proxy(_) => crate::runtime::local::desired(v, what),
            V::Kube { cluster, object } => kube_objects::desired(v, cluster, object),
            V::Init | V::UnsealKeys | V::Unseal(_) | V::Join(_) | V::Raft => {
                bootstrap::desired(v, what)
            }
            V::RevokeRoot => revoke_root::desired(v),
            V::SealTransit => transit::desired(v),
            _ => config::desired(v, what),
        }
    }
}

impl Providers for Catalog {
    fn learn(&self, outputs: &BTreeMap<String, BTreeMap<String, String>>) {
        self.vaults.learn(outputs);
    }

    fn provider(&self, kind: Kind) -> Option<&dyn Provider> {
        Some(match kind {
            Kind::KmsKey => &kms_key::KmsKey,
            Kind::S3Bucket => &s3_bucket::S3Bucket,
            Kind::IamRole => &iam_role::IamRole,
            Kind::EksCluster => &eks::EksCluster,
            Kind::EksNodeGroup => &eks::EksNodeGroup,
            Kind::OidcProvider => &oidc_provider::OidcProvider,
            Kind::AccessEntry => &access_entry::AccessEntry,
            Kind::EksAddon => &eks_addon::EksAddon,
            Kind::KubeVolumes => &kube_volumes::KubeVolumes,
            Kind::TargetAttachment => &target_attachment::TargetAttachment,
            Kind::LoadBalancer => &elb::LoadBalancer,
            Kind::TargetGroup => &elb::TargetGroup,
            Kind::Listener => &elb::Listener,
            Kind::Vpc => &network::Vpc,
            Kind::Subnet => &network::Subnet,
            Kind::InternetGateway => &network::InternetGateway,
            Kind::RouteTable => &network::RouteTable,
            Kind::SecurityGroup => &network::SecurityGroup,
            Kind::ExistingNetwork => &network::ExistingNetwork,
            Kind::VaultCa => &self.ca,
            Kind::VaultCert => &self.cert,
            Kind::LocalProxy => self.runtimes.local.proxy(),
            Kind::VaultMember => &self.member,
            Kind::VaultInit => &self.init,
            Kind::UnsealKeys => &self.keys,
            Kind::VaultUnseal => &self.unseal,
            Kind::RaftJoin => &self.join,
            Kind::RaftVerify => &self.verify,
            Kind::SecretsEngine => &self.config[0],
            Kind::PkiRootCa => &self.config[1],
            Kind::PkiRole => &self.config[2],
            Kind::AuthMethod => &self.config[3],
            Kind::AuthRole => &self.config[4],
            Kind::VaultPolicy => &self.config[5],
            Kind::RevokeRoot => &self.revoke_root,
            Kind::SealTransit => &self.transit,
            Kind::KubeObject => &self.kube,
        })
    }
}

/// The runtimes, one per placement: the one place that maps a placement to its runtime.
struct Runtimes {
    local: LocalRuntime,
    kube: KubeRuntime,
}

impl Runtimes {
    fn of(&self, v: &VaultSpec) -> &dyn Runtime {
        match v.placement {
            Placement::Local => &self.local,
            Placement::Kubernetes(_) => &self.kube,
        }
    }
}

#[async_trait::async_trait]
impl bootstrap::MemberData for Runtimes {
    async fn wipe(&self, cx: &Cx<'_>, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        self.of(v).wipe(cx, v, m).await
    }
}

/// The members of every cluster, each through its cluster's runtime. A member whose cluster
/// the topology no longer has (a destroy from the state alone) deletes through the local
/// runtime's provider, which acts on the recorded directory and process alone (a pod has
/// nothing of its own to delete: its StatefulSet does).
struct Members {
    vaults: Arc<Vaults>,
    runtimes: Arc<Runtimes>,
}

impl Members {
    fn on(&self, address: &crate::address::Address) -> &dyn Provider {
        match self.vaults.part(address) {
            Ok((v, _)) => self.runtimes.of(v).member(),
            Err(_) => self.runtimes.local.member(),
        }
    }
}

#[async_trait::async_trait]
impl Provider for Members {
    fn service(&self) -> &'static str {
        "local"
    }

    fn pool(&self, address: &crate::address::Address) -> &'static str {
        self.on(address).service()
    }

    fn is_process(&self, address: &crate::address::Address) -> bool {
        self.on(address).is_process(address)
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        self.on(&rs.address).read(cx, rs).await
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        self.on(&d.address).create(cx, d).await
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        self.on(&rs.address).delete(cx, rs).await
    }
}
