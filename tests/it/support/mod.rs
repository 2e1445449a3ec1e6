//! Shared test support: the built binary, the repository root, and the local test bed.

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
