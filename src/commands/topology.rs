//! `validate`, `graph` and `fmt`: the commands that only read topology files.

use std::path::Path;

use super::{Error, Outcome};
use crate::cli::GraphFormat;
use crate::loaded::{Loaded, load};
use crate::topology;
use crate::ui::{Printer, diagnostics};

pub fn read(path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(load(path.display().to_string(), text))
}

/// Prints a file's problems, when it has any.
pub fn report(loaded: &Loaded, printer: &Printer) {
    if !loaded.problems.is_empty() {
        printer.message(&diagnostics::render(loaded, printer.color_err));
    }
}

pub fn validate(path: &Path, printer: &Printer) -> Result<Outcome, Error> {
    let loaded = read(path)?;
    let text = diagnostics::render(&loaded, printer.color_err);
    printer.message(&text);
    Ok(if loaded.has_errors() {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

pub fn graph(path: &Path, format: GraphFormat, printer: &Printer) -> Result<Outcome, Error> {
    let loaded = read(path)?;
    report(&loaded, printer);
    let Some(stack) = loaded.into_stack() else {
        return Ok(Outcome::Failure);
    };
    let text = match format {
        GraphFormat::Dot => stack.graph.to_dot(&stack.topology.stack.value),
        GraphFormat::Mermaid => stack.graph.to_mermaid(),
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
                printer.message(&diagnostics::render(&loaded, printer.color_err));
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
