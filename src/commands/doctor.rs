//! `doctor`: wiring from flags to the session, the checks and their rendering.

use std::path::Path;

use super::{Error, Outcome};
use crate::cli::StateArgs;
use crate::ui::Printer;

pub async fn doctor(
    file: &Path,
    state: &StateArgs,
    json: bool,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(session) = super::stack::open(file, None, state, None, printer)? else {
        return Ok(Outcome::Failure);
    };
    let report = crate::doctor::doctor(&session).await;
    if json {
        printer.json_line(&report);
    } else {
        printer.data(&crate::ui::doctor::human(&report));
    }
    Ok(if report.blocking() {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}
