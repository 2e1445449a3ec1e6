//! Stacks that expire, against a real moto server: `apply --ttl` tags every resource with
//! `vaultform:expires-at` and `vaultform:state`; once that passes, `expired --destroy`, run
//! where no topology file is, destroys the stack completely through its state (or sweeps it
//! when the state is gone) and leaves a stack not yet expired untouched; `apply --ttl` on a
//! live stack extends it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{stderr, stdout, vaultform_aws};

const REGIONS: &str = "eu-west-1,eu-north-1";

/// A network, keys and buckets in two regions.
fn topology(stack: &str, net: u8) -> String {
    // One of them says it in the topology too (`--ttl` wins over it).
    let expires = if stack == "keep" {
        "expires-after \"3h\"\n"
    } else {
        ""
    };
    format!(
        r#"stack "{stack}"
{expires}state "local" path="state/{stack}.json"
defaults {{
    key deletion-window=7
    bucket versioning=#false force-destroy=#true
}}
region "eu-west-1" {{
    network vpc-cidr="10.{net}.0.0/16" azs=1
    key "unseal" alias="alias/{stack}-unseal"
    bucket "{stack}-eu-west-1" key="unseal"
}}
region "eu-north-1" {{
    key "unseal" alias="alias/{stack}-unseal"
    bucket "{stack}-eu-north-1" key="unseal"
}}
"#
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn apply(dir: &Path, ep: &str, ttl: &str) {
    let out = vaultform_aws(
        dir,
        ep,
        &["apply", "stack.kdl", "--auto-approve", "--ttl", ttl],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("The stack expires at"),
        "{}",
        stderr(&out)
    );
}

fn state(dir: &Path, stack: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(format!("state/{stack}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The expiry tags of every resource of `stack` that the APIs show, by resource.
async fn expiry_tags(api: &Api, stack: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    let pick = |tags: &BTreeMap<String, String>| {
        (
            tags.get("vaultform:expires-at")
                .cloned()
                .unwrap_or_default(),
            tags.get("vaultform:state").cloned().unwrap_or_default(),
        )
    };
    let ec2 = api.ec2("eu-west-1");
    let tag = Filter::builder()
        .name("tag:vaultform:stack")
        .values(stack)
        .build();
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag.clone())
        .send()
        .await
        .unwrap();
    let subnets = ec2
        .describe_subnets()
        .filters(tag.clone())
        .send()
        .await
        .unwrap();
    let sgs = ec2
        .describe_security_groups()
        .filters(tag.clone())
        .send()
        .await
        .unwrap();
    let ec2_tags = |t: &[aws_sdk_ec2::types::Tag]| -> BTreeMap<String, String> {
        t.iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect()
    };
    for v in vpcs.vpcs() {
        out.insert(v.vpc_id().unwrap().to_string(), pick(&ec2_tags(v.tags())));
    }
    for s in subnets.subnets() {
        out.insert(
            s.subnet_id().unwrap().to_string(),
            pick(&ec2_tags(s.tags())),
        );
    }
    for g in sgs.security_groups() {
        out.insert(g.group_id().unwrap().to_string(), pick(&ec2_tags(g.tags())));
    }
    for r in ["eu-west-1", "eu-north-1"] {
        for b in api.stack_buckets(stack).await {
            out.insert(b.clone(), pick(&api.bucket_tags(r, &b).await));
        }
        let kms = api.kms(r);
        for (key_state, ids) in api.stack_keys(r, stack).await {
            if key_state == "PendingDeletion" {
                continue;
            }
            for id in ids {
                let t = kms.list_resource_tags().key_id(&id).send().await.unwrap();
                let tags = t
                    .tags()
                    .iter()
                    .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
                    .collect();
                out.insert(id, pick(&tags));
            }
        }
    }
    out
}

#[test]
fn expired_stacks_are_destroyed_by_their_tags_alone_and_others_left_alone() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let exp = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    let lost = tempfile::tempdir().unwrap();
    let nowhere = tempfile::tempdir().unwrap();
    std::fs::write(exp.path().join("stack.kdl"), topology("exp", 41)).unwrap();
    std::fs::write(keep.path().join("stack.kdl"), topology("keep", 42)).unwrap();
    std::fs::write(lost.path().join("stack.kdl"), topology("lost", 43)).unwrap();

    apply(exp.path(), &ep, "2s");
    apply(keep.path(), &ep, "1h");
    apply(lost.path(), &ep, "2s");
    // Every resource carries when it expires and where its state is; so does the state.
    let state_file = std::path::absolute(exp.path().join("state/exp.json")).unwrap();
    let tags = rt.block_on(expiry_tags(&api, "exp"));
    assert_eq!(
        tags.len(),
        7,
        "VPC, subnet, security group, 2 keys, 2 buckets: {tags:?}"
    );
    let at = state(exp.path(), "exp")["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, (expires, state_tag)) in &tags {
        assert_eq!(expires, &at, "{id}");
        assert_eq!(
            state_tag,
            &format!("local:{}", state_file.display()),
            "{id}"
        );
    }
    let out = vaultform_aws(exp.path(), &ep, &["plan", "stack.kdl"]);
    assert!(
        stdout(&out).contains(&format!("The stack expires at {at}")),
        "{}",
        stdout(&out)
    );
    let out = vaultform_aws(exp.path(), &ep, &["plan", "stack.kdl", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(plan["expires_at"], at.as_str());
    let out = vaultform_aws(exp.path(), &ep, &["status", "stack.kdl"]);
    assert!(
        stdout(&out).contains(&format!("The stack expires at {at}")),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let out = vaultform_aws(keep.path(), &ep, &["plan", "stack.kdl"]);
    assert!(
        stdout(&out).contains(
            "expires-after 3h 00m: an apply tags every resource to expire that long after it."
        ),
        "{}",
        stdout(&out)
    );
    let out = vaultform_aws(keep.path(), &ep, &["plan", "stack.kdl", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(plan["expires_after_seconds"], 3 * 3600);
    // The state of `lost` is gone: only the tags are left.
    std::fs::remove_dir_all(lost.path().join("state")).unwrap();

    std::thread::sleep(Duration::from_secs(3));
    let out = vaultform_aws(
        nowhere.path(),
        &ep,
        &["expired", "--regions", REGIONS, "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let listed: BTreeMap<String, bool> = v["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stack"].as_str().unwrap().to_string(),
                s["expired"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        BTreeMap::from([
            ("exp".to_string(), true),
            ("keep".to_string(), false),
            ("lost".to_string(), true)
        ])
    );

    let out = vaultform_aws(nowhere.path(), &ep, &["expired", "--regions", REGIONS]);
    let listing = stdout(&out);
    assert!(
        listing.contains("EXPIRED  ") && listing.contains("  exp  "),
        "{listing}"
    );
    assert!(
        listing.contains("expires  ") && listing.contains("  keep  "),
        "{listing}"
    );
    let keep_before = state(keep.path(), "keep");
    let out = vaultform_aws(
        nowhere.path(),
        &ep,
        &[
            "expired",
            "--regions",
            REGIONS,
            "--destroy",
            "--auto-approve",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Destroyed exp: 9 deleted through its state"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Destroyed lost: no state found; 9 more swept"),
        "{}",
        stderr(&out)
    );
    // Completely: nothing of either is left but keys pending deletion.
    for stack in ["exp", "lost"] {
        assert!(rt.block_on(expiry_tags(&api, stack)).is_empty(), "{stack}");
        let out = vaultform_aws(
            nowhere.path(),
            &ep,
            &["sweep", "--stack", stack, "--regions", REGIONS, "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        assert_eq!(v["orphans"], serde_json::json!([]), "{stack}: {v}");
        assert_eq!(v["found"], 2, "{stack}: only the two pending keys: {v}");
    }
    assert_eq!(
        state(exp.path(), "exp")["resources"],
        serde_json::json!({}),
        "the state records nothing"
    );
    // The stack not yet expired is untouched.
    assert_eq!(state(keep.path(), "keep"), keep_before);
    assert_eq!(rt.block_on(expiry_tags(&api, "keep")).len(), 7);

    // `apply --ttl` on a live stack extends it: new tags on every resource, nothing else.
    let old = keep_before["expires_at"].as_str().unwrap().to_string();
    apply(keep.path(), &ep, "2h");
    let new = state(keep.path(), "keep")["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(new > old, "{new} after {old}");
    let tags = rt.block_on(expiry_tags(&api, "keep"));
    assert_eq!(tags.len(), 7);
    assert!(tags.values().all(|(at, _)| *at == new), "{tags:?}");
    let out = vaultform_aws(
        keep.path(),
        &ep,
        &["plan", "stack.kdl", "--detailed-exitcode"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the expiry tags are no drift: {}",
        stdout(&out)
    );
}

/// The example pipeline's command, as written, runs: hourly, and without a topology file.
#[test]
fn the_example_pipeline_runs_its_command_every_hour() {
    let text = std::fs::read_to_string(crate::support::root().join("examples/expired-hourly.yml"))
        .unwrap();
    assert!(text.contains("- cron: \"0 * * * *\""), "hourly");
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("run: vaultform expired"))
        .expect("a step runs vaultform expired");
    let args: Vec<&str> = std::iter::once("expired")
        .chain(line.split_whitespace())
        .collect();
    assert!(
        args.contains(&"--destroy") && args.contains(&"--auto-approve"),
        "{args:?}"
    );
    let moto = Moto::start();
    let nowhere = tempfile::tempdir().unwrap();
    let out = vaultform_aws(nowhere.path(), &moto.endpoint(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["stacks"], serde_json::json!([]), "{v}");
    // Without --regions: every region the account has enabled.
    let out = vaultform_aws(nowhere.path(), &moto.endpoint(), &["expired", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Where the `vaultform:state` tag says the state is: an absolute local path, or S3.
#[test]
fn the_state_tag_names_a_local_path_or_an_s3_object() {
    let s3 = "stack \"t\"\nstate \"s3\" bucket=\"team-state\" key=\"t.json\" region=\"eu-west-1\"\nregion \"eu-west-1\" {\n    key \"k\" alias=\"alias/t\"\n}\n";
    let loaded = vaultform::load("t.kdl", s3);
    let (t, _) = loaded.valid().expect("valid");
    assert_eq!(
        vaultform::session::state_location(t, None, None),
        "s3://team-state/t.json@eu-west-1"
    );
    let local = s3.replace(
        "state \"s3\" bucket=\"team-state\" key=\"t.json\" region=\"eu-west-1\"",
        "state \"local\" path=\"st/t.json\"",
    );
    let loaded = vaultform::load("t.kdl", local);
    let (t, _) = loaded.valid().expect("valid");
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        vaultform::session::state_location(t, Some(dir.path()), None),
        format!("local:{}", dir.path().join("st/t.json").display())
    );
    assert!(vaultform::sweep::expiry::state_path("s3://team-state/t.json@eu-west-1").is_none());
}
