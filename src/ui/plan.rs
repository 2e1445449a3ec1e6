//! Plan rendering: the human view (`+ ~ -/+ -` with attribute diffs) and the JSON view.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::plan::{Action, Change, Plan};

const SENSITIVE: &[&str] = &[
    "root_token",
    "unseal_keys",
    "keys",
    "keys_base64",
    "token",
    "secret",
    "password",
];

/// A copy of `attrs` with every sensitive value replaced.
pub fn redact(attrs: &Map<String, Value>) -> Map<String, Value> {
    attrs
        .iter()
        .map(|(k, v)| {
            if SENSITIVE.contains(&k.as_str()) {
                (k.clone(), json!("(sensitive)"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn action_color(a: Action) -> &'static str {
    match a {
        Action::Create => "32",
        Action::Update => "33",
        Action::Replace => "35",
        Action::Delete => "31",
        Action::NoOp => "0",
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(v) => v.to_string(),
    }
}

fn attribute_lines(c: &Change, out: &mut String) {
    let before = c.before.as_ref().map(redact);
    let after = c.after.as_ref().map(redact);
    let mut keys: Vec<&String> = before
        .iter()
        .chain(after.iter())
        .flat_map(|m| m.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0);
    for k in keys {
        let b = before.as_ref().and_then(|m| m.get(k));
        let a = after.as_ref().and_then(|m| m.get(k));
        if c.action != Action::Update && c.action != Action::Replace || a != b {
            // Multi-line text (a policy's rules): a heredoc, changed lines marked.
            let (tb, ta) = (multiline(b), multiline(a));
            let body = match c.action {
                Action::Create => ta.map(|t| heredoc_lines(&[], &lines(t))),
                Action::Delete => tb.map(|t| heredoc_lines(&lines(t), &[])),
                _ => (tb.is_some() || ta.is_some())
                    .then(|| heredoc_lines(&lines(tb.unwrap_or("")), &lines(ta.unwrap_or("")))),
            };
            if let Some(body) = body {
                let _ = writeln!(out, "        {} = <<EOT", pad(k, width));
                out.push_str(&body);
                let _ = writeln!(out, "        EOT");
                continue;
            }
        }
        let line = match c.action {
            Action::Create => format!("{} = {}", pad(k, width), show(a)),
            Action::Delete => format!("{} = {}", pad(k, width), show(b)),
            _ if a == b => continue,
            _ => {
                let forced = if c.forced_by.iter().any(|f| f == k) {
                    "  # forces replacement"
                } else {
                    ""
                };
                format!("{} = {} -> {}{forced}", pad(k, width), show(b), show(a))
            }
        };
        let _ = writeln!(out, "        {line}");
    }
}

fn multiline(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|t| t.contains('\n'))
}

fn lines(t: &str) -> Vec<&str> {
    t.lines().collect()
}

/// The lines of a heredoc: unchanged ones indented, removed ones `-`, added ones `+`, in the
/// order of a longest-common-subsequence diff of `before` and `after`.
fn heredoc_lines(before: &[&str], after: &[&str]) -> String {
    let (n, m) = (before.len(), after.len());
    // lcs[i][j]: the longest common subsequence of before[i..] and after[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if before[i] == after[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    let marked = |sign: char, line: &str| format!("          {sign} {line}\n");
    while i < n || j < m {
        if i < n && j < m && before[i] == after[j] {
            out.push_str(&marked(' ', before[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&marked(if m == 0 { ' ' } else { '-' }, before[i]));
            i += 1;
        } else {
            out.push_str(&marked(if n == 0 { ' ' } else { '+' }, after[j]));
            j += 1;
        }
    }
    out
}

fn pad(k: &str, width: usize) -> String {
    format!("{k:<width$}")
}

/// The plan as a person reads it.
pub fn human(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    if !plan.drift.is_empty() {
        out.push_str("Changed outside vaultform since the last apply:\n");
        for d in &plan.drift {
            match d.what.as_str() {
                "deleted" => {
                    let _ = writeln!(out, "  {} was deleted", d.address);
                }
                "stopped" => {
                    let _ = writeln!(out, "  {} is not running", d.address);
                }
                _ => {
                    let _ = writeln!(out, "  {}: {} changed", d.address, d.attributes.join(", "));
                }
            }
        }
        out.push('\n');
    }
    if !plan.has_changes() {
        out.push_str("No changes. The infrastructure matches the topology.\n");
        return out;
    }
    out.push_str(if plan.destroy {
        "vaultform will destroy:\n\n"
    } else {
        "vaultform will perform these actions:\n\n"
    });
    for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let head = format!("{:>3} {}", c.action.symbol(), c.address);
        let _ = writeln!(
            out,
            "{} ({}): {}",
            paint(color, action_color(c.action), &head),
            c.kind,
            c.reason
        );
        attribute_lines(c, &mut out);
    }
    let _ = writeln!(out, "\n{}", summary_line(plan));
    if let Some(e) = &plan.estimate {
        out.push_str(&estimate_line(e));
    }
    out
}

/// `Expected duration: about 12m 03s, decided by a -> b -> c.`
pub fn estimate_line(e: &crate::plan::estimate::Estimate) -> String {
    let path: Vec<&str> = e.critical_path.iter().map(|a| a.as_str()).collect();
    let source = match e.measured {
        0 => "typical AWS durations".to_string(),
        n => format!("typical AWS durations and {n} measured in this stack's past runs"),
    };
    format!(
        "Expected duration: about {} ({source}), decided by:\n  {}\n",
        crate::plan::estimate::human(e.seconds),
        path.join("\n  -> ")
    )
}

pub fn summary_line(plan: &Plan) -> String {
    format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Replace),
        plan.count(Action::Delete)
    )
}

/// The plan as JSON, sensitive values redacted (the schema is in docs/plan-json.md).
pub fn json(plan: &Plan) -> Value {
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|c| {
            json!({
                "address": c.address,
                "kind": c.kind,
                "region": c.region,
                "action": c.action,
                "reason": c.reason,
                "before": c.before.as_ref().map(redact),
                "after": c.after.as_ref().map(redact),
                "forced_by": c.forced_by,
                "after_changes": c.after_changes,
            })
        })
        .collect();
    json!({
        "format_version": plan.format_version,
        "stack": plan.stack,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "destroy": plan.destroy,
        "drift": plan.drift,
        "changes": changes,
        "estimate": plan.estimate,
        "summary": {
            "create": plan.count(Action::Create),
            "update": plan.count(Action::Update),
            "replace": plan.count(Action::Replace),
            "delete": plan.count(Action::Delete),
            "no-op": plan.count(Action::NoOp),
        }
    })
}
