//! `revoke-root #true` against a real three-member cluster (moto, OpenBao, HAProxy on
//! 127.0.87.x): after apply the stored root token is refused (403); status, plan, a later
//! configuration change, `login`, a failover drill and `unseal` after every server was
//! killed all still work, each with a root token generated from the stored keys; a
//! generation left in progress is cancelled; a generated token is an orphan that expires in
//! 15 minutes; and no root token outlives the command that generated it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::stack::LocalStack;
use crate::support::{recorded_processes, stderr, stdout};
use vaultform::runtime::local::process;
use vaultform::vault::{Client, Secret, TlsSettings, VaultError, root};

const FILE: &str = "revoke-root.kdl";
const STATE: &str = ".vaultform/rr.state.json";
const FRONT: &str = "https://127.0.87.10:8200";

fn front(stack: &LocalStack) -> Client {
    let ca = std::fs::read(stack.work.join("tls/ca.pem")).expect("the stack's CA");
    let tls = TlsSettings {
        ca_pem: Some(ca),
        server_name: None,
    };
    Client::new(FRONT, &tls).unwrap()
}

fn healthy(stack: &LocalStack) {
    let out = stack.run(&["status", FILE, "--json"]);
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let c = &status["vaults"][0];
    assert_eq!(c["healthy"], true, "{status:#}");
    let members = c["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["voter"] == true), "{status:#}");
    assert_eq!(out.status.code(), Some(0));
}

/// The tokens that have the root policy, seen with a `token-auditor` token from `login`
/// (listing accessors takes sudo, so `--allow-sudo`).
fn root_tokens(stack: &LocalStack, rt: &tokio::runtime::Runtime) -> Vec<serde_json::Value> {
    let token = Secret::new(
        stack
            .ok(&[
                "login",
                FILE,
                "--policy",
                "token-auditor",
                "--allow-sudo",
                "--ttl",
                "2m",
            ])
            .trim()
            .to_string(),
    );
    rt.block_on(async {
        let c = front(stack);
        let listed = c
            .read(&token, "auth/token/accessors?list=true")
            .await
            .expect("list token accessors");
        let listed_n = listed["data"]["keys"].as_array().unwrap().len();
        assert!(listed_n >= 1, "the auditor's own token is listed");
        let mut roots = Vec::new();
        for a in listed["data"]["keys"].as_array().unwrap() {
            let t = c
                .write(
                    &token,
                    "auth/token/lookup-accessor",
                    serde_json::json!({"accessor": a}),
                )
                .await
                .expect("look up an accessor");
            let policies = &t["data"]["policies"];
            if policies.as_array().unwrap().iter().any(|p| p == "root") {
                roots.push(t["data"].clone());
            }
        }
        let _ = c.revoke_self(&token).await;
        roots
    })
}

#[test]
fn a_revoked_root_token_is_generated_again_whenever_vaultform_needs_one() {
    let stack = LocalStack::new(FILE, ".vaultform/rr");
    stack.apply();
    let store = stack.store(
        STATE,
        "rr",
        "rr",
        &[("eu-west-1", "rr-unseal-eu-west-1", "unseal")],
        "vault/rr/",
        2,
    );
    let keys = stack.keys(&store);
    let stored = keys.root_token.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The stored root token is refused; it stays in the store, revoked.
    rt.block_on(async {
        match front(&stack).lookup_self(&stored).await {
            Err(VaultError::Api { status: 403, .. }) => {}
            other => panic!("the stored root token after apply: {other:?}"),
        }
    });
    // Status (raft view with a generated root), and nothing to change.
    healthy(&stack);
    let logged = stack.run(&["status", FILE, "-vv"]);
    assert!(
        stderr(&logged).contains("sys/generate-root-token/update"),
        "status generated a root token: {}",
        stderr(&logged)
    );
    let plan = stack.ok(&["plan", FILE]);
    assert!(plan.contains("No changes"), "{plan}");
    assert!(
        root_tokens(&stack, &rt).is_empty(),
        "a root token outlived apply, status or plan"
    );

    // A later configuration change applies with a generated root token.
    let path = stack.path().join(FILE);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "    secrets \"kv\" type=\"kv-v2\"\n",
        "    secrets \"kv\" type=\"kv-v2\"\n    policy \"kv-reader\" {\n        path \"kv/data/*\" capabilities=\"read\"\n    }\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = stack.run(&["apply", FILE, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Done: 1 created, 0 updated, 0 replaced, 0 deleted, 0 failed"),
        "{}",
        stderr(&out)
    );
    let again = stack.ok(&["plan", FILE]);
    assert!(again.contains("No changes"), "{again}");
    // The new policy exists: login checks.
    stack.ok(&["login", FILE, "--policy", "kv-reader", "--ttl", "1m"]);

    // The failover drill.
    let drill = stack.ok(&["drill", "failover", FILE, "--json"]);
    let report: serde_json::Value = serde_json::from_str(drill.trim()).expect("drill JSON");
    eprintln!("drill failover with revoke-root: {report}");
    assert_ne!(report["old_leader"], report["new_leader"]);
    healthy(&stack);
    let snap = stack.path().join("rr.snap");
    stack.ok(&["snapshot", "save", FILE, snap.to_str().unwrap()]);
    assert!(std::fs::metadata(&snap).unwrap().len() > 0);

    // Every server killed: `unseal` brings the cluster back and waits for it with a
    // generated root token.
    for r in recorded_processes(&stack.work) {
        if r.command.iter().any(|a| a == "server") {
            process::kill(&r);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while recorded_processes(&stack.work)
        .iter()
        .any(|r| r.command.iter().any(|a| a == "server") && process::is_running(r))
    {
        assert!(std::time::Instant::now() < deadline, "a killed server runs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = stack.run(&["unseal", FILE]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    healthy(&stack);

    // The one place root tokens come from, called as the commands call it, with a
    // generation left in progress by a killed run: it is cancelled, and the token generated
    // is an orphan root token that expires by itself (15 minutes), revoked at the end.
    let text = std::fs::read_to_string(&path).unwrap();
    let topology = vaultform::load(FILE, text)
        .into_stack()
        .expect("a valid topology")
        .topology;
    let vaults = vaultform::vault::spec::specs(&topology, stack.path());
    let v = &vaults.0["rr"];
    let state = stack.state(STATE);
    let outputs: BTreeMap<String, BTreeMap<String, String>> = state["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(address, r)| {
            let o = serde_json::from_value(r["outputs"].clone()).unwrap_or_default();
            (address.clone(), o)
        })
        .collect();
    rt.block_on(async {
        let c = front(&stack);
        let login = c
            .approle_login(
                root::MOUNT,
                root::ROLE_ID,
                &root::secret_id(&keys, v.threshold as usize),
            )
            .await
            .expect("the generate-root AppRole takes the secret ID derived from the keys")
            .client_token;
        assert!(
            c.read(&login, "sys/mounts").await.is_err(),
            "the AppRole's token can do nothing else"
        );
        let left_behind = c.generate_root_start(&login).await.unwrap();
        assert!(left_behind.started);
        let aws = crate::unseal_store::aws_for(&stack.moto.endpoint()).await;
        let token = root::token(&aws, &outputs, v)
            .await
            .expect("a root token despite the attempt left in progress");
        let me = c
            .lookup_self(&token)
            .await
            .expect("the generated token works");
        let data = &me["data"];
        assert_eq!(data["policies"], serde_json::json!(["root"]), "{me:#}");
        assert_eq!(data["orphan"], true, "{me:#}");
        assert_eq!(data["renewable"], false, "{me:#}");
        assert_eq!(data["explicit_max_ttl"], 900, "{me:#}");
        assert!(data["ttl"].as_u64().unwrap() <= 900, "{me:#}");
        root::revoke_generated().await;
        assert!(
            matches!(
                c.lookup_self(&token).await,
                Err(VaultError::Api { status: 403, .. })
            ),
            "revoked at the end"
        );
    });

    // `revoke-root` removed: the step leaves the state, the stored token stays refused, and
    // root tokens are still generated (the server's 403 says so).
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("    revoke-root #true\n", "");
    std::fs::write(&path, text).unwrap();
    let out = stack.run(&["apply", FILE, "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("- vault.rr.revoke-root"),
        "{}",
        stdout(&out)
    );
    healthy(&stack);
    stack.ok(&["login", FILE, "--policy", "kv-reader", "--ttl", "1m"]);

    let left = root_tokens(&stack, &rt);
    assert!(left.is_empty(), "root tokens left: {left:#?}");
    rt.block_on(async {
        assert!(
            front(&stack).lookup_self(&stored).await.is_err(),
            "the stored root token is still refused"
        );
    });
    stack.assert_absent(stored.expose(), &[]);
}
