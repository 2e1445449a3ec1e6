//! How long a plan will take: each change's typical duration by kind and operation (AWS's
//! usual figures, refined by what this stack's past runs took, recorded in state), and the
//! chain of changes that decides the whole: the critical path through the changes' waits.
//! Pure; the engine's limits are not modelled (they add to it when they bind).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Action, Change};
use crate::address::Address;
use crate::graph::Kind;
pub use crate::lifecycle::typical;

/// What a plan is expected to take, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub seconds: u64,
    /// The changes that decide it, first to last.
    pub critical_path: Vec<Address>,
    /// How many of the durations used come from this stack's past runs.
    pub measured: usize,
}

/// The key under which a duration is recorded in state: `eks-cluster/create`.
pub fn key(kind: Kind, operation: &str) -> String {
    format!("{kind}/{operation}")
}

/// The operations a change runs.
fn operations(action: Action) -> &'static [&'static str] {
    match action {
        Action::Create => &["create"],
        Action::Update => &["update"],
        Action::Replace => &["delete", "create"],
        Action::Delete => &["delete"],
        Action::NoOp => &[],
    }
}

/// The seconds each of `changes` is expected to take by itself, with `recorded` durations
/// (by [`key`]) in place of the typical ones where this stack has run the operation before;
/// and how many recorded durations were used.
pub fn own_seconds(changes: &[Change], recorded: &BTreeMap<String, f64>) -> (Vec<f64>, usize) {
    let mut measured = 0;
    let own = changes
        .iter()
        .map(|c| {
            operations(c.action)
                .iter()
                .map(|op| match recorded.get(&key(c.kind, op)) {
                    Some(s) => {
                        measured += 1;
                        *s
                    }
                    None => typical(c.kind, op),
                })
                .sum()
        })
        .collect();
    (own, measured)
}

/// The estimate of `changes` (in plan order), with `recorded` durations (by [`key`]) in
/// place of the typical ones where this stack has run the operation before.
pub fn estimate(changes: &[Change], recorded: &BTreeMap<String, f64>) -> Estimate {
    let (own, measured) = own_seconds(changes, recorded);
    let (seconds, critical_path) = critical(changes, &own);
    Estimate {
        seconds: seconds.round() as u64,
        critical_path,
        measured,
    }
}

/// The seconds a run of `changes` still takes when those `done` have finished and each
/// other has run for `ran` seconds already: each its expected time `own` less what it ran
/// (never below nothing), after what it waits for.
pub fn remaining(changes: &[Change], own: &[f64], done: &[bool], ran: &[f64]) -> f64 {
    let left: Vec<f64> = own
        .iter()
        .zip(done.iter().zip(ran))
        .map(|(o, (d, r))| if *d { 0.0 } else { (o - r).max(0.0) })
        .collect();
    critical(changes, &left).0
}

/// When the last of `changes` finishes, each taking `own`, and the chain that decides it.
fn critical(changes: &[Change], own: &[f64]) -> (f64, Vec<Address>) {
    let index: HashMap<&str, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.as_str(), i))
        .collect();
    // Finish time of each change: its own duration after the latest of what it waits for.
    let mut finish: Vec<Option<(f64, Option<usize>)>> = vec![None; changes.len()];
    fn visit(
        i: usize,
        changes: &[Change],
        own: &[f64],
        index: &HashMap<&str, usize>,
        finish: &mut Vec<Option<(f64, Option<usize>)>>,
        depth: usize,
    ) -> f64 {
        if let Some((f, _)) = finish[i] {
            return f;
        }
        // A cycle in recorded waits cannot happen in a valid plan; stop rather than recurse.
        if depth > changes.len() {
            return own[i];
        }
        let mut latest: (f64, Option<usize>) = (0.0, None);
        for a in &changes[i].after_changes {
            if let Some(&d) = index.get(a.as_str()) {
                let f = visit(d, changes, own, index, finish, depth + 1);
                if f > latest.0 {
                    latest = (f, Some(d));
                }
            }
        }
        let f = latest.0 + own[i];
        finish[i] = Some((f, latest.1));
        f
    }
    let mut end: Option<(f64, usize)> = None;
    for i in 0..changes.len() {
        let f = visit(i, changes, own, &index, &mut finish, 0);
        if changes[i].action != Action::NoOp && end.is_none_or(|(e, _)| f > e) {
            end = Some((f, i));
        }
    }
    let mut path = Vec::new();
    let mut at = end.map(|(_, i)| i);
    while let Some(i) = at {
        path.push(changes[i].address.clone());
        at = finish[i].and_then(|(_, prev)| prev);
    }
    path.reverse();
    (end.map_or(0.0, |(f, _)| f), path)
}

/// `45s`, `12m 30s`, `1h 05m`.
pub fn human(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A new recorded duration: the mean of the old one and this run's, so that one slow run
/// moves it without taking it over.
pub fn blend(old: Option<f64>, now: f64) -> f64 {
    match old {
        Some(old) => (old + now) / 2.0,
        None => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{RegionItem, VaultItem};

    fn change(address: Address, kind: Kind, action: Action, after: Vec<Address>) -> Change {
        Change {
            address,
            kind,
            region: None,
            action,
            reason: String::new(),
            before: None,
            after: None,
            forced_by: Vec::new(),
            name: None,
            after_changes: after,
            deps: Vec::new(),
        }
    }

    #[test]
    fn the_longest_chain_decides_and_recorded_durations_replace_typical_ones() {
        let vpc = Address::region("r", RegionItem::Vpc);
        let cluster = Address::region("r", RegionItem::Cluster("c".into()));
        let key = Address::region("r", RegionItem::Key("k".into()));
        let init = Address::vault("v", VaultItem::Init);
        let changes = vec![
            change(vpc.clone(), Kind::Vpc, Action::Create, vec![]),
            change(key.clone(), Kind::KmsKey, Action::Create, vec![]),
            change(
                cluster.clone(),
                Kind::EksCluster,
                Action::Create,
                vec![vpc.clone()],
            ),
            change(
                init.clone(),
                Kind::VaultInit,
                Action::Create,
                vec![key.clone()],
            ),
        ];
        let e = estimate(&changes, &BTreeMap::new());
        assert_eq!(e.seconds, 663);
        assert_eq!(e.critical_path, vec![vpc.clone(), cluster.clone()]);
        assert_eq!(e.measured, 0);
        let recorded = BTreeMap::from([(super::key(Kind::EksCluster, "create"), 30.0)]);
        let e = estimate(&changes, &recorded);
        assert_eq!(e.seconds, 33);
        assert_eq!(e.measured, 1);
        assert_eq!(human(663), "11m 03s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(3900), "1h 05m");
    }

    #[test]
    fn no_change_takes_no_time_and_a_replacement_deletes_then_creates() {
        let lb = Address::region("r", RegionItem::LoadBalancer("lb".into()));
        let noop = vec![change(lb.clone(), Kind::LoadBalancer, Action::NoOp, vec![])];
        assert_eq!(estimate(&noop, &BTreeMap::new()).seconds, 0);
        assert!(estimate(&noop, &BTreeMap::new()).critical_path.is_empty());
        let replace = vec![change(lb, Kind::LoadBalancer, Action::Replace, vec![])];
        assert_eq!(estimate(&replace, &BTreeMap::new()).seconds, 240);
        assert_eq!(blend(Some(10.0), 20.0), 15.0);
        assert_eq!(blend(None, 20.0), 20.0);
    }
}
