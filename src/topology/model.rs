//! The typed topology: what the user declared, each value with the span it came from.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use miette::SourceSpan;

/// A value and the source span it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: SourceSpan) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A whole topology file.
#[derive(Debug, Clone)]
pub struct Topology {
    pub stack: Spanned<String>,
    pub aws: AwsSettings,
    pub state: StateBackend,
    pub regions: Vec<Region>,
    pub vaults: Vec<VaultCluster>,
    /// `expires-after "8h"`: every apply tags each resource to expire this long after it.
    pub expires_after: Option<Spanned<std::time::Duration>>,
}

#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// An emulator's endpoint (moto); `AWS_ENDPOINT_URL` overrides it.
    pub endpoint: Option<Spanned<String>>,
    /// Tags added to every resource, beside vaultform's ownership tags.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// A path relative to the topology file.
    Local { path: String },
    S3 {
        bucket: String,
        key: String,
        region: String,
        /// The KMS key (alias, key ID or ARN) that encrypts the state object client-side.
        kms_key: String,
    },
}

#[derive(Debug, Clone)]
pub struct Region {
    pub name: Spanned<String>,
    pub network: Option<Network>,
    pub clusters: Vec<Cluster>,
    pub keys: Vec<Key>,
    pub buckets: Vec<Bucket>,
    pub load_balancers: Vec<LoadBalancer>,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub span: SourceSpan,
    pub kind: NetworkKind,
}

#[derive(Debug, Clone)]
pub enum NetworkKind {
    /// A VPC vaultform creates, with one subnet per availability zone.
    New {
        vpc_cidr: Spanned<Ipv4Net>,
        azs: Spanned<u8>,
        subnets: Vec<Spanned<Ipv4Net>>,
    },
    /// A VPC and subnets that exist already: read, never modified or deleted.
    Existing {
        vpc_id: Spanned<String>,
        subnet_ids: Vec<Spanned<String>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointAccess {
    Public,
    Private,
    PublicAndPrivate,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    pub endpoint_access: EndpointAccess,
    pub node_pools: Vec<NodePool>,
    /// `access "<IAM principal ARN>" policy="..."`: IAM principals given an EKS access policy
    /// on the cluster (access entries), beside the creator's own admin access.
    pub access: Vec<Access>,
    /// `addon "<name>"`: EKS add-ons installed on the cluster (`aws-ebs-csi-driver` gives the
    /// Vault members' volume claims their EBS volumes).
    pub addons: Vec<Spanned<String>>,
    pub depends_on: Vec<Spanned<String>>,
}

/// The EKS add-on that provisions EBS volumes for volume claims.
pub const EBS_CSI_ADDON: &str = "aws-ebs-csi-driver";

/// An IAM principal's access to an EKS cluster: an access entry with one access policy,
/// cluster-wide.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Spanned<String>,
    pub policy: Spanned<AccessPolicy>,
}

/// The EKS access policies a topology can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessPolicy {
    ClusterAdmin,
    Admin,
    Edit,
    View,
}

impl AccessPolicy {
    /// The ARN of the AWS-managed EKS access policy.
    pub fn arn(self) -> &'static str {
        match self {
            AccessPolicy::ClusterAdmin => {
                "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
            }
            AccessPolicy::Admin => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy",
            AccessPolicy::Edit => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy",
            AccessPolicy::View => "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        }
    }
}

/// The first fixed node port: member `i` of a Kubernetes cluster gets `32000 + 2i` (API) and
/// `32001 + 2i` (cluster), inside Kubernetes' default node port range 30000-32767.
pub const NODE_PORT_BASE: u16 = 32000;

