//! Recorded state: the model, its backends (local file, S3) and locking.

pub mod envelope;
pub mod lease;
pub mod local;
pub mod lock;
pub mod model;
pub mod s3;
pub mod s3_init;

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
    #[error("state {location}: {message}")]
    #[diagnostic(
        code(vaultform::state::remote),
        help(
            "check the bucket, its region and the credentials; `vaultform init FILE` creates the bucket"
        )
    )]
    Remote { location: String, message: String },
    #[error(
        "state {location} was changed by {writer} since this run read it; nothing was overwritten"
    )]
    #[diagnostic(
        code(vaultform::state::conflict),
        help(
            "another run wrote the state behind this one's back; run the command again to plan against the new state"
        )
    )]
    Conflict { location: String, writer: String },
    #[error(
        "this run no longer holds the lock on {location}: {holder} holds it now; refusing to save"
    )]
    #[diagnostic(
        code(vaultform::state::fenced),
        help(
            "this run was paused past its lease and another run took the lock over; let that run finish, then plan again"
        )
    )]
    Fenced { location: String, holder: String },
    #[error("cannot decrypt state {location} with KMS key {key}: {message}")]
    #[diagnostic(
        code(vaultform::state::decrypt),
        help(
            "the state is encrypted client-side with the topology's `kms-key`; check that the key exists in the state's region, that these credentials may use it, and that it is the key the state was written with"
        )
    )]
    Decrypt {
        location: String,
        key: String,
        message: String,
    },
    #[error("cannot encrypt state {location} with KMS key {key}: {message}")]
    #[diagnostic(
        code(vaultform::state::encrypt),
        help(
            "the state is encrypted client-side with the topology's `kms-key`; check that the key exists in the state's region and that these credentials may use it (`vaultform init FILE` creates an alias's key)"
        )
    )]
    Encrypt {
        location: String,
        key: String,
        message: String,
    },
    #[error("the state bucket {bucket} does not exist in {region}")]
    #[diagnostic(
        code(vaultform::state::no_bucket),
        help("`vaultform init FILE` creates the state's bucket and KMS key; nothing was changed")
    )]
    NoBucket { bucket: String, region: String },
    #[error("the state's KMS key {key} does not exist in {region}")]
    #[diagnostic(
        code(vaultform::state::no_key),
        help("`vaultform init FILE` creates the state's bucket and KMS key; nothing was changed")
    )]
    NoKey { key: String, region: String },
    #[error(
        "the store behind {location} ignored a conditional write ({what}); vaultform cannot lock or save safely there"
    )]
    #[diagnostic(
        code(vaultform::state::unconditional),
        help(
            "use AWS S3 or a store that honours If-None-Match and If-Match on PutObject; nothing was changed"
        )
    )]
    Unconditional { location: String, what: String },
    #[error("saving state {location} without holding its lock")]
    #[diagnostic(code(vaultform::state::unlocked))]
    NotHolding { location: String },
    #[error("state {location} keeps no versions")]
    #[diagnostic(
        code(vaultform::state::versions),
        help(
            "versions are kept by the S3 backend (bucket versioning); a local state keeps one backup beside it"
        )
    )]
    NoVersions { location: String },
    #[error(
        "version {version} of {location} has lineage {found}; the current state has {expected}"
    )]
    #[diagnostic(
        code(vaultform::state::lineage),
        help("a version of another state cannot be restored over this one")
    )]
    Lineage {
        location: String,
        version: String,
        found: String,
        expected: String,
    },
}

/// One stored version of a state (S3 bucket versioning).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StateVersion {
    pub id: String,
    /// RFC 3339.
    pub modified: String,
    pub size: i64,
    pub latest: bool,
    /// Who wrote it and at which serial, from the object's metadata.
    pub writer: Option<String>,
    pub serial: Option<u64>,
}

/// One thing a run needs from its state backend, checked before the run starts.
#[derive(Debug)]
pub struct BackendCheck {
    /// What was checked, as people name it (`bucket team-state in eu-west-1`).
    pub subject: String,
    /// What was found, or the problem that would stop a run.
    pub result: Result<String, StateError>,
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
    /// Earlier versions of the state, newest first.
    async fn versions(&self) -> Result<Vec<StateVersion>, StateError> {
        Err(StateError::NoVersions {
            location: self.describe(),
        })
    }
    /// One earlier version.
    async fn load_version(&self, _version: &str) -> Result<State, StateError> {
        Err(StateError::NoVersions {
            location: self.describe(),
        })
    }
    /// What a run needs from this backend, each checked (a remote backend's bucket and key;
    /// with `writes`, that it honours conditional writes and who holds the lock). A local
    /// file needs nothing checked beforehand.
    async fn check(&self, _writes: bool) -> Vec<BackendCheck> {
        Vec::new()
    }
    /// Requests this backend sent, per service (remote backends).
    fn api_calls(&self) -> std::collections::BTreeMap<String, u64> {
        Default::default()
    }
}
