//! `plan`, `apply`, `destroy`, `state`, `output` and `force-unlock`: the commands that read
//! or change what exists.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::{Error, Outcome};
use crate::aws::{Aws, AwsSettings};
use crate::cli::{PlanArgs, PlanOutputArgs, RunArgs, StateArgs};
use crate::engine::apply::{self, Context};
use crate::engine::{Limits, refresh};
use crate::plan::{self, Plan, PlanOptions};
use crate::resources;
use crate::state::local::LocalBackend;
use crate::state::{Backend, LockGuard, State, StateError};
use crate::topology::{self, Loaded, StateBackend};
use crate::ui::diagnostics;
use crate::ui::progress::{self, Mode};
use crate::ui::{Printer, plan as render};

/// A plan saved by `plan --out`, with the topology it was made from.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub plan: Plan,
    pub topology_path: String,
    pub topology: String,
}

/// A valid topology, and where its state lives.
pub struct Session {
    pub loaded: Loaded,
    pub backend: Arc<dyn Backend>,
    /// The topology file's directory: relative paths in it resolve here.
    pub base_dir: PathBuf,
}

impl Session {
    pub fn vaults(&self) -> BTreeMap<String, crate::vault::spec::VaultSpec> {
        crate::vault::spec::specs(self.topology(), &self.base_dir)
    }

    fn stack(&self) -> &str {
        &self.loaded.topology.as_ref().expect("valid").stack.value
    }

    fn topology(&self) -> &topology::Topology {
        self.loaded.topology.as_ref().expect("valid")
    }

    pub(super) fn aws_settings(&self) -> AwsSettings {
        AwsSettings::resolve(
            self.topology()
                .aws
                .endpoint
                .as_ref()
                .map(|e| e.value.as_str()),
        )
    }

    pub(super) async fn load_state(&self) -> Result<State, Error> {
        let state = self.backend.load().await?;
        match state {
            Some(s) if s.stack != self.stack() => Err(StateError::WrongStack {
                path: self.backend.describe(),
                found: s.stack,
                expected: self.stack().to_string(),
            }
            .into()),
            Some(s) => Ok(s),
            None => Ok(State::new(self.stack())),
        }
    }
}

/// Opens a topology for commands that touch state: valid, supported, its backend resolved.
pub(super) fn open(
    file: &Path,
    text: Option<String>,
    state: &StateArgs,
    // The addresses a run will touch (all when empty); `None` for commands that only read state.
    targets: Option<&[String]>,
    printer: &Printer,
) -> Result<Option<Session>, Error> {
    let loaded = match text {
        Some(text) => topology::load(file.display().to_string(), text),
        None => super::topology::read(file)?,
    };
    if !loaded.problems.is_empty() {
        printer.message(&diagnostics::render(&loaded, printer.color));
    }
    let Some((t, g)) = loaded.valid() else {
        return Ok(None);
    };
    let unsupported = targets
        .map(|targets| resources::unsupported(t, g, targets))
        .unwrap_or_default();
    if !unsupported.is_empty() {
        let kinds: Vec<String> = unsupported
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        return Err(Error::Unsupported {
            kinds: kinds.join(", "),
        });
    }
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    let base_dir = std::path::absolute(parent.unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| parent.unwrap_or(Path::new(".")).to_path_buf());
    let path = match (&state.path, &t.state) {
        (Some(p), _) => p.clone(),
        (None, StateBackend::Local { path }) => parent.unwrap_or(Path::new("")).join(path),
        (None, StateBackend::S3 { bucket, key, .. }) => {
            return Err(Error::S3Backend {
                location: format!("s3://{bucket}/{key}"),
            });
        }
    };
    Ok(Some(Session {
        loaded,
        backend: Arc::new(LocalBackend::new(path)),
        base_dir,
    }))
}

fn plan_options(args: &PlanArgs, destroy: bool) -> PlanOptions {
    PlanOptions {
        destroy,
        targets: args.target.clone(),
        replace: args.replace.clone(),
    }
}

async fn make_plan(
    session: &Session,
    aws: &Aws,
    state: &State,
    args: &PlanArgs,
    destroy: bool,
) -> Result<Plan, Error> {
    let t = session.topology();
    let g = session.loaded.graph.as_ref().expect("valid");
    let observed = if args.refresh {
        refresh::refresh(aws, state, &t.aws.tags, &session.vaults())
            .await
            .map_err(|e| Error::Refresh { message: e.message })?
    } else {
        Default::default()
    };
    let desired = resources::desired(t, g);
    let forces = |k| {
        resources::provider(k)
            .map(|p| p.forces_replacement())
            .unwrap_or(&[])
    };
    Ok(plan::plan(
        &desired,
        state,
        &observed,
        &forces,
        &plan_options(args, destroy),
    )?)
}

