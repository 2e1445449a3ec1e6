//! `sweep`: wiring from flags to the inventory, the state, the deletion and the UI.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{Error, Outcome};
use crate::aws::{Aws, AwsSettings};
use crate::catalog::Catalog;
use crate::cli::SweepArgs;
use crate::state::State;
use crate::state::local::LocalBackend;
use crate::sweep::{self, Query, Report};
use crate::ui::{Printer, prompt, sweep as render};
use crate::vault::spec::Vaults;

/// The stack to sweep: what to look for, the state that records what is not an orphan, and
/// the providers that delete.
pub(crate) struct Target {
    pub query: Query,
    pub state: State,
    pub aws: AwsSettings,
    pub catalog: Arc<Catalog>,
    /// Held while sweeping: a run of this stack creating something right now must not have it
    /// taken for an orphan.
    pub _lock: Option<crate::state::LockGuard>,
}

async fn target(args: &SweepArgs, printer: &Printer) -> Result<Option<Target>, Error> {
    if let Some(file) = &args.file {
        let Some(session) = super::stack::open(file, None, &args.state, None, printer)? else {
            return Ok(None);
        };
        let no_wait = crate::cli::LockArgs { lock_timeout: None };
        let lock = super::stack::lock(&session, "sweep", &no_wait, printer).await?;
        let state = session.load_state().await?;
        return Ok(Some(Target {
            query: Query::of(
                session.topology(),
                session.catalog.process_dirs(),
                &state,
                &args.regions,
            ),
            state,
            aws: session.aws.clone(),
            catalog: session.catalog.clone(),
            _lock: Some(lock),
        }));
    }
    let stack = args.stack.clone().unwrap_or_default();
    if args.regions.is_empty() && !args.all_regions {
        return Err(Error::Sweep {
            message: format!(
                "sweep --stack {stack} needs the regions to search: --regions a,b or --all-regions"
            ),
        });
    }
    let state = match &args.state.path {
        Some(path) => {
            use crate::state::Backend;
            LocalBackend::new(path.clone())
                .load()
                .await?
                .unwrap_or_else(|| State::new(&stack))
        }
        None => State::new(&stack),
    };
    Ok(Some(Target {
        query: Query {
            stack,
            regions: args.regions.clone(),
            clusters: Query::recorded_clusters(&state),
            work_dirs: Vec::new(),
            bucket_names: Vec::new(),
        },
        state,
        aws: AwsSettings::resolve(None),
        catalog: Arc::new(Catalog::new(Arc::new(Vaults(Default::default())))),
        _lock: None,
    }))
}

/// Requests per service between two snapshots of the counters.
fn since(before: &BTreeMap<String, u64>, mut now: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    for (service, n) in before {
        if let Some(v) = now.get_mut(service) {
            *v -= n;
        }
    }
    now.retain(|_, n| *n > 0);
    now
}

/// Finds the stack's orphans through the APIs; the report counts the calls and the time.
pub(crate) async fn find(aws: &Aws, query: &Query, state: &State) -> Result<Report, Error> {
    let started = Instant::now();
    let before = aws.calls.snapshot();
    let found = sweep::inventory(aws, query)
        .await
        .map_err(|e| Error::Sweep { message: e.message })?;
    let api_calls = since(&before, aws.calls.snapshot());
    Ok(Report {
        stack: query.stack.clone(),
        regions: query.regions.clone(),
        orphans: sweep::orphans(&found, state),
        found: found.len(),
        api_calls,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub async fn sweep(args: &SweepArgs, printer: &Printer) -> Result<Outcome, Error> {
    let Some(mut target) = target(args, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let aws = Aws::connect(&target.aws).await;
    if args.all_regions {
        target.query.regions = super::expired::enabled_regions(&aws).await?;
    }
    aws.check(&target.query.regions)
        .await
        .map_err(|e| Error::AwsCheck {
            message: e.to_string(),
        })?;
    let report = find(&aws, &target.query, &target.state).await?;
    if !args.delete {
        if args.json {
            printer.json_line(&render::Json {
                report: &report,
                removed: None,
            });
        } else {
            printer.data(&render::human(&report));
        }
        return Ok(Outcome::Success);
    }
    if !args.json {
        printer.data(&render::human(&report));
    }
    if report.orphans.is_empty() {
        if args.json {
            printer.json_line(&render::Json {
                report: &report,
                removed: Some(&[]),
            });
        }
        return Ok(Outcome::Success);
    }
    if !args.auto_approve && !prompt::confirm("delete these resources", printer)? {
        printer.message("Cancelled: nothing was deleted.");
        return Ok(Outcome::Failure);
    }
    let started = Instant::now();
    let before = aws.calls.snapshot();
    let removed = sweep::remove(&aws, &report.stack, &*target.catalog, &report.orphans).await;
    let calls = since(&before, aws.calls.snapshot());
    let failed = removed.iter().any(|r| r.error.is_some());
    if args.json {
        printer.json_line(&render::Json {
            report: &report,
            removed: Some(&removed),
        });
    } else {
        printer.message(&render::removed(&removed, started.elapsed(), &calls));
    }
    Ok(if failed {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}
