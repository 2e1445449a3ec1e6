//! The only code that writes to the terminal: data to stdout, messages and diagnostics to
//! stderr, each stream coloured only when it is a terminal and never with `NO_COLOR`.

pub mod access;
pub mod cost;
pub mod diagnostics;
pub mod doctor;
pub mod log;
pub mod plan;
pub mod progress;
pub mod prompt;
pub mod report;
pub mod sweep;

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

/// Writes everything the user sees, with colour decided per stream.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Colour in data, on stdout.
    pub color_out: bool,
    /// Colour in messages and diagnostics, on stderr.
    pub color_err: bool,
    /// Colour on either stream, for text rendered before its stream is known: [`Printer::data`]
    /// and [`Printer::message`] take the colour out again for a stream that has none.
    pub color: bool,
}

impl Printer {
    /// `Some(on)` forces colour on or off on both streams; `None` colours each stream that is
    /// a terminal, unless `NO_COLOR` is set and not empty.
    pub fn new(forced: Option<bool>) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let auto = |terminal: bool| forced.unwrap_or(terminal && !no_color);
        Printer::with_colors(
            auto(std::io::stdout().is_terminal()),
            auto(std::io::stderr().is_terminal()),
        )
    }

    /// A printer with these decisions for stdout and stderr.
    pub fn with_colors(color_out: bool, color_err: bool) -> Self {
        Printer {
            color_out,
            color_err,
            color: color_out || color_err,
        }
    }

    /// Data: what a pipeline may capture.
    pub fn data(&self, text: &str) {
        let text = colored(text, self.color_out);
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
        let text = colored(text, self.color_err);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
}

/// `text` as it may reach a stream: unchanged with colour, without ANSI escape sequences
/// otherwise.
fn colored(text: &str, color: bool) -> Cow<'_, str> {
    if color || !text.contains('\x1b') {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(strip_ansi(text))
    }
}

/// `text` without ANSI escape sequences: CSI (`ESC [` ... final byte, colours and styles) and
/// OSC (`ESC ]` ... `BEL` or `ESC \`, hyperlinks).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameter and intermediate bytes, then one final byte in '@'..='~'.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape is two characters long.
            _ => {}
        }
    }
    out
}
