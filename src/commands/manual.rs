//! `completions` and `man`: the command line described for shells and for `man`, generated
//! from the same clap definition that parses it.

use clap::CommandFactory;

use super::{Error, Outcome};
use crate::cli::Cli;
use crate::ui::Printer;

pub fn completions(shell: clap_complete::Shell, printer: &Printer) -> Result<Outcome, Error> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vaultform", &mut out);
    printer.data(&String::from_utf8_lossy(&out));
    Ok(Outcome::Success)
}

/// The page of the command at `path` (`[]` for vaultform's own, `["drill", "failover"]` for
/// vaultform-drill-failover(1), as the main page's list of commands names them).
pub fn man(path: &[String], printer: &Printer) -> Result<Outcome, Error> {
    let mut cmd = Cli::command();
    // Global options reach the subcommands' pages as they reach their parsers.
    cmd.build();
    let mut name = "vaultform".to_string();
    for word in path {
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            let known: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            return Err(Error::Usage {
                message: format!("{name} has no command {word:?}"),
                help: if known.is_empty() {
                    format!("{name} has no commands")
                } else {
                    format!("its commands: {}", known.join(", "))
                },
            });
        };
        name = format!("{name}-{word}");
        cmd = sub.display_name(name.clone());
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .title(name)
        .source(format!("vaultform {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)
        .map_err(|source| Error::Write {
            path: "the manual page".into(),
            source,
        })?;
    printer.data(&String::from_utf8_lossy(&out));
    Ok(Outcome::Success)
}
