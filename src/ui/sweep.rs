//! The sweep's report: what the state does not record, by region, and what `--delete` did.

use serde::Serialize;

use crate::sweep::billable::Remains;
use crate::sweep::{Removed, Report};

/// `sweep --json`: the findings and, with `--delete`, what each deletion did.
#[derive(Serialize)]
pub struct Json<'a> {
    #[serde(flatten)]
    pub report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<&'a [Removed]>,
}

/// One line per orphan (kind, region, identifier, address, detail), then a count and the
/// API calls the search took.
pub fn human(r: &Report) -> String {
    let mut out = String::new();
    if r.orphans.is_empty() {
        out.push_str(&format!(
            "No orphans: everything tagged with stack \"{}\" in {} is recorded in its state.\n",
            r.stack,
            r.regions.join(", ")
        ));
    } else {
        out.push_str(&format!(
            "Not recorded in the state of stack \"{}\" ({} of {} found):\n",
            r.stack,
            r.orphans.len(),
            r.found
        ));
        for f in &r.orphans {
            let mut line = format!(
                "  {:<18} {:<13} {}",
                f.thing.as_str(),
                f.region.as_deref().unwrap_or("global"),
                f.id
            );
            if let Some(a) = &f.address {
                line.push_str(&format!("  {a}"));
            }
            if let Some(d) = &f.detail {
                line.push_str(&format!("  ({d})"));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "Searched {} region(s) in {:.1}s; AWS API calls: {}.\n",
        r.regions.len(),
        r.seconds,
        super::report::api_calls(&r.api_calls)
    ));
    out
}

/// What `--delete` did: each failure, then the counts.
pub fn removed(
    removed: &[Removed],
    took: std::time::Duration,
    calls: &std::collections::BTreeMap<String, u64>,
) -> String {
    let mut out = String::new();
    let failed: Vec<&Removed> = removed.iter().filter(|r| r.error.is_some()).collect();
    for r in &failed {
        out.push_str(&format!(
            "error: {} {}: {}\n",
            r.thing.as_str(),
            r.id,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "Deleted {} orphan(s), {} failed, in {:.1}s; AWS API calls: {}.",
        removed.len() - failed.len(),
        failed.len(),
        took.as_secs_f64(),
        super::report::api_calls(calls)
    ));
    out
}

/// The JSON line after a destroy's summary.
#[derive(Serialize)]
pub struct RemainsJson<'a> {
    pub remains: &'a Remains,
}

/// What remains after a destroy, then the verdict: "Nothing billable remains" only when the
/// APIs were asked and said so.
pub fn remains(r: &Remains) -> String {
    if !r.checked {
        return format!(
            "Could not check what remains through the APIs ({}): not claiming that nothing billable remains; `vaultform sweep FILE` checks again.",
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    let mut out = String::new();
    if !r.items.is_empty() {
        out.push_str("Remains (checked through the AWS APIs):\n");
        for i in &r.items {
            let mut line = format!(
                "  {} {:<18} {:<13} {}",
                if i.billed { "$" } else { " " },
                i.thing.as_str(),
                i.region.as_deref().unwrap_or("global"),
                i.id
            );
            if let Some(a) = &i.address {
                line.push_str(&format!("  {a}"));
            }
            match &i.until {
                Some(until) => line.push_str(&format!(": deleted by AWS on {until}; {}", i.why)),
                None => line.push_str(&format!(": {}", i.why)),
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    let billed = r.items.iter().filter(|i| i.billed).count();
    if billed == 0 {
        out.push_str("Nothing billable remains (checked through the AWS APIs).");
    } else {
        out.push_str(&format!("{billed} billable resource(s) remain (marked $)."));
    }
    out
}
