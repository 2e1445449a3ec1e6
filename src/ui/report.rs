//! Typed reports rendered for people: the apply summary, a Vault cluster's status table, the
//! drills' figures.

use crate::engine::summary::Summary;
use crate::ops::drill::{DrillReport, RegionDrillReport};
use crate::ops::status::ClusterStatus;

/// The apply or destroy summary: each failure, then one verdict line and the API calls.
pub fn summary(s: &Summary) -> String {
    let mut out = String::new();
    for (address, error) in &s.failures {
        out.push_str(&format!("error: {address}: {error}\n"));
    }
    let verdict = if s.interrupted {
        "Interrupted"
    } else if s.failed > 0 {
        "Failed"
    } else {
        "Done"
    };
    out.push_str(&format!(
        "{verdict}: {} created, {} updated, {} replaced, {} deleted, {} failed, {} skipped in {:.1}s.",
        s.created,
        s.updated,
        s.replaced,
        s.deleted,
        s.failed,
        s.skipped + s.not_started,
        s.elapsed_ms as f64 / 1000.0
    ));
    if !s.api_calls.is_empty() {
        out.push_str(&format!("\nAWS API calls: {}.", api_calls(&s.api_calls)));
    }
    out
}

/// `service N, service N`.
pub fn api_calls(calls: &std::collections::BTreeMap<String, u64>) -> String {
    let list: Vec<String> = calls.iter().map(|(s, n)| format!("{s} {n}")).collect();
    list.join(", ")
}

/// A cluster's members as a table, its front endpoint, its unseal store and the verdict.
pub fn status(c: &ClusterStatus) -> String {
    let mut rows = vec![[
        "MEMBER".to_string(),
        "ADDRESS".into(),
        "ROLE".into(),
        "SEALED".into(),
        "VOTER".into(),
        "LEADER".into(),
        "APPLIED".into(),
        "LOAD BALANCERS".into(),
    ]];
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    for m in &c.members {
        let lbs: Vec<String> = m
            .load_balancers
            .iter()
            .map(|(lb, up)| format!("{lb} ({})", if *up { "up" } else { "down" }))
            .collect();
        rows.push([
            m.name.clone(),
            m.address.clone(),
            m.role.clone(),
            yes(m.sealed),
            yes(m.voter),
            yes(m.leader),
            m.applied_index.map(|i| i.to_string()).unwrap_or("-".into()),
            lbs.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("Vault cluster {}:\n", c.name);
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
    }
    if let Some(f) = &c.front {
        out.push_str(&format!(
            "  front endpoint {f} serves: {}\n",
            c.front_serves.as_deref().unwrap_or("no member")
        ));
    }
    let store: Vec<String> = c
        .unseal_store
        .iter()
        .map(|b| {
            format!(
                "{} ({}): {}",
                b.bucket,
                b.region,
                if b.holds_keys { "keys" } else { "NO KEYS" }
            )
        })
        .collect();
    if !store.is_empty() {
        out.push_str(&format!("  unseal store: {}\n", store.join(", ")));
    }
    match (&c.seal.server, &c.seal.server_state) {
        (Some(server), Some(state)) => out.push_str(&format!(
            "  seal: {} through {server} ({state})\n",
            c.seal.kind
        )),
        _ => out.push_str(&format!("  seal: {}\n", c.seal.kind)),
    }
    if let Some(problem) = &c.seal.problem {
        out.push_str(&format!(
            "  SEAL DOWN: {problem}; `vaultform apply FILE` starts vaultform's transit server again\n"
        ));
    }
    out.push_str(if c.healthy {
        "  healthy: one leader, every member an unsealed voter\n"
    } else {
        "  DEGRADED: `vaultform unseal FILE` or `vaultform apply FILE` repairs sealed or stopped members\n"
    });
    out
}

pub fn failover(r: &DrillReport) -> String {
    format!(
        "Failover: {old} -> {new} through the front endpoint in {:.2}s; {old} back as an unsealed voter {:.1}s later.\n",
        r.failover_ms as f64 / 1000.0,
        r.restore_ms as f64 / 1000.0,
        old = r.old_leader,
        new = r.new_leader,
    )
}

pub fn region_loss(r: &RegionDrillReport) -> String {
    format!(
        "Region loss: {region} gone; the front endpoint served {} ({}) {:.2}s later; {region} back, every member a voter, {:.1}s after that.\n",
        r.leader_after,
        if r.leader_after == r.leader_before {
            "the leader did not change"
        } else {
            "a new leader"
        },
        r.served_ms as f64 / 1000.0,
        r.restore_ms as f64 / 1000.0,
        region = r.region,
    )
}
