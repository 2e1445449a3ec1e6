//! Refresh: reads the actual state of every recorded resource, concurrently and bounded.

use std::collections::HashMap;

use futures::StreamExt;

use crate::aws::Aws;
use crate::provider::{Cx, Observed, OpError, Providers};
use crate::state::State;

/// How many reads run at once.
pub const READS_AT_ONCE: usize = 16;

/// What each recorded resource looks like now, by address.
pub async fn refresh(
    aws: &Aws,
    state: &State,
    default_tags: &std::collections::BTreeMap<String, String>,
    providers: &dyn Providers,
    attempts: u32,
) -> Result<HashMap<String, Observed>, OpError> {
    let outputs = state.outputs();
    providers.learn(&outputs);
    let cx = Cx {
        aws,
        stack: &state.stack,
        default_tags,
        outputs: &outputs,
    };
    let cx = &cx;
    // An interrupted create has no identifiers yet: the plan re-runs it, and create adopts.
    let recorded = state
        .resources
        .values()
        .filter(|rs| !matches!(rs.status, crate::state::Status::Creating { .. }));
    let reads = recorded.filter_map(|rs| {
        let provider = providers.provider(rs.kind)?;
        Some(async move {
            let observed = super::apply::with_retries(attempts, || provider.read(cx, rs)).await;
            (rs.address.to_string(), observed)
        })
    });
    let results: Vec<(String, Result<Observed, OpError>)> = futures::stream::iter(reads)
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    let mut out = HashMap::new();
    for (address, r) in results {
        let observed = r.map_err(|e| OpError::fatal(format!("refreshing {address}: {e}")))?;
        out.insert(address, observed);
    }
    Ok(out)
}
