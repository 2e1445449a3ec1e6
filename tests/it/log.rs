//! Debug logging: one line per AWS call with `VAULTFORM_LOG`, the log file, the error code of a
//! failed call, and what is never logged (bodies, headers, tokens, query strings).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::support::testbed::{Moto, bin_dir};
use crate::support::{aws_command, root, stderr, stdout};

/// A KMS key and a bucket of `topologies/local.kdl` applied into `moto`, recorded in
/// `dir/state.json`: something for a plan to refresh.
fn applied(moto: &Moto, dir: &Path) -> String {
    let state = dir.join("state.json").display().to_string();
    let out = aws_command(
        &root(),
        &moto.endpoint(),
        &[
            "apply",
            "topologies/local.kdl",
            "--state",
            &state,
            "--auto-approve",
            "--target",
            "region.eu-west-1.bucket.bv-local-unseal-eu-west-1",
        ],
    )
    .output()
    .expect("run vaultform");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    state
}

/// "AWS API calls: kms 4, s3 5." -> {kms: 4, s3: 5}.
fn api_calls(err: &str) -> BTreeMap<String, usize> {
    let line = err
        .lines()
        .find_map(|l| l.split_once("AWS API calls: ").map(|(_, calls)| calls))
        .unwrap_or_else(|| panic!("no call counts in {err}"));
    line.trim_end_matches('.')
        .split(", ")
        .map(|c| {
            let (service, n) = c.split_once(' ').expect("SERVICE N");
            (service.to_string(), n.parse().expect("a count"))
        })
        .collect()
}

/// The log lines about AWS calls, by service.
fn call_lines(log: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        // After the target: a test's own logger prints the SDK's spans (`rpc.service=`) first.
        let Some((_, event)) = line.split_once(" vaultform::aws: ") else {
            continue;
        };
        let service = event
            .split_once(" service=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| panic!("no service in {line}"));
        out.entry(service).or_default().push(line.to_string());
    }
    out
}

fn assert_call_line(line: &str) {
    assert!(line.contains(" DEBUG "), "{line}");
    assert!(line.contains(" operation=\""), "{line}");
    assert!(line.contains(" region=\""), "{line}");
    assert!(line.contains(" status="), "{line}");
    let ms = line
        .split_once(" ms=")
        .map(|(_, rest)| rest.split(' ').next().unwrap_or_default())
        .unwrap_or_default();
    assert!(ms.parse::<u64>().is_ok(), "no duration in {line}");
}

/// What must never reach a log: signatures, credentials, header values, bodies.
fn assert_nothing_secret(log: &str) {
    for needle in [
        "Signature=",
        "Credential=",
        "authorization",
        "x-amz-date",
        "<?xml",
    ] {
        assert!(
            !log.to_lowercase().contains(&needle.to_lowercase()),
            "{needle} in the log:\n{log}"
        );
    }
}

#[test]
fn vaultform_log_debug_logs_one_line_per_aws_call() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let state = applied(&moto, dir.path());
    let plan = ["plan", "topologies/local.kdl", "--state", &state];

    let out = aws_command(&root(), &moto.endpoint(), &plan)
        .env("VAULTFORM_LOG", "debug")
        .output()
        .expect("run vaultform");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let counts = api_calls(&err);
    assert!(
        counts.contains_key("kms") && counts.contains_key("s3"),
        "{err}"
    );
    let lines = call_lines(&err);
    let logged: BTreeMap<String, usize> = lines.iter().map(|(s, l)| (s.clone(), l.len())).collect();
    assert_eq!(logged, counts, "one line per call:\n{err}");
    lines.values().flatten().for_each(|l| assert_call_line(l));
    assert!(
        lines["kms"]
            .iter()
            .any(|l| l.contains("operation=\"DescribeKey\"")),
        "{err}"
    );
    assert!(
        lines["s3"]
            .iter()
            .any(|l| l.contains("operation=\"HeadBucket\"")),
        "{err}"
    );
    assert!(
        !stdout(&out).contains("vaultform::"),
        "logs stay off stdout"
    );
    assert_nothing_secret(&err);

    // Trace asks for everything, but other crates stop at info: the SDK would log requests
    // and responses whole.
    let out = aws_command(&root(), &moto.endpoint(), &plan)
        .env("VAULTFORM_LOG", "trace")
        .output()
        .expect("run vaultform");
    let err = stderr(&out);
    assert_eq!(
        call_lines(&err).values().map(Vec::len).sum::<usize>(),
        counts.values().sum::<usize>()
    );
    for line in err.lines() {
        if line.contains(" TRACE ") || line.contains(" DEBUG ") {
            assert!(line.contains(" vaultform::"), "another crate's log: {line}");
        }
    }
    assert_nothing_secret(&err);

    // Nothing asked: warnings only, and there are none.
    let out = aws_command(&root(), &moto.endpoint(), &plan)
        .output()
        .expect("run vaultform");
    assert!(call_lines(&stderr(&out)).is_empty(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(" vaultform::"), "{}", stderr(&out));
}

