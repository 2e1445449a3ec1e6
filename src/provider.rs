//! The provider contract: what every resource kind implements ([`Provider`]), what an
//! operation may read besides its own resource ([`Cx`]), and the values that pass between the
//! planner, the engine and the kinds ([`Desired`], [`Observed`], [`Recorded`], [`OpError`]).
//! It knows no resource kind, no Vault and no runtime: those implement it, and the catalog
//! registers them from above.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::address::Address;
use crate::aws::Aws;
use crate::aws_error::AwsError;
use crate::graph::Kind;
use crate::state::ResourceState;

/// The tag naming the stack that owns a resource.
pub const TAG_STACK: &str = "vaultform:stack";
/// The tag naming the resource's address in its stack.
pub const TAG_ADDRESS: &str = "vaultform:address";
/// When the resource's stack expires (RFC 3339): `expires-after` or `apply --ttl`.
pub const TAG_EXPIRES_AT: &str = "vaultform:expires-at";
/// Where the stack's state lives (`local:<absolute path>`), for `expired` to find it.
pub const TAG_STATE: &str = "vaultform:state";

/// What the topology asks for, for one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub address: Address,
    pub kind: Kind,
    pub region: Option<String>,
    /// The deterministic cloud name, used to find (and adopt) the resource.
    pub name: String,
    /// What the topology controls: diffed against the recorded and observed state.
    pub attrs: Map<String, Value>,
    /// Addresses it depends on.
    pub deps: Vec<Address>,
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
    /// The AWS error it came from, when it did.
    #[source]
    pub source: Option<Arc<AwsError>>,
}

impl OpError {
    pub fn fatal(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: false,
            source: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        OpError {
            message: message.into(),
            retryable: true,
            source: None,
        }
    }

    /// From an AWS SDK error, classified once (`aws_error`): throttling, 5xx and timeouts are
    /// worth retrying; an unreachable endpoint, a client error and anything unknown are not.
    /// The message is the code and AWS's message, never the SDK's debug dump.
    pub fn from_sdk<E>(
        what: &str,
        err: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::http::Response,
        >,
    ) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let e = AwsError::from_sdk(what, err);
        OpError {
            message: e.to_string(),
            retryable: e.retryable(),
            source: Some(Arc::new(e)),
        }
    }

    /// The AWS error code, when the failure came from AWS.
    pub fn aws_code(&self) -> Option<&str> {
        self.source.as_ref()?.code.as_deref()
    }
}

impl crate::retry::Retryable for OpError {
    fn retryable(&self) -> bool {
        self.retryable
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
}

impl Cx<'_> {
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
    /// The concurrency pool of an operation on `address`: by default [`Provider::service`].
    fn pool(&self, _address: &Address) -> &'static str {
        self.service()
    }
    /// Whether the resource at `address` is a process on this machine (a plan says it
    /// stopped, and starts it), rather than something in the cloud.
    fn is_process(&self, _address: &Address) -> bool {
        false
    }
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

/// The provider of each kind: the engine and refresh find operations through it.
pub trait Providers: Send + Sync {
    /// The provider of `kind`, when this build implements it.
    fn provider(&self, kind: Kind) -> Option<&dyn Provider>;
    /// The attributes whose change forces a resource of `kind` to be replaced.
    fn forces_replacement(&self, kind: Kind) -> &'static [&'static str] {
        self.provider(kind).map_or(&[], |p| p.forces_replacement())
    }
    /// Whether the resource at `address` is a process on this machine ("stopped" in a plan,
    /// rather than "deleted").
    fn is_process(&self, kind: Kind, address: &Address) -> bool {
        self.provider(kind).is_some_and(|p| p.is_process(address))
    }
    /// Learns from the recorded outputs what only a create can tell (a load balancer's DNS
    /// name, through which the Kubernetes runtime reaches its members).
    fn learn(&self, _outputs: &BTreeMap<String, BTreeMap<String, String>>) {}
}
