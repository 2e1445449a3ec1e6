//! `plan`, `apply` and `destroy`: wiring from flags to the session, the engine and the UI.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Error, Outcome};
use crate::aws::Aws;
use crate::cli::{LockArgs, PlanArgs, PlanOutputArgs, RunArgs, StateArgs};
use crate::engine::apply;
use crate::engine::summary::Summary;
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Plan, PlanOptions};
use crate::session::{self, PlanRequest, Session};
use crate::state::{LockGuard, State, StateError};
use crate::ui::progress::{self, Mode};
use crate::ui::{Printer, plan as render, prompt, report};

/// Reads and opens a topology (or a saved plan's copy of one), showing its problems.
pub(super) fn open(
    file: &Path,
    text: Option<String>,
    state: &StateArgs,
    targets: Option<&[String]>,
    printer: &Printer,
) -> Result<Option<Session>, Error> {
    let loaded = session::read(file, text)?;
    super::topology::report(&loaded, printer);
    session::open(file, loaded, state.path.as_deref(), targets)
}

/// Takes the state lock (waiting up to `--lock-timeout` for a busy one), saying so when it
/// took over a stale one.
pub(super) async fn lock(
    session: &Session,
    operation: &str,
    args: &LockArgs,
    printer: &Printer,
) -> Result<LockGuard, Error> {
    let guard = match (session.lock(operation).await, args.lock_timeout) {
        (Err(Error::State(StateError::Locked { holder, .. })), Some(timeout)) => {
            printer.message(&format!(
                "The state is locked by {holder}; waiting up to {}s for it.",
                timeout.as_secs()
            ));
            session.lock_waiting(operation, timeout).await?
        }
        (result, _) => result?,
    };
    if let Some(old) = &guard.took_over {
        let why = if old.lease_expires.is_some() {
            "its lease expired: the holder stopped renewing it"
        } else {
            "its process is gone"
        };
        printer.message(&format!(
            "Took over a stale lock: {} ({why}).",
            old.describe()
        ));
    }
    Ok(guard)
}

fn request(args: &PlanArgs, destroy: bool) -> PlanRequest {
    PlanRequest {
        refresh: args.refresh,
        options: PlanOptions {
            destroy,
            targets: args.target.clone(),
            replace: args.replace.clone(),
        },
    }
}

