//! `status`, `unseal`, `drill failover|region-loss` and `snapshot save|restore`: wiring from
//! flags to the operations in `ops` and their rendering in `ui`.

use std::path::Path;

use super::stack::{lock, open};
use super::{Error, Outcome};
use crate::cli::{DrillMethod, StateArgs};
use crate::ops::{Ops, drill, snapshot, status, unseal};
use crate::ui::{Printer, report};

/// Opens the stack with its recorded outputs and AWS clients; `None` for an invalid topology.
pub(super) async fn open_ops(
    file: &Path,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Option<(Ops, crate::session::Session)>, Error> {
    let Some(session) = open(file, None, state, None, printer)? else {
        return Ok(None);
    };
    let outputs = session.load_state().await?.outputs();
    session.catalog.vaults().learn(&outputs);
    let ops = Ops {
        catalog: session.catalog.clone(),
        aws: session.connect().await,
        stack: session.name().to_string(),
        tags: session.topology().aws.tags.clone(),
        outputs,
    };
    Ok(Some((ops, session)))
}

pub async fn status(
    file: &Path,
    state: &StateArgs,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, session)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let expires_at = session.load_state().await?.expires_at;
    let expiry = crate::ui::sweep::expiry(expires_at.as_deref(), None);
    let vaults = ops.vaults(vault);
    // A stack without a Vault cluster still has an expiry to show.
    if let (Err(_), Some(text), false) = (&vaults, &expiry, json) {
        printer.data(text);
    }
    let mut clusters = Vec::new();
    for v in vaults? {
        clusters.push(status::cluster_status(&ops, &v).await);
    }
    if json {
        let mut value = serde_json::json!({ "vaults": clusters });
        if let Some(at) = &expires_at {
            value["expires_at"] = serde_json::json!(at);
        }
        printer.data(&format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        ));
    } else {
        let text: Vec<String> = clusters.iter().map(report::status).collect();
        printer.data(&text.join("\n"));
        if let Some(text) = expiry {
            printer.data(&format!("\n{text}"));
        }
    }
    Ok(outcome(clusters.iter().all(|c| c.healthy)))
}

fn outcome(ok: bool) -> Outcome {
    if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

pub async fn unseal(
    file: &Path,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, session)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, "unseal", &Default::default(), printer).await?;
    let mut failed = false;
    for v in ops.vaults(vault)? {
        let r = unseal::unseal(&ops, &v).await?;
        for (m, result) in &r.members {
            match result {
                Ok(()) => printer.message(&format!("{}/{m}: unsealed", v.name)),
                Err(e) => printer.message(&format!("{}/{m}: {e}", v.name)),
            }
        }
        match r.whole_after {
            Some(d) => printer.message(&format!(
                "{}: every member unsealed, one leader and every member a voter, in {:.1}s",
                v.name,
                d.as_secs_f64()
            )),
            None => failed = true,
        }
    }
    Ok(outcome(!failed))
}

pub async fn drill_failover(
    file: &Path,
    state: &StateArgs,
    method: DrillMethod,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, session)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, "drill", &Default::default(), printer).await?;
    let v = ops.one(vault)?;
    let method = match method {
        DrillMethod::Kill => drill::Method::Kill,
        DrillMethod::Stop => drill::Method::Stop,
        DrillMethod::StepDown => drill::Method::StepDown,
    };
    let r = drill::failover(&ops, &v, method, &|m| printer.message(m)).await?;
    if json {
        printer.json_line(&r);
    } else {
        printer.data(&report::failover(&r));
    }
    Ok(Outcome::Success)
}

pub async fn drill_region(
    file: &Path,
    state: &StateArgs,
    region: &str,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, session)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, "drill", &Default::default(), printer).await?;
    let v = ops.one(vault)?;
    let r = drill::region_loss(&ops, &v, region, &|m| printer.message(m)).await?;
    if json {
        printer.json_line(&r);
    } else {
        printer.data(&report::region_loss(&r));
    }
    Ok(Outcome::Success)
}

pub async fn snapshot_save(
    file: &Path,
    path: &Path,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, _)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let v = ops.one(vault)?;
    let size = snapshot::save(&ops, &v, path).await?;
    printer.message(&format!(
        "Saved a raft snapshot of {} ({size} bytes) to {}.",
        v.name,
        path.display()
    ));
    Ok(Outcome::Success)
}

pub async fn snapshot_restore(
    file: &Path,
    path: &Path,
    force: bool,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some((ops, session)) = open_ops(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&session, "snapshot restore", &Default::default(), printer).await?;
    let v = ops.one(vault)?;
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    snapshot::restore(&ops, &v, bytes, force).await?;
    printer.message(&format!("Restored {} from {}.", v.name, path.display()));
    Ok(Outcome::Success)
}
