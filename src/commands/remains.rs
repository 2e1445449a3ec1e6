//! After a destroy: what remains of the stack, found by the sweep's inventory.

use crate::aws::Aws;
use crate::sweep::{self, Query, billable};
use crate::ui::{Printer, sweep as render};

/// After a destroy: what remains of the stack, checked through the APIs, shown after the
/// summary (a JSON line with `--json`). Information only: the exit code stays the destroy's.
pub(super) async fn show_remains(
    session: &crate::session::Session,
    aws: &Aws,
    planned: &std::collections::BTreeSet<String>,
    json: bool,
    printer: &Printer,
) {
    let remains = match session.load_state().await {
        Ok(state) => {
            let query = Query::of(session.topology(), session.vaults(), &state, &[]);
            match sweep::inventory(aws, &query).await {
                Ok(found) => billable::remains(&found, &state, planned),
                Err(e) => billable::Remains::unchecked(e.message),
            }
        }
        Err(e) => billable::Remains::unchecked(e.to_string()),
    };
    if json {
        printer.json_line(&render::RemainsJson { remains: &remains });
    } else {
        printer.message(&render::remains(&remains));
    }
}
