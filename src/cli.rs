//! Command-line flags, as clap parses them: raw values, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Stand up and tear down multi-region Vault / OpenBao clusters on AWS from one topology file.
#[derive(Debug, Parser)]
#[command(name = "vaultform", version, about, propagate_version = true)]
pub struct Cli {
    /// When to colour output; `auto` colours each of stdout and stderr that is a terminal,
    /// unless NO_COLOR is set.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = ColorChoice::Auto,
        help_heading = "Global options"
    )]
    pub color: ColorChoice,

    /// Log more of what vaultform does: -v info, -vv debug (every AWS and Vault call), -vvv
    /// trace.
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "log_level",
        help_heading = "Global options"
    )]
    pub verbose: u8,

    /// Log vaultform's messages from LEVEL up; wins over VAULTFORM_LOG, a filter such as
    /// `debug` or `vaultform::aws=debug`. Default: warnings only.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "LEVEL",
        help_heading = "Global options"
    )]
    pub log_level: Option<LogLevel>,

    /// Append the log to PATH (created with mode 0600) instead of stderr.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a topology file and report every problem in it.
    Validate {
        /// The topology file (KDL).
        file: PathBuf,
    },
    /// Print the dependency graph of a topology.
    Graph {
        /// The topology file (KDL).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Rewrite topology files in canonical form, keeping comments.
    Fmt {
        /// The topology files (KDL).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; exit 1 when a file would change.
        #[arg(long)]
        check: bool,
    },
    /// Show what apply would change: refreshes the recorded resources, then diffs.
    Plan {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        output: PlanOutputArgs,
    },
    /// Create, update and delete resources so that they match the topology.
    Apply {
        /// A topology file, or a plan file saved by `plan --out`.
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Delete every resource the state records, in reverse dependency order.
    Destroy {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        plan: PlanArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Read the recorded state.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print the outputs of the recorded resources (names, ARNs, endpoints) as JSON.
    Output {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show each Vault member: role, sealed, voter, leader, raft index, load balancers' view.
    /// Exits 1 when a cluster is degraded.
    Status {
        /// The topology file (KDL).
        file: PathBuf,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Unseal every sealed member from the unseal store (starting stopped local members).
    Unseal {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Resilience drills against a running cluster.
    Drill {
        #[command(subcommand)]
        command: DrillCommand,
    },
    /// Raft snapshots of a running cluster.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// Write a kubeconfig for the stack's EKS clusters, authenticating with `vaultform
    /// eks-token` (no aws CLI needed).
    Kubeconfig {
        /// The topology file (KDL).
        file: PathBuf,
        /// Only this cluster (default: every cluster of the topology).
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
        /// Write it to PATH (mode 0600) instead of stdout.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Print an EKS bearer token as a kubectl exec credential (ExecCredential JSON).
    EksToken {
        /// The EKS cluster's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The cluster's AWS region.
        #[arg(long, value_name = "REGION")]
        region: String,
    },
    /// Remove a state lock left behind by a run that is gone.
    ForceUnlock {
        /// The topology file (KDL).
        file: PathBuf,
        /// The lock ID, as the lock error shows it.
        lock_id: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Take the leader away, measure until the front endpoint serves a new active node,
    /// then restore the old member.
    Failover {
        /// The topology file (KDL).
        file: PathBuf,
        /// How to take the leader away.
        #[arg(long, value_enum, default_value_t = DrillMethod::Kill)]
        method: DrillMethod,
        /// One JSON object with the figures, on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Lose a whole region (its members and load balancers, local runtime), measure until the
    /// front endpoint serves from the other regions, then restore the region.
    RegionLoss {
        /// The topology file (KDL).
        file: PathBuf,
        /// The region to lose.
        #[arg(long)]
        region: String,
        /// One JSON object with the figures, on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a raft snapshot of the cluster to PATH (mode 0600).
    Save {
        /// The topology file (KDL).
        file: PathBuf,
        /// Where to write the snapshot.
        #[arg(value_name = "PATH")]
        snapshot: PathBuf,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Restore the cluster from a raft snapshot.
    Restore {
        /// The topology file (KDL).
        file: PathBuf,
        /// The snapshot to restore.
        #[arg(value_name = "PATH")]
        snapshot: PathBuf,
        /// Restore a snapshot taken from another cluster (snapshot-force).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List the recorded addresses.
    List {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one recorded resource.
    Show {
        /// The topology file (KDL).
        file: PathBuf,
        /// The resource's address, as `state list` prints it.
        address: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// Which Vault cluster a command acts on, when the topology has several.
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// The Vault cluster's name (needed when the topology declares more than one).
    #[arg(long = "vault", value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// The state file (default: the topology's `state`, or `.vaultform/<stack>.state.json`
    /// beside the topology).
    #[arg(long = "state", value_name = "PATH")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Read the actual state of recorded resources first (`--refresh=false` skips it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub refresh: bool,
    /// Only this address and what it depends on (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Replace this resource even if it is unchanged (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub replace: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlanOutputArgs {
    /// Save the plan; `vaultform apply PLANFILE` applies exactly it.
    #[arg(long, value_name = "PLANFILE")]
    pub out: Option<PathBuf>,
    /// Plan the destruction of everything recorded.
    #[arg(long)]
    pub destroy: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// One JSON object per event on stdout, for pipelines.
    #[arg(long)]
    pub json: bool,
    /// Operations at once per AWS service and region.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub parallelism: usize,
}

/// Output format of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// How `drill failover` takes the leader away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillMethod {
    /// SIGKILL the leader's server: a crash or the loss of its region.
    Kill,
    /// SIGTERM: a clean shutdown.
    Stop,
    /// `sys/step-down`: the leader stays up as a standby.
    StepDown,
}
