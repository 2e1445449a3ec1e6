//! vaultform: stand up and tear down highly available, multi-region Vault (or OpenBao)
//! clusters on AWS from one declarative topology file.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod address;
pub mod aws;
pub mod aws_error;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod cost;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod graph;
pub mod lifecycle;
pub mod loaded;
pub mod ops;
pub mod plan;
pub mod private;
pub mod provider;
pub mod resources;
pub mod retry;
pub mod runtime;
pub mod session;
pub mod state;
pub mod sweep;
pub mod topology;
pub mod ui;
pub mod vault;

pub use loaded::{Loaded, Stack, load};
