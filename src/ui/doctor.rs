//! `doctor`'s checks for people: one line each, what to do indented below a problem, then
//! one verdict line.

use std::fmt::Write as _;

use crate::doctor::{Report, Status};

pub fn human(r: &Report) -> String {
    let mut out = String::new();
    for c in &r.checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "{mark} {}: {}", c.subject, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "       -> {fix}");
        }
    }
    let failed = r.checks.iter().filter(|c| c.status == Status::Fail).count();
    let _ = writeln!(
        out,
        "{} in {:.1}s: {}",
        r.file,
        r.elapsed_ms as f64 / 1000.0,
        match failed {
            0 => "ready to apply".to_string(),
            1 => "1 problem would stop an apply".to_string(),
            n => format!("{n} problems would stop an apply"),
        }
    );
    out
}
