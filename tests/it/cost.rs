//! The plan's cost: snapshots of the cost lines of every shipped topology, the one line of an
//! unchanged plan and `--cost`, the difference a change makes against a real moto server,
//! `--prices FILE` and `plan --json`.

use crate::support::testbed::Moto;
use crate::support::{kdl_files, root, stderr, stdout, vaultform, vaultform_aws};

/// `--target` for every AWS resource of a topology (the Vault cluster costs nothing itself).
fn aws_targets(path: &str, text: &str) -> Vec<String> {
    let loaded = vaultform::load(path, text);
    let (_, g) = loaded.valid().expect("valid");
    let mut out = Vec::new();
    for ix in g.dag.node_indices() {
        let a = g.resource(ix).address.as_str();
        if !a.starts_with("vault.") && !a.starts_with("iam.role.vault") {
            out.push("--target".to_string());
            out.push(a.to_string());
        }
    }
    out
}

/// The cost section of a human plan.
fn cost_lines(plan: &str) -> String {
    let start = plan.find("Cost while it runs").expect("cost lines");
    plan[start..].to_string()
}

#[test]
fn the_cost_of_every_shipped_topology() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("none.json").display().to_string();
    for file in kdl_files("topologies") {
        let path = file.display().to_string();
        // From nothing (aws-eu.kdl keeps its state in S3), the whole topology: on EKS the
        // Vault members' volumes are priced from their StatefulSets.
        let args = [path.as_str(), "--refresh=false", "--state", state.as_str()];
        let out = vaultform(&[&["plan"], args.as_slice()].concat());
        assert_eq!(out.status.code(), Some(0), "{path}: {}", stderr(&out));
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => "snapshots/cost", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, cost_lines(&stdout(&out)));
        });
    }
}

#[test]
fn a_change_shows_its_difference_and_prices_can_be_overridden() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(root().join("topologies/local.kdl")).unwrap();
    std::fs::write(d.join("local.kdl"), &text).unwrap();
    let targets = aws_targets("local.kdl", &text);
    let run = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend(targets.iter().map(String::as_str));
        vaultform_aws(d, &ep, &args)
    };
    let out = run(&["apply", "local.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Unchanged: "No changes." and the total on one line; `--cost` itemizes it; `--json`
    // keeps everything.
    for (name, extra) in [
        ("plan-unchanged", None),
        ("plan-unchanged-cost", Some("--cost")),
    ] {
        let mut args = vec!["plan", "local.kdl"];
        args.extend(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("(+0.0000/h, +0.00/month against now"),
            "{}",
            stdout(&out)
        );
        insta::with_settings!({snapshot_path => "snapshots/plan", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, stdout(&out));
        });
    }
    let out = run(&["plan", "local.kdl", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(
        !plan["cost"]["lines"].as_array().unwrap().is_empty(),
        "{plan}"
    );

    // Two more spot nodes in every region: 2 x 3 nodes at 35% of c5.large, their public
    // addresses and 20 GB disks.
    let more = text.replace("min=1 desired=1 max=3", "min=1 desired=3 max=3");
    std::fs::write(d.join("local.kdl"), &more).unwrap();
    let out = run(&["plan", "local.kdl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let cost = &plan["cost"];
    let p = vaultform::cost::Prices::shipped();
    let per_region = |r: &str| {
        let rp = &p.regions[r];
        2.0 * (rp.ec2_hour["c5.large"] * p.spot_factor
            + rp.public_ipv4_hour
            + 20.0 * rp.ebs_gp3_gb_month / p.hours_per_month)
    };
    let expected = per_region("eu-central-1") + per_region("eu-west-1") + per_region("eu-north-1");
    let diff = cost["diff_hour"].as_f64().unwrap();
    assert!(
        (diff - expected).abs() < 0.0005,
        "{diff} vs {expected}: {cost}"
    );
    assert_eq!(cost["prices_date"], p.date.as_str());
    let before = cost["before_hour"].as_f64().unwrap();
    assert!((cost["hour"].as_f64().unwrap() - before - diff).abs() < 0.0005);

    // Another table: c5.large at 1.00 an hour on-demand in eu-west-1.
    let mut mine = p.clone();
    mine.date = "2030-01-01".into();
    mine.regions
        .get_mut("eu-west-1")
        .unwrap()
        .ec2_hour
        .insert("c5.large".into(), 1.0);
    mine.regions.remove("eu-north-1");
    std::fs::write(d.join("prices.json"), serde_json::to_string(&mine).unwrap()).unwrap();
    let out = run(&["plan", "local.kdl", "--prices", "prices.json"]);
    let plan = stdout(&out);
    assert!(plan.contains("list prices of 2030-01-01"), "{plan}");
    assert!(
        plan.contains("eu-west-1     c5.large spot node             3 x  0.3500/h"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "Not priced (not in the price table; --prices FILE adds them): region eu-north-1"
        ),
        "{plan}"
    );
    let out = run(&["plan", "local.kdl", "--prices", "missing.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read the price table"),
        "{}",
        stderr(&out)
    );
}
