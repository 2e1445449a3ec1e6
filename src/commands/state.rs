//! `state list|show`, `output` and `force-unlock`: reading the recorded state, and removing a
//! lock left behind.

use std::collections::BTreeMap;
use std::path::Path;

use super::stack::open;
use super::{Error, Outcome};
use crate::cli::StateArgs;
use crate::state::State;
use crate::ui::Printer;

/// The recorded state of a stack, for the commands that only read it.
async fn recorded(
    file: &Path,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Option<State>, Error> {
    match open(file, None, state, None, printer)? {
        Some(session) => Ok(Some(session.load_state().await?)),
        None => Ok(None),
    }
}

pub async fn state_list(
    file: &Path,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(state) = recorded(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let list: String = state.resources.keys().map(|a| format!("{a}\n")).collect();
    printer.data(&list);
    Ok(Outcome::Success)
}

pub async fn state_show(
    file: &Path,
    address: &str,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(state) = recorded(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let rs = state
        .resources
        .get(address)
        .ok_or_else(|| Error::NotInState {
            address: address.to_string(),
        })?;
    let text = serde_json::to_string_pretty(rs).unwrap_or_default();
    printer.data(&format!("{text}\n"));
    Ok(Outcome::Success)
}

pub async fn output(file: &Path, state: &StateArgs, printer: &Printer) -> Result<Outcome, Error> {
    let Some(state) = recorded(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let outputs: BTreeMap<String, BTreeMap<String, String>> = state
        .outputs()
        .into_iter()
        .filter(|(_, o)| !o.is_empty())
        .collect();
    let text = serde_json::to_string_pretty(&outputs).unwrap_or_default();
    printer.data(&format!("{text}\n"));
    Ok(Outcome::Success)
}

pub async fn force_unlock(
    file: &Path,
    id: &str,
    state: &StateArgs,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let removed = session.backend.force_unlock(id).await?;
    printer.message(&format!("Removed the lock held by {}.", removed.describe()));
    Ok(Outcome::Success)
}
