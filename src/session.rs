//! A command's stack opened for work: the topology loaded and valid, the raw flags resolved
//! once into settings (the state backend, AWS, the Vault clusters, the attempts per operation),
//! then the state, its lock and the plan. Commands call this; it prints nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::aws::{Aws, AwsSettings};
use crate::catalog::Catalog;
use crate::engine::apply::Context;
use crate::engine::{Limits, refresh};
use crate::error::Error;
use crate::loaded::{Loaded, Stack};
use crate::plan::{self, Plan, PlanOptions};
use crate::state::local::LocalBackend;
use crate::state::s3::{S3Backend, S3Location};
use crate::state::{Backend, LockGuard, State, StateError};
use crate::topology::{StateBackend, Topology};
use crate::vault::spec::{self, Vaults};

/// Attempts per operation (and per refresh read) for errors worth retrying.
pub const ATTEMPTS: u32 = 6;

/// A valid stack with everything resolved that its commands need.
pub struct Session {
    /// The topology file, as the command line named it.
    pub file: PathBuf,
    pub stack: Stack,
    pub backend: Arc<dyn Backend>,
    /// Where the state lives (`local:<absolute path>`, `s3://...`): the `vaultform:state` tag
    /// of an expiring stack.
    pub state_location: String,
    /// The topology file's directory: relative paths in it resolve here.
    pub base_dir: PathBuf,
    pub aws: AwsSettings,
    /// Every provider, with the Vault clusters resolved once for this run.
    pub catalog: Arc<Catalog>,
    pub attempts: u32,
}

/// What `plan` (and the plan inside `apply` and `destroy`) is asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub refresh: bool,
    pub options: PlanOptions,
}

/// Reads a topology file, or `text` as if it were that file (a saved plan's copy).
pub fn read(file: &Path, text: Option<String>) -> Result<Loaded, Error> {
    let text = match text {
        Some(text) => text,
        None => std::fs::read_to_string(file).map_err(|source| Error::Read {
            path: file.display().to_string(),
            source,
        })?,
    };
    Ok(crate::loaded::load(file.display().to_string(), text))
}

/// Opens a loaded topology for commands that touch state: valid, supported by this build, its
/// backend resolved. `None` when it has errors (the caller has shown them).
pub fn open(
    file: &Path,
    loaded: Loaded,
    state_path: Option<&Path>,
    // The addresses a run will touch (all when empty); `None` for commands that only read state.
    targets: Option<&[String]>,
) -> Result<Option<Session>, Error> {
    let Some(stack) = loaded.into_stack() else {
        return Ok(None);
    };
    let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
    let base_dir = std::path::absolute(parent.unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| parent.unwrap_or(Path::new(".")).to_path_buf());
    let catalog = Catalog::new(Arc::new(spec::specs(&stack.topology, &base_dir)));
    let unsupported = targets
        .map(|targets| catalog.unsupported(&stack.topology, &stack.graph, targets))
        .unwrap_or_default();
    if !unsupported.is_empty() {
        let kinds: Vec<String> = unsupported
            .iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect();
        return Err(Error::Unsupported {
            kinds: kinds.join(", "),
        });
    }
    let mut aws = AwsSettings::resolve(
        stack
            .topology
            .aws
            .endpoint
            .as_ref()
            .map(|e| e.value.as_str()),
    );
    aws.time_scale = crate::lifecycle::TimeScale::from_env()?;
    let state_location = state_location(&stack.topology, parent, state_path);
    let backend = backend(&stack.topology, parent, state_path, &aws);
    Ok(Some(Session {
        file: file.to_path_buf(),
        stack,
        state_location,
        backend,
        base_dir,
        aws,
        catalog: Arc::new(catalog),
        attempts: ATTEMPTS,
    }))
}

/// Where the state lives, as the `vaultform:state` tag of an expiring stack says it:
/// `local:<absolute path>` or `s3://<bucket>/<key>@<region>`.
pub fn state_location(
    topology: &Topology,
    dir: Option<&Path>,
    state_path: Option<&Path>,
) -> String {
    let local = |p: PathBuf| {
        let p = std::path::absolute(&p).unwrap_or(p);
        format!("local:{}", p.display())
    };
    match (state_path, &topology.state) {
        (Some(p), _) => local(p.to_path_buf()),
        (None, StateBackend::Local { path }) => local(dir.unwrap_or(Path::new("")).join(path)),
        (
            None,
            StateBackend::S3 {
                bucket,
                key,
                region,
                ..
            },
        ) => {
            format!("s3://{bucket}/{key}@{region}")
        }
    }
}

/// The topology's state backend; `--state PATH` chooses a local file instead.
pub fn backend(
    topology: &Topology,
    dir: Option<&Path>,
    state_path: Option<&Path>,
    aws: &AwsSettings,
) -> Arc<dyn Backend> {
    match (state_path, &topology.state) {
        (Some(p), _) => Arc::new(LocalBackend::new(p)),
        (None, StateBackend::Local { path }) => {
            Arc::new(LocalBackend::new(dir.unwrap_or(Path::new("")).join(path)))
        }
        (
            None,
            StateBackend::S3 {
                bucket,
                key,
                region,
                kms_key,
            },
        ) => Arc::new(S3Backend::new(
            S3Location {
                bucket: bucket.clone(),
                key: key.clone(),
                region: region.clone(),
                kms_key: kms_key.clone(),
                stack: topology.stack.value.clone(),
            },
            aws.clone(),
        )),
    }
}

