//! One module per resource kind, each idempotent: read / create (adopting what it already
//! owns) / update / delete (NotFound is success), behind one [`Provider`] trait.

pub mod eks;
pub mod elb;
pub mod iam_role;
pub mod kms_key;
pub mod network;
pub mod s3_bucket;
pub mod wait;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::aws::Aws;
use crate::graph::{Graph, Kind};
use crate::state::ResourceState;
use crate::topology::Topology;

/// The tag naming the stack that owns a resource.
pub const TAG_STACK: &str = "vaultform:stack";
/// The tag naming the resource's address in its stack.
pub const TAG_ADDRESS: &str = "vaultform:address";

/// What the topology asks for, for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub address: String,
    pub kind: Kind,
    pub region: Option<String>,
    /// The deterministic cloud name, used to find (and adopt) the resource.
    pub name: String,
    /// What the topology controls: diffed against the recorded and observed state.
    pub attrs: Map<String, Value>,
    /// Addresses it depends on.
    pub deps: Vec<String>,
    /// A create that resumes an interrupted one (an intent record with this name exists):
    /// a resource of this name without ownership tags is the one that create left behind.
    pub resumed: bool,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// It does not exist (deleted outside vaultform, or never created).
    Gone,
    Present {
        /// The topology-controlled attributes as they are now.
        attrs: Map<String, Value>,
        /// Why deleting it now would lose something (a bucket still holding objects).
        delete_blocker: Option<String>,
    },
}

/// What a create or update leaves in state.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub ids: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

/// An operation's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub message: String,
    /// Worth trying again after a wait (the SDK already retried throttling).
    pub retryable: bool,
}

impl OpError {
    pub fn fatal(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: false,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: true,
        }
    }

    /// From an SDK error: 5xx and throttling that outlived the SDK's retries are retryable.
    pub fn from_sdk<E>(what: &str, err: &E) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, text) = crate::aws::describe_error(err);
        let retryable = matches!(
            code.as_deref(),
            Some(
                "Throttling"
                    | "ThrottlingException"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "SlowDown"
                    | "InternalError"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "KMSInternalException"
                    | "DependencyTimeoutException"
            )
        ) || code.is_none();
        OpError {
            message: format!("{what}: {text}"),
            retryable,
        }
    }
}

/// What every operation may read besides its own resource.
pub struct Cx<'a> {
    pub aws: &'a Aws,
    pub stack: &'a str,
    /// Tags from the topology, added to vaultform's own.
    pub default_tags: &'a BTreeMap<String, String>,
    /// The outputs of recorded resources, by address (ARNs of keys, ...).
    pub outputs: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// The topology's Vault clusters, for the runtime and bootstrap kinds.
    pub vaults: &'a BTreeMap<String, crate::vault::spec::VaultSpec>,
}

impl Cx<'_> {
    /// The Vault cluster a `vault.<name>.…` resource belongs to.
    pub fn vault(&self, address: &str) -> Result<&crate::vault::spec::VaultSpec, OpError> {
        crate::vault::spec::vault_of(address)
            .and_then(|v| self.vaults.get(v))
            .ok_or_else(|| {
                OpError::fatal(format!("{address}: no such Vault cluster in the topology"))
            })
    }

    /// Every tag a resource at `address` carries.
    pub fn tags(&self, address: &str) -> BTreeMap<String, String> {
        let mut t = self.default_tags.clone();
        t.insert(TAG_STACK.into(), self.stack.into());
        t.insert(TAG_ADDRESS.into(), address.into());
        t
    }

    pub fn output(&self, address: &str, key: &str) -> Result<&str, OpError> {
        self.outputs
            .get(address)
            .and_then(|o| o.get(key))
            .map(String::as_str)
            .ok_or_else(|| OpError::fatal(format!("{address} has no recorded {key}")))
    }

    /// Who owns a resource, from its tags: adopt ours, refuse anyone else's.
    pub fn check_owner(
        &self,
        what: &str,
        address: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), OpError> {
        match (tags.get(TAG_STACK), tags.get(TAG_ADDRESS)) {
            (Some(stack), Some(addr)) if stack == self.stack && addr == address => Ok(()),
            (Some(stack), addr) => Err(OpError::fatal(format!(
                "{what} already exists and belongs to stack \"{stack}\" ({}); vaultform will not take it over",
                addr.map(String::as_str).unwrap_or("no address")
            ))),
            (None, _) => Err(OpError::fatal(format!(
                "{what} already exists and no vaultform stack owns it; remove it, or choose another name"
            ))),
        }
    }
}

