//! The errors that stop a command before it can report anything finer: one type for every
//! layer above the engine, mapped to an exit code by `main` alone.

/// Errors that stop a command before it can report anything finer.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    #[error("cannot read {path}")]
    #[diagnostic(code(vaultform::io))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    #[diagnostic(code(vaultform::io))]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Prices(#[from] crate::cost::PricesError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    TimeScale(#[from] crate::lifecycle::TimeScaleError),
    #[error("the state backend {location} is not ready: {problems}")]
    #[diagnostic(code(vaultform::state::backend), help("{help}"))]
    StateBackend {
        location: String,
        problems: String,
        help: String,
    },
    #[error("this build cannot create these resource kinds yet: {kinds}")]
    #[diagnostic(
        code(vaultform::unsupported),
        help(
            "a transit seal server that vaultform runs itself exists on the local runtime only; `--target ADDRESS` plans the rest, and `vaultform graph FILE` lists the addresses"
        )
    )]
    Unsupported { kinds: String },
    #[error("refresh failed: {message}")]
    #[diagnostic(
        code(vaultform::refresh),
        help(
            "check AWS credentials and the endpoint; `--refresh=false` plans from the recorded state alone"
        )
    )]
    Refresh { message: String },
    #[error("{message}")]
    #[diagnostic(
        code(vaultform::aws::unreachable),
        help(
            "check the endpoint (AWS_ENDPOINT_URL or the topology's `aws endpoint=`), the network, and the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...); nothing was changed"
        )
    )]
    AwsCheck { message: String },
    #[error("{message}")]
    #[diagnostic(code(vaultform::vault), help("{help}"))]
    Vault { message: String, help: String },
    #[error("refusing to {what} without confirmation: standard input is not a terminal")]
    #[diagnostic(
        code(vaultform::confirm),
        help("pass --auto-approve to run without asking")
    )]
    NoConfirmation { what: String },
    #[error(
        "the plan {path} is stale: it was made against state {planned}, the state is now {current}"
    )]
    #[diagnostic(
        code(vaultform::plan::stale),
        help("run `vaultform plan --out` again and apply the new plan")
    )]
    StalePlan {
        path: String,
        planned: String,
        current: String,
    },
    #[error("{message}")]
    #[diagnostic(code(vaultform::usage), help("{help}"))]
    Usage { message: String, help: String },
    #[error("{message}")]
    #[diagnostic(code(vaultform::kube), help("{help}"))]
    Kube { message: String, help: String },
    #[error("the topology has no EKS cluster named {name:?}")]
    #[diagnostic(code(vaultform::eks::unknown), help("the clusters are: {known}"))]
    UnknownCluster { name: String, known: String },
    #[error("{address} is not in the state")]
    #[diagnostic(
        code(vaultform::state::address),
        help("`vaultform state list FILE` shows the recorded addresses")
    )]
    NotInState { address: String },
    #[error("--ttl {message}")]
    #[diagnostic(
        code(vaultform::ttl),
        help("give a number and a unit: s, m, h or d (`--ttl 8h`, `--ttl 1h30m`)")
    )]
    Ttl { message: String },
    #[error("sweep failed: {message}")]
    #[diagnostic(
        code(vaultform::sweep),
        help(
            "check AWS credentials and the endpoint; the credentials need the List/Describe permissions of every service vaultform uses (EC2, EKS, ELB, KMS, S3, IAM)"
        )
    )]
    Sweep { message: String },
}
