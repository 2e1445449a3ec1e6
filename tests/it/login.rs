//! `vaultform env` and `vaultform login` against a real cluster (moto, OpenBao, HAProxy on
//! 127.0.86.x): a shell that evals `env` and takes a `login` token writes and reads KV with
//! the real `bao` CLI through the front endpoint; the token stops working after its TTL and
//! cannot be renewed; `--token-helper` writes ~/.vault-token (0600) that the CLI then uses;
//! `--policy root` is refused, a policy granting sudo only with `--allow-sudo`; and the root
//! token appears in no output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::stack::LocalStack;
use crate::support::{stderr, stdout};

const FILE: &str = "login.kdl";
const STATE: &str = ".vaultform/login.state.json";
const FRONT: &str = "https://127.0.86.10:8200";

/// `script` in bash, in the stack's directory, with the binary and the test bed on PATH,
/// HOME at `home`, and no Vault variable of the caller's.
fn shell(stack: &LocalStack, home: &Path, script: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_vaultform")).parent().unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(stack.path())
        .env(
            "PATH",
            format!("{}:{}", bin.display(), LocalStack::search_path()),
        )
        .env("HOME", home);
    stack.aws_env(&mut cmd);
    let out = cmd.output().expect("run bash");
    stack.record(&out);
    out
}

fn ok(out: &Output, what: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}\n{}\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[test]
fn env_and_login_give_a_shell_a_short_lived_token_through_the_front_endpoint() {
    let stack = LocalStack::new(FILE, ".vaultform/login");
    stack.apply();
    let store = stack.store(
        STATE,
        "login",
        "lg",
        &[("eu-west-1", "login-unseal-eu-west-1", "unseal")],
        "vault/lg/",
        2,
    );
    let root = stack.keys(&store).root_token.expose().to_string();
    let home = tempfile::tempdir().unwrap();

    // `env`: export lines for the front endpoint, each value one shell word; JSON alike.
    let env = stack.ok(&["env", FILE]);
    let ca_path = stack.work.join("tls/ca.pem");
    let ca = ca_path.display().to_string();
    assert_eq!(
        env,
        format!(
            "export VAULT_ADDR='{FRONT}'\nexport BAO_ADDR='{FRONT}'\nexport VAULT_CACERT='{ca}'\nexport BAO_CACERT='{ca}'\n"
        )
    );
    let json: serde_json::Value = serde_json::from_str(&stack.ok(&["env", FILE, "--json"]))
        .expect("env --json is one JSON object");
    assert_eq!(json["addr"], FRONT);
    assert_eq!(json["via"], "login-front");
    assert_eq!(json["env"]["BAO_ADDR"], FRONT);
    assert_eq!(json["ca_file"], ca.to_string());

    // As a person would: eval `env`, take a token from `login`, use the real bao CLI.
    let out = shell(
        &stack,
        home.path(),
        &format!(
            r#"eval "$(vaultform env {FILE})"
            export BAO_TOKEN="$(vaultform login {FILE} --policy kv-writer --ttl 10m)"
            bao kv put kv/demo colour=blue >/dev/null
            bao kv get -field=colour kv/demo
            bao token lookup -format=json"#
        ),
    );
    let text = ok(&out, "eval env, login, bao kv put/get");
    assert!(text.starts_with("blue"), "{text}");
    let lookup: serde_json::Value =
        serde_json::from_str(text.trim_start_matches("blue").trim()).unwrap();
    let data = &lookup["data"];
    assert_eq!(
        data["policies"],
        serde_json::json!(["default", "kv-writer"])
    );
    assert_eq!(data["explicit_max_ttl"], 600);
    assert_eq!(data["renewable"], false);
    assert_eq!(data["orphan"], true, "it outlives the token that made it");
    assert!(data["ttl"].as_u64().unwrap() <= 600);
    // The message beside the token says what it is, on stderr.
    assert!(
        stderr(&out).contains("policies default, kv-writer; valid for 600s"),
        "{}",
        stderr(&out)
    );

    // `--ttl 3s`: the token works, cannot be renewed, and stops working by itself.
    let issued: serde_json::Value = serde_json::from_str(&stack.ok(&[
        "login",
        FILE,
        "--policy",
        "kv-writer",
        "--ttl",
        "3s",
        "--json",
    ]))
    .expect("login --json is one JSON object");
    assert_eq!(issued["ttl_seconds"], 3);
    assert_eq!(issued["addr"], FRONT);
    let token = issued["token"].as_str().unwrap().to_string();
    let issued_at = Instant::now();
    let get = |script: &str| {
        shell(
            &stack,
            home.path(),
            &format!("export BAO_ADDR={FRONT} BAO_CACERT={ca} BAO_TOKEN={token}\n{script}"),
        )
    };
    ok(
        &get("bao kv get -field=colour kv/demo"),
        "kv get with a 3s token",
    );
    let renew = get("bao token renew");
    assert_ne!(renew.status.code(), Some(0), "renewed: {}", stdout(&renew));
    let expired = loop {
        let out = get("bao kv get -field=colour kv/demo");
        if out.status.code() != Some(0) {
            break out;
        }
        assert!(
            issued_at.elapsed() < Duration::from_secs(30),
            "the 3s token still works after 30s"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        stderr(&expired).contains("403") || stderr(&expired).contains("permission denied"),
        "{}",
        stderr(&expired)
    );
    eprintln!(
        "a 3s token stopped working after {:.1}s",
        issued_at.elapsed().as_secs_f64()
    );

    // `--token-helper`: ~/.vault-token, owner-only, used by bao without BAO_TOKEN; stdout
    // says where it went and holds no token.
    let token_file = home.path().join(".vault-token");
    std::fs::write(&token_file, "old").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = shell(
        &stack,
        home.path(),
        &format!("vaultform login {FILE} --policy kv-writer --token-helper"),
    );
    let said = ok(&out, "login --token-helper");
    assert_eq!(
        said,
        format!("Wrote the token to {}.\n", token_file.display())
    );
    let written = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        written.starts_with("s.") && !said.contains(&written),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = shell(
        &stack,
        home.path(),
        &format!("export BAO_ADDR={FRONT} BAO_CACERT={ca}\nbao kv get -field=colour kv/demo"),
    );
    assert_eq!(ok(&out, "bao with ~/.vault-token").trim(), "blue");

    // A policy that grants sudo only with --allow-sudo.
    let out = stack.run(&["login", FILE, "--policy", "raft-admin"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("policy raft-admin grants sudo on sys/storage/raft/*"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let out = stack.run(&["login", FILE, "--policy", "raft-admin", "--allow-sudo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).trim().is_empty());

    // Refused before the store is read: root, an unknown policy, a bad TTL.
    for (args, says) in [
        (vec!["--policy", "root"], "--policy root"),
        (vec!["--policy", "nope"], "no policy nope"),
        (vec!["--ttl", "soon"], "not a duration"),
    ] {
        let mut all = vec!["login", FILE];
        all.extend(args);
        let out = stack.run(&all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert!(stderr(&out).contains(says), "{all:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{all:?}: {}", stdout(&out));
    }

    // The root token is in no output, nor in the token file.
    stack.assert_absent(&root, &[("~/.vault-token", &written)]);
}
