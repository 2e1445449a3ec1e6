//! Topology problems: every error or warning carries its source span from the moment it is born.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

/// How bad a problem is: errors fail validation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// The stable machine-readable kind of a problem (`vaultform::topology::<code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    Syntax,
    UnknownNode,
    UnknownProperty,
    UnexpectedArgument,
    MissingValue,
    WrongType,
    InvalidValue,
    DuplicateName,
    DuplicateSetting,
    UnknownReference,
    CrossRegion,
    UnknownRegion,
    BucketName,
    LoadBalancerName,
    ClusterName,
    KmsAlias,
    Cidr,
    CidrOverlap,
    SubnetOutsideVpc,
    NodePoolScaling,
    Threshold,
    DeletionWindow,
    Cycle,
    Runtime,
    AddressConflict,
    Bootstrap,
    Front,
    EvenMembers,
    UnsealStoreOneRegion,
    RegionQuorum,
    VaultConfig,
    PlainHttp,
    Seal,
    IamPrincipal,
    KubeLoadBalancer,
    Name,
}

impl Code {
    /// The kebab-case name shown after `vaultform::topology::`.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One label on the source: a span and what it shows.
#[derive(Debug, Clone)]
pub struct Label {
    pub span: SourceSpan,
    pub text: String,
}

/// One problem found in a topology.
#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Problem {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn label(mut self, span: SourceSpan, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn primary_span(&self) -> Option<SourceSpan> {
        self.labels.first().map(|l| l.span)
    }
}

/// Problems collected while reading and checking one file; nothing stops at the first.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<Problem>,
}

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.items.push(problem);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.items.iter()
    }

    /// Sorted by position in the file, errors before warnings at the same place.
    pub fn into_sorted(mut self) -> Vec<Problem> {
        self.items.sort_by_key(|p| {
            (
                p.primary_span().map(|s| s.offset()).unwrap_or(0),
                p.severity,
            )
        });
        self.items
    }
}

/// A topology source file, shared by every diagnostic that points into it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map(|nl| before[nl + 1..].chars().count())
            .unwrap_or_else(|| before.chars().count())
            + 1;
        (line, col)
    }
}

/// A problem bound to its file: what miette renders.
pub struct TopologyDiagnostic {
    problem: Problem,
    source: NamedSource<Arc<str>>,
}

impl TopologyDiagnostic {
    pub fn new(problem: Problem, file: &SourceFile) -> Self {
        TopologyDiagnostic {
            problem,
            source: NamedSource::new(file.name.clone(), file.text.clone()).with_language("kdl"),
        }
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Debug for TopologyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopologyDiagnostic")
            .field("problem", &self.problem)
            .finish()
    }
}

impl fmt::Display for TopologyDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for TopologyDiagnostic {}

impl Diagnostic for TopologyDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!(
            "vaultform::topology::{}",
            self.problem.code.name()
        )))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.problem.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.problem.labels.iter().enumerate().map(
            |(i, l)| {
                if i == 0 {
                    LabeledSpan::new_primary_with_span(Some(l.text.clone()), l.span)
                } else {
                    LabeledSpan::new_with_span(Some(l.text.clone()), l.span)
                }
            },
        )))
    }
}

/// The closest known name to `given`, for "did you mean" help.
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(given, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
