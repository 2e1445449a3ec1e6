//! vaultform: stand up and tear down highly available, multi-region Vault (or OpenBao)
//! clusters on AWS from one declarative topology file.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod aws;
pub mod aws_error;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod graph;
pub mod plan;
pub mod resources;
pub mod retry;
pub mod runtime;
pub mod state;
pub mod topology;
pub mod ui;
pub mod vault;
