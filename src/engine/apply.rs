//! Executes a [`Plan`] through the walker: intent records before every long operation, the
//! state saved after every completed one, retries with backoff and jitter for transient errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, mpsc, watch};

use super::walk::{Limits, OpResult, Operation, Walk, WalkEvent, WalkReport, boxed};
use crate::address::Address;
use crate::aws::Aws;
use crate::plan::estimate;
use crate::plan::{Action, Change, Plan};
use crate::provider::{Cx, Desired, OpError, Provider, Providers, Recorded};
use crate::retry::{Backoff, retry};
use crate::state::model::now;
use crate::state::{Backend, ResourceState, State, Status};

/// What an apply needs besides the plan.
#[derive(Clone)]
pub struct Context {
    pub aws: Aws,
    pub stack: String,
    pub default_tags: BTreeMap<String, String>,
    pub backend: Arc<dyn Backend>,
    pub limits: Limits,
    /// Attempts per operation for errors worth retrying.
    pub attempts: u32,
    /// The provider of each kind.
    pub providers: Arc<dyn Providers>,
}

/// How an apply went.
#[derive(Debug)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub report: WalkReport,
    pub state: State,
}

impl Outcome {
    pub fn count(&self, action: Action) -> usize {
        self.changes
            .iter()
            .zip(&self.report.results)
            .filter(|(c, r)| c.action == action && **r == OpResult::Done)
            .count()
    }

    pub fn failed(&self) -> Vec<(&Change, &str)> {
        self.changes
            .iter()
            .zip(&self.report.results)
            .filter_map(|(c, r)| match r {
                OpResult::Failed(e) => Some((c, e.as_str())),
                _ => None,
            })
            .collect()
    }

    pub fn ok(&self) -> bool {
        !self.report.interrupted && self.report.results.iter().all(|r| *r == OpResult::Done)
    }
}

/// Shared by every operation of one apply.
struct Shared {
    cx: Context,
    state: Mutex<State>,
}

impl Shared {
    /// Applies `edit` to the state and saves it, one writer at a time.
    async fn save(&self, edit: impl FnOnce(&mut State)) -> Result<(), OpError> {
        let mut state = self.state.lock().await;
        edit(&mut state);
        state.serial += 1;
        self.cx
            .backend
            .save(&state)
            .await
            .map_err(|e| OpError::fatal(format!("saving state: {e}")))
    }

    async fn outputs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let outputs = self.state.lock().await.outputs();
        self.cx.providers.learn(&outputs);
        outputs
    }

    /// What an operation may read, given a snapshot of the recorded outputs.
    fn cx<'a>(&'a self, outputs: &'a BTreeMap<String, BTreeMap<String, String>>) -> Cx<'a> {
        Cx {
            aws: &self.cx.aws,
            stack: &self.cx.stack,
            default_tags: &self.cx.default_tags,
            outputs,
        }
    }

    async fn recorded(&self, address: &Address) -> Option<ResourceState> {
        self.state.lock().await.resources.get(address).cloned()
    }
}

/// Retries `f` on retryable errors with the engine's backoff, `attempts` times at most.
pub async fn with_retries<T, F, Fut>(attempts: u32, f: F) -> Result<T, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, OpError>>,
{
    retry(Backoff::OPERATION.attempts(attempts), f).await
}

fn provider(shared: &Shared, kind: crate::graph::Kind) -> Result<&dyn Provider, OpError> {
    shared
        .cx
        .providers
        .provider(kind)
        .ok_or_else(|| OpError::fatal(format!("{kind} is not supported")))
}

fn desired_of(c: &Change) -> Desired {
    Desired {
        address: c.address.clone(),
        kind: c.kind,
        region: c.region.clone(),
        name: c.name.clone().unwrap_or_default(),
        attrs: c.after.clone().unwrap_or_default(),
        deps: c.deps.clone(),
        resumed: false,
    }
}

/// Notes how long an operation of `kind` took, for the next plans' estimates.
fn note_duration(s: &mut State, kind: crate::graph::Kind, operation: &str, started: Instant) {
    let key = estimate::key(kind, operation);
    let now = started.elapsed().as_secs_f64();
    let blended = estimate::blend(s.durations.get(&key).copied(), now);
    s.durations.insert(key, (blended * 1000.0).round() / 1000.0);
}

async fn create(shared: &Shared, c: &Change) -> Result<(), OpError> {
    let started = Instant::now();
    let provider = provider(shared, c.kind)?;
    let mut d = desired_of(c);
    d.resumed = matches!(
        shared.recorded(&c.address).await.map(|r| r.status),
        Some(Status::Creating { name, .. }) if name == d.name
    );
    // The intent record: a crash from here on leaves a name the next run adopts by.
    shared
        .save(|s| {
            let rs = s
                .resources
                .entry(c.address.clone())
                .or_insert_with(|| ResourceState {
                    address: c.address.clone(),
                    kind: c.kind,
                    region: c.region.clone(),
                    status: Status::Ready,
                    ids: BTreeMap::new(),
                    attributes: d.attrs.clone(),
                    outputs: BTreeMap::new(),
                    dependencies: c.deps.clone(),
                });
            rs.status = Status::Creating {
                name: d.name.clone(),
                started: now(),
            };
            rs.attributes = d.attrs.clone();
            rs.dependencies = c.deps.clone();
        })
        .await?;
    let outputs = shared.outputs().await;
    let cx = shared.cx(&outputs);
    let rec = with_retries(shared.cx.attempts, || provider.create(&cx, &d)).await?;
    record(shared, c, rec, "create", started).await
}

