//! CLI tests: the real binary, its exit codes and its output.

use crate::support::{root, stderr, stdout, vaultform, vaultform_in};

#[test]
fn validate_accepts_every_shipped_topology() {
    for path in crate::support::kdl_files("topologies") {
        let out = vaultform(&["validate", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        assert!(stderr(&out).contains(&format!("{}: valid", path.display())));
    }
}

#[test]
fn validate_of_a_missing_file_is_a_clear_error() {
    let out = vaultform(&["validate", "no/such/file.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read no/such/file.kdl"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn graph_prints_dot_by_default_and_mermaid_on_request() {
    let out = vaultform(&["graph", "topologies/local.kdl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph \"bv-local\" {"));
    assert!(dot.contains("\"region.eu-west-1.cluster.bv-eu-west-1\" [label=\"region.eu-west-1.cluster.bv-eu-west-1\\n(eks-cluster)\"];"));
    assert!(dot.contains("\"vault.bv.unseal-keys\" -> \"vault.bv.unseal.vault-0\";"));

    let out = vaultform(&["graph", "topologies/local.kdl", "--format", "mermaid"]);
    assert_eq!(out.status.code(), Some(0));
    let m = stdout(&out);
    assert!(m.starts_with("flowchart LR\n"));
    assert!(m.contains("vault.bv.raft<br/><i>raft-verify</i>"));
}

#[test]
fn graph_of_an_invalid_file_prints_the_diagnostics_and_no_graph() {
    let out = vaultform(&["graph", "tests/fixtures/invalid/dependency-cycle.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("dependency cycle"));
}

#[test]
fn fmt_check_passes_on_shipped_topologies_and_fmt_rewrites_keeping_comments() {
    for path in crate::support::kdl_files("topologies") {
        let out = vaultform(&["fmt", "--check", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{} is not canonical: {}",
            path.display(),
            stderr(&out)
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("messy.kdl");
    let messy = "// the stack\nstack   \"t\"\nregion \"eu-west-1\"{\n  key  \"k\"   alias=\"alias/k\" // why: one key\n}\n";
    std::fs::write(&file, messy).unwrap();
    let out = vaultform_in(dir.path(), &["fmt", "--check", "messy.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("messy.kdl is not formatted"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        messy,
        "--check changes nothing"
    );

    let out = vaultform_in(dir.path(), &["fmt", "messy.kdl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert!(formatted.contains("// the stack"));
    assert!(formatted.contains("// why: one key"));
    assert!(
        formatted.contains("    key k alias=alias/k")
            || formatted.contains("    key \"k\" alias=\"alias/k\""),
        "{formatted}"
    );
    let out = vaultform_in(dir.path(), &["fmt", "--check", "messy.kdl"]);
    assert_eq!(out.status.code(), Some(0), "formatting is idempotent");
    let _ = root();
}

#[test]
fn fmt_of_a_syntax_error_reports_it_and_leaves_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.kdl");
    std::fs::write(&file, "stack \"t\"\nregion {\n").unwrap();
    let out = vaultform_in(dir.path(), &["fmt", "broken.kdl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("KDL syntax error"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "stack \"t\"\nregion {\n"
    );
}

/// The commands this build has, all of them working.
const WORKING: [&str; 23] = [
    "validate",
    "graph",
    "fmt",
    "plan",
    "apply",
    "destroy",
    "state",
    "output",
    "force-unlock",
    "init",
    "kubeconfig",
    "eks-token",
    "status",
    "unseal",
    "drill",
    "snapshot",
    "env",
    "login",
    "completions",
    "man",
    "sweep",
    "expired",
    "doctor",
];

#[test]
fn help_lists_only_working_commands() {
    let out = vaultform(&["--help"]);
    let help = stdout(&out);
    for cmd in WORKING {
        assert!(help.contains(cmd), "{help}");
    }
    // Only these: every command listed under "Commands:" is one of them (or clap's `help`).
    let listed: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!listed.is_empty(), "{help}");
    for cmd in listed {
        assert!(
            WORKING.contains(&cmd) || cmd == "help",
            "{cmd} is listed: {help}"
        );
    }
}

#[test]
fn the_seed_topology_plans_every_kubernetes_object_in_order() {
    // The Kubernetes runtime: nothing of the seed's topology is refused.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let out = vaultform(&[
        "plan",
        "topologies/aws-eu.kdl",
        "--refresh=false",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = stdout(&out);
    let at = |what: &str| {
        plan.find(&format!("+ {what} "))
            .unwrap_or_else(|| panic!("{what} is not planned: {plan}"))
    };
    for (c, m) in [
        ("bv-eu-central-1", "vault-0"),
        ("bv-eu-west-1", "vault-1"),
        ("bv-eu-north-1", "vault-2"),
    ] {
        let kube = |o: &str| at(&format!("vault.bv.kube.{c}.{o}"));
        let cluster = at(&format!("region.{}.cluster.{c}", &c[3..]));
        let ns = kube("namespace");
        let sts = kube(&format!("statefulset.{m}"));
        let member = at(&format!("vault.bv.member.{m}"));
        assert!(cluster < ns && ns < sts && sts < member, "{plan}");
        for o in ["service-account", "config", "tls", "service", "node-port"] {
            let x = kube(&format!("{o}.{m}"));
            assert!(
                ns < x && x < sts,
                "{o} comes between the namespace and the StatefulSet"
            );
        }
        assert!(ns < kube("disruption-budget"));
        // The claims need the EBS CSI driver: the add-on comes before the namespace.
        assert!(
            at(&format!(
                "region.{}.cluster.{c}.addon.aws-ebs-csi-driver",
                &c[3..]
            )) < ns
        );
        assert!(member < at("vault.bv.init"));
    }
    // What apply fills in is shown as where it comes from, never as a value or a secret.
    assert!(plan.contains("{{region.eu-central-1.load-balancer.bv-eu-central-1:dns_name}}"));
    assert!(plan.contains("{{file-base64:tls/vault-0.key}}"));
    assert!(!plan.contains("PRIVATE KEY"));
    assert!(plan.contains("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"));
}

#[test]
fn state_commands_read_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let s = state.to_str().unwrap();
    let out = vaultform(&["state", "list", "topologies/local.kdl", "--state", s]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let out = vaultform(&[
        "state",
        "show",
        "topologies/local.kdl",
        "region.eu-west-1.key.unseal",
        "--state",
        s,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not in the state"),
        "{}",
        stderr(&out)
    );
    let out = vaultform(&["output", "topologies/local.kdl", "--state", s]);
    assert_eq!(stdout(&out).trim(), "{}");
}

/// The plan of a shipped topology from an empty state, offline (`--refresh=false`): every
/// resource and bootstrap step with its attributes, as people and pipelines see it.
#[test]
fn the_plan_of_local_kdl_from_nothing_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("none.json");
    let state = state.to_str().unwrap();
    for (name, extra) in [("plan-local", None), ("plan-local-json", Some("--json"))] {
        let mut args = vec![
            "plan",
            "topologies/local.kdl",
            "--refresh=false",
            "--state",
            state,
        ];
        args.extend(extra);
        let out = vaultform(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        insta::with_settings!({snapshot_path => "snapshots/plan", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, stdout(&out));
        });
    }
    assert!(
        !std::path::Path::new(state).exists(),
        "a plan writes no state"
    );
}

/// Multi-line text (a policy's rules) renders as a heredoc with the changed lines marked.
#[test]
fn a_changed_policy_shows_which_lines_change() {
    use vaultform::plan::{Action, Change, Plan};
    use vaultform::ui::plan as render;
    let rules = |caps: &str| {
        serde_json::json!({"rules": format!("path \"kv/*\" {{\n  capabilities = [{caps}]\n}}\n")})
            .as_object()
            .cloned()
    };
    let plan = Plan {
        format_version: 1,
        stack: "s".into(),
        lineage: None,
        serial: None,
        destroy: false,
        drift: Vec::new(),
        estimate: None,
        changes: vec![Change {
            address: "vault.v.policy.reader".parse().unwrap(),
            kind: vaultform::graph::Kind::VaultPolicy,
            region: None,
            action: Action::Update,
            reason: "rules changed".into(),
            before: rules("\"read\""),
            after: rules("\"read\", \"list\""),
            forced_by: Vec::new(),
            name: None,
            after_changes: Vec::new(),
            deps: Vec::new(),
        }],
    };
    let text = render::human(&plan, false);
    assert!(text.contains("rules = <<EOT"), "{text}");
    assert!(text.contains("            path \"kv/*\" {"), "{text}");
    assert!(
        text.contains(
            "          -   capabilities = [\"read\"]\n          +   capabilities = [\"read\", \"list\"]\n"
        ),
        "{text}"
    );
}

#[test]
fn vault_commands_name_the_clusters_when_asked_for_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    for cmd in [
        vec!["status", "topologies/local.kdl"],
        vec!["drill", "failover", "topologies/local.kdl"],
        vec!["snapshot", "save", "topologies/local.kdl", "x.snap"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--vault", "nope", "--state", state.to_str().unwrap()]);
        let out = vaultform(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("no Vault cluster \"nope\""), "{err}");
        assert!(err.contains("its Vault clusters: bv"), "{err}");
    }
}

/// `unseal` starts again only what apply created: on a stack never applied it starts nothing.
#[test]
fn unseal_on_a_stack_never_applied_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let out = vaultform(&[
        "unseal",
        "topologies/local.kdl",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("vault.bv.member.vault-0 is not in the state: `vaultform apply` creates it"),
        "{err}"
    );
}

/// Runs a shell command line under `script`, so that the binary's stdout and stderr are a
/// pseudo-terminal unless the command line redirects them; without NO_COLOR. `script` copies
/// what reaches the terminal to its own stdout.
fn on_a_terminal(command_line: &str) -> std::process::Output {
    std::process::Command::new("/usr/bin/script")
        .args(["-qec", command_line, "/dev/null"])
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run script")
}

const BIN: &str = env!("CARGO_BIN_EXE_vaultform");

/// Regression: colour was decided from stderr alone, so `plan > file` on a terminal wrote
/// escape codes into the file. Offline (`--refresh=false`, a state that does not exist): no
/// AWS call.
#[test]
fn plan_to_a_file_from_a_terminal_has_no_colour_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (state, file) = (dir.path().join("none.json"), dir.path().join("plan.txt"));
    let plan = format!(
        "'{BIN}' plan topologies/local.kdl --refresh=false --state '{}'",
        state.display()
    );
    let out = on_a_terminal(&format!("{plan} > '{}'", file.display()));
    assert!(out.status.success(), "{}", stdout(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("  + region.eu-west-1.key.unseal"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "escape codes in a redirected stdout"
    );

    let out = on_a_terminal(&format!("{plan} --color always > '{}'", file.display()));
    assert!(out.status.success(), "{}", stdout(&out));
    let colored = std::fs::read_to_string(&file).unwrap();
    assert!(
        colored.contains("\x1b[32m  + region.eu-west-1.key.unseal"),
        "{colored}"
    );
    assert_eq!(
        vaultform::ui::strip_ansi(&colored),
        text,
        "colour is all it adds"
    );

    let out = on_a_terminal(&plan);
    assert!(
        stdout(&out).contains("\x1b[32m  + region.eu-west-1.key.unseal"),
        "a plan on a terminal is coloured: {}",
        stdout(&out)
    );
    let out = on_a_terminal(&format!("NO_COLOR=1 {plan}"));
    assert!(
        !stdout(&out).contains("\x1b["),
        "NO_COLOR: {}",
        stdout(&out)
    );
    assert!(!state.exists());
}

/// Diagnostics follow stderr: coloured on a terminal even when stdout is redirected, plain in
/// a file even when stdout is a terminal.
#[test]
fn diagnostics_are_coloured_only_when_stderr_is_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (out_file, err_file) = (dir.path().join("out.txt"), dir.path().join("err.txt"));
    let validate = format!("'{BIN}' validate tests/fixtures/warnings/even-members-one-region.kdl");

    let out = on_a_terminal(&format!("{validate} > '{}'", out_file.display()));
    assert!(out.status.success(), "{}", stdout(&out));
    let terminal = stdout(&out);
    assert!(terminal.contains("warning"), "{terminal}");
    assert!(
        terminal.contains("\x1b["),
        "stderr is a terminal: {terminal}"
    );

    let out = on_a_terminal(&format!("{validate} 2> '{}'", err_file.display()));
    assert!(out.status.success(), "{}", stdout(&out));
    let file = std::fs::read_to_string(&err_file).unwrap();
    assert!(file.contains("valid, with 4 warnings"), "{file}");
    assert!(
        !file.contains("\x1b["),
        "escape codes in a redirected stderr: {file}"
    );
    assert_eq!(
        file.replace("\r\n", "\n"),
        vaultform::ui::strip_ansi(&terminal).replace("\r\n", "\n"),
        "the same diagnostics, without colour"
    );
}

/// An unreachable AWS endpoint: apply checks it before planning and fails in seconds with one
/// message naming the endpoint and a region, with no SDK internals (regression: 268 s of
/// retries, then seven `Debug` dumps).
#[test]
fn apply_against_an_unreachable_endpoint_fails_at_once_and_says_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vaultform"))
        .args([
            "apply",
            "topologies/local.kdl",
            "--auto-approve",
            "--state",
            state.to_str().unwrap(),
        ])
        .current_dir(crate::support::root())
        .env("NO_COLOR", "1")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    // The feature (seconds, not the 268 s of the regression), with room for a loaded 2-core
    // machine; the check itself makes one attempt per region.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    // The diagnostic wraps long lines: compare its words.
    let err = stderr(&out).replace('│', " ");
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        err.contains("cannot reach the AWS endpoint http://127.0.0.1:1 (region eu-"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    for internal in ["DispatchFailure", "ConnectorError", "hyper", "SdkError"] {
        assert!(!err.contains(internal), "{internal} in {err}");
    }
    assert_eq!(err.matches("cannot reach").count(), 1, "{err}");
    assert!(!state.exists(), "nothing recorded");
}
