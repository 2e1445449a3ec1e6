//! KDL text -> typed [`Topology`], with every problem reported as a spanned diagnostic.

pub mod aws_names;
pub mod decode;
pub mod diagnostic;
pub mod format;
pub mod model;
pub mod reader;
pub mod split;
pub mod validate;

use kdl::KdlDocument;

pub use diagnostic::{Code, Problem, Severity, SourceFile, TopologyDiagnostic};
pub use model::*;

use crate::graph::{self, Graph};

/// The result of reading one topology file: what could be built, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub topology: Option<Topology>,
    pub graph: Option<Graph>,
    /// Sorted by position; errors and warnings.
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    pub fn warning_count(&self) -> usize {
        self.problems.len() - self.error_count()
    }

    /// The problems bound to their source, ready to render.
    pub fn diagnostics(&self) -> Vec<TopologyDiagnostic> {
        self.problems
            .iter()
            .cloned()
            .map(|p| TopologyDiagnostic::new(p, &self.source))
            .collect()
    }

    /// The topology and graph when there are no errors.
    pub fn valid(&self) -> Option<(&Topology, &Graph)> {
        if self.has_errors() {
            return None;
        }
        Some((self.topology.as_ref()?, self.graph.as_ref()?))
    }
}

/// Parses, decodes, validates and builds the graph; never panics on any input.
pub fn load(name: impl Into<String>, text: impl Into<std::sync::Arc<str>>) -> Loaded {
    let source = SourceFile::new(name, text);
    let mut problems = Vec::new();
    let doc = match parse(&source.text, &mut problems) {
        Some(doc) => doc,
        None => {
            return Loaded {
                source,
                topology: None,
                graph: None,
                problems: sort(problems),
            };
        }
    };
    let topology = decode::decode(&doc, &mut problems);
    let graph = topology.as_ref().map(|t| {
        validate::validate(t, &mut problems);
        graph::build(t, &mut problems)
    });
    Loaded {
        source,
        topology,
        graph,
        problems: sort(problems),
    }
}

fn sort(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|p| {
        (
            p.primary_span().map(|s| s.offset()).unwrap_or(0),
            p.severity,
        )
    });
    problems
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
