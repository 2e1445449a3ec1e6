//! The plan's cost: per region and item, the total per hour and per month, and the difference
//! the plan makes.

use std::fmt::Write as _;

use crate::cost::Cost;

/// `+1.2345` or `-1.2345`.
fn signed(x: f64, decimals: usize) -> String {
    if x >= 0.0 {
        format!("+{x:.decimals$}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// The one cost line of a plan that changes nothing: the total and the difference.
pub fn total(c: &Cost) -> String {
    let unpriced = match c.unpriced.len() {
        0 => String::new(),
        n => format!("; {n} not priced"),
    };
    format!(
        "Cost while it runs ({}): {:.4}/h, {:.2}/month ({}/h, {}/month against now{unpriced}); `--cost` itemizes it.\n",
        c.currency,
        c.hour,
        c.month,
        signed(c.diff_hour, 4),
        signed(c.diff_month, 2)
    )
}

/// The cost lines printed after the plan.
pub fn human(c: &Cost) -> String {
    let mut out = String::from("\n");
    let _ = writeln!(
        out,
        "Cost while it runs ({} list prices of {}; load balancer capacity units, data transfer, requests, S3 storage and KMS key rotations not included):",
        c.currency, c.prices_date
    );
    for l in &c.lines {
        let _ = writeln!(
            out,
            "  {:<13} {:<26} {:>5} x {:>7.4}/h = {:>8.4}/h {:>9.2}/month",
            l.region, l.item, l.count, l.unit_hour, l.hour, l.month
        );
    }
    let _ = writeln!(
        out,
        "  Total: {:.4}/h, {:.2}/month ({}/h, {}/month against now)",
        c.hour,
        c.month,
        signed(c.diff_hour, 4),
        signed(c.diff_month, 2)
    );
    if !c.unpriced.is_empty() {
        let _ = writeln!(
            out,
            "  Not priced (not in the price table; --prices FILE adds them): {}",
            c.unpriced.join(", ")
        );
    }
    out
}
