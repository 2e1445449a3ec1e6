//! `--help` of every command and subcommand, found by walking the clap definition so that a
//! new command is covered: a snapshot each, and each with a summary line of its own.

use std::collections::BTreeMap;

use clap::CommandFactory;

use crate::support::{stderr, stdout, vaultform};

/// The path of every command below `cmd`, itself first: `[]`, `["plan"]`, `["drill", "failover"]`.
fn command_paths(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(path.clone());
    for sub in cmd.get_subcommands() {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_string());
        command_paths(sub, sub_path, out);
    }
}

#[test]
fn every_command_has_a_help_of_its_own() {
    let mut paths = Vec::new();
    command_paths(&vaultform::cli::Cli::command(), Vec::new(), &mut paths);
    assert!(paths.len() > 15, "{paths:?}");
    let mut first_lines: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let name = ["vaultform".to_string()]
            .into_iter()
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = vaultform(&args);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let help = stdout(&out);
        let first = help.lines().next().unwrap_or_default().to_string();
        assert!(
            !first.is_empty() && !first.starts_with("Usage:"),
            "`{name} --help` has no summary:\n{help}"
        );
        if let Some(other) = first_lines.insert(first.clone(), name.clone()) {
            panic!("`{other} --help` and `{name} --help` both start with {first:?}");
        }
        insta::with_settings!({snapshot_path => "snapshots/help", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name.replace(' ', "-"), help);
        });
    }
}

/// Regression: `force-unlock`'s summary sat on `status`, so `status --help` described
/// force-unlock and `force-unlock --help` had no summary.
#[test]
fn status_and_force_unlock_describe_themselves() {
    let status = stdout(&vaultform(&["status", "--help"]));
    assert!(status.starts_with("Show each Vault member"), "{status}");
    assert!(!status.contains("state lock"), "{status}");
    let unlock = stdout(&vaultform(&["force-unlock", "--help"]));
    assert!(unlock.starts_with("Remove a state lock"), "{unlock}");
}
