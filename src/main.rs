//! The `vaultform` binary: parse the CLI, run the command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

use vaultform::cli::{Cli, Command};
use vaultform::commands;
use vaultform::ui::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(cli.color);
    let result = match &cli.command {
        Command::Validate { file } => commands::topology::validate(file, &printer),
        Command::Graph { file, format } => commands::topology::graph(file, *format, &printer),
        Command::Fmt { files, check } => commands::topology::fmt(files, *check, &printer),
    };
    match result {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            let report = miette::Report::new(err);
            printer.message(&format!("{report:?}"));
            ExitCode::from(1)
        }
    }
}
