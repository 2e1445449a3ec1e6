//! One function per CLI command: resolve settings, do the work, return an exit status.

pub mod access;
pub mod doctor;
pub mod expired;
pub mod kube;
pub mod manual;
mod remains;
pub mod remote;
pub mod stack;
pub mod state;
pub mod sweep;
pub mod topology;
pub mod vault;

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

pub use crate::error::Error;