#[test]
fn log_file_is_private_appended_and_keeps_stderr_clean() {
    use std::os::unix::fs::PermissionsExt;
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let state = applied(&moto, dir.path());
    let log = dir.path().join("vaultform.log");
    let log_arg = log.display().to_string();
    let plan = [
        "plan",
        "topologies/local.kdl",
        "--state",
        &state,
        "-vv",
        "--log-file",
        &log_arg,
    ];

    let out = aws_command(&root(), &moto.endpoint(), &plan)
        .output()
        .expect("run vaultform");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("AWS API calls:"),
        "messages still on stderr: {err}"
    );
    assert!(
        !err.contains("vaultform::"),
        "no log lines on stderr: {err}"
    );
    assert!(!err.contains(" DEBUG "), "{err}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let first = std::fs::read_to_string(&log).unwrap();
    let calls: usize = api_calls(&err).values().sum();
    assert_eq!(
        call_lines(&first).values().map(Vec::len).sum::<usize>(),
        calls
    );
    assert!(!first.contains("\x1b["), "no colour in a file");

    let out = aws_command(&root(), &moto.endpoint(), &plan)
        .output()
        .expect("run vaultform");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let second = std::fs::read_to_string(&log).unwrap();
    assert!(second.starts_with(&first), "appended, not truncated");
    assert_eq!(
        call_lines(&second).values().map(Vec::len).sum::<usize>(),
        2 * calls
    );
    assert_nothing_secret(&second);
}

#[test]
fn a_log_file_that_cannot_be_opened_is_an_error_before_anything_runs() {
    let out = crate::support::vaultform(&[
        "validate",
        "topologies/local.kdl",
        "--log-file",
        "/no/such/dir/vaultform.log",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open the log file /no/such/dir/vaultform.log"));
    assert!(!stderr(&out).contains(": valid"), "{}", stderr(&out));
}

/// Captures what a test's own subscriber formats.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Runs `f` on this thread with a debug logger writing here.
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }
}

