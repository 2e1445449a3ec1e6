//! Command-line flags, as clap parses them: raw values, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::topology::GraphFormat;
use crate::ui::ColorChoice;

/// Stand up and tear down multi-region Vault / OpenBao clusters on AWS from one topology file.
#[derive(Debug, Parser)]
#[command(name = "vaultform", version, about, propagate_version = true)]
pub struct Cli {
    /// When to colour output (NO_COLOR is honoured with `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a topology file and report every problem in it.
    Validate {
        /// The topology file (KDL).
        file: PathBuf,
    },
    /// Print the dependency graph of a topology.
    Graph {
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Rewrite topology files in canonical form, keeping comments.
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 when a file would change.
        #[arg(long)]
        check: bool,
    },
}