async fn record(
    shared: &Shared,
    c: &Change,
    rec: Recorded,
    operation: &str,
    started: Instant,
) -> Result<(), OpError> {
    let attrs = c.after.clone().unwrap_or_default();
    shared
        .save(|s| {
            note_duration(s, c.kind, operation, started);
            if let Some(rs) = s.resources.get_mut(&c.address) {
                rs.status = Status::Ready;
                rs.ids = rec.ids;
                rs.outputs = rec.outputs;
                rs.attributes = attrs;
                rs.dependencies = c.deps.clone();
            }
        })
        .await
}

async fn update(shared: &Shared, c: &Change) -> Result<(), OpError> {
    let started = Instant::now();
    let provider = provider(shared, c.kind)?;
    let rs = shared
        .recorded(&c.address)
        .await
        .ok_or_else(|| OpError::fatal(format!("{} is not in state", c.address)))?;
    let d = desired_of(c);
    let outputs = shared.outputs().await;
    let cx = shared.cx(&outputs);
    let rec = with_retries(shared.cx.attempts, || provider.update(&cx, &rs, &d)).await?;
    record(shared, c, rec, "update", started).await
}

async fn delete(shared: &Shared, c: &Change) -> Result<(), OpError> {
    let started = Instant::now();
    let Some(rs) = shared.recorded(&c.address).await else {
        return Ok(());
    };
    let provider = provider(shared, rs.kind)?;
    shared
        .save(|s| {
            if let Some(r) = s.resources.get_mut(&c.address) {
                r.status = Status::Deleting { started: now() };
            }
        })
        .await?;
    let outputs = shared.outputs().await;
    let cx = shared.cx(&outputs);
    with_retries(shared.cx.attempts, || provider.delete(&cx, &rs)).await?;
    shared
        .save(|s| {
            note_duration(s, rs.kind, "delete", started);
            s.resources.remove(&c.address);
        })
        .await
}

async fn run_change(shared: &Shared, c: &Change) -> Result<(), OpError> {
    match c.action {
        Action::Create => create(shared, c).await,
        Action::Update => update(shared, c).await,
        Action::Replace => {
            delete(shared, c).await?;
            create(shared, c).await
        }
        Action::Delete => delete(shared, c).await,
        Action::NoOp => Ok(()),
    }
}

/// The changes `c` waits for: its dependencies that change, and through each unchanged one,
/// the changes that one depends on.
fn changed_deps(
    c: &Change,
    all: &HashMap<&str, &[Address]>,
    index: &HashMap<&str, usize>,
) -> Vec<usize> {
    let mut out = std::collections::BTreeSet::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&str> = c.after_changes.iter().map(Address::as_str).collect();
    while let Some(a) = stack.pop() {
        if !seen.insert(a) {
            continue;
        }
        match index.get(a) {
            Some(i) => {
                out.insert(*i);
            }
            None => stack.extend(
                all.get(a)
                    .into_iter()
                    .flat_map(|d| d.iter().map(Address::as_str)),
            ),
        }
    }
    out.into_iter().collect()
}

/// Applies every change of `plan` that is not a no-op, as concurrently as the graph allows.
pub async fn apply(
    plan: &Plan,
    state: State,
    cx: Context,
    events: Option<mpsc::UnboundedSender<WalkEvent>>,
    stop: Option<watch::Receiver<bool>>,
) -> Outcome {
    let changes: Vec<Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .cloned()
        .collect();
    // Every planned resource's dependencies, no-ops included: an operation waits for the
    // changes it depends on through unchanged resources too.
    let all: HashMap<&str, &[Address]> = plan
        .changes
        .iter()
        .map(|c| (c.address.as_str(), c.after_changes.as_slice()))
        .collect();
    let index: HashMap<&str, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.as_str(), i))
        .collect();
    let ops: Vec<Operation> = changes
        .iter()
        .map(|c| Operation {
            address: c.address.to_string(),
            service: cx
                .providers
                .provider(c.kind)
                .map(|p| p.pool(&c.address))
                .unwrap_or("other")
                .to_string(),
            region: c.region.clone(),
            deps: changed_deps(c, &all, &index),
        })
        .collect();
    let limits = cx.limits.clone();
    let shared = Arc::new(Shared {
        cx,
        state: Mutex::new(state),
    });
    let work = Arc::new(changes.clone());
    let s2 = shared.clone();
    let mut walk = Walk::new(ops, limits);
    if let Some(tx) = events {
        walk = walk.events(tx);
    }
    if let Some(rx) = stop {
        walk = walk.stop_on(rx);
    }
    let report = walk
        .run(move |i| {
            let shared = s2.clone();
            let work = work.clone();
            boxed(async move { run_change(&shared, &work[i]).await.map_err(|e| e.message) })
        })
        .await;
    let state = shared.state.lock().await.clone();
    Outcome {
        changes,
        report,
        state,
    }
}
