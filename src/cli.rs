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

    /// Set the topology variable NAME (`${NAME}` in the topology) to VALUE; repeatable. Wins
    /// over the environment's VAULTFORM_VAR_NAME.
    #[arg(
        long = "var",
        global = true,
        value_name = "NAME=VALUE",
        value_parser = crate::topology::vars::parse_assignment,
        help_heading = "Global options"
    )]
    pub vars: Vec<(String, String)>,

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
        /// Tag every resource to expire this long from now (`8h`, `90m`, `2d`): `vaultform
        /// expired --destroy` destroys the stack after that. On a live stack, extends it.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
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
    /// Find what carries the stack's tags but its state does not record; `--delete` removes it.
    ///
    /// Searches every region of the topology (or `--regions`): VPCs and their pieces, network
    /// interfaces, EBS volumes, EKS clusters and node groups, load balancers, target groups and
    /// listeners, KMS keys, S3 buckets, IAM roles and OIDC providers, and the local runtime's
    /// servers and proxies under its work-dir.
    Sweep(SweepArgs),
    /// List the stacks past their expiry, found by their tags alone; `--destroy` destroys them.
    ///
    /// No topology file is needed: every resource of an expiring stack carries
    /// `vaultform:expires-at` and `vaultform:state` (set by `expires-after` in the topology or
    /// `apply --ttl`). A stack is destroyed through the state file its tag names, then swept of
    /// whatever that state did not record (everything, when the state is gone).
    Expired(ExpiredArgs),

    /// Create the topology's S3 state bucket (versioning, SSE-KMS, public access blocked,
    /// TLS-only policy) and its KMS key, when missing. Idempotent.
    Init {
        /// The topology file (KDL).
        file: PathBuf,
    },
    /// Check, in one pass and without changing anything, what a run of the topology needs:
    /// the AWS identity per region, the state backend, the local binaries and addresses, the
    /// EKS clusters' Kubernetes APIs. Exit 1 when something would stop an apply.
    Doctor {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
        /// Print the checks as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print `export VAULT_ADDR=... BAO_ADDR=...` for a cluster's front endpoint, for
    /// `eval "$(vaultform env FILE)"`.
    Env {
        /// The topology file (KDL).
        file: PathBuf,
        /// One JSON object on stdout instead of `export` lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Make a short-lived, non-root token with the stored root token and print it once; the
    /// root token itself is never shown.
    Login {
        /// The topology file (KDL).
        file: PathBuf,
        /// How long the token lives; it cannot be renewed past it (90s, 15m, 1h, 1h30m).
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        ttl: String,
        /// A policy of the token (repeatable; `default` when none is given; never `root`).
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Allow a policy that grants `sudo` (root-protected paths: seal, raft, rekey, ...);
        /// without it such a policy is refused.
        #[arg(long)]
        allow_sudo: bool,
        /// Write the token to ~/.vault-token (mode 0600), where the vault and bao CLIs look
        /// for it, and print only where it went.
        #[arg(long)]
        token_helper: bool,
        /// One JSON object on stdout with the token and its expiry.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        vault: VaultArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Print a shell's completion script for vaultform.
    ///
    /// For example `vaultform completions bash >
    /// ~/.local/share/bash-completion/completions/vaultform`, or
    /// `vaultform completions zsh > "${fpath[1]}/_vaultform"`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): vaultform's, or a command's.
    ///
    /// `vaultform man | man -l -` reads it; `vaultform man drill failover` is the page
    /// vaultform-drill-failover(1).
    Man {
        /// The command whose page to print (none: vaultform's own page).
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
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
    /// Take the leader away, measure until the front endpoint serves a new active node (on
    /// Kubernetes: the leader's pod deleted, until the other members name a new leader),
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
    /// Lose a whole region (its members and load balancers on the local runtime, its
    /// StatefulSets scaled to 0 on Kubernetes), measure until the other regions serve, then
    /// restore the region.
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
    /// Print the whole current state as JSON (decrypted).
    Pull {
        /// The topology file (KDL).
        file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the stored versions of the state, newest first (S3 bucket versioning).
    Versions {
        /// The topology file (KDL).
        file: PathBuf,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Bring back an earlier version of the state as the newest one (same lineage only).
    Restore {
        /// The topology file (KDL).
        file: PathBuf,
        /// The version ID, as `state versions` lists it.
        #[arg(value_name = "VERSION")]
        version_id: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Copy the state to the backend another topology file names (local <-> S3), holding
    /// both locks.
    Migrate {
        /// The topology file (KDL) whose state is copied.
        file: PathBuf,
        /// The topology file naming the target backend (same stack).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
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
    /// Itemize the cost even when nothing changes (a plan that changes something always
    /// does; an unchanged one prints its total on one line).
    #[arg(long)]
    pub cost: bool,
    /// Price the plan with this price table instead of the shipped one (the format of
    /// src/cost/prices.json).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
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
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct LockArgs {
    /// Wait up to DURATION (`30s`, `5m`) for a state lock another run holds, instead of
    /// failing at once.
    #[arg(long, value_name = "DURATION", value_parser = crate::state::lease::parse_duration)]
    pub lock_timeout: Option<std::time::Duration>,
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

/// `sweep`: a topology file, or a stack name and its regions.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// The topology file (KDL); or give `--stack` and `--regions` (or `--all-regions`).
    #[arg(required_unless_present = "stack", conflicts_with = "stack")]
    pub file: Option<PathBuf>,
    /// The stack's name, without a topology file (then nothing is recorded but what `--state`
    /// holds).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// The regions to search (default: the topology's), comma-separated.
    #[arg(long, value_name = "REGION,...", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Search every region enabled for the account (EC2 DescribeRegions).
    #[arg(long, conflicts_with = "regions")]
    pub all_regions: bool,
    /// Delete what was found, in dependency order, after confirmation.
    #[arg(long)]
    pub delete: bool,
    /// Do not ask for confirmation.
    #[arg(long, requires = "delete")]
    pub auto_approve: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `expired`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExpiredArgs {
    /// The regions to search, comma-separated (default: every region enabled for the account).
    #[arg(long, value_name = "REGION,...", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Destroy the stacks past their expiry, after confirmation.
    #[arg(long)]
    pub destroy: bool,
    /// Do not ask for confirmation.
    #[arg(long, requires = "destroy")]
    pub auto_approve: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}
