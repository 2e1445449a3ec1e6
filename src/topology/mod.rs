//! KDL text -> typed [`Topology`], with every problem reported as a spanned diagnostic.

pub mod aws_names;
pub mod decode;
pub mod diagnostic;
pub mod duration;
pub mod format;
pub mod model;
pub mod names;
pub mod reader;
pub mod seal;
pub mod split;
pub mod validate;
pub mod vars;

use kdl::KdlDocument;

pub use diagnostic::{Code, Problem, Severity, SourceFile, TopologyDiagnostic};
pub use model::*;

/// Parses, decodes and validates; never panics on any input. `None` when the text does not
/// parse or decode; problems (errors and warnings) are appended, unsorted.
pub fn read(source: &SourceFile, problems: &mut Vec<Problem>) -> Option<Topology> {
    let doc = parse(&source.text, problems)?;
    let topology = decode::decode(&doc, problems)?;
    validate::validate(&topology, problems);
    Some(topology)
}

/// Parses KDL v2, turning syntax errors into problems. Large files are parsed on every core.
pub fn parse(text: &str, problems: &mut Vec<Problem>) -> Option<KdlDocument> {
    if text.len() >= split::PARALLEL_THRESHOLD {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores > 1
            && let Some(doc) = split::parse_in_pieces(text, cores.min(8))
        {
            return Some(doc);
        }
    }
    parse_serial(text, problems)
}

/// One parse of the whole text: the reference behaviour, and where every syntax error is found.
pub fn parse_serial(text: &str, problems: &mut Vec<Problem>) -> Option<KdlDocument> {
    match KdlDocument::parse_v2(text) {
        Ok(doc) => Some(doc),
        Err(err) => {
            for d in err.diagnostics {
                let message = d
                    .message
                    .clone()
                    .unwrap_or_else(|| "invalid KDL syntax".to_string());
                let label = d.label.clone().unwrap_or_else(|| "here".to_string());
                let span = clamp(d.span, text.len());
                let mut p = Problem::error(Code::Syntax, format!("KDL syntax error: {message}"))
                    .label(span, label);
                if let Some(help) = d.help {
                    p = p.help(help);
                } else if text.contains("true") && !text.contains("#true") {
                    p = p.help("this is KDL v2: booleans are #true and #false");
                }
                problems.push(p);
            }
            if problems.is_empty() {
                problems.push(
                    Problem::error(Code::Syntax, "KDL syntax error")
                        .label(miette::SourceSpan::from((0, 0)), "the file does not parse"),
                );
            }
            None
        }
    }
}

fn clamp(span: miette::SourceSpan, len: usize) -> miette::SourceSpan {
    let start = span.offset().min(len);
    let end = (span.offset() + span.len()).min(len);
    miette::SourceSpan::from((start, end - start))
}