/// The fixed node ports of the `index`-th member on one cluster: 32000/32001, 32002/32003...
pub fn node_ports(index: u16) -> (u16, u16) {
    (NODE_PORT_BASE + 2 * index, NODE_PORT_BASE + 2 * index + 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    OnDemand,
    Spot,
}

#[derive(Debug, Clone)]
pub struct NodePool {
    pub name: Spanned<String>,
    pub instance_types: Vec<String>,
    pub capacity: Capacity,
    pub min: Spanned<u32>,
    pub desired: Spanned<u32>,
    pub max: Spanned<u32>,
    pub disk_size: u32,
    pub labels: BTreeMap<String, String>,
    pub depends_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Key {
    pub name: Spanned<String>,
    pub alias: Spanned<String>,
    pub rotation: bool,
    /// `multi-region=#true`: a multi-Region primary key, replicated into the regions of the
    /// members of an `awskms` seal that names it.
    pub multi_region: Option<Spanned<bool>>,
    pub deletion_window: Spanned<u32>,
    pub depends_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: Spanned<String>,
    /// The name of a key in the same region.
    pub key: Spanned<String>,
    pub versioning: bool,
    pub force_destroy: bool,
    pub depends_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    InternetFacing,
    Internal,
}

/// Which `/v1/sys/health` answers count as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthMode {
    /// 200 or 429: any unsealed member, active or standby.
    Unsealed,
    /// 200 only: the active node.
    Active,
}

#[derive(Debug, Clone)]
pub struct LoadBalancer {
    pub name: Spanned<String>,
    pub scheme: Scheme,
    pub health: Spanned<HealthMode>,
    pub api_port: Spanned<u16>,
    pub cluster_port: Spanned<u16>,
    /// Where the local runtime's HAProxy listens in place of this load balancer.
    pub local_address: Option<Spanned<Ipv4Addr>>,
    pub depends_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// OpenBao's `bao`.
    Bao,
    /// HashiCorp's `vault`.
    Vault,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub flavour: Flavour,
    pub version: Option<String>,
    /// Container image for the Kubernetes runtime.
    pub image: Option<String>,
    /// Binary for the local runtime (a path, or a name found on PATH).
    pub binary: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Runtime {
    /// Processes on this machine, each on its own loopback address, HAProxy for load balancers.
    /// `work_dir` defaults to `.vaultform/<stack>/<vault>` beside the topology.
    Local { work_dir: Option<String> },
    /// Pods on each member's EKS cluster.
    Kubernetes { namespace: String },
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: Spanned<String>,
    pub cluster: Spanned<String>,
    pub load_balancer: Spanned<String>,
    pub bootstrap: bool,
    pub address: Option<Spanned<Ipv4Addr>>,
    pub api_port: Spanned<u16>,
    pub cluster_port: Spanned<u16>,
    pub depends_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct UnsealStore {
    pub span: SourceSpan,
    pub prefix: String,
    /// Bucket names; each bucket's region and key come from its declaration.
    pub buckets: Vec<Spanned<String>>,
    /// Extra KMS encryption context, beside the stack and cluster names.
    pub context: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct VaultCluster {
    pub name: Spanned<String>,
    pub server: Server,
    pub runtime: Spanned<Runtime>,
    pub shares: Spanned<u32>,
    pub threshold: Spanned<u32>,
    pub members: Vec<Member>,
    /// The load balancer that routes to the active node only.
    pub front: Option<Spanned<String>>,
    pub unseal_store: UnsealStore,
    /// TLS on the listeners, the raft join, the client and the load balancers' checks.
    pub tls: Tls,
    /// How members unseal: with the stored shares (`shamir`) or by themselves.
    pub seal: Seal,
    /// Declarative configuration, applied once the cluster is whole.
    pub secrets: Vec<SecretsEngine>,
    pub auth: Vec<AuthMethod>,
    pub policies: Vec<Policy>,
    /// `revoke-root #true`: the root token is revoked once the cluster is configured, and
    /// generated from the stored keys whenever vaultform needs one.
    pub revoke_root: Option<Spanned<bool>>,
}

/// The auth path (an AppRole) through which vaultform starts a root token generation once
/// the root token is revoked; reserved in clusters with `revoke-root #true`.
pub const REVOKE_ROOT_MOUNT: &str = "vaultform-root";

impl VaultCluster {
    /// Whether the root token is revoked after setup.
    pub fn revokes_root(&self) -> bool {
        self.revoke_root.as_ref().is_some_and(|r| r.value)
    }
}

/// A Vault cluster's TLS: on by default with a CA vaultform generates; `tls #false` turns it
/// off (with a warning); `ca-cert`/`ca-key` name a CA of the user's to issue from instead.
#[derive(Debug, Clone)]
pub struct Tls {
    pub span: SourceSpan,
    pub enabled: bool,
    /// A user-supplied CA: certificate and private key files (PEM), relative to the topology.
    pub ca: Option<UserCa>,
    /// Seconds a member certificate is valid for.
    pub validity: Spanned<u64>,
    /// A certificate that expires within this many seconds is replaced.
    pub renew_before: Spanned<u64>,
}

/// A Vault cluster's seal: `seal "shamir"` (the default), `seal "transit"` or `seal "awskms"`.
#[derive(Debug, Clone)]
pub struct Seal {
    pub span: SourceSpan,
    pub kind: SealKind,
}

#[derive(Debug, Clone)]
pub enum SealKind {
    /// vaultform unseals the members with the shares kept in the unseal store.
    Shamir,
    /// Members unseal themselves through a transit secrets engine.
    Transit(TransitSeal),
    /// Members unseal themselves through a KMS key: the named key of the bootstrap member's
    /// region, a multi-Region key whose replica in each member's region that member uses.
    Awskms { key: Spanned<String> },
}

#[derive(Debug, Clone)]
pub enum TransitSeal {
    /// A transit server vaultform runs itself (the local runtime) on `local-address`.
    Managed {
        local_address: Spanned<Ipv4Addr>,
        api_port: Spanned<u16>,
    },
    /// A transit server that exists already; its token is read from the unseal store.
    Existing {
        address: Spanned<String>,
        key_name: Spanned<String>,
        mount: Spanned<String>,
        /// The CA certificate (PEM file, relative to the topology) its TLS chains to.
        ca_cert: Option<Spanned<String>>,
    },
}

impl Seal {
    /// `shamir`, `transit` or `awskms`: the seal type the server reports.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SealKind::Shamir => "shamir",
            SealKind::Transit(_) => "transit",
            SealKind::Awskms { .. } => "awskms",
        }
    }

    /// Whether the members unseal themselves (the keys in the store are recovery keys).
    pub fn auto_unseal(&self) -> bool {
        !matches!(self.kind, SealKind::Shamir)
    }
}

#[derive(Debug, Clone)]
pub struct UserCa {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

/// Seconds of a Vault duration: `90`, `90s`, `15m`, `72h`, `30d`, or a sum like `1h30m`.
pub fn duration_seconds(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

/// A secrets engine mounted at a path.
#[derive(Debug, Clone)]
pub struct SecretsEngine {
    pub path: Spanned<String>,
    pub kind: Spanned<EngineKind>,
    pub max_lease_ttl: Option<Spanned<String>>,
    /// PKI only: the root CA to generate.
    pub root_ca: Option<PkiRootCa>,
    /// PKI only: roles that issue certificates.
    pub roles: Vec<PkiRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    KvV2,
    Kv,
    Pki,
    Transit,
}

impl EngineKind {
    /// The engine type and, for KV, its version.
    pub fn mount(self) -> (&'static str, Option<&'static str>) {
        match self {
            EngineKind::KvV2 => ("kv", Some("2")),
            EngineKind::Kv => ("kv", Some("1")),
            EngineKind::Pki => ("pki", None),
            EngineKind::Transit => ("transit", None),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PkiRootCa {
    pub span: SourceSpan,
    pub common_name: Spanned<String>,
    pub ttl: Option<Spanned<String>>,
}

#[derive(Debug, Clone)]
pub struct PkiRole {
    pub name: Spanned<String>,
    pub allowed_domains: Vec<String>,
    pub allow_subdomains: bool,
    pub max_ttl: Option<Spanned<String>>,
}

/// An auth method enabled at a path.
#[derive(Debug, Clone)]
pub struct AuthMethod {
    pub path: Spanned<String>,
    pub kind: Spanned<AuthKind>,
    pub roles: Vec<AuthRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    Approle,
    Userpass,
    Kubernetes,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Approle => "approle",
            AuthKind::Userpass => "userpass",
            AuthKind::Kubernetes => "kubernetes",
        }
    }
}

/// A role of an auth method: the policies its tokens carry; for Kubernetes auth, also who
/// may log in with it (the service accounts and namespaces it binds, the audience their
/// tokens must carry) and on which EKS clusters' mounts it exists (all when none is named).
#[derive(Debug, Clone)]
pub struct AuthRole {
    pub name: Spanned<String>,
    pub policies: Vec<Spanned<String>>,
    pub token_ttl: Option<Spanned<String>>,
    pub service_accounts: Vec<Spanned<String>>,
    pub namespaces: Vec<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub clusters: Vec<Spanned<String>>,
}

impl AuthRole {
    /// Whether the role exists on the mount of EKS cluster `cluster`.
    pub fn on_cluster(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c.value == cluster)
    }

    /// The spans of the settings only Kubernetes auth has, if any is set.
    pub fn kubernetes_settings(&self) -> Vec<SourceSpan> {
        self.service_accounts
            .first()
            .into_iter()
            .chain(self.namespaces.first())
            .chain(&self.audience)
            .chain(self.clusters.first())
            .map(|s| s.span)
            .collect()
    }
}

/// An ACL policy, path by path.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Spanned<String>,
    pub paths: Vec<PolicyPath>,
}

#[derive(Debug, Clone)]
pub struct PolicyPath {
    pub path: Spanned<String>,
    pub capabilities: Vec<Spanned<String>>,
}

impl Policy {
    /// The policy in Vault's HCL, as written to `sys/policies/acl`.
    pub fn hcl(&self) -> String {
        let mut out = String::new();
        for p in &self.paths {
            let caps: Vec<String> = p
                .capabilities
                .iter()
                .map(|c| format!("\"{}\"", c.value))
                .collect();
            out.push_str(&format!(
                "path \"{}\" {{\n  capabilities = [{}]\n}}\n",
                p.path.value,
                caps.join(", ")
            ));
        }
        out
    }
}

impl VaultCluster {
    /// The member that initialises the cluster: the one marked, or else the first.
    pub fn bootstrap_member(&self) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.bootstrap)
            .or_else(|| self.members.first())
    }
}

impl Topology {
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name.value == name)
    }

    /// Finds a cluster by name across regions, with its region.
    pub fn cluster(&self, name: &str) -> Option<(&Region, &Cluster)> {
        self.regions.iter().find_map(|r| {
            r.clusters
                .iter()
                .find(|c| c.name.value == name)
                .map(|c| (r, c))
        })
    }

    pub fn load_balancer(&self, name: &str) -> Option<(&Region, &LoadBalancer)> {
        self.regions.iter().find_map(|r| {
            r.load_balancers
                .iter()
                .find(|l| l.name.value == name)
                .map(|l| (r, l))
        })
    }

    pub fn bucket(&self, name: &str) -> Option<(&Region, &Bucket)> {
        self.regions.iter().find_map(|r| {
            r.buckets
                .iter()
                .find(|b| b.name.value == name)
                .map(|b| (r, b))
        })
    }
}