pub async fn plan(
    file: &Path,
    state_args: &StateArgs,
    args: &PlanArgs,
    output: &PlanOutputArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state_args, Some(&args.target), printer)? else {
        return Ok(Outcome::Failure);
    };
    let prices = crate::cost::Prices::load(output.prices.as_deref())?;
    session.check_backend().await?;
    let state = session.load_state().await?;
    // Only a refresh of recorded resources calls AWS: then check it answers first.
    let aws = if args.refresh && !state.resources.is_empty() {
        session.connect_checked().await?
    } else {
        session.connect().await
    };
    let plan = session
        .plan(&aws, &state, &request(args, output.destroy))
        .await?;
    let calls = aws.calls.snapshot();
    if !calls.is_empty() {
        printer.message(&format!(
            "Refreshed {} resources; AWS API calls: {}.",
            state.resources.len(),
            report::api_calls(&calls)
        ));
    }
    let cost = crate::cost::of(&plan, &prices);
    if output.json {
        let mut json = render::json(&plan);
        json["cost"] = serde_json::to_value(&cost).unwrap_or_default();
        if let Some(at) = &state.expires_at {
            json["expires_at"] = serde_json::json!(at);
        }
        if let Some(d) = &session.topology().expires_after {
            json["expires_after_seconds"] = serde_json::json!(d.value.as_secs());
        }
        printer.data(&format!("{json}\n"));
    } else {
        printer.data(&render::human(&plan, printer.color_out));
        if plan.has_changes() || output.cost {
            printer.data(&crate::ui::cost::human(&cost));
        } else {
            printer.data(&crate::ui::cost::total(&cost));
        }
        let after = session.topology().expires_after.as_ref().map(|d| d.value);
        if let Some(text) = crate::ui::sweep::expiry(state.expires_at.as_deref(), after) {
            printer.data(&format!("\n{text}"));
        }
    }
    if let Some(out) = &output.out {
        let saved = SavedPlan {
            plan: plan.clone(),
            topology_path: file.display().to_string(),
            topology: session.stack.source.text.to_string(),
        };
        let text = serde_json::to_string_pretty(&saved).unwrap_or_default();
        crate::private::write(out, text.as_bytes()).map_err(|source| Error::Write {
            path: out.display().to_string(),
            source,
        })?;
        printer.message(&format!(
            "Saved the plan to {}; apply it with `vaultform apply {}`.",
            out.display(),
            out.display()
        ));
    }
    Ok(if output.detailed_exitcode && plan.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

/// Runs a plan and prints what happened; the lock is held by the caller.
async fn execute(
    session: &Session,
    aws: Aws,
    state: State,
    plan: &Plan,
    run: &RunArgs,
    expiry: Option<&super::remains::Expiry>,
    printer: &Printer,
) -> Outcome {
    let mut cx = session.context(aws.clone(), run.parallelism);
    // What it creates carries the expiry from the start.
    if let Some(e) = expiry {
        cx.default_tags.extend(e.tags.clone());
    }
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action != plan::Action::NoOp)
        .cloned()
        .collect();
    let mode = if run.json {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Live
    } else {
        Mode::Lines
    };
    // What the plan's estimate expects of each: typical durations, refined by this stack's runs.
    let (expected, _) = plan::estimate::own_seconds(&changes, &state.durations);
    let shown = tokio::spawn(progress::show(mode, changes, expected, rx));
    let stop = prompt::watch_interrupts(*printer);
    let outcome = apply::apply(plan, state, cx, Some(tx), Some(stop)).await;
    let _ = shown.await;
    let summary = Summary::of(&outcome, started.elapsed(), aws.calls.snapshot());
    if run.json {
        printer.json_line(&summary);
    } else {
        printer.message(&report::summary(&summary));
    }
    // What a remote state cost this run so far (its lock's release is one request more).
    let state_calls = session.backend.api_calls();
    if !state_calls.is_empty() && !run.json {
        printer.message(&format!(
            "State backend API calls: {}.",
            report::api_calls(&state_calls)
        ));
    }
    if outcome.ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

pub async fn apply(
    file: &Path,
    state_args: &StateArgs,
    args: &PlanArgs,
    run: &RunArgs,
    destroy: bool,
    ttl: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let ttl = ttl
        .map(crate::topology::duration::parse)
        .transpose()
        .map_err(|message| Error::Ttl { message })?;
    if !destroy && let Some(saved) = SavedPlan::read(file) {
        return apply_saved(file, saved, state_args, run, ttl, printer).await;
    }
    // A destroy deletes only what the state records, which was created by supported kinds.
    let check = (!destroy).then_some(args.target.as_slice());
    let Some(session) = open(file, None, state_args, check, printer)? else {
        return Ok(Outcome::Failure);
    };
    let operation = if destroy { "destroy" } else { "apply" };
    // A dead endpoint is said in seconds, before the state backend's own retries.
    let aws = session.connect_checked().await?;
    session.check_backend().await?;
    let _lock = lock(&session, operation, &run.lock, printer).await?;
    let mut state = session.load_state().await?;
    let plan = session.plan(&aws, &state, &request(args, destroy)).await?;
    if !run.json {
        printer.data(&render::human(&plan, printer.color_out));
    }
    let expiry = (!destroy)
        .then(|| super::remains::Expiry::of(&session, ttl))
        .flatten();
    if let Some(e) = &expiry {
        state.expires_at = Some(e.at.clone());
    }
    // What a destroy was to delete: the billable report looks at these and at what is
    // unrecorded, not at what `--target` left alone.
    let planned: std::collections::BTreeSet<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != plan::Action::NoOp)
        .map(|c| c.address.to_string())
        .collect();
    if !plan.has_changes() {
        if destroy {
            super::remains::show_remains(&session, &aws, &planned, run.json, printer).await;
        }
        if let Some(e) = &expiry {
            // Nothing to change but the expiry: extend it on what exists.
            session.backend.save(&state).await?;
            e.stamp(&session, &aws, &state, printer).await;
        }
        return Ok(Outcome::Success);
    }
    let what = if destroy {
        "destroy these resources"
    } else {
        "perform these actions"
    };
    if !run.auto_approve && !prompt::confirm(what, printer)? {
        printer.message("Cancelled: nothing was changed.");
        return Ok(Outcome::Failure);
    }
    let outcome = execute(
        &session,
        aws.clone(),
        state,
        &plan,
        run,
        expiry.as_ref(),
        printer,
    )
    .await;
    if let Some(e) = &expiry {
        let state = session.load_state().await?;
        e.stamp(&session, &aws, &state, printer).await;
    }
    if destroy {
        super::remains::show_remains(&session, &aws, &planned, run.json, printer).await;
    }
    Ok(outcome)
}

async fn apply_saved(
    file: &Path,
    saved: SavedPlan,
    state_args: &StateArgs,
    run: &RunArgs,
    ttl: Option<std::time::Duration>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let topology_path = PathBuf::from(&saved.topology_path);
    let text = Some(saved.topology.clone());
    let targets = saved.targets();
    let Some(session) = open(&topology_path, text, state_args, Some(&targets), printer)? else {
        return Ok(Outcome::Failure);
    };
    session.check_backend().await?;
    let _lock = lock(&session, "apply", &run.lock, printer).await?;
    let mut state = session.load_state().await?;
    let (current_lineage, current_serial) = state.identity();
    if saved.plan.lineage != current_lineage || saved.plan.serial != current_serial {
        return Err(Error::StalePlan {
            path: file.display().to_string(),
            planned: format!("{:?}/{:?}", saved.plan.lineage, saved.plan.serial),
            current: format!("{current_lineage:?}/{current_serial:?}"),
        });
    }
    let aws = session.connect_checked().await?;
    if !run.json {
        printer.data(&render::human(&saved.plan, printer.color_out));
    }
    let expiry = super::remains::Expiry::of(&session, ttl);
    if let Some(e) = &expiry {
        state.expires_at = Some(e.at.clone());
    }
    if !saved.plan.has_changes() {
        return Ok(Outcome::Success);
    }
    let outcome = execute(
        &session,
        aws.clone(),
        state,
        &saved.plan,
        run,
        expiry.as_ref(),
        printer,
    )
    .await;
    if let Some(e) = &expiry {
        let state = session.load_state().await?;
        e.stamp(&session, &aws, &state, printer).await;
    }
    Ok(outcome)
}