pub async fn plan(
    file: &Path,
    state_args: &StateArgs,
    args: &PlanArgs,
    output: &PlanOutputArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let (out, destroy, detailed, json) = (
        output.out.as_deref(),
        output.destroy,
        output.detailed_exitcode,
        output.json,
    );
    let Some(session) = open(file, None, state_args, Some(&args.target), printer)? else {
        return Ok(Outcome::Failure);
    };
    let aws = Aws::connect(&session.aws_settings()).await;
    let state = session.load_state().await?;
    let plan = make_plan(&session, &aws, &state, args, destroy).await?;
    let calls = aws.calls.snapshot();
    if !calls.is_empty() {
        let list: Vec<String> = calls.iter().map(|(s, n)| format!("{s} {n}")).collect();
        printer.message(&format!(
            "Refreshed {} resources; AWS API calls: {}.",
            state.resources.len(),
            list.join(", ")
        ));
    }
    if json {
        printer.data(&format!("{}\n", render::json(&plan)));
    } else {
        printer.data(&render::human(&plan, printer.color));
    }
    if let Some(out) = out {
        let saved = SavedPlan {
            plan: plan.clone(),
            topology_path: file.display().to_string(),
            topology: session.loaded.source.text.to_string(),
        };
        let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
        std::fs::write(out, text).map_err(|source| Error::Write {
            path: out.display().to_string(),
            source,
        })?;
        printer.message(&format!(
            "Saved the plan to {}; apply it with `vaultform apply {}`.",
            out.display(),
            out.display()
        ));
    }
    Ok(if detailed && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Takes the state lock or explains who holds it.
pub(super) async fn lock(
    session: &Session,
    operation: &str,
    printer: &Printer,
) -> Result<LockGuard, Error> {
    let guard = session.backend.lock(operation).await?;
    if let Some(old) = &guard.took_over {
        printer.message(&format!(
            "Took over a stale lock: {} (its process is gone).",
            old.describe()
        ));
    }
    Ok(guard)
}

fn confirm(what: &str, run: &RunArgs, printer: &Printer) -> Result<bool, Error> {
    if run.auto_approve {
        return Ok(true);
    }
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

/// Ctrl-C once: stop starting work; twice: exit now.
fn watch_interrupts(printer: Printer) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(true);
            printer.message("Interrupted: starting nothing new, letting running operations finish and saving state. Press Ctrl-C again to exit now.");
            if tokio::signal::ctrl_c().await.is_ok() {
                printer.message("Exiting now; the next apply adopts what was in flight.");
                std::process::exit(130);
            }
        }
    });
    rx
}

fn progress_mode(run: &RunArgs) -> Mode {
    if run.json {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    }
}

/// Runs a plan and prints what happened; the lock is held by the caller.
async fn execute(
    session: &Session,
    aws: Aws,
    state: State,
    plan: &Plan,
    run: &RunArgs,
    printer: &Printer,
) -> Outcome {
    let t = session.topology();
    let cx = Context {
        aws: aws.clone(),
        stack: t.stack.value.clone(),
        default_tags: t.aws.tags.clone(),
        backend: session.backend.clone(),
        limits: Limits {
            default: run.parallelism.max(1),
            per_service: Default::default(),
        },
        attempts: 6,
        vaults: Arc::new(session.vaults()),
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action != plan::Action::NoOp)
        .cloned()
        .collect();
    let mode = progress_mode(run);
    let shown = tokio::spawn(progress::show(mode, changes, rx));
    let stop = watch_interrupts(*printer);
    let outcome = apply::apply(plan, state, cx, Some(tx), Some(stop)).await;
    let _ = shown.await;
    let calls = aws.calls.snapshot();
    let summary = Summary::of(&outcome, started.elapsed(), calls);
    if run.json {
        printer.json_line(&summary);
    } else {
        printer.message(&summary.human());
    }
    if outcome.ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

/// The end of an apply or destroy, for people and pipelines.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_started: usize,
    pub interrupted: bool,
    pub elapsed_ms: u64,
    pub api_calls: BTreeMap<String, u64>,
    pub failures: Vec<(String, String)>,
}

impl Summary {
    fn of(
        o: &apply::Outcome,
        elapsed: std::time::Duration,
        api_calls: BTreeMap<String, u64>,
    ) -> Self {
        use crate::engine::OpResult;
        let count =
            |f: &dyn Fn(&OpResult) -> bool| o.report.results.iter().filter(|r| f(r)).count();
        Summary {
            event: "summary",
            created: o.count(plan::Action::Create),
            updated: o.count(plan::Action::Update),
            replaced: o.count(plan::Action::Replace),
            deleted: o.count(plan::Action::Delete),
            failed: count(&|r| matches!(r, OpResult::Failed(_))),
            skipped: count(&|r| matches!(r, OpResult::Skipped { .. })),
            not_started: count(&|r| matches!(r, OpResult::NotStarted)),
            interrupted: o.report.interrupted,
            elapsed_ms: elapsed.as_millis() as u64,
            api_calls,
            failures: o
                .failed()
                .into_iter()
                .map(|(c, e)| (c.address.clone(), e.to_string()))
                .collect(),
        }
    }