/// What to do about one problem of a state backend: `vaultform init FILE` when it would
/// create what is missing, else the problem's own help.
pub fn remedy(problem: &StateError, file: &Path) -> Option<String> {
    let init = match problem {
        StateError::NoBucket { .. } => true,
        StateError::NoKey { key, .. } => key.starts_with("alias/"),
        _ => false,
    };
    if init {
        return Some(format!(
            "`vaultform init {}` creates the state's bucket and KMS key",
            file.display()
        ));
    }
    miette::Diagnostic::help(problem).map(|h| h.to_string())
}

/// The problems of a state backend as one error: each said once, and what to do.
pub fn backend_error(location: &str, file: &Path, problems: Vec<StateError>) -> Error {
    let mut help: Vec<String> = Vec::new();
    for r in problems.iter().filter_map(|p| remedy(p, file)) {
        if !help.contains(&r) {
            help.push(r);
        }
    }
    help.push("nothing was changed".into());
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Error::StateBackend {
        location: location.to_string(),
        problems: problems.join("; "),
        help: help.join("; "),
    }
}

impl Session {
    pub fn topology(&self) -> &Topology {
        &self.stack.topology
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.stack.topology.stack.value
    }

    pub fn vaults(&self) -> &Vaults {
        self.catalog.vaults()
    }

    pub async fn connect(&self) -> Aws {
        Aws::connect(&self.aws).await
    }

    /// Connects and checks that every region of the topology (and an S3 state's) answers with
    /// working credentials: a dead endpoint fails here in seconds, not after minutes of retries.
    pub async fn connect_checked(&self) -> Result<Aws, Error> {
        let aws = self.connect().await;
        let mut regions: Vec<String> = self
            .topology()
            .regions
            .iter()
            .map(|r| r.name.value.clone())
            .collect();
        if let StateBackend::S3 { region, .. } = &self.topology().state
            && !regions.contains(region)
        {
            regions.push(region.clone());
        }
        aws.check(&regions).await.map_err(|e| Error::AwsCheck {
            message: e.to_string(),
        })?;
        Ok(aws)
    }

    /// Checks, before anything runs, what a run needs from the state backend (a remote one's
    /// bucket and KMS key): one error naming every problem and what to do.
    pub async fn check_backend(&self) -> Result<(), Error> {
        let problems: Vec<StateError> = self
            .backend
            .check(false)
            .await
            .into_iter()
            .filter_map(|c| c.result.err())
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        Err(backend_error(
            &self.backend.describe(),
            &self.file,
            problems,
        ))
    }

    /// The recorded state, or a new one; a state of another stack is refused.
    pub async fn load_state(&self) -> Result<State, Error> {
        match self.backend.load().await? {
            Some(s) if s.stack != self.name() => Err(StateError::WrongStack {
                path: self.backend.describe(),
                found: s.stack,
                expected: self.name().to_string(),
            }
            .into()),
            Some(s) => Ok(s),
            None => Ok(State::new(self.name())),
        }
    }

    /// Takes the state lock; the guard says whether it took over a stale one.
    pub async fn lock(&self, operation: &str) -> Result<LockGuard, Error> {
        Ok(self.backend.lock(operation).await?)
    }

    /// Takes the state lock, waiting up to `timeout` (with backoff) while another run holds it.
    pub async fn lock_waiting(
        &self,
        operation: &str,
        timeout: std::time::Duration,
    ) -> Result<LockGuard, Error> {
        let policy = crate::retry::Backoff::exponential(
            std::time::Duration::from_millis(250),
            std::time::Duration::from_secs(10),
        )
        .jitter(crate::retry::Jitter::between(0.5, 1.0))
        .deadline(timeout);
        let waited = crate::retry::try_poll(policy, "the state lock", || async {
            match self.backend.lock(operation).await {
                Ok(guard) => Ok(Some(guard)),
                Err(StateError::Locked { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
        match waited {
            Ok(guard) => Ok(guard),
            Err(crate::retry::TryPollError::Failed(e)) => Err(e.into()),
            // Once more, for the error that names the holder now.
            Err(crate::retry::TryPollError::GaveUp(_)) => self.lock(operation).await,
        }
    }

    /// Refreshes (when asked) and plans: pure diff of desired, recorded and observed.
    pub async fn plan(&self, aws: &Aws, state: &State, req: &PlanRequest) -> Result<Plan, Error> {
        let t = self.topology();
        let observed = if req.refresh {
            refresh::refresh(aws, state, &t.aws.tags, &*self.catalog, self.attempts)
                .await
                .map_err(|e| Error::Refresh { message: e.message })?
        } else {
            Default::default()
        };
        let desired = self.catalog.desired(t, &self.stack.graph);
        Ok(plan::plan(
            &desired,
            state,
            &observed,
            &*self.catalog,
            &req.options,
        )?)
    }

    /// What the engine needs to apply a plan of this stack.
    pub fn context(&self, aws: Aws, parallelism: usize) -> Context {
        Context {
            aws,
            stack: self.name().to_string(),
            default_tags: self.topology().aws.tags.clone(),
            backend: self.backend.clone(),
            limits: Limits {
                default: parallelism.max(1),
                per_service: Default::default(),
            },
            attempts: self.attempts,
            providers: self.catalog.clone(),
        }
    }
}
