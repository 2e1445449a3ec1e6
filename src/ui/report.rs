//! Typed reports rendered for people: the apply summary, a Vault cluster's status table, the
//! drills' figures.

use crate::engine::summary::Summary;
use crate::ops::drill::{DrillReport, RegionDrillReport};
use crate::ops::status::ClusterStatus;

/// The apply or destroy summary: each cause of failure once, with the addresses it hit, then
/// one verdict line and the API calls.
pub fn summary(s: &Summary) -> String {
    let mut out = String::new();
    for (cause, addresses) in causes(&s.failures) {
        match addresses.as_slice() {
            [(address, error)] => out.push_str(&format!("error: {address}: {error}\n")),
            _ => {
                let list: Vec<&str> = addresses.iter().map(|(a, _)| *a).collect();
                out.push_str(&format!(
                    "error: {cause}\n  at {} addresses: {}\n",
                    list.len(),
                    list.join(", ")
                ));
            }
        }
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

/// Failures grouped by cause, in the order each cause first failed: the message with the
/// address, the resource's name and request ids taken out, and each (address, message).
pub fn causes(failures: &[(String, String)]) -> Vec<(String, Vec<(&str, &str)>)> {
    let mut out: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    for (address, error) in failures {
        let cause = cause(address, error);
        match out.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, hit)) => hit.push((address, error)),
            None => out.push((cause, vec![(address, error)])),
        }
    }
    out
}

/// `error` as it would read for any address: the address and its last part (the resource's
/// name) as placeholders, request ids left out (each request has its own).
pub(super) fn cause(address: &str, error: &str) -> String {
    let mut text = error.replace(address, "<address>");
    if let Some(name) = address.rsplit('.').next().filter(|n| n.len() >= 3) {
        text = replace_word(&text, name, "<name>");
    }
    while let Some(start) = text.find(" (request id ") {
        let end = text[start..]
            .find(')')
            .map_or(text.len(), |e| start + e + 1);
        text.replace_range(start..end, "");
    }
    text
}

/// `text` with every whole-word `word` (not inside a longer name) replaced by `with`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().is_some_and(part)
            || (i == 0 && out.chars().next_back().is_some_and(part));
        let after = rest[i + word.len()..].chars().next().is_some_and(part);
        out.push_str(&rest[..i]);
        out.push_str(if before || after { word } else { with });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
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
        "REGION".into(),
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
            m.region.clone(),
            m.address.clone(),
            m.role.clone(),
            yes(m.sealed),
            yes(m.voter),
            yes(m.leader),
            m.applied_index.map(|i| i.to_string()).unwrap_or("-".into()),
            lbs.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..9)
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
        out.push_str(&format!("  SEAL DOWN: {problem}\n"));
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

#[cfg(test)]
mod tests {
    use super::causes;

    fn failures(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, e)| (a.to_string(), e.to_string()))
            .collect()
    }

    #[test]
    fn one_cause_is_said_once_with_every_address_it_hit() {
        let f = failures(&[
            (
                "region.eu-west-1.key.unseal",
                "create KMS key: AccessDeniedException: no (request id a1)",
            ),
            (
                "region.eu-west-1.bucket.bv-eu-west-1",
                "bucket bv-eu-west-1 holds objects",
            ),
            (
                "region.eu-north-1.key.unseal",
                "create KMS key: AccessDeniedException: no (request id b2)",
            ),
            (
                "region.eu-north-1.bucket.bv-eu-north-1",
                "bucket bv-eu-north-1 holds objects",
            ),
            ("region.eu-north-1.bucket.other", "alias/rs-other is taken"),
        ]);
        let got: Vec<(String, usize)> = causes(&f)
            .into_iter()
            .map(|(c, hit)| (c, hit.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("create KMS key: AccessDeniedException: no".to_string(), 2),
                ("bucket <name> holds objects".to_string(), 2),
                ("alias/rs-other is taken".to_string(), 1),
            ]
        );
    }
}
