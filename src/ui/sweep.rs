//! The sweep's report: what the state does not record, by region, and what `--delete` did.

use serde::Serialize;

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
pub fn removed(removed: &[Removed]) -> String {
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
        "Deleted {} orphan(s), {} failed.",
        removed.len() - failed.len(),
        failed.len()
    ));
    out
}
