//! Shared test support: the built binary, the repository root, and the local test bed.

pub mod aws;
pub mod control_plane;
pub mod stack;
pub mod testbed;

use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository root (tests run with it as the working directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real `vaultform` binary with `args`, from the repository root.
pub fn vaultform(args: &[&str]) -> Output {
    vaultform_in(&root(), args)
}

pub fn vaultform_in(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vaultform"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run vaultform")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every `.kdl` file directly inside `dir` (relative to the root), sorted.
pub fn kdl_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .map(|p| p.strip_prefix(root()).expect("under root").to_path_buf())
        .collect();
    files.sort();
    files
}

/// Runs the real binary against an emulator endpoint, with test credentials.
pub fn vaultform_aws(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    aws_command(dir, endpoint, args)
        .output()
        .expect("run vaultform")
}

/// The command line of [`vaultform_aws`], for tests that manage the process themselves.
pub fn aws_command(dir: &Path, endpoint: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vaultform"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    cmd
}

/// Every process the stack's working directory records, by its own PID.
pub fn recorded_processes(work: &Path) -> Vec<vaultform::runtime::local::process::ProcessRecord> {
    let mut out = Vec::new();
    for kind in ["members", "proxies"] {
        let Ok(dirs) = std::fs::read_dir(work.join(kind)) else {
            continue;
        };
        for d in dirs.flatten() {
            if let Ok(text) = std::fs::read(d.path().join("process.json"))
                && let Ok(rec) = serde_json::from_slice(&text)
            {
                out.push(rec);
            }
        }
    }
    // The transit server vaultform runs for a `seal "transit"`.
    if let Ok(text) = std::fs::read(work.join("seal-transit/process.json"))
        && let Ok(rec) = serde_json::from_slice(&text)
    {
        out.push(rec);
    }
    out
}
