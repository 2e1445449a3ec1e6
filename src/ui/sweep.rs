//! The sweep's report: what the state does not record, by region, and what `--delete` did.

use serde::Serialize;

use crate::sweep::billable::Remains;
use crate::sweep::expired::Destroyed;
use crate::sweep::expiry::Expiring;
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

/// What an apply's expiry did: when the stack expires, and what could not be tagged.
pub fn stamped(at: &str, found: usize, failures: &[String]) -> String {
    let mut out = String::new();
    for f in failures {
        out.push_str(&format!("warning: not tagged to expire: {f}\n"));
    }
    out.push_str(&format!(
        "The stack expires at {at}: {} of its {found} resources are tagged vaultform:expires-at; `vaultform expired --destroy` destroys it after that.",
        found.saturating_sub(failures.len())
    ));
    out
}

/// `expired --json`: the stacks with an expiry and, with `--destroy`, what each destroy did.
#[derive(Serialize)]
pub struct ExpiredJson<'a> {
    pub stacks: &'a [Expiring],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<&'a [Destroyed]>,
}

/// One line per stack with an expiry: expired or not, when, where its state is.
pub fn expiring(stacks: &[Expiring]) -> String {
    if stacks.is_empty() {
        return "No stack carries an expiry (vaultform:expires-at) in these regions.\n".into();
    }
    let mut out = String::new();
    for s in stacks {
        out.push_str(&format!(
            "{:<8} {}  {}  {} resource(s) in {}{}\n",
            if s.expired { "EXPIRED" } else { "expires" },
            s.expires_at,
            s.stack,
            s.resources,
            s.regions.join(", "),
            s.state
                .as_deref()
                .map(|st| format!("; state {st}"))
                .unwrap_or_default()
        ));
    }
    out
}

/// What destroying one expired stack did.
pub fn destroyed(d: &Destroyed) -> String {
    let mut out = String::new();
    for e in &d.errors {
        out.push_str(&format!("error: {}: {e}\n", d.stack));
    }
    if let Some(s) = &d.summary {
        for (address, error) in &s.failures {
            out.push_str(&format!("error: {}: {address}: {error}\n", d.stack));
        }
    }
    for r in d.swept.iter().filter(|r| r.error.is_some()) {
        out.push_str(&format!(
            "error: {}: {} {}: {}\n",
            d.stack,
            r.thing.as_str(),
            r.id,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    let through = match (&d.state, &d.summary) {
        (Some(path), Some(s)) => format!("{} deleted through its state {path}", s.deleted),
        (Some(path), None) => format!("nothing recorded in its state {path}"),
        (None, _) => "no state found".to_string(),
    };
    out.push_str(&format!(
        "{} {}: {through}; {} more swept.",
        if d.ok() {
            "Destroyed"
        } else {
            "Failed to destroy completely"
        },
        d.stack,
        d.swept.iter().filter(|r| r.error.is_none()).count()
    ));
    out
}

/// The stack's expiry as `plan` and `status` show it: when it expires now (the last apply's
/// tags), and what the topology's `expires-after` makes the next apply do.
pub fn expiry(current: Option<&str>, after: Option<std::time::Duration>) -> Option<String> {
    let mut out = String::new();
    if let Some(at) = current {
        out.push_str(&format!(
            "The stack expires at {at}; `vaultform expired --destroy` destroys it after that.\n"
        ));
    }
    if let Some(d) = after {
        out.push_str(&format!(
            "expires-after {}: an apply tags every resource to expire that long after it.\n",
            crate::plan::estimate::human(d.as_secs())
        ));
    }
    (!out.is_empty()).then_some(out)
}
