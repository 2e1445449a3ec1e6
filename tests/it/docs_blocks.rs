//! The shell blocks of README.md and docs/*.md, as a user pastes them. Each block either runs
//! here, as written, against the demo's cluster (`topologies/local.kdl` applied in moto, the
//! blocks run by bash from a directory holding a copy of `topologies/`, in the order of the
//! files, README.md first, each to exit 0), or says in the comment just above it why it does
//! not (`<!-- not run: a real AWS account -->`): a block with neither fails, and so does a
//! block that stops working. A block of the repository's own scripts (`scripts/...`) runs
//! from the repository's root with the reader's home, where its reader stands; the others
//! with a home of their own (what they write there stays in the test's directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::testbed::{Moto, bin_dir};
use crate::support::{aws_command, recorded_processes, root, stderr, stdout};
use vaultform::runtime::local::process;

/// One fenced shell block.
#[derive(Debug)]
struct Block {
    file: String,
    /// The line of its opening fence, 1-based.
    line: usize,
    body: String,
    /// Why it is not run, when the comment above it says so.
    not_run: Option<String>,
}

/// The files whose blocks a user pastes: README.md, then docs/*.md in name order.
fn files() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut all = vec![root().join("README.md")];
    all.extend(docs);
    all
}

/// The shell blocks of `text` (`sh`, `bash`, `shell`), or what is wrong with its fences.
fn blocks(file: &str, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .ok_or_else(|| format!("{file}:{}: a fence that is never closed", start + 1))?;
        if matches!(info.trim(), "sh" | "bash" | "shell") {
            let above = lines[..start]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or_default();
            let not_run = above
                .trim()
                .strip_prefix("<!-- not run:")
                .and_then(|r| r.strip_suffix("-->"))
                .map(|r| r.trim().to_string());
            out.push(Block {
                file: file.to_string(),
                line: start + 1,
                body: lines[start + 1..end].join("\n"),
                not_run,
            });
        }
        i = end + 1;
    }
    Ok(out)
}

fn all_blocks() -> Vec<Block> {
    let mut all = Vec::new();
    for f in files() {
        let name = f.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        all.extend(blocks(&name, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    all
}

#[test]
fn the_reader_finds_blocks_their_reasons_and_unclosed_fences() {
    let text = "a\n```sh\necho 1\n```\n\n<!-- not run: a real AWS account -->\n\n```bash\naws s3 ls\n```\n```kdl\nx\n```\n";
    let b = blocks("t.md", text).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].line, b[0].body.as_str(), &b[0].not_run),
        (2, "echo 1", &None)
    );
    assert_eq!(b[1].not_run.as_deref(), Some("a real AWS account"));
    let err = blocks("t.md", "```sh\necho 1\n").unwrap_err();
    assert!(err.contains("t.md:1"), "{err}");
}

/// Every block runs, or says why not: a reason of its own, not an empty one.
#[test]
fn every_shell_block_runs_or_says_why_not() {
    let all = all_blocks();
    assert!(all.len() >= 30, "{} blocks", all.len());
    for b in &all {
        if let Some(why) = &b.not_run {
            assert!(
                why.len() >= 10,
                "{}:{}: say why it is not run",
                b.file,
                b.line
            );
        }
    }
    let run = all.iter().filter(|b| b.not_run.is_none()).count();
    assert!(run >= 10, "only {run} blocks run");
}

/// The demo's cluster, stopped (processes by PID, AWS through destroy) when dropped.
struct Demo {
    dir: tempfile::TempDir,
    moto: Moto,
}

impl Demo {
    fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("topologies")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::copy(
            root().join("topologies/local.kdl"),
            dir.path().join("topologies/local.kdl"),
        )
        .unwrap();
        let demo = Demo {
            dir,
            moto: Moto::start(),
        };
        // What scripts/demo does.
        let out = demo
            .command(&["apply", "topologies/local.kdl", "--auto-approve"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "apply: {}", stderr(&out));
        demo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self, cmd: &mut Command) {
        let vaultform_dir = Path::new(env!("CARGO_BIN_EXE_vaultform")).parent().unwrap();
        cmd.current_dir(self.path())
            .env(
                "PATH",
                format!(
                    "{}:{}:{}",
                    vaultform_dir.display(),
                    bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", self.path().join("home"))
            .env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = aws_command(self.path(), &self.moto.endpoint(), args);
        self.env(&mut cmd);
        cmd
    }

    /// The block run by bash as a user's shell would run it pasted, stopping at the first
    /// command that fails.
    fn run(&self, b: &Block) {
        let mut cmd = Command::new("bash");
        cmd.args(["-e", "-o", "pipefail", "-c", &b.body])
            .stdin(Stdio::null());
        self.env(&mut cmd);
        if b.body.starts_with("scripts/") {
            // With the reader's own home: the Kubernetes build's cache is under it.
            cmd.current_dir(root());
            if let Some(home) = std::env::var_os("HOME") {
                cmd.env("HOME", home);
            }
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}:{}: the block fails as written:\n{}\n--- stdout:\n{}\n--- stderr:\n{}",
            b.file,
            b.line,
            b.body,
            stdout(&out),
            stderr(&out)
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self
            .command(&["destroy", "topologies/local.kdl", "--auto-approve"])
            .output();
        for r in recorded_processes(&self.path().join("topologies/.vaultform/bv-local")) {
            process::kill(&r);
        }
    }
}

#[test]
fn every_block_that_is_run_works_as_written_against_the_demos_cluster() {
    let demo = Demo::start();
    for b in all_blocks().iter().filter(|b| b.not_run.is_none()) {
        let started = std::time::Instant::now();
        demo.run(b);
        eprintln!("{}:{}: ok in {:.1?}", b.file, b.line, started.elapsed());
    }
}
