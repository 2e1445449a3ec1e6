//! (desired, recorded, observed) -> [`Plan`]: pure and synchronous; no cloud call here.
//! Refresh happens before, execution after.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::graph::Kind;
use crate::resources::{Desired, Observed};
use crate::state::{State, Status};

/// The plan format version written by `plan --out` and `--json`.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub action: Action,
    /// Why: "not in state", "deleted outside vaultform", "versioning changed", ...
    pub reason: String,
    /// Attributes now (recorded, refreshed); `null` when it does not exist.
    pub before: Option<Map<String, Value>>,
    /// Attributes after; `null` for a delete.
    pub after: Option<Map<String, Value>>,
    /// The attributes whose change forces a replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forced_by: Vec<String>,
    /// The deterministic cloud name (creates), for intent records and adoption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Addresses this change waits for (already reversed for deletes).
    #[serde(default)]
    pub after_changes: Vec<String>,
    /// Addresses the resource depends on (recorded in state).
    #[serde(default)]
    pub deps: Vec<String>,
}

/// Drift found by refresh: what changed outside vaultform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub address: String,
    /// `deleted` or `changed`.
    pub what: String,
    #[serde(default)]
    pub attributes: Vec<String>,
}

/// Everything `apply` will do, specific enough that execution makes no choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    /// The state this plan was made against: `apply PLANFILE` refuses any other.
    pub lineage: Option<String>,
    pub serial: Option<u64>,
    pub destroy: bool,
    pub drift: Vec<Drift>,
    /// In execution order (dependencies first; dependents first for deletes).
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub destroy: bool,
    /// Only these addresses (and what they depend on; for destroy, what depends on them).
    pub targets: Vec<String>,
    /// Replace these even if unchanged.
    pub replace: Vec<String>,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("no resource has the address {0}")]
    #[diagnostic(
        code(vaultform::plan::unknown_address),
        help("`vaultform graph FILE` and `vaultform state list` show the addresses")
    )]
    UnknownAddress(String),
    #[error("refusing to delete {address}: {why}")]
    #[diagnostic(
        code(vaultform::plan::refused),
        help(
            "set `force-destroy=#true` on the bucket in the topology and apply, or empty it yourself"
        )
    )]
    Refused { address: String, why: String },
}

