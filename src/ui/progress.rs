//! Live progress of an apply or destroy: a line per event (or a live view on a terminal), or
//! one JSON object per event for pipelines; then the summary. A long operation says how long
//! it is expected to take when it starts, and as operations finish the run says how long it
//! still has to go (from the plan's estimate: typical durations, refined by this stack's past
//! runs).

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

/// An operation expected to take this long or longer says so when it starts.
const LONG: f64 = 30.0;

/// `about 12m 30s`.
fn about(seconds: f64) -> String {
    format!(
        "about {}",
        crate::plan::estimate::human(seconds.round() as u64)
    )
}

/// What is known of the run's time so far: each change's expected seconds, which are done
/// and since when the others run.
struct Clock {
    expected: Vec<f64>,
    done: Vec<bool>,
    since: Vec<Option<std::time::Instant>>,
}

impl Clock {
    fn new(expected: Vec<f64>) -> Clock {
        let n = expected.len();
        Clock {
            expected,
            done: vec![false; n],
            since: vec![None; n],
        }
    }

    /// Seconds the run still has to go, by the estimate.
    fn left(&self, changes: &[Change]) -> f64 {
        let ran: Vec<f64> = self
            .since
            .iter()
            .map(|s| s.map_or(0.0, |t| t.elapsed().as_secs_f64()))
            .collect();
        crate::plan::estimate::remaining(changes, &self.expected, &self.done, &ran)
    }

    /// ` (about 12m 30s expected)` for a long operation, else nothing.
    fn expected_note(&self, index: usize) -> String {
        match self.expected.get(index) {
            Some(e) if *e >= LONG => format!(" ({} expected)", about(*e)),
            _ => String::new(),
        }
    }
}

/// Prints events until the channel closes; `expected` holds each change's expected seconds.
pub async fn show(
    mode: Mode,
    changes: Vec<Change>,
    expected: Vec<f64>,
    mut rx: mpsc::UnboundedReceiver<WalkEvent>,
) {
    let mut clock = Clock::new(expected);
    let multi = MultiProgress::new();
    // The live view's top line: how long the run still has to go.
    let to_go = (mode == Mode::Live).then(|| {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    });
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
                if let Some(s) = clock.since.get_mut(*index) {
                    *s = Some(std::time::Instant::now());
                }
                let note = clock.expected_note(*index);
                if mode == Mode::Live {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_message(format!("{}: {ing}{note}", c.address));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(*index, bar);
                }
                let expected_ms = clock
                    .expected
                    .get(*index)
                    .map(|e| (e * 1000.0).round() as u64);
                (
                    *index,
                    format!("{}: {ing}...{note}", c.address),
                    json!({"event": "started", "address": c.address, "action": c.action, "expected_ms": expected_ms}),
                )
            }
            WalkEvent::Finished { index, elapsed } => {
                let c = &changes[*index];
                let (_, ed) = verb(c.action);
                if let Some(d) = clock.done.get_mut(*index) {
                    *d = true;
                }
                let left = clock.left(&changes);
                // Worth saying while the run has long to go.
                let to_go_note = if left >= LONG {
                    format!("; {} to go", about(left))
                } else {
                    String::new()
                };
                if let Some(bar) = &to_go {
                    bar.set_message(if left >= LONG {
                        format!("{} to go, by the plan's estimate", about(left))
                    } else {
                        String::new()
                    });
                }
                (
                    *index,
                    format!("{}: {ed} ({}){to_go_note}", c.address, secs(*elapsed)),
                    json!({"event": "finished", "address": c.address, "action": c.action, "elapsed_ms": elapsed.as_millis() as u64, "to_go_ms": (left * 1000.0).round() as u64}),
                )
            }
            WalkEvent::Failed {
                index,
                elapsed,
                error,
            } => {
                let c = &changes[*index];
                if let Some(d) = clock.done.get_mut(*index) {
                    *d = true;
                }
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
                if let Some(d) = clock.done.get_mut(*index) {
                    *d = true;
                }
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
    if let Some(bar) = to_go {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Address, RegionItem};
    use crate::graph::Kind;

    fn change(name: &str, after: &[&str]) -> Change {
        let at = |n: &str| Address::region("eu-west-1", RegionItem::Bucket(n.to_string()));
        Change {
            address: at(name),
            kind: Kind::S3Bucket,
            region: Some("eu-west-1".into()),
            action: Action::Create,
            reason: String::new(),
            before: None,
            after: None,
            forced_by: Vec::new(),
            name: None,
            after_changes: after.iter().map(|a| at(a)).collect(),
            deps: Vec::new(),
        }
    }

    #[test]
    fn a_long_operation_says_what_it_is_expected_to_take_and_the_run_what_is_left() {
        // a (600 s) then b (60 s) after it, and c (5 s) beside them.
        let changes = [change("a", &[]), change("b", &["a"]), change("c", &[])];
        let mut clock = Clock::new(vec![600.0, 60.0, 5.0]);
        assert_eq!(clock.expected_note(0), " (about 10m 00s expected)");
        assert_eq!(clock.expected_note(2), "");
        assert_eq!(clock.left(&changes), 660.0);
        clock.done[0] = true;
        assert_eq!(clock.left(&changes), 60.0);
        clock.done[1] = true;
        clock.done[2] = true;
        assert_eq!(clock.left(&changes), 0.0);
    }
}
