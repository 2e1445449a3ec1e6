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
use crate::provider::Providers;
use crate::state::local::LocalBackend;
use crate::state::{Backend, LockGuard, State, StateError};
use crate::topology::{StateBackend, Topology};
use crate::vault::spec::{self, Vaults};

/// Attempts per operation (and per refresh read) for errors worth retrying.
pub const ATTEMPTS: u32 = 6;

/// A valid stack with everything resolved that its commands need.
pub struct Session {
    pub stack: Stack,
    pub backend: Arc<dyn Backend>,
    /// The state file, absolute: the `vaultform:state` tag of an expiring stack names it.
    pub state_path: PathBuf,
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
    let path = match (state_path, &stack.topology.state) {
        (Some(p), _) => p.to_path_buf(),
        (None, StateBackend::Local { path }) => parent.unwrap_or(Path::new("")).join(path),
        (None, StateBackend::S3 { bucket, key, .. }) => {
            return Err(Error::S3Backend {
                location: format!("s3://{bucket}/{key}"),
            });
        }
    };
    let aws = AwsSettings::resolve(
        stack
            .topology
            .aws
            .endpoint
            .as_ref()
            .map(|e| e.value.as_str()),
    );
    let state_path = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    Ok(Some(Session {
        stack,
        state_path,
        backend: Arc::new(LocalBackend::new(path)),
        base_dir,
        aws,
        catalog: Arc::new(catalog),
        attempts: ATTEMPTS,
    }))
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

    /// Connects and checks that every region of the topology answers with working
    /// credentials: a dead endpoint fails here in seconds, not after minutes of retries.
    pub async fn connect_checked(&self) -> Result<Aws, Error> {
        let aws = self.connect().await;
        let regions: Vec<String> = self
            .topology()
            .regions
            .iter()
            .map(|r| r.name.value.clone())
            .collect();
        aws.check(&regions).await.map_err(|e| Error::AwsCheck {
            message: e.to_string(),
        })?;
        Ok(aws)
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
        let catalog = &self.catalog;
        let forces = |k| {
            catalog
                .provider(k)
                .map(|p| p.forces_replacement())
                .unwrap_or(&[])
        };
        Ok(plan::plan(
            &desired,
            state,
            &observed,
            &forces,
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