/// A resource kind's operations.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The AWS service it calls: its concurrency pool.
    fn service(&self) -> &'static str;
    /// Attributes whose change forces a replacement rather than an update in place.
    fn forces_replacement(&self) -> &'static [&'static str] {
        &[]
    }
    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError>;
    /// Creates the resource, or adopts it when it exists already and this stack owns it.
    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError>;
    /// Changes what can change in place. By default, `create`: it adopts the existing resource
    /// and converges it to `d`.
    async fn update(
        &self,
        cx: &Cx<'_>,
        _rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        self.create(cx, d).await
    }
    /// Deletes it; a resource that is already gone is success.
    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError>;
}

/// The provider of a kind, when this build implements it.
pub fn provider(kind: Kind) -> Option<&'static dyn Provider> {
    match kind {
        Kind::KmsKey => Some(&kms_key::KmsKey),
        Kind::S3Bucket => Some(&s3_bucket::S3Bucket),
        Kind::IamRole => Some(&iam_role::IamRole),
        Kind::EksCluster => Some(&eks::EksCluster),
        Kind::EksNodeGroup => Some(&eks::EksNodeGroup),
        Kind::LoadBalancer => Some(&elb::LoadBalancer),
        Kind::TargetGroup => Some(&elb::TargetGroup),
        Kind::Listener => Some(&elb::Listener),
        Kind::Vpc => Some(&network::Vpc),
        Kind::Subnet => Some(&network::Subnet),
        Kind::InternetGateway => Some(&network::InternetGateway),
        Kind::RouteTable => Some(&network::RouteTable),
        Kind::SecurityGroup => Some(&network::SecurityGroup),
        Kind::ExistingNetwork => Some(&network::ExistingNetwork),
        Kind::LocalProxy => Some(&crate::runtime::local::LocalProxy),
        Kind::VaultMember => Some(&crate::runtime::local::VaultMember),
        Kind::VaultInit => Some(&crate::vault::bootstrap::VaultInit),
        Kind::UnsealKeys => Some(&crate::vault::bootstrap::UnsealKeys),
        Kind::VaultUnseal => Some(&crate::vault::bootstrap::VaultUnseal),
        Kind::RaftJoin => Some(&crate::vault::bootstrap::RaftJoin),
        Kind::RaftVerify => Some(&crate::vault::bootstrap::RaftVerify),
        Kind::SecretsEngine => Some(&crate::vault::config::SECRETS_ENGINE),
        Kind::PkiRootCa => Some(&crate::vault::config::PKI_ROOT_CA),
        Kind::PkiRole => Some(&crate::vault::config::PKI_ROLE),
        Kind::AuthMethod => Some(&crate::vault::config::AUTH_METHOD),
        Kind::AuthRole => Some(&crate::vault::config::AUTH_ROLE),
        Kind::VaultPolicy => Some(&crate::vault::config::POLICY),
    }
}

/// Whether this build can run the resource: every AWS kind, and the Vault kinds of clusters on
/// the local runtime (the Kubernetes runtime is not built yet).
fn supported(t: &Topology, r: &crate::graph::Resource) -> bool {
    if provider(r.kind).is_none() {
        return false;
    }
    match crate::vault::spec::vault_of(&r.address) {
        Some(name) => t.vaults.iter().any(|v| {
            v.name.value == name
                && matches!(v.runtime.value, crate::topology::Runtime::Local { .. })
        }),
        None => true,
    }
}

/// Kinds that this build cannot create yet, with how many of each: in the whole graph, or
/// with `targets`, among the targets and what they depend on.
pub fn unsupported(t: &Topology, g: &Graph, targets: &[String]) -> BTreeMap<Kind, usize> {
    let nodes: Vec<petgraph::graph::NodeIndex> = if targets.is_empty() {
        g.dag.node_indices().collect()
    } else {
        let mut seen = std::collections::BTreeSet::new();
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
        if !supported(t, r) {
            *out.entry(r.kind).or_default() += 1;
        }
    }
    out
}

