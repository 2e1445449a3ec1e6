//! What remains of a stack after a destroy, checked through the APIs: KMS keys pending
//! deletion and when AWS deletes them, what the state still records (a bucket kept because
//! `force-destroy` is false, a delete that failed), and what a sweep finds unrecorded; and
//! which of it AWS bills.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Found, Thing, orphans};
use crate::state::State;

/// One thing that remains.
#[derive(Debug, Clone, Serialize)]
pub struct Remaining {
    pub thing: Thing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Why it is still there.
    pub why: String,
    /// Whether AWS bills it while it stays.
    pub billed: bool,
    /// When AWS deletes it by itself (a KMS key's deletion date, RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What remains, or why that could not be checked.
#[derive(Debug, Clone, Serialize)]
pub struct Remains {
    /// The APIs were asked (an inventory of every service and region); `false` when that
    /// failed, and then nothing is claimed.
    pub checked: bool,
    pub items: Vec<Remaining>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Remains {
    /// Nothing AWS bills remains, and that was checked through the APIs.
    pub fn nothing_billable(&self) -> bool {
        self.checked && !self.items.iter().any(|i| i.billed)
    }

    pub fn unchecked(error: String) -> Remains {
        Remains {
            checked: false,
            items: Vec::new(),
            error: Some(error),
        }
    }
}

impl Thing {
    /// Whether AWS bills it while it exists: clusters, node groups, load balancers, volumes,
    /// buckets (their storage) and KMS keys not pending deletion. VPC pieces, IAM, target
    /// groups and listeners cost nothing by themselves; local processes cost no money.
    pub fn billed(self) -> bool {
        matches!(
            self,
            Thing::EksCluster
                | Thing::EksNodeGroup
                | Thing::LoadBalancer
                | Thing::EbsVolume
                | Thing::S3Bucket
                | Thing::KmsKey
        )
    }
}

/// What `found` (an inventory taken after the destroy) says remains, given the state the
/// destroy left and the addresses it was to delete (what else the state records was not
/// asked to go: `--target`).
pub fn remains(found: &[Found], state: &State, planned: &BTreeSet<String>) -> Remains {
    let mut items = Vec::new();
    for f in found.iter().filter(|f| f.pending_deletion.is_some()) {
        items.push(Remaining {
            thing: f.thing,
            region: f.region.clone(),
            id: f.id.clone(),
            address: f.address.clone(),
            why: "pending deletion: no key charge while pending (AWS KMS pricing); re-applying within the window cancels the deletion and the key is billed again".into(),
            billed: false,
            until: f.pending_deletion.clone(),
        });
    }
    let unrecorded = orphans(found, state);
    for f in found.iter().filter(|f| f.pending_deletion.is_none()) {
        let recorded = f
            .address
            .as_deref()
            .and_then(|a| state.resources.iter().find(|(k, _)| k.as_str() == a))
            .map(|(_, rs)| rs);
        let why = match recorded {
            Some(rs)
                if f.thing == Thing::S3Bucket
                    && rs.attributes.get("force_destroy")
                        != Some(&serde_json::Value::Bool(true)) =>
            {
                "kept: it holds objects and the topology does not say force-destroy".to_string()
            }
            Some(rs) if !planned.contains(rs.address.as_str()) => continue,
            Some(_) => "still recorded: its delete did not finish; run destroy again".to_string(),
            None if unrecorded
                .iter()
                .any(|o| o.thing == f.thing && o.id == f.id) =>
            {
                "not in the state: `vaultform sweep --delete` removes it".to_string()
            }
            None => continue,
        };
        items.push(Remaining {
            thing: f.thing,
            region: f.region.clone(),
            id: f.id.clone(),
            address: f.address.clone(),
            why,
            billed: f.thing.billed(),
            until: None,
        });
    }
    Remains {
        checked: true,
        items,
        error: None,
    }
}
