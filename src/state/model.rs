//! The recorded state: what vaultform created, with the cloud identifiers it needs to find it
//! again, and an intent record for every long operation in flight.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::graph::Kind;

/// The state format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// All that vaultform knows it owns for one stack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub version: u32,
    /// Bumped by every save; a saved plan records the serial it was made against.
    pub serial: u64,
    /// Fixed when the state is first created; a different lineage is a different state.
    pub lineage: String,
    pub stack: String,
    /// By address.
    #[serde(default)]
    pub resources: BTreeMap<Address, ResourceState>,
    /// Seconds each kind's operations took in this stack's past runs (`kind/operation`,
    /// blended run over run): the plan's estimate uses them instead of typical figures.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub durations: BTreeMap<String, f64>,
    /// When the stack expires (RFC 3339): set by an apply with `expires-after` or `--ttl`,
    /// which tags every resource with it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl State {
    /// The outputs of every recorded resource, by address: what operations may read of others.
    pub fn outputs(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
        self.resources
            .iter()
            .map(|(k, v)| (k.to_string(), v.outputs.clone()))
            .collect()
    }

    /// The lineage and serial a saved plan is checked against; `None` for a state that was
    /// never saved with anything in it.
    pub fn identity(&self) -> (Option<String>, Option<u64>) {
        if self.serial > 0 || !self.resources.is_empty() {
            (Some(self.lineage.clone()), Some(self.serial))
        } else {
            (None, None)
        }
    }

    pub fn new(stack: &str) -> Self {
        State {
            version: FORMAT_VERSION,
            serial: 0,
            lineage: uuid::Uuid::new_v4().to_string(),
            stack: stack.to_string(),
            resources: BTreeMap::new(),
            durations: BTreeMap::new(),
            expires_at: None,
        }
    }
}

/// Where a resource stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Status {
    /// Created (or adopted) and recorded.
    Ready,
    /// A create started and did not finish: `name` is the deterministic name (or idempotency
    /// token) the next run uses to adopt what may exist.
    Creating { name: String, started: String },
    /// A delete started and did not finish; the next run deletes again (NotFound is success).
    Deleting { started: String },
}

/// One recorded resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceState {
    pub address: Address,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub status: Status,
    /// Cloud identifiers: `arn`, `id`, `name`, ...
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    /// The desired attributes it was created or last updated with.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Values other resources read (never secrets).
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Addresses it depended on when recorded: destroy deletes it before them.
    #[serde(default)]
    pub dependencies: Vec<Address>,
}

impl ResourceState {
    pub fn id(&self, key: &str) -> Option<&str> {
        self.ids.get(key).map(String::as_str)
    }
}

/// Now, as an RFC 3339 timestamp.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
