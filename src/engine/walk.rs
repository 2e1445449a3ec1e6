//! The concurrent DAG walker at the heart of the engine, independent of what operations do.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One node of the walk.
#[derive(Debug, Clone)]
pub struct Operation {
    pub address: String,
    /// The concurrency pool it draws from, e.g. `("kms", Some("eu-west-1"))`.
    pub service: String,
    pub region: Option<String>,
    /// Indices of the operations that must succeed first.
    pub deps: Vec<usize>,
}

/// How many operations may run at once against one service in one region.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default: usize,
    /// Per service name (`ec2`, `eks`, ...), overriding `default`.
    pub per_service: HashMap<String, usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default: 10,
            per_service: HashMap::new(),
        }
    }
}

impl Limits {
    fn limit(&self, service: &str) -> usize {
        self.per_service
            .get(service)
            .copied()
            .unwrap_or(self.default)
            .max(1)
    }
}

/// How one operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    Done,
    Failed(String),
    /// Not run because a dependency failed (named).
    Skipped {
        failed_dependency: String,
    },
    /// Not started because the walk was interrupted.
    NotStarted,
}

/// What the walker reports as it goes, for the UI.
#[derive(Debug, Clone)]
pub enum WalkEvent {
    Started {
        index: usize,
    },
    Finished {
        index: usize,
        elapsed: Duration,
    },
    Failed {
        index: usize,
        elapsed: Duration,
        error: String,
    },
    Skipped {
        index: usize,
        failed_dependency: String,
    },
}

#[derive(Debug)]
pub struct WalkReport {
    pub results: Vec<OpResult>,
    pub elapsed: Duration,
    pub interrupted: bool,
}

impl WalkReport {
    pub fn failures(&self) -> impl Iterator<Item = (usize, &str)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                OpResult::Failed(e) => Some((i, e.as_str())),
                _ => None,
            })
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What a finished task hands back: its index, how long it ran, and its result (`None` when
/// an interruption came while it waited for a permit, so it never started).
type Joined = (usize, Duration, Option<Result<(), String>>);

/// A configured walk over `operations`.
pub struct Walk {
    operations: Vec<Operation>,
    limits: Limits,
    events: Option<mpsc::UnboundedSender<WalkEvent>>,
    stop: Option<watch::Receiver<bool>>,
}

impl Walk {
    pub fn new(operations: Vec<Operation>, limits: Limits) -> Self {
        Walk {
            operations,
            limits,
            events: None,
            stop: None,
        }
    }

    pub fn events(mut self, tx: mpsc::UnboundedSender<WalkEvent>) -> Self {
        self.events = Some(tx);
        self
    }

    /// Once the receiver reads `true`, nothing new starts.
    pub fn stop_on(mut self, rx: watch::Receiver<bool>) -> Self {
        self.stop = Some(rx);
        self
    }

    /// Runs `run(index)` for every operation in dependency order, as concurrently as the
    /// graph and the limits allow.
    pub async fn run<F>(self, run: F) -> WalkReport
    where
        F: Fn(usize) -> BoxFuture + Send + Sync + 'static,
    {
        let start = Instant::now();
        let n = self.operations.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut waiting: Vec<usize> = vec![0; n];
        for (i, op) in self.operations.iter().enumerate() {
            waiting[i] = op.deps.len();
            for d in &op.deps {
                dependents[*d].push(i);
            }
        }
        let mut pools: HashMap<(String, Option<String>), Arc<Semaphore>> = HashMap::new();
        for op in &self.operations {
            pools
                .entry((op.service.clone(), op.region.clone()))
                .or_insert_with(|| Arc::new(Semaphore::new(self.limits.limit(&op.service))));
        }
        let mut results: Vec<Option<OpResult>> = vec![None; n];
        let mut ready: Vec<usize> = (0..n).filter(|i| waiting[*i] == 0).collect();
        let mut set: JoinSet<Joined> = JoinSet::new();
        let run = Arc::new(run);
        let emit = |e: WalkEvent| {
            if let Some(tx) = &self.events {
                let _ = tx.send(e);
            }
        };
        let stopped =
            |stop: &Option<watch::Receiver<bool>>| stop.as_ref().is_some_and(|s| *s.borrow());
        let mut interrupted = false;

        loop {
            if !interrupted && stopped(&self.stop) {
                interrupted = true;
            }
            if !interrupted {
                for i in ready.drain(..) {
                    let op = &self.operations[i];
                    let pool = pools[&(op.service.clone(), op.region.clone())].clone();
                    let run = run.clone();
                    let tx = self.events.clone();
                    let stop = self.stop.clone();
                    set.spawn(async move {
                        let _permit = pool.acquire_owned().await.expect("semaphore open");
                        // Waiting for a permit is not starting: an interruption meanwhile wins.
                        if stop.as_ref().is_some_and(|s| *s.borrow()) {
                            return (i, Duration::ZERO, None);
                        }
                        if let Some(tx) = &tx {
                            let _ = tx.send(WalkEvent::Started { index: i });
                        }
                        let began = Instant::now();
                        let r = match AssertUnwindSafe(run(i)).catch_unwind().await {
                            Ok(r) => r,
                            Err(_) => Err("the operation panicked".to_string()),
                        };
                        (i, began.elapsed(), Some(r))
                    });
                }
            }
            if set.is_empty() {
                break;
            }
            let joined = match &self.stop {
                Some(stop) if !interrupted => {
                    let mut stop = stop.clone();
                    tokio::select! {
                        j = set.join_next() => j,
                        _ = stop.wait_for(|s| *s) => { interrupted = true; continue; }
                    }
                }
                _ => set.join_next().await,
            };
            let Some(joined) = joined else { break };
            // Tasks are never aborted and catch their panics, so a join error cannot happen.
            let Ok((i, elapsed, r)) = joined else {
                continue;
            };
            let Some(r) = r else {
                interrupted = true;
                continue;
            };
            match r {
                Ok(()) => {
                    results[i] = Some(OpResult::Done);
                    emit(WalkEvent::Finished { index: i, elapsed });
                    for d in &dependents[i] {
                        waiting[*d] -= 1;
                        if waiting[*d] == 0 && results[*d].is_none() {
                            ready.push(*d);
                        }
                    }
                }
                Err(error) => {
                    emit(WalkEvent::Failed {
                        index: i,
                        elapsed,
                        error: error.clone(),
                    });
                    results[i] = Some(OpResult::Failed(error));
                    // Everything downstream is skipped, naming this operation.
                    let mut stack = dependents[i].clone();
                    while let Some(d) = stack.pop() {
                        if results[d].is_none() {
                            let failed_dependency = self.operations[i].address.clone();
                            emit(WalkEvent::Skipped {
                                index: d,
                                failed_dependency: failed_dependency.clone(),
                            });
                            results[d] = Some(OpResult::Skipped { failed_dependency });
                            stack.extend(dependents[d].iter().copied());
                        }
                    }
                }
            }
        }
        WalkReport {
            results: results
                .into_iter()
                .map(|r| r.unwrap_or(OpResult::NotStarted))
                .collect(),
            elapsed: start.elapsed(),
            interrupted,
        }
    }
}

/// Boxes an async block for [`Walk::run`].
pub fn boxed<Fut>(f: Fut) -> BoxFuture
where
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Box::pin(f)
}