/// The desired attributes of every resource of the topology, in graph order.
pub fn desired(t: &Topology, g: &Graph) -> Vec<Desired> {
    let order =
        petgraph::algo::toposort(&g.dag, None).unwrap_or_else(|_| g.dag.node_indices().collect());
    // Paths do not matter to the desired attributes.
    let vaults = crate::vault::spec::specs(t, std::path::Path::new(""));
    let mut out = Vec::new();
    for ix in order {
        let r = g.resource(ix);
        if !supported(t, r) {
            continue;
        }
        let deps: Vec<String> = g
            .dependencies(ix)
            .map(|d| g.resource(d).address.clone())
            .collect();
        let region = r.region.clone();
        let attrs_and_name = match r.kind {
            Kind::KmsKey => kms_key::desired(t, r),
            Kind::S3Bucket => s3_bucket::desired(t, r),
            Kind::IamRole => iam_role::desired(t, r),
            Kind::EksCluster | Kind::EksNodeGroup => eks::desired(t, r),
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => elb::desired(t, r),
            Kind::Vpc
            | Kind::Subnet
            | Kind::InternetGateway
            | Kind::RouteTable
            | Kind::SecurityGroup => network::desired(t, r),
            Kind::ExistingNetwork => network::desired_existing(t, r),
            Kind::LocalProxy
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
            | Kind::VaultPolicy => crate::vault::spec::vault_of(&r.address)
                .and_then(|v| vaults.get(v))
                .and_then(|v| vault_desired(v, r)),
        };
        if let Some((name, attrs)) = attrs_and_name {
            out.push(Desired {
                address: r.address.clone(),
                kind: r.kind,
                region,
                name,
                attrs,
                deps,
                resumed: false,
            });
        }
    }
    out
}

/// A string attribute the resource kind cannot do without.
pub fn str_attr<'a>(attrs: &'a Map<String, Value>, key: &str) -> Result<&'a str, OpError> {
    attrs
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| OpError::fatal(format!("missing attribute {key}")))
}

/// A list-of-strings attribute; empty when absent.
pub fn str_list(attrs: &Map<String, Value>, key: &str) -> Vec<String> {
    attrs
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The `name` of `region.<r>.<kind>.<name>`.
pub fn last_segment<'a>(address: &'a str, prefix: &str) -> Option<&'a str> {
    let idx = address.find(prefix)?;
    Some(&address[idx + prefix.len()..])
}

/// The desired attributes of a Vault cluster's runtime and bootstrap resources.
fn vault_desired(
    v: &crate::vault::spec::VaultSpec,
    r: &crate::graph::Resource,
) -> Option<(String, Map<String, Value>)> {
    use serde_json::json;
    let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
    let member = |marker: &str| last_segment(&r.address, marker).and_then(|n| v.member(n));
    Some(match r.kind {
        Kind::LocalProxy => {
            let lb = last_segment(&r.address, "proxy.")?;
            (
                lb.to_string(),
                crate::runtime::local::proxy_attrs(v.proxies.get(lb)?),
            )
        }
        Kind::VaultMember => {
            let m = member("member.")?;
            (m.name.clone(), crate::runtime::local::member_attrs(v, m))
        }
        Kind::VaultInit => (
            v.name.clone(),
            obj(json!({"initialized": true, "shares": v.shares, "threshold": v.threshold})),
        ),
        Kind::UnsealKeys => {
            let buckets: Vec<&str> = v.store.iter().map(|b| b.bucket.as_str()).collect();
            (
                v.name.clone(),
                obj(json!({"buckets": buckets, "prefix": v.prefix})),
            )
        }
        Kind::VaultUnseal => (
            member("unseal.")?.name.clone(),
            obj(json!({"sealed": false})),
        ),
        Kind::RaftJoin => (
            member("join.")?.name.clone(),
            obj(json!({"joined": true, "leader_api_addr": v.leader_api_addr()})),
        ),
        Kind::RaftVerify => {
            let mut voters: Vec<&str> = v.members.iter().map(|m| m.name.as_str()).collect();
            voters.sort();
            (v.name.clone(), obj(json!({ "voters": voters })))
        }
        Kind::SecretsEngine
        | Kind::PkiRootCa
        | Kind::PkiRole
        | Kind::AuthMethod
        | Kind::AuthRole
        | Kind::VaultPolicy => return crate::vault::config::desired(v, &r.address),
        _ => return None,
    })
}
