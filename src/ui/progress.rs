//! Live progress of an apply or destroy: a line per event (or a live view on a terminal), or
//! one JSON object per event for pipelines; then the summary.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::mpsc;

use crate::engine::WalkEvent;
use crate::plan::{Action, Change};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A spinner per running operation on a terminal.
    Live,
    /// One line per event on stderr.
    Lines,
    /// One JSON object per event on stdout.
    Json,
}

fn verb(a: Action) -> (&'static str, &'static str) {
    match a {
        Action::Create => ("creating", "created"),
        Action::Update => ("updating", "updated"),
        Action::Replace => ("replacing", "replaced"),
        Action::Delete => ("deleting", "deleted"),
        Action::NoOp => ("checking", "unchanged"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Prints events until the channel closes.
pub async fn show(mode: Mode, changes: Vec<Change>, mut rx: mpsc::UnboundedReceiver<WalkEvent>) {
    let multi = MultiProgress::new();
    let mut bars: BTreeMap<usize, ProgressBar> = BTreeMap::new();
    let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let printer = super::Printer::with_colors(false, false);
    let started = std::time::Instant::now();
    // Each cause of failure with the first address it hit: a later failure points there.
    let mut causes: BTreeMap<String, String> = BTreeMap::new();
    while let Some(e) = rx.recv().await {
        let (index, line, value) = match &e {
            WalkEvent::Started { index } => {
                let c = &changes[*index];
                let (ing, _) = verb(c.action);
                if mode == Mode::Live {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_message(format!("{}: {ing}", c.address));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(*index, bar);
                }
                (
                    *index,
                    format!("{}: {ing}...", c.address),
                    json!({"event": "started", "address": c.address, "action": c.action}),
                )
            }
            WalkEvent::Finished { index, elapsed } => {
                let c = &changes[*index];
                let (_, ed) = verb(c.action);
                (
                    *index,
                    format!("{}: {ed} ({})", c.address, secs(*elapsed)),
                    json!({"event": "finished", "address": c.address, "action": c.action, "elapsed_ms": elapsed.as_millis() as u64}),
                )
            }
            WalkEvent::Failed {
                index,
                elapsed,
                error,
            } => {
                let c = &changes[*index];
                let address = c.address.to_string();
                let said = match causes.entry(super::report::cause(&address, error)) {
                    std::collections::btree_map::Entry::Occupied(first) => {
                        format!("the same error as {}", first.get())
                    }
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(address);
                        error.to_string()
                    }
                };
                (
                    *index,
                    format!("{}: failed after {}: {said}", c.address, secs(*elapsed)),
                    json!({"event": "failed", "address": c.address, "action": c.action, "elapsed_ms": elapsed.as_millis() as u64, "error": error}),
                )
            }
            WalkEvent::Skipped {
                index,
                failed_dependency,
            } => {
                let c = &changes[*index];
                (
                    *index,
                    format!("{}: skipped, {failed_dependency} failed", c.address),
                    json!({"event": "skipped", "address": c.address, "action": c.action, "because": failed_dependency}),
                )
            }
        };
        match mode {
            Mode::Json => {
                // When it happened, in milliseconds since the run began.
                let mut value = value;
                value["at_ms"] = json!(started.elapsed().as_millis() as u64);
                printer.json_line(&value)
            }
            Mode::Lines => printer.message(&line),
            Mode::Live => {
                if !matches!(e, WalkEvent::Started { .. }) {
                    if let Some(bar) = bars.remove(&index) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                    let _ = multi.println(&line);
                }
            }
        }
    }
}
