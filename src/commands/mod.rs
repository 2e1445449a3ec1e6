//! One function per CLI command: resolve settings, do the work, return an exit status.

pub mod topology;

/// How a command ended, mapped to the process exit code by `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran and found a problem (invalid topology, unformatted file).
    Failure,
    /// Exit 2: `--detailed-exitcode` and there are changes.
    Changes,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Changes => 2,
        }
    }
}

/// Errors that stop a command before it can report anything finer.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    #[error("cannot read {path}")]
    #[diagnostic(code(vaultform::io))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    #[diagnostic(code(vaultform::io))]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
