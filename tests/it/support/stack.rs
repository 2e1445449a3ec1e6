//! A topology from `tests/fixtures/clusters/` applied for real (moto, OpenBao, HAProxy) in a
//! directory of its own: the binary run against it with everything it prints kept, the
//! stack's processes stopped by PID when dropped, and its secrets read back from the store.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::testbed::{Moto, bin_dir};
use super::{recorded_processes, root, stderr, stdout};
use vaultform::runtime::local::process::{self, ProcessRecord};
use vaultform::vault::store::{Keys, StoreBucket, UnsealStore};

pub struct LocalStack {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    /// The topology file's name inside `dir`.
    pub file: String,
    /// The stack's local runtime directory (its members and proxies).
    pub work: PathBuf,
    /// Everything the binary printed, for the leak checks.
    pub transcript: RefCell<String>,
    seen: RefCell<Vec<ProcessRecord>>,
    /// The AWS access key the binary runs with (moto's default `test` unless IAM is enforced).
    credentials: (String, String),
}

impl LocalStack {
    /// Copies `tests/fixtures/clusters/<fixture>` into a new directory; nothing applied yet.
    /// `work` is the topology's `work-dir`, relative to the file.
    pub fn new(fixture: &str, work: &str) -> LocalStack {
        Self::on(Moto::start(), ("test", "test"), fixture, work)
    }

    /// The same on a given moto, the binary running with access key `credentials`.
    pub fn on(moto: Moto, credentials: (&str, &str), fixture: &str, work: &str) -> LocalStack {
        let dir = tempfile::tempdir().unwrap();
        let text =
            std::fs::read_to_string(root().join("tests/fixtures/clusters").join(fixture)).unwrap();
        std::fs::write(dir.path().join(fixture), text).unwrap();
        let work = dir.path().join(work);
        LocalStack {
            moto,
            dir,
            file: fixture.to_string(),
            work,
            transcript: RefCell::default(),
            seen: RefCell::default(),
            credentials: (credentials.0.to_string(), credentials.1.to_string()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// PATH with the test bed first: `bao`, `haproxy`'s directories, then the caller's.
    pub fn search_path() -> String {
        format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The binary with the AWS settings of this stack's moto, in its directory, with the
    /// caller's Vault variables removed; nothing recorded yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vaultform"));
        cmd.args(args)
            .current_dir(self.path())
            .env("PATH", Self::search_path());
        self.aws_env(&mut cmd);
        cmd
    }

    /// This stack's AWS settings (its moto, test credentials) on `cmd`, without colour and
    /// without the caller's AWS profile or Vault variables.
    pub fn aws_env(&self, cmd: &mut Command) {
        cmd.env("NO_COLOR", "1")
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", &self.credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.credentials.1)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
        for v in [
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_CACERT",
            "BAO_ADDR",
            "BAO_TOKEN",
            "BAO_CACERT",
        ] {
            cmd.env_remove(v);
        }
    }

    /// Records what a command printed for the leak checks, and what the stack started.
    pub fn record(&self, out: &Output) {
        let mut t = self.transcript.borrow_mut();
        t.push_str(&stdout(out));
        t.push_str(&stderr(out));
        drop(t);
        self.remember();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run vaultform");
        self.record(&out);
        out
    }

    /// Runs and expects exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "vaultform {args:?}\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    pub fn apply(&self) -> String {
        self.ok(&["apply", &self.file, "--auto-approve"])
    }

    fn remember(&self) {
        let mut seen = self.seen.borrow_mut();
        for r in recorded_processes(&self.work) {
            if !seen.contains(&r) {
                seen.push(r);
            }
        }
    }

    pub fn state(&self, state_file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path().join(state_file)).expect("state");
        serde_json::from_str(&text).unwrap()
    }

    /// The unseal store of Vault cluster `vault` as the test reads it back: buckets by
    /// (region, bucket, key address) with the key ARNs from the state.
    pub fn store(
        &self,
        state_file: &str,
        stack: &str,
        vault: &str,
        buckets: &[(&str, &str, &str)],
        prefix: &str,
        threshold: usize,
    ) -> UnsealStore {
        let state = self.state(state_file);
        let buckets = buckets
            .iter()
            .map(|(region, bucket, key)| StoreBucket {
                region: region.to_string(),
                bucket: bucket.to_string(),
                key: state["resources"][format!("region.{region}.key.{key}")]["outputs"]["arn"]
                    .as_str()
                    .expect("the key's ARN in the state")
                    .to_string(),
            })
            .collect();
        UnsealStore::new(stack, vault, &BTreeMap::new(), buckets, prefix, threshold)
    }

    /// The secrets in the store, read in the test (never through the binary).
    pub fn keys(&self, store: &UnsealStore) -> Keys {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let aws = crate::unseal_store::aws_for(&self.moto.endpoint()).await;
            store.load(&aws).await.expect("keys in the store").0
        })
    }

    /// Fails when `secret` appears in anything the binary printed or in `extra`.
    pub fn assert_absent(&self, secret: &str, extra: &[(&str, &str)]) {
        assert!(secret.len() >= 16, "a real secret");
        assert!(
            !self.transcript.borrow().contains(secret),
            "a secret leaked into vaultform's output"
        );
        for (name, text) in extra {
            assert!(!text.contains(secret), "a secret leaked into {name}");
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.remember();
        for r in self.seen.borrow().iter() {
            process::kill(r);
        }
    }
}