impl Topology {
    /// The members of Vault clusters on the Kubernetes runtime that run on EKS cluster
    /// `cluster`, in topology order (Vault clusters, then their members): the order that
    /// gives each its node ports.
    pub fn kube_members_on<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Iterator<Item = (&'a VaultCluster, &'a Member)> + 'a {
        self.vaults
            .iter()
            .filter(|v| matches!(v.runtime.value, Runtime::Kubernetes { .. }))
            .flat_map(|v| v.members.iter().map(move |m| (v, m)))
            .filter(move |(_, m)| m.cluster.value == cluster)
    }

    /// The node ports (API, cluster) of member `member` of Vault cluster `vault` on the
    /// Kubernetes runtime: by its index among the members on its EKS cluster.
    pub fn member_node_ports(&self, vault: &str, member: &str) -> Option<(u16, u16)> {
        let v = self.vaults.iter().find(|v| v.name.value == vault)?;
        let m = v.members.iter().find(|m| m.name.value == member)?;
        let i = self
            .kube_members_on(&m.cluster.value)
            .position(|(kv, km)| kv.name.value == vault && km.name.value == member)?;
        Some(node_ports(u16::try_from(i).ok()?))
    }

    /// The members a load balancer serves on the Kubernetes runtime: those whose own load
    /// balancer it is, and every member of a cluster whose front endpoint it is.
    pub fn kube_members_behind<'a>(
        &'a self,
        lb: &'a str,
    ) -> impl Iterator<Item = (&'a VaultCluster, &'a Member)> + 'a {
        self.vaults
            .iter()
            .filter(|v| matches!(v.runtime.value, Runtime::Kubernetes { .. }))
            .flat_map(move |v| {
                let front = v.front.as_ref().is_some_and(|f| f.value == lb);
                v.members
                    .iter()
                    .filter(move |m| front || m.load_balancer.value == lb)
                    .map(move |m| (v, m))
            })
    }
}

impl Region {
    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name.value == name)
    }
}