/// Diffs what the topology wants against what state records and refresh observed.
pub fn plan(
    desired: &[Desired],
    state: &State,
    observed: &HashMap<String, Observed>,
    forces: &dyn Fn(Kind) -> &'static [&'static str],
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let known: BTreeSet<&str> = desired
        .iter()
        .map(|d| d.address.as_str())
        .chain(state.resources.keys().map(String::as_str))
        .collect();
    for a in opts.targets.iter().chain(&opts.replace) {
        if !known.contains(a.as_str()) {
            return Err(PlanError::UnknownAddress(a.clone()));
        }
    }
    let mut drift = Vec::new();
    // The attributes each recorded resource has now: what refresh saw, or else the record.
    let mut current: HashMap<&str, Option<&Map<String, Value>>> =
        HashMap::with_capacity(state.resources.len());
    for (addr, rs) in &state.resources {
        let now = match observed.get(addr) {
            Some(Observed::Gone) => {
                if rs.status == Status::Ready {
                    drift.push(Drift {
                        address: addr.clone(),
                        what: if rs.kind.is_process() {
                            "stopped"
                        } else {
                            "deleted"
                        }
                        .into(),
                        attributes: Vec::new(),
                    });
                }
                None
            }
            Some(Observed::Present { attrs, .. }) => {
                let changed: Vec<String> = attrs
                    .iter()
                    .filter(|(k, v)| rs.attributes.get(*k) != Some(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !changed.is_empty() && rs.status == Status::Ready {
                    drift.push(Drift {
                        address: addr.clone(),
                        what: "changed".into(),
                        attributes: changed,
                    });
                }
                Some(attrs)
            }
            // Not refreshed: trust the record (an interrupted create may not exist).
            None => match rs.status {
                Status::Creating { .. } => None,
                _ => Some(&rs.attributes),
            },
        };
        current.insert(addr.as_str(), now);
    }

    let mut changes = Vec::new();
    let desired_addrs: BTreeSet<&str> = desired.iter().map(|d| d.address.as_str()).collect();
    if !opts.destroy {
        for d in desired {
            let rs = state.resources.get(&d.address);
            let now = current.get(d.address.as_str()).copied().flatten();
            let (action, reason, forced_by) = match (rs, now) {
                (None, _) => (Action::Create, "not in state".to_string(), Vec::new()),
                (Some(rs), None) => {
                    let why = match rs.status {
                        Status::Creating { .. } => {
                            "an interrupted create: adopt what exists, create the rest"
                        }
                        _ if d.kind.is_process() => "not running: start it",
                        _ => "deleted outside vaultform",
                    };
                    (Action::Create, why.to_string(), Vec::new())
                }
                (Some(_), Some(now)) => {
                    let changed: Vec<String> = d
                        .attrs
                        .iter()
                        .filter(|(k, v)| now.get(*k) != Some(v))
                        .map(|(k, _)| k.clone())
                        .collect();
                    let forced: Vec<String> = changed
                        .iter()
                        .filter(|k| forces(d.kind).contains(&k.as_str()))
                        .cloned()
                        .collect();
                    if opts.replace.contains(&d.address) {
                        (
                            Action::Replace,
                            "replacement requested with --replace".into(),
                            forced,
                        )
                    } else if !forced.is_empty() {
                        (
                            Action::Replace,
                            format!("{} cannot change in place", forced.join(", ")),
                            forced,
                        )
                    } else if !changed.is_empty() {
                        (
                            Action::Update,
                            format!("{} changed", changed.join(", ")),
                            Vec::new(),
                        )
                    } else {
                        (Action::NoOp, "up to date".into(), Vec::new())
                    }
                }
            };
            changes.push(Change {
                address: d.address.clone(),
                kind: d.kind,
                region: d.region.clone(),
                action,
                reason,
                before: now.cloned(),
                after: Some(d.attrs.clone()),
                forced_by,
                name: Some(d.name.clone()),
                after_changes: d.deps.clone(),
                deps: d.deps.clone(),
            });
        }
    }
    // Deletes: everything recorded that is not desired (all of it for destroy), dependents first.
    let mut deletes: Vec<Change> = Vec::new();
    for (addr, rs) in &state.resources {
        if !opts.destroy && desired_addrs.contains(addr.as_str()) {
            continue;
        }
        let now = current.get(addr.as_str()).copied().flatten().cloned();
        if let Some(Observed::Present {
            delete_blocker: Some(why),
            ..
        }) = observed.get(addr)
        {
            let force = rs
                .attributes
                .get("force_destroy")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if !force {
                return Err(PlanError::Refused {
                    address: addr.clone(),
                    why: format!("{why} and the topology does not say force-destroy"),
                });
            }
        }
        deletes.push(Change {
            address: addr.clone(),
            kind: rs.kind,
            region: rs.region.clone(),
            action: Action::Delete,
            reason: if opts.destroy {
                "destroy".into()
            } else {
                "no longer in the topology".into()
            },
            before: now.or_else(|| Some(rs.attributes.clone())),
            after: None,
            forced_by: Vec::new(),
            name: None,
            // Filled below: a delete waits for the deletes of what depends on it.
            after_changes: Vec::new(),
            deps: rs.dependencies.clone(),
        });
    }
    let deleting: BTreeSet<String> = deletes.iter().map(|c| c.address.clone()).collect();
    let mut dependents: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &deletes {
        for d in &c.deps {
            if deleting.contains(d) {
                dependents
                    .entry(d.as_str())
                    .or_default()
                    .push(c.address.clone());
            }
        }
    }
    let waits: Vec<Vec<String>> = deletes
        .iter()
        .map(|c| {
            dependents
                .get(c.address.as_str())
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for (c, w) in deletes.iter_mut().zip(waits) {
        c.after_changes = w;
    }
    order_deletes(&mut deletes);
    changes.extend(deletes);

    if !opts.targets.is_empty() {
        changes = restrict_to_targets(changes, &opts.targets, opts.destroy);
    }
    // Only waits on changes that are part of this plan matter to execution.
    let in_plan: std::collections::HashSet<String> =
        changes.iter().map(|c| c.address.clone()).collect();
    for c in &mut changes {
        c.after_changes.retain(|a| in_plan.contains(a));
    }
    let (lineage, serial) = state.identity();
    Ok(Plan {
        format_version: PLAN_FORMAT,
        stack: state.stack.clone(),
        lineage,
        serial,
        destroy: opts.destroy,
        drift,
        changes,
    })
}

/// Sorts deletes so that each comes after the deletes it waits for.
fn order_deletes(deletes: &mut Vec<Change>) {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(deletes.len());
    let mut rest: Vec<Change> = std::mem::take(deletes);
    while !rest.is_empty() {
        let (ready, wait): (Vec<Change>, Vec<Change>) = rest
            .into_iter()
            .partition(|c| c.after_changes.iter().all(|a| done.contains(a)));
        if ready.is_empty() {
            // A cycle in recorded dependencies: keep the remaining order rather than loop.
            ordered.extend(wait);
            break;
        }
        for c in &ready {
            done.insert(c.address.clone());
        }
        ordered.extend(ready);
        rest = wait;
    }
    *deletes = ordered;
}

/// Keeps the targets and what they need: their dependencies (or, for destroy, dependents).
fn restrict_to_targets(changes: Vec<Change>, targets: &[String], destroy: bool) -> Vec<Change> {
    let by_addr: HashMap<&str, &Change> = changes.iter().map(|c| (c.address.as_str(), c)).collect();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = targets.to_vec();
    while let Some(a) = stack.pop() {
        if !keep.insert(a.clone()) {
            continue;
        }
        if let Some(c) = by_addr.get(a.as_str()) {
            let next: Vec<String> = if destroy || c.action == Action::Delete {
                // Deleting a target first deletes what depends on it.
                changes
                    .iter()
                    .filter(|o| o.deps.contains(&a))
                    .map(|o| o.address.clone())
                    .collect()
            } else {
                c.deps.clone()
            };
            stack.extend(next);
        }
    }
    changes
        .into_iter()
        .filter(|c| keep.contains(&c.address))
        .collect()
}
