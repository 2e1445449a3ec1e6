//! Talking with the person at the terminal: asking to confirm a change, and what Ctrl-C does
//! during an apply.

use std::io::{BufRead, IsTerminal};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::Printer;
use crate::error::Error;

/// Asks "Do you want to WHAT?"; only `yes` confirms. Without a terminal on standard input there
/// is nobody to ask: an error that says to pass --auto-approve.
pub fn confirm(what: &str, printer: &Printer) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoConfirmation {
            what: what.to_string(),
        });
    }
    printer.message(&format!("Do you want to {what}? Only 'yes' is accepted:"));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    Ok(line.trim() == "yes")
}

/// Ctrl-C once: stop starting work; twice: exit now. The handler is in place when this
/// returns (a signal that comes before any work starts is not lost to the default action).
pub fn watch_interrupts(printer: Printer) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let Ok(mut interrupts) = signal(SignalKind::interrupt()) else {
        return rx;
    };
    tokio::spawn(async move {
        if interrupts.recv().await.is_some() {
            let _ = tx.send(true);
            printer.message("Interrupted: starting nothing new, letting running operations finish and saving state. Press Ctrl-C again to exit now.");
            if interrupts.recv().await.is_some() {
                printer.message("Exiting now; the next apply adopts what was in flight.");
                std::process::exit(130);
            }
        }
    });
    rx
}
