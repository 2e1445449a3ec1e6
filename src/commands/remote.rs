//! `init`, `state pull|versions|restore|migrate`: bootstrapping a remote state, reading and
//! restoring its versions, and moving a state between backends.

use std::path::Path;

use super::stack::open;
use super::{Error, Outcome};
use crate::cli::StateArgs;
use crate::state::s3::S3Location;
use crate::state::{State, StateError};
use crate::topology::StateBackend;
use crate::ui::Printer;

/// `vaultform init FILE`: creates the S3 state's bucket and key (idempotent).
pub async fn init(file: &Path, printer: &Printer) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, &StateArgs { path: None }, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let StateBackend::S3 {
        bucket,
        key,
        region,
        kms_key,
    } = &session.topology().state
    else {
        printer.message(&format!(
            "The state is local ({}): nothing to create.",
            session.backend.describe()
        ));
        return Ok(Outcome::Success);
    };
    let loc = S3Location {
        bucket: bucket.clone(),
        key: key.clone(),
        region: region.clone(),
        kms_key: kms_key.clone(),
        stack: session.name().to_string(),
    };
    let aws = session.connect_checked().await?;
    let policy = crate::resources::s3_bucket::tls_only_applies(session.topology())
        .then(|| crate::resources::s3_bucket::tls_only_policy(bucket));
    let report = crate::state::s3_init::init(&aws, &loc, policy).await?;
    for step in &report.steps {
        printer.message(&format!("  {step}"));
    }
    printer.message(&format!("The state s3://{bucket}/{key} is ready."));
    Ok(Outcome::Success)
}

/// `state pull`: the current state, decrypted, as JSON on stdout.
pub async fn pull(file: &Path, state: &StateArgs, printer: &Printer) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let current = session.load_state().await?;
    let text = serde_json::to_string_pretty(&current).unwrap_or_default();
    printer.data(&format!("{text}\n"));
    Ok(Outcome::Success)
}

/// `state versions`: the stored versions, newest first.
pub async fn versions(
    file: &Path,
    state: &StateArgs,
    json: bool,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let versions = session.backend.versions().await?;
    if json {
        let text = serde_json::to_string_pretty(&versions).unwrap_or_default();
        printer.data(&format!("{text}\n"));
        return Ok(Outcome::Success);
    }
    let mut out = String::new();
    for v in &versions {
        out.push_str(&format!(
            "{}  {}  serial {}{}  {}\n",
            v.id,
            v.modified,
            v.serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            if v.latest { " (current)" } else { "" },
            v.writer.as_deref().unwrap_or("")
        ));
    }
    printer.data(&out);
    Ok(Outcome::Success)
}

/// `state restore VERSION`: writes an earlier version back as the newest (same lineage only).
pub async fn restore(
    file: &Path,
    version: &str,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let _lock = super::stack::lock(&session, "state restore", &Default::default(), printer).await?;
    let current = session.load_state().await?;
    let mut old = session.backend.load_version(version).await?;
    if old.stack != session.name() {
        return Err(StateError::WrongStack {
            path: format!("{} version {version}", session.backend.describe()),
            found: old.stack,
            expected: session.name().to_string(),
        }
        .into());
    }
    if old.lineage != current.lineage {
        return Err(StateError::Lineage {
            location: session.backend.describe(),
            version: version.to_string(),
            found: old.lineage,
            expected: current.lineage,
        }
        .into());
    }
    let restored_serial = old.serial;
    old.serial = current.serial + 1;
    session.backend.save(&old).await?;
    printer.message(&format!(
        "Restored version {version} (serial {restored_serial}, {} resources) as serial {}.",
        old.resources.len(),
        old.serial
    ));
    Ok(Outcome::Success)
}

/// `state migrate --to OTHER`: copies the state to the backend `OTHER` names, both locked.
pub async fn migrate(
    file: &Path,
    to: &Path,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(source) = open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let Some(target) = open(to, None, &StateArgs { path: None }, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    if source.name() != target.name() {
        return Err(StateError::WrongStack {
            path: target.backend.describe(),
            found: target.name().to_string(),
            expected: source.name().to_string(),
        }
        .into());
    }
    let (from, into) = (source.backend.describe(), target.backend.describe());
    if from == into {
        printer.message(&format!("The state is already in {into}."));
        return Ok(Outcome::Success);
    }
    let _source_lock =
        super::stack::lock(&source, "state migrate", &Default::default(), printer).await?;
    let _target_lock =
        super::stack::lock(&target, "state migrate", &Default::default(), printer).await?;
    let state: State = match source.backend.load().await? {
        Some(s) => s,
        None => {
            printer.message(&format!("{from} holds no state: nothing to migrate."));
            return Ok(Outcome::Failure);
        }
    };
    // The target may hold this same state at an earlier or equal serial; never another one.
    if let Some(existing) = target.load_state().await.map(Some)? {
        let empty = existing.serial == 0 && existing.resources.is_empty();
        if !empty && existing.lineage != state.lineage {
            return Err(StateError::Lineage {
                location: into,
                version: "current".into(),
                found: existing.lineage,
                expected: state.lineage,
            }
            .into());
        }
        if !empty && existing.serial > state.serial {
            return Err(Error::StalePlan {
                path: into,
                planned: format!("serial {}", state.serial),
                current: format!("serial {}", existing.serial),
            });
        }
    }
    target.backend.save(&state).await?;
    printer.message(&format!(
        "Migrated the state from {from} to {into}: serial {}, lineage {}, {} resources. Point the topology at {into} (the source is left as it was).",
        state.serial,
        state.lineage,
        state.resources.len()
    ));
    Ok(Outcome::Success)
}
