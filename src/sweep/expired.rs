//! Destroying a stack past its expiry without its topology: through the state its
//! `vaultform:state` tag names (a destroy plan of everything recorded, run by the engine), then
//! a sweep of whatever the state did not record, or of everything when the state is gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::expiry::{Expiring, state_path};
use super::{Query, Removed, inventory, orphans, remove};
use crate::aws::Aws;
use crate::engine::Limits;
use crate::engine::apply::{self, Context};
use crate::engine::summary::Summary;
use crate::plan::{self, PlanOptions};
use crate::provider::Providers;
use crate::state::local::LocalBackend;
use crate::state::{Backend, State};

/// What destroying one expired stack did.
#[derive(Debug, Serialize)]
pub struct Destroyed {
    pub stack: String,
    /// The state file it was destroyed through, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The destroy through the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// What the sweep after it deleted (what the state did not record).
    pub swept: Vec<Removed>,
    /// Why it is not completely gone.
    pub errors: Vec<String>,
}

impl Destroyed {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
            && self.summary.as_ref().is_none_or(|s| s.failed == 0)
            && self.swept.iter().all(|r| r.error.is_none())
    }
}

/// Destroys `stack` in `regions` through its recorded state, then sweeps the rest.
pub async fn destroy(
    aws: &Aws,
    stack: &Expiring,
    regions: &[String],
    providers: Arc<dyn Providers>,
    attempts: u32,
) -> Destroyed {
    let mut out = Destroyed {
        stack: stack.stack.clone(),
        state: None,
        summary: None,
        swept: Vec::new(),
        errors: Vec::new(),
    };
    let mut after = State::new(&stack.stack);
    let path = stack
        .state
        .as_deref()
        .and_then(state_path)
        .filter(|p| p.exists());
    if let Some(path) = path {
        out.state = Some(path.display().to_string());
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(path));
        match through_state(
            aws,
            &stack.stack,
            backend.clone(),
            providers.clone(),
            attempts,
        )
        .await
        {
            Ok(Some(summary)) => out.summary = Some(summary),
            Ok(None) => {}
            Err(e) => out.errors.push(e),
        }
        match backend.load().await {
            Ok(Some(s)) if s.stack == stack.stack => after = s,
            Ok(_) => {}
            Err(e) => out.errors.push(e.to_string()),
        }
    }
    let query = Query {
        stack: stack.stack.clone(),
        regions: regions.to_vec(),
        clusters: Query::recorded_clusters(&after),
        work_dirs: Vec::new(),
        bucket_names: Vec::new(),
    };
    match inventory(aws, &query).await {
        Ok(found) => {
            let left = orphans(&found, &after);
            out.swept = remove(aws, &stack.stack, &*providers, &left).await;
        }
        Err(e) => out.errors.push(e.message),
    }
    out
}

/// A destroy of everything the state records, under its lock; `None` when the state is
/// another stack's or empty.
async fn through_state(
    aws: &Aws,
    stack: &str,
    backend: Arc<dyn Backend>,
    providers: Arc<dyn Providers>,
    attempts: u32,
) -> Result<Option<Summary>, String> {
    let _lock = backend
        .lock("expired --destroy")
        .await
        .map_err(|e| e.to_string())?;
    let Some(state) = backend.load().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if state.stack != stack || state.resources.is_empty() {
        return Ok(None);
    }
    let options = PlanOptions {
        destroy: true,
        ..Default::default()
    };
    let plan = plan::plan(&[], &state, &HashMap::new(), &*providers, &options)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let before = aws.calls.snapshot();
    let cx = Context {
        aws: aws.clone(),
        stack: stack.to_string(),
        default_tags: Default::default(),
        backend,
        limits: Limits::default(),
        attempts,
        providers,
    };
    let outcome = apply::apply(&plan, state, cx, None, None).await;
    let mut calls = aws.calls.snapshot();
    for (k, n) in before {
        if let Some(v) = calls.get_mut(&k) {
            *v -= n;
        }
    }
    calls.retain(|_, n| *n > 0);
    Ok(Some(Summary::of(&outcome, started.elapsed(), calls)))
}
