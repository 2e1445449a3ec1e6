//! Detached local processes that outlive the CLI: started in their own session with their
//! output in a log file, recorded by PID, process start time and command line, and only ever
//! signalled after checking that the recorded PID is still that same process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::{Backoff, poll};
use crate::state::lock::process_start;

/// What state records about a process it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Clock ticks since boot, from `/proc/<pid>/stat`: tells a reused PID apart.
    pub start_time: u64,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub log: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} (PID {pid}) exited at once; see {log}")]
    Exited {
        program: String,
        pid: u32,
        log: String,
    },
    #[error("PID {pid} did not stop after SIGTERM and SIGKILL")]
    Stuck { pid: u32 },
}

/// The only variables a started server or proxy inherits: what finding programs, locale and
/// temporary files need. Never AWS credentials, `VAULT_*`/`BAO_*` or anything else of the
/// caller's: the processes outlive the CLI and would hold them for their whole lives.
pub const CHILD_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// Starts `program` detached: its own session, stdin closed, stdout and stderr appended to
/// `log` (created readable by its owner only), the environment cleared but for [`CHILD_ENV`].
/// Returns once it is running.
pub fn spawn_detached(
    program: &Path,
    args: &[String],
    log: &Path,
    dir: &Path,
) -> Result<ProcessRecord, ProcessError> {
    use std::os::unix::process::CommandExt;
    let name = program.display().to_string();
    let spawn_err = |source| ProcessError::Spawn {
        program: name.clone(),
        source,
    };
    if let Some(parent) = log.parent() {
        crate::private::create_dir_all(parent).map_err(spawn_err)?;
    }
    let out = crate::private::append(log).map_err(spawn_err)?;
    let err = out.try_clone().map_err(spawn_err)?;
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear();
    for key in CHILD_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // A session of its own: no terminal signal (Ctrl-C of the CLI) reaches it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    let pid = child.id();
    // The child is not waited for: it outlives us (init reaps it).
    std::mem::forget(child);
    let start_time = process_start(pid).ok_or_else(|| ProcessError::Exited {
        program: name.clone(),
        pid,
        log: log.display().to_string(),
    })?;
    let mut command = vec![name];
    command.extend(args.iter().cloned());
    Ok(ProcessRecord {
        pid,
        start_time,
        command,
        log: log.to_path_buf(),
    })
}

/// How a process this CLI started ended: its exit status or the signal that killed it, read
/// by reaping it (it is our child while the CLI runs); "exited" when that cannot be told.
pub fn exit_of(pid: u32) -> String {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match waitpid(
        nix::unistd::Pid::from_raw(pid as i32),
        Some(WaitPidFlag::WNOHANG),
    ) {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, signal, _)) => format!("was killed by {signal}"),
        _ => "exited".to_string(),
    }
}

/// The command line of a live process, from `/proc/<pid>/cmdline`.
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Live processes running `program` with an argument naming a file under `dir` (`FILE` or
/// `-opt=FILE`): what a run killed between starting a process and recording it left running.
/// `dir` is one of vaultform's own (a member's or a proxy's), so they are ours.
pub fn find_under(dir: &Path, program: &str, log: &Path) -> Vec<ProcessRecord> {
    let prefix = format!("{}/", dir.display());
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let names_file = |a: &String| {
        a.starts_with(&prefix)
            || a.split_once('=')
                .is_some_and(|(_, v)| v.starts_with(&prefix))
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<ProcessRecord> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if pid == std::process::id() {
                return None;
            }
            let command = cmdline(pid)?;
            let runs = command.iter().take(2).any(|c| base(c) == base(program));
            if !runs || !command.iter().skip(1).any(names_file) {
                return None;
            }
            Some(ProcessRecord {
                pid,
                start_time: process_start(pid)?,
                command,
                log: log.to_path_buf(),
            })
        })
        .collect();
    found.sort_by_key(|r| r.pid);
    found
}

/// Whether the recorded process is running now: same PID, same start time, same program.
pub fn is_running(r: &ProcessRecord) -> bool {
    if process_start(r.pid) != Some(r.start_time) {
        return false;
    }
    // The program, or a script run by its interpreter (the PyPI `bao` wrapper execs the real
    // binary: the same PID shows `python3 .../bao` first, then `.../bin/bao`).
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    match (cmdline(r.pid), r.command.first()) {
        // Between the two programs: during an exec the kernel shows an empty command line
        // for a moment. The start time matched and a zombie has none, so it is alive
        // (regression: a member "exited; its log is empty" while its wrapper exec'd bao).
        (Some(live), Some(_)) if live.is_empty() => true,
        (Some(live), Some(program)) => live
            .iter()
            .take(2)
            .any(|p| p == program || base(p) == base(program)),
        _ => false,
    }
}

/// SIGKILLs the recorded process at once (a crash, for drills), if it is still that process.
pub fn kill(r: &ProcessRecord) {
    if is_running(r) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(r.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Stops the recorded process if it is still that process: SIGTERM, then SIGKILL after
/// `grace`. A process that is gone, or a PID now used by another process, is left alone.
pub async fn stop(r: &ProcessRecord, grace: Duration) -> Result<(), ProcessError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if !is_running(r) {
        return Ok(());
    }
    let pid = Pid::from_raw(r.pid as i32);
    let gone = || async {
        if is_running(r) {
            Err("still running".to_string())
        } else {
            Ok(())
        }
    };
    let _ = kill(pid, Signal::SIGTERM);
    let term = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(200));
    if poll(term.deadline(grace), "the process to exit", gone)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let _ = kill(pid, Signal::SIGKILL);
    let killed = Backoff::fixed(Duration::from_millis(20)).deadline(Duration::from_secs(1));
    poll(killed, "the process to die", gone)
        .await
        .map_err(|_| ProcessError::Stuck { pid: r.pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run killed between starting a process and writing its record left it running: it is
    /// found by its command line naming a file under the directory, and only there.
    #[test]
    fn an_unrecorded_process_is_found_by_the_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let member = dir.path().join("members/vault-0");
        std::fs::create_dir_all(&member).unwrap();
        // A shell builtin waiting on a pipe: one process whose arguments name the file.
        let mut child = std::process::Command::new("bash")
            .args(["-c", "read -t 30", "bao"])
            .arg(format!("-config={}", member.join("server.hcl").display()))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = member.join("server.log");
        // Right after the exec the kernel may show an empty command line for a moment.
        for _ in 0..500 {
            if cmdline(child.id()).is_some_and(|c| !c.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let found = find_under(&member, "bash", &log);
        let pids: Vec<u32> = found.iter().map(|r| r.pid).collect();
        let other_program = find_under(&member, "haproxy", &log);
        let other_dir = find_under(&dir.path().join("members/vault-1"), "bash", &log);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(pids, vec![child.id()]);
        assert!(other_program.is_empty(), "{other_program:?}");
        assert!(other_dir.is_empty(), "{other_dir:?}");
    }
}