/// A failed call's line names the same error code the SDK reports, for each protocol (JSON,
/// REST-JSON, REST-XML, query, EC2 query); a KMS plaintext never shows.
#[test]
fn failed_aws_calls_log_the_sdk_error_code() {
    use vaultform::aws::describe_error;
    let moto = Moto::start();
    let log = Captured::default();
    let plaintext = "unseal-share-never-logged-7f3a";
    let codes = log.run(async {
        let aws = crate::unseal_store::aws_for(&moto.endpoint()).await;
        let r = "eu-west-1";
        let kms = aws.kms(r);
        let key = kms.create_key().send().await.unwrap();
        let key_id = key.key_metadata().unwrap().key_id().to_string();
        let blob = kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(aws_smithy_types::Blob::new(plaintext))
            .send()
            .await
            .unwrap();
        kms.decrypt()
            .ciphertext_blob(blob.ciphertext_blob().unwrap().clone())
            .send()
            .await
            .unwrap();
        let code = |e: Option<String>| e.expect("an error code");
        vec![
            (
                "kms",
                code(
                    describe_error(
                        &kms.describe_key()
                            .key_id("alias/nope")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
            (
                "s3",
                code(
                    describe_error(
                        &aws.s3(r)
                            .get_bucket_tagging()
                            .bucket("no-such-bucket-here")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
            (
                "iam",
                code(
                    describe_error(
                        &aws.iam()
                            .get_role()
                            .role_name("nope")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
            (
                "ec2",
                code(
                    describe_error(
                        &aws.ec2(r)
                            .describe_vpcs()
                            .vpc_ids("vpc-00000000")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
            (
                "elasticloadbalancing",
                code(
                    describe_error(
                        &aws.elbv2(r)
                            .describe_load_balancers()
                            .names("nope")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
            (
                "eks",
                code(
                    describe_error(
                        &aws.eks(r)
                            .describe_cluster()
                            .name("nope")
                            .send()
                            .await
                            .unwrap_err(),
                    )
                    .0,
                ),
            ),
        ]
    });
    let text = log.text();
    let lines = call_lines(&text);
    for (service, code) in codes {
        let failed: Vec<&String> = lines
            .get(service)
            .unwrap_or_else(|| panic!("no {service} line in:\n{text}"))
            .iter()
            .filter(|l| l.contains("aws call failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{service}:\n{text}");
        assert!(
            failed[0].contains(&format!("error=\"{code}\"")),
            "{service}: expected {code}: {}",
            failed[0]
        );
        assert!(failed[0].contains(" status=4"), "{}", failed[0]);
        assert_call_line(failed[0]);
    }
    assert!(text.contains("operation=\"Decrypt\""), "{text}");
    assert!(!text.contains(plaintext), "{text}");
    assert_nothing_secret(&text);
}

/// A dev-mode OpenBao server (in memory, unsealed, a known root token), stopped by its PID.
struct DevBao {
    child: std::process::Child,
    addr: String,
}

impl DevBao {
    fn start(token: &str) -> DevBao {
        // This test's own loopback address and fixed ports (dev mode also binds PORT + 1):
        // nothing else in the suite uses 127.0.84.x, so no port is picked and lost to another.
        let (host, port) = ("127.0.84.1", 8200);
        let child = std::process::Command::new(bin_dir().join("bao"))
            .args([
                "server",
                "-dev",
                "-dev-no-store-token",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address={host}:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bao");
        let bao = DevBao {
            child,
            addr: format!("http://{host}:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect((host, port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "bao did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        bao
    }
}

impl Drop for DevBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each Vault call is a line with method, API path, status and duration; the token (a
/// header), a secret written (a body), an unseal key (a body) and a query string never are.
#[test]
fn vault_calls_log_method_path_status_and_duration_only() {
    use vaultform::vault::{Client, Secret, TlsSettings};
    let token = format!("root-{}", uuid::Uuid::new_v4().simple());
    let bao = DevBao::start(&token);
    let log = Captured::default();
    let (password, unseal_key, query) = (
        "password-never-logged-51c2",
        "unseal-key-never-logged-9d0e",
        "probe=query-never-logged",
    );
    log.run(async {
        let c = Client::new(&bao.addr, &TlsSettings::default()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while c.health().await.map(|h| h.status).ok() != Some(200) {
            assert!(std::time::Instant::now() < deadline, "bao is not active");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let root = Secret::new(token.clone());
        c.write(
            &root,
            "secret/data/app",
            serde_json::json!({"data": {"password": password}}),
        )
        .await
        .unwrap();
        c.read(&root, "secret/data/app").await.unwrap();
        c.read(&root, &format!("sys/mounts?{query}")).await.unwrap();
        let _ = c.unseal(&Secret::new(unseal_key.to_string())).await;
        let _ = c.read(&root, "secret/data/missing").await;
    });
    let text = log.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" vaultform::vault::client: "))
        .collect();
    assert!(lines.len() >= 6, "{text}");
    for line in &lines {
        assert!(line.contains(" DEBUG "), "{line}");
        assert!(
            line.contains(" method=") && line.contains(" path=\"/v1/"),
            "{line}"
        );
        assert!(line.contains(" status=") && line.contains(" ms="), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("method=POST path=\"/v1/secret/data/app\" status=200")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=\"/v1/sys/mounts\" status=200")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("path=\"/v1/secret/data/missing\" status=404")),
        "{text}"
    );
    for secret in [token.as_str(), password, unseal_key, query, "X-Vault-Token"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}