    fn human(&self) -> String {
        let mut out = String::new();
        for (address, error) in &self.failures {
            out.push_str(&format!("error: {address}: {error}\n"));
        }
        let verdict = if self.interrupted {
            "Interrupted"
        } else if self.failed > 0 {
            "Failed"
        } else {
            "Done"
        };
        out.push_str(&format!(
            "{verdict}: {} created, {} updated, {} replaced, {} deleted, {} failed, {} skipped in {:.1}s.",
            self.created,
            self.updated,
            self.replaced,
            self.deleted,
            self.failed,
            self.skipped + self.not_started,
            self.elapsed_ms as f64 / 1000.0
        ));
        if !self.api_calls.is_empty() {
            let calls: Vec<String> = self
                .api_calls
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            out.push_str(&format!("\nAWS API calls: {}.", calls.join(", ")));
        }
        out
    }
}

fn read_saved_plan(file: &Path) -> Option<SavedPlan> {
    let text = std::fs::read_to_string(file).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(&text).ok()
}

pub async fn apply(
    file: &Path,
    state_args: &StateArgs,
    args: &PlanArgs,
    run: &RunArgs,
    destroy: bool,
    printer: &Printer,
) -> Result<Outcome, Error> {
    if !destroy && let Some(saved) = read_saved_plan(file) {
        return apply_saved(file, saved, state_args, run, printer).await;
    }
    // A destroy deletes only what the state records, which was created by supported kinds.
    let check = (!destroy).then_some(args.target.as_slice());
    let Some(session) = open(file, None, state_args, check, printer)? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, if destroy { "destroy" } else { "apply" }, printer).await?;
    let aws = Aws::connect(&session.aws_settings()).await;
    let state = session.load_state().await?;
    let plan = make_plan(&session, &aws, &state, args, destroy).await?;
    if !run.json {
        printer.data(&render::human(&plan, printer.color));
    }
    if !plan.has_changes() {
        return Ok(Outcome::Success);
    }
    let what = if destroy {
        "destroy these resources"
    } else {
        "perform these actions"
    };
    if !confirm(what, run, printer)? {
        printer.message("Cancelled: nothing was changed.");
        return Ok(Outcome::Failure);
    }
    Ok(execute(&session, aws, state, &plan, run, printer).await)
}

async fn apply_saved(
    file: &Path,
    saved: SavedPlan,
    state_args: &StateArgs,
    run: &RunArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let topology_path = PathBuf::from(&saved.topology_path);
    let Some(session) = open(
        &topology_path,
        Some(saved.topology.clone()),
        state_args,
        Some(&targets_of(&saved.plan)),
        printer,
    )?
    else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, "apply", printer).await?;
    let state = session.load_state().await?;
    let (current_lineage, current_serial) = state.identity();
    if saved.plan.lineage != current_lineage || saved.plan.serial != current_serial {
        return Err(Error::StalePlan {
            path: file.display().to_string(),
            planned: format!("{:?}/{:?}", saved.plan.lineage, saved.plan.serial),
            current: format!("{current_lineage:?}/{current_serial:?}"),
        });
    }
    let aws = Aws::connect(&session.aws_settings()).await;
    if !run.json {
        printer.data(&render::human(&saved.plan, printer.color));
    }
    if !saved.plan.has_changes() {
        return Ok(Outcome::Success);
    }
    Ok(execute(&session, aws, state, &saved.plan, run, printer).await)
}

pub async fn state_list(
    file: &Path,
    state_args: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state_args, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let state = session.load_state().await?;
    let mut out = String::new();
    for a in state.resources.keys() {
        out.push_str(a);
        out.push('\n');
    }
    printer.data(&out);
    Ok(Outcome::Success)
}

pub async fn state_show(
    file: &Path,
    address: &str,
    state_args: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state_args, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let state = session.load_state().await?;
    match state.resources.get(address) {
        Some(rs) => {
            printer.data(&format!(
                "{}\n",
                serde_json::to_string_pretty(rs).unwrap_or_default()
            ));
            Ok(Outcome::Success)
        }
        None => Err(Error::NotInState {
            address: address.to_string(),
        }),
    }
}

pub async fn output(
    file: &Path,
    state_args: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state_args, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let state = session.load_state().await?;
    let outputs: BTreeMap<&String, &BTreeMap<String, String>> = state
        .resources
        .iter()
        .filter(|(_, r)| !r.outputs.is_empty())
        .map(|(a, r)| (a, &r.outputs))
        .collect();
    printer.data(&format!(
        "{}\n",
        serde_json::to_string_pretty(&outputs).unwrap_or_default()
    ));
    Ok(Outcome::Success)
}

pub async fn force_unlock(
    file: &Path,
    id: &str,
    state_args: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state_args, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let removed = session.backend.force_unlock(id).await?;
    printer.message(&format!("Removed the lock held by {}.", removed.describe()));
    Ok(Outcome::Success)
}

/// The addresses a saved plan touches: only their kinds need to be supported.
fn targets_of(plan: &Plan) -> Vec<String> {
    plan.changes.iter().map(|c| c.address.clone()).collect()
}
