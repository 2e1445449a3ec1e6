//! What the sweep's inventory tells an apply or a destroy: what remains after a destroy, and
//! the expiry an apply stamps on every resource of the stack.

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
            let query = Query::of(
                session.topology(),
                session.catalog.process_dirs(),
                &state,
                &[],
            );
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

/// The expiry an apply gives its stack: `--ttl`, else the topology's `expires-after`.
pub(super) struct Expiry {
    /// RFC 3339.
    pub at: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

impl Expiry {
    pub fn of(
        session: &crate::session::Session,
        ttl: Option<std::time::Duration>,
    ) -> Option<Expiry> {
        let after = ttl.or_else(|| session.topology().expires_after.as_ref().map(|d| d.value))?;
        let at = sweep::expiry::expires_at(after);
        Some(Expiry {
            tags: sweep::expiry::tags(&at, &session.state_location),
            at,
        })
    }

    /// Tags every resource of the stack found through the APIs (what this apply created
    /// carries the tags already; the rest gets them now, which extends a live stack).
    pub async fn stamp(
        &self,
        session: &crate::session::Session,
        aws: &Aws,
        state: &crate::state::State,
        printer: &Printer,
    ) {
        let query = Query::of(
            session.topology(),
            session.catalog.process_dirs(),
            state,
            &[],
        );
        let found = match sweep::inventory(aws, &query).await {
            Ok(found) => found,
            Err(e) => {
                printer.message(&format!(
                    "warning: could not tag the stack to expire at {}: {}",
                    self.at, e.message
                ));
                return;
            }
        };
        let failures = sweep::expiry::stamp(aws, &found, &self.tags).await;
        printer.message(&render::stamped(&self.at, found.len(), &failures));
    }
}
