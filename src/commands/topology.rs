//! `validate`, `graph` and `fmt`: the commands that only read topology files.

use std::path::Path;

use super::{Error, Outcome};
use crate::topology::{self, Loaded};
use crate::ui::{Printer, diagnostics};

/// Output format of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

pub fn read(path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(topology::load(path.display().to_string(), text))
}

/// Loads a file and prints its problems; `None` when it has errors.
pub fn load_valid(path: &Path, printer: &Printer) -> Result<Option<Loaded>, Error> {
    let loaded = read(path)?;
    if !loaded.problems.is_empty() {
        let text = diagnostics::render(&loaded, printer.color);
        printer.message(&text);
    }
    Ok(if loaded.has_errors() {
        None
    } else {
        Some(loaded)
    })
}

pub fn validate(path: &Path, printer: &Printer) -> Result<Outcome, Error> {
    let loaded = read(path)?;
    let text = diagnostics::render(&loaded, printer.color);
    printer.message(&text);
    Ok(if loaded.has_errors() {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

pub fn graph(path: &Path, format: GraphFormat, printer: &Printer) -> Result<Outcome, Error> {
    let Some(loaded) = load_valid(path, printer)? else {
        return Ok(Outcome::Failure);
    };
    let (topology, graph) = loaded.valid().expect("load_valid returns only valid files");
    let text = match format {
        GraphFormat::Dot => graph.to_dot(&topology.stack.value),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    printer.data(&text);
    Ok(Outcome::Success)
}

pub fn fmt(paths: &[std::path::PathBuf], check: bool, printer: &Printer) -> Result<Outcome, Error> {
    let mut outcome = Outcome::Success;
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        match topology::format::format(&text) {
            Err(problems) => {
                let loaded = Loaded {
                    source: topology::SourceFile::new(path.display().to_string(), text),
                    topology: None,
                    graph: None,
                    problems,
                };
                printer.message(&diagnostics::render(&loaded, printer.color));
                outcome = Outcome::Failure;
            }
            Ok(formatted) if formatted == text => {}
            Ok(formatted) if check => {
                printer.message(&format!("{} is not formatted", path.display()));
                let _ = formatted;
                outcome = Outcome::Failure;
            }
            Ok(formatted) => {
                std::fs::write(path, formatted).map_err(|source| Error::Write {
                    path: path.display().to_string(),
                    source,
                })?;
                printer.message(&format!("formatted {}", path.display()));
            }
        }
    }
    Ok(outcome)
}
