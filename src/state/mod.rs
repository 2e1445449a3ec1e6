//! Recorded state: the model, its backends (local file; S3 later) and locking.

pub mod local;
pub mod lock;
pub mod model;

pub use lock::{LockGuard, LockInfo};
pub use model::{ResourceState, State, Status};

/// Errors reading, writing or locking state.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    #[error("cannot read state {path}")]
    #[diagnostic(code(vaultform::state::read))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state {path} is not valid vaultform state")]
    #[diagnostic(
        code(vaultform::state::corrupt),
        help("the previous version is kept beside it as {path}.backup")
    )]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("state {path} has format version {found}; this vaultform reads version {expected}")]
    #[diagnostic(code(vaultform::state::version))]
    Version {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("cannot write state {path}")]
    #[diagnostic(code(vaultform::state::write))]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the state is locked by {holder}")]
    #[diagnostic(
        code(vaultform::state::locked),
        help(
            "wait for that run to finish; if it is gone for good, run `vaultform force-unlock {id}`"
        )
    )]
    Locked { holder: String, id: String },
    #[error("no lock with ID {id} is held (current: {current})")]
    #[diagnostic(code(vaultform::state::unlock))]
    NotLocked { id: String, current: String },
    #[error("state {path} belongs to stack \"{found}\", not \"{expected}\"")]
    #[diagnostic(
        code(vaultform::state::stack),
        help("each stack needs its own state; choose another path with --state")
    )]
    WrongStack {
        path: String,
        found: String,
        expected: String,
    },
}

/// Where state lives. Implemented by the local file backend; the S3 backend plugs in here.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// A human description (`path` or `s3://bucket/key`).
    fn describe(&self) -> String;
    /// The recorded state, or `None` when there is none yet.
    async fn load(&self) -> Result<Option<State>, StateError>;
    /// Writes the state atomically, keeping the previous version as a backup.
    async fn save(&self, state: &State) -> Result<(), StateError>;
    /// Takes the lock for `operation`, or says who holds it.
    async fn lock(&self, operation: &str) -> Result<LockGuard, StateError>;
    /// Removes the lock with this ID, whoever holds it.
    async fn force_unlock(&self, id: &str) -> Result<LockInfo, StateError>;
}
