//! (desired, recorded, observed) -> [`Plan`]: pure and synchronous; no cloud call here.
//! Refresh happens before, execution after.

pub mod estimate;
pub mod saved;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::address::Address;
use crate::graph::Kind;
use crate::provider::{Desired, Observed, Providers};
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
    pub address: Address,
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
    pub after_changes: Vec<Address>,
    /// Addresses the resource depends on (recorded in state).
    #[serde(default)]
    pub deps: Vec<Address>,
}

/// Drift found by refresh: what changed outside vaultform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub address: Address,
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
    /// How long it is expected to take, and the changes that decide it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<estimate::Estimate>,
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
    rules: &dyn Providers,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let known: BTreeSet<&str> = desired
        .iter()
        .map(|d| d.address.as_str())
        .chain(state.resources.keys().map(Address::as_str))
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
        let now = match observed.get(addr.as_str()) {
            Some(Observed::Gone) => {
                if rs.status == Status::Ready {
                    drift.push(Drift {
                        address: addr.clone(),
                        what: if rules.is_process(rs.kind, addr) {
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
                        _ if rules.is_process(d.kind, &d.address) => "not running: start it",
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
                        .filter(|k| rules.forces_replacement(d.kind).contains(&k.as_str()))
                        .cloned()
                        .collect();
                    if opts.replace.iter().any(|r| d.address == r.as_str()) {
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
    // A certificate whose CA is made anew (created or replaced) is issued again by it.
    let renewed: BTreeSet<Address> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Replace))
        .map(|c| c.address.clone())
        .collect();
    let kinds: HashMap<Address, Kind> = changes
        .iter()
        .map(|c| (c.address.clone(), c.kind))
        .collect();
    for c in &mut changes {
        let Some(dep) = c.deps.iter().find(|d| {
            renewed.contains(*d) && kinds.get(*d).is_some_and(|k| c.kind.reissued_with(*k))
        }) else {
            continue;
        };
        if matches!(c.action, Action::NoOp | Action::Update) {
            c.reason = format!("{dep} is made anew");
            c.action = Action::Replace;
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
        }) = observed.get(addr.as_str())
        {
            let force = rs
                .attributes
                .get("force_destroy")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if !force {
                return Err(PlanError::Refused {
                    address: addr.to_string(),
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
    let deleting: BTreeSet<Address> = deletes.iter().map(|c| c.address.clone()).collect();
    let mut dependents: BTreeMap<&str, Vec<Address>> = BTreeMap::new();
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
    let waits: Vec<Vec<Address>> = deletes
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
    let in_plan: std::collections::HashSet<Address> =
        changes.iter().map(|c| c.address.clone()).collect();
    for c in &mut changes {
        c.after_changes.retain(|a| in_plan.contains(a));
    }
    let (lineage, serial) = state.identity();
    let estimate = estimate::estimate(&changes, &state.durations);
    Ok(Plan {
        format_version: PLAN_FORMAT,
        stack: state.stack.clone(),
        lineage,
        serial,
        destroy: opts.destroy,
        drift,
        changes,
        estimate: Some(estimate),
    })
}

/// Sorts deletes so that each comes after the deletes it waits for.
fn order_deletes(deletes: &mut Vec<Change>) {
    let mut done: BTreeSet<Address> = BTreeSet::new();
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
                    .filter(|o| o.deps.iter().any(|d| d == a.as_str()))
                    .map(|o| o.address.to_string())
                    .collect()
            } else {
                c.deps.iter().map(Address::to_string).collect()
            };
            stack.extend(next);
        }
    }
    changes
        .into_iter()
        .filter(|c| keep.contains(c.address.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::address::{RegionItem, VaultItem};
    use crate::state::ResourceState;

    fn key(name: &str) -> Address {
        Address::region("eu-west-1", RegionItem::Key(name.into()))
    }

    fn desired(address: Address, kind: Kind, attrs: Value, deps: Vec<Address>) -> Desired {
        Desired {
            address,
            kind,
            region: Some("eu-west-1".into()),
            name: "n".into(),
            attrs: attrs.as_object().cloned().unwrap_or_default(),
            deps,
            resumed: false,
        }
    }

    fn recorded(d: &Desired) -> ResourceState {
        ResourceState {
            address: d.address.clone(),
            kind: d.kind,
            region: d.region.clone(),
            status: Status::Ready,
            ids: Default::default(),
            attributes: d.attrs.clone(),
            outputs: Default::default(),
            dependencies: d.deps.clone(),
        }
    }

    /// Rules for the tests: replacements forced by a function, no process.
    struct Forces(fn(Kind) -> &'static [&'static str]);

    impl Providers for Forces {
        fn provider(&self, _: Kind) -> Option<&dyn crate::provider::Provider> {
            None
        }

        fn forces_replacement(&self, kind: Kind) -> &'static [&'static str] {
            (self.0)(kind)
        }
    }

    const NO_FORCES: Forces = Forces(no_forces);

    fn no_forces(_: Kind) -> &'static [&'static str] {
        &[]
    }

    fn actions(p: &Plan) -> Vec<(String, Action)> {
        p.changes
            .iter()
            .map(|c| (c.address.to_string(), c.action))
            .collect()
    }

    #[test]
    fn from_nothing_everything_is_created_in_order() {
        let k = desired(key("k"), Kind::KmsKey, json!({"alias": "a"}), vec![]);
        let b = desired(
            Address::region("eu-west-1", RegionItem::Bucket("b".into())),
            Kind::S3Bucket,
            json!({}),
            vec![key("k")],
        );
        let p = plan(
            &[k, b],
            &State::new("s"),
            &HashMap::new(),
            &NO_FORCES,
            &PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(
            actions(&p),
            vec![
                ("region.eu-west-1.key.k".into(), Action::Create),
                ("region.eu-west-1.bucket.b".into(), Action::Create)
            ]
        );
        assert_eq!(p.changes[1].after_changes, vec![key("k")]);
    }

    #[test]
    fn unchanged_is_a_no_op_changed_an_update_and_a_forced_attribute_a_replacement() {
        let old = desired(
            key("k"),
            Kind::KmsKey,
            json!({"alias": "a", "rotation": true}),
            vec![],
        );
        let mut state = State::new("s");
        state.resources.insert(old.address.clone(), recorded(&old));
        let plan_with = |attrs: Value, forces: &dyn Providers| {
            let d = desired(key("k"), Kind::KmsKey, attrs, vec![]);
            plan(
                &[d],
                &state,
                &HashMap::new(),
                forces,
                &PlanOptions::default(),
            )
            .unwrap()
        };
        let same = plan_with(json!({"alias": "a", "rotation": true}), &NO_FORCES);
        assert_eq!(same.changes[0].action, Action::NoOp);
        assert!(!same.has_changes());
        let changed = plan_with(json!({"alias": "a", "rotation": false}), &NO_FORCES);
        assert_eq!(changed.changes[0].action, Action::Update);
        assert_eq!(changed.changes[0].reason, "rotation changed");
        let forced = plan_with(
            json!({"alias": "b", "rotation": true}),
            &Forces(|_| &["alias"]),
        );
        assert_eq!(forced.changes[0].action, Action::Replace);
        assert_eq!(forced.changes[0].forced_by, vec!["alias".to_string()]);
    }

    #[test]
    fn a_new_certificate_replaces_the_kubernetes_objects_that_carry_it() {
        let cert = desired(
            Address::vault("bv", VaultItem::Cert("vault-0".into())),
            Kind::VaultCert,
            json!({"renewal_due": false}),
            vec![],
        );
        let secret = |what: crate::address::KubeObject| {
            desired(
                Address::vault(
                    "bv",
                    VaultItem::Kube {
                        cluster: "c1".into(),
                        object: what,
                    },
                ),
                Kind::KubeObject,
                json!({"kind": "Secret"}),
                vec![cert.address.clone()],
            )
        };
        let tls = secret(crate::address::KubeObject::TlsSecret("vault-0".into()));
        let sts = secret(crate::address::KubeObject::StatefulSet("vault-0".into()));
        let mut state = State::new("s");
        for d in [&cert, &tls, &sts] {
            state.resources.insert(d.address.clone(), recorded(d));
        }
        let run = |forces: &dyn Providers, cert_attrs: Value| {
            let c = desired(cert.address.clone(), Kind::VaultCert, cert_attrs, vec![]);
            plan(
                &[c, tls.clone(), sts.clone()],
                &state,
                &HashMap::new(),
                forces,
                &PlanOptions::default(),
            )
            .unwrap()
        };
        // Unchanged: nothing to do.
        let same = run(&NO_FORCES, json!({"renewal_due": false}));
        assert!(same.changes.iter().all(|c| c.action == Action::NoOp));
        // Renewed: the certificate and both objects that carry it are made again.
        let renewed = run(&Forces(|_| &["renewal_due"]), json!({"renewal_due": true}));
        assert!(
            renewed.changes.iter().all(|c| c.action == Action::Replace),
            "{:?}",
            actions(&renewed)
        );
    }

    #[test]
    fn destroy_deletes_dependents_first_and_drift_is_reported() {
        let k = desired(key("k"), Kind::KmsKey, json!({}), vec![]);
        let b = desired(
            Address::region("eu-west-1", RegionItem::Bucket("b".into())),
            Kind::S3Bucket,
            json!({"versioning": true}),
            vec![key("k")],
        );
        let mut state = State::new("s");
        state.resources.insert(k.address.clone(), recorded(&k));
        state.resources.insert(b.address.clone(), recorded(&b));
        let observed = HashMap::from([(
            b.address.to_string(),
            Observed::Present {
                attrs: json!({"versioning": false}).as_object().cloned().unwrap(),
                delete_blocker: None,
            },
        )]);
        let opts = PlanOptions {
            destroy: true,
            ..Default::default()
        };
        let p = plan(&[k, b], &state, &observed, &NO_FORCES, &opts).unwrap();
        assert_eq!(
            actions(&p),
            vec![
                ("region.eu-west-1.bucket.b".into(), Action::Delete),
                ("region.eu-west-1.key.k".into(), Action::Delete)
            ]
        );
        assert_eq!(p.drift.len(), 1);
        assert_eq!(p.drift[0].attributes, vec!["versioning".to_string()]);
    }

    #[test]
    fn an_unknown_target_is_an_error_and_a_target_keeps_what_it_needs() {
        let init = Address::vault("v", VaultItem::Init);
        let raft = Address::vault("v", VaultItem::Raft);
        let a = desired(key("k"), Kind::KmsKey, json!({}), vec![]);
        let b = desired(init.clone(), Kind::VaultInit, json!({}), vec![key("k")]);
        let c = desired(raft, Kind::RaftVerify, json!({}), vec![init.clone()]);
        let opts = |t: &str| PlanOptions {
            targets: vec![t.to_string()],
            ..Default::default()
        };
        let state = State::new("s");
        let all = [a, b, c];
        let err = plan(
            &all,
            &state,
            &HashMap::new(),
            &NO_FORCES,
            &opts("vault.v.nope"),
        );
        assert!(matches!(err, Err(PlanError::UnknownAddress(_))));
        let p = plan(
            &all,
            &state,
            &HashMap::new(),
            &NO_FORCES,
            &opts("vault.v.init"),
        )
        .unwrap();
        let kept: Vec<String> = actions(&p).into_iter().map(|(a, _)| a).collect();
        assert_eq!(kept, vec!["region.eu-west-1.key.k", "vault.v.init"]);
    }
}
