//! State locks: who holds one (host, PID, operation, start time, ID), and whether that holder
//! is gone.

use serde::{Deserialize, Serialize};

/// What a lock records about its holder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// The holder's process start time (clock ticks since boot), to tell a reused PID apart.
    #[serde(default)]
    pub pid_start: Option<u64>,
    pub operation: String,
    pub started: String,
    #[serde(default)]
    pub who: String,
    /// The CI job this run belongs to (`GITHUB_*`, `CI_JOB_URL`, `BUILD_URL`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_job: Option<String>,
    /// When the holder's lease ends unless it renews it (S3 locks); RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires: Option<String>,
}

impl LockInfo {
    /// A lock for this process.
    pub fn for_this_process(operation: &str) -> Self {
        let pid = std::process::id();
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            host: this_host(),
            pid,
            pid_start: process_start(pid),
            operation: operation.to_string(),
            started: super::model::now(),
            who: std::env::var("USER").unwrap_or_default(),
            ci_job: ci_job(),
            lease_expires: None,
        }
    }

    /// "apply by root on host (PID 42) since ..., lock ID ...".
    pub fn describe(&self) -> String {
        let who = if self.who.is_empty() {
            String::new()
        } else {
            format!(" by {}", self.who)
        };
        let ci = self
            .ci_job
            .as_ref()
            .map(|j| format!(" in CI job {j}"))
            .unwrap_or_default();
        let lease = self
            .lease_expires
            .as_ref()
            .map(|l| format!(", lease until {l}"))
            .unwrap_or_default();
        format!(
            "{}{who} on {} (PID {}){ci} since {}{lease}, lock ID {}",
            self.operation, self.host, self.pid, self.started, self.id
        )
    }

    /// True when the holder ran on this host and its process is gone (or its PID was reused).
    pub fn is_stale(&self) -> bool {
        if self.host != this_host() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(start) => self.pid_start.is_some_and(|recorded| recorded != start),
        }
    }
}

/// The URL of the CI job running this process: GitHub Actions, GitLab CI or Jenkins.
pub fn ci_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        var("GITHUB_SERVER_URL"),
        var("GITHUB_REPOSITORY"),
        var("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    var("CI_JOB_URL").or_else(|| var("BUILD_URL"))
}

pub fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// The start time of a live process, from `/proc/<pid>/stat`; `None` when it does not exist.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 is the state (index 0 here); a zombie has exited.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// A held lock; released when dropped.
pub struct LockGuard {
    pub info: LockInfo,
    /// What a stale lock that was taken over looked like, for the user to see.
    pub took_over: Option<LockInfo>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl LockGuard {
    pub fn new(
        info: LockInfo,
        took_over: Option<LockInfo>,
        release: Box<dyn FnOnce() + Send>,
    ) -> Self {
        LockGuard {
            info,
            took_over,
            release: Some(release),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("info", &self.info)
            .finish()
    }
}
