//! `completions` and `man`: the scripts work in the shells that are here (bash completes
//! commands and options of the real command line), the others have their shell's shape, and
//! every command has a man page that groff renders without a warning.

use clap::CommandFactory;

use crate::support::{stderr, stdout, vaultform};

fn ok(args: &[&str]) -> String {
    let out = vaultform(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// What bash's completion offers for `words` (the last one being completed).
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let words_q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let line = words.join(" ");
    let run = format!(
        r#"source '{}'
COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
_vaultform vaultform '{}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script.display(),
        words_q.join(" "),
        words[cword],
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &run])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_their_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("vaultform.bash");
    std::fs::write(&script, ok(&["completions", "bash"])).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(syntax.status.code(), Some(0), "{}", stderr(&syntax));
    assert_eq!(bash_completes(&script, &["vaultform", "lo"]), ["login"]);
    assert_eq!(
        bash_completes(&script, &["vaultform", "login", "--to"]),
        ["--token-helper"]
    );
    let drills = bash_completes(&script, &["vaultform", "drill", ""]);
    assert!(
        drills.contains(&"failover".to_string()) && drills.contains(&"region-loss".to_string()),
        "{drills:?}"
    );
}

#[test]
fn every_shell_gets_a_script_of_its_own_kind() {
    let zsh = ok(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef vaultform"), "{zsh}");
    let fish = ok(&["completions", "fish"]);
    assert!(
        fish.contains(
            "complete -c vaultform -n \"__fish_vaultform_using_subcommand login\" -l token-helper"
        ),
        "{fish}"
    );
    for shell in ["elvish", "powershell"] {
        assert!(ok(&["completions", shell]).contains("vaultform"), "{shell}");
    }
    let out = vaultform(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses an unknown shell");
}

/// The path of every command, as `man` takes it: `[]`, `["plan"]`, `["drill", "failover"]`.
fn command_paths(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(path.clone());
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_string());
        command_paths(sub, sub_path, out);
    }
}

#[test]
fn every_command_has_a_man_page_that_groff_renders_cleanly() {
    let mut paths = Vec::new();
    command_paths(&vaultform::cli::Cli::command(), Vec::new(), &mut paths);
    let main = ok(&["man"]);
    for path in &paths {
        let title = ["vaultform"]
            .into_iter()
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        let mut args = vec!["man"];
        args.extend(path.iter().map(String::as_str));
        let page = ok(&args);
        assert!(
            page.contains(&format!(".TH {title} 1")),
            "{title}: {}",
            page.lines().take(4).collect::<Vec<_>>().join("\n")
        );
        if path.len() == 1 {
            // The main page lists each command under the name of its own page.
            assert!(
                main.contains(&format!("{}(1)", title.replace('-', "\\-"))),
                "{title} is not on the main page"
            );
        }
        let mut groff = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groff (groff-base) is installed");
        use std::io::Write;
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = groff.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{title}");
        assert!(out.stderr.is_empty(), "{title}: {}", stderr(&out));
    }
    assert!(paths.len() > 20, "{paths:?}");
    let out = vaultform(&["man", "drill", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("its commands: failover, region-loss"),
        "{}",
        stderr(&out)
    );
}
