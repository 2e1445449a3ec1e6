//! Canonical formatting of topology files (`vaultform fmt`): four-space indents, one node per
//! line, strings always quoted, comments and single blank lines between nodes kept.

use kdl::{KdlDocument, KdlEntryFormat, KdlValue};

use super::diagnostic::Problem;

/// The canonical text of a topology, or the syntax problems that stop formatting.
pub fn format(text: &str) -> Result<String, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(mut doc) = super::parse_serial(text, &mut problems) else {
        return Err(problems);
    };
    let mut layout = Vec::new();
    record_layout(&doc, &mut layout);
    doc.autoformat();
    let mut layout = layout.into_iter();
    restore(&mut doc, &mut layout);
    let mut out = doc.to_string();
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    Ok(out)
}

/// What autoformat loses and `fmt` keeps, per node (depth-first).
struct Layout {
    /// A blank line before the node.
    blank_before: bool,
    /// A comment at the end of the node's line (the parser files it under the terminator).
    line_comment: Option<String>,
}

fn record_layout(doc: &KdlDocument, out: &mut Vec<Layout>) {
    for node in doc.nodes() {
        let (leading, terminator) = node
            .format()
            .map(|f| (f.leading.as_str(), f.terminator.as_str()))
            .unwrap_or(("", ""));
        let ws = &leading[..leading.len() - leading.trim_start().len()];
        let comment = terminator.trim().trim_start_matches(';').trim();
        out.push(Layout {
            blank_before: ws.contains('\n'),
            line_comment: (!comment.is_empty()).then(|| comment.to_string()),
        });
        if let Some(children) = node.children() {
            record_layout(children, out);
        }
    }
}

fn restore(doc: &mut KdlDocument, layout: &mut impl Iterator<Item = Layout>) {
    for (i, node) in doc.nodes_mut().iter_mut().enumerate() {
        let Layout {
            blank_before,
            line_comment,
        } = layout.next().unwrap_or(Layout {
            blank_before: false,
            line_comment: None,
        });
        if let Some(f) = node.format_mut() {
            if blank_before && i > 0 {
                f.leading.insert(0, '\n');
            }
            if let Some(comment) = line_comment {
                f.before_terminator = " ".into();
                f.terminator = format!("{comment}\n");
            }
        }
        for entry in node.entries_mut() {
            if let KdlValue::String(s) = entry.value() {
                let repr = quote(s);
                entry.set_format(KdlEntryFormat {
                    value_repr: repr,
                    leading: " ".into(),
                    ..Default::default()
                });
            }
        }
        if let Some(children) = node.children_mut() {
            restore(children, layout);
        }
    }
}

/// A KDL quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
