//! One topology file read as far as it goes: its source, the typed topology, its graph and
//! every problem found, sorted by position; and [`Stack`], the type of a valid one.

use crate::graph::Graph;
use crate::topology::{self, Problem, Severity, SourceFile, Topology, TopologyDiagnostic};

/// The result of reading one topology file: what could be built, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub topology: Option<Topology>,
    pub graph: Option<Graph>,
    /// Sorted by position; errors and warnings.
    pub problems: Vec<Problem>,
}

/// A topology without errors and its graph: what every command past `validate` works on.
#[derive(Debug)]
pub struct Stack {
    pub source: SourceFile,
    pub topology: Topology,
    pub graph: Graph,
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

    /// The valid stack, when there are no errors (the problems are warnings at most).
    pub fn into_stack(self) -> Option<Stack> {
        if self.has_errors() {
            return None;
        }
        Some(Stack {
            source: self.source,
            topology: self.topology?,
            graph: self.graph?,
        })
    }
}

/// Parses, decodes, validates and builds the graph; never panics on any input.
pub fn load(name: impl Into<String>, text: impl Into<std::sync::Arc<str>>) -> Loaded {
    let source = SourceFile::new(name, text);
    let mut problems = Vec::new();
    let topology = topology::read(&source, &mut problems);
    let graph = topology
        .as_ref()
        .map(|t| crate::catalog::graph(t, &mut problems));
    problems.sort_by_key(|p| {
        (
            p.primary_span().map(|s| s.offset()).unwrap_or(0),
            p.severity,
        )
    });
    Loaded {
        source,
        topology,
        graph,
        problems,
    }
}
