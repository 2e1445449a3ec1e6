//! The only code that writes to the terminal: data to stdout, messages and diagnostics to
//! stderr, colour only on a terminal and never with `NO_COLOR`.

pub mod diagnostics;
pub mod progress;
pub mod prompt;
pub mod report;

use std::io::{IsTerminal, Write};

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Writes everything the user sees.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
}

impl Printer {
    pub fn new(choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Printer { color }
    }

    /// Data: what a pipeline may capture.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// One JSON object on a line of its own, on stdout: an event or report for a pipeline.
    pub fn json_line(&self, value: &impl serde::Serialize) {
        self.data(&format!(
            "{}\n",
            serde_json::to_string(value).unwrap_or_default()
        ));
    }

    /// A message for the person at the terminal.
    pub fn message(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
}
