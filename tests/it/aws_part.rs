//! The AWS part of `topologies/local.kdl` (three regions: network, IAM, EKS + node pool, KMS,
//! S3, NLB with target groups and listeners) against a real moto server: checked through the
//! API, idempotent, scaled in place, destroyed leaving nothing tagged with the stack; and the
//! same through 20% injected faults.

use std::path::Path;
use vaultform::address::{Item, Role};

use crate::support::aws::Api;
use crate::support::testbed::{FaultProxy, Moto};
use crate::support::{root, stderr, stdout, vaultform_aws};

const STACK: &str = "bv-local";
const REGIONS: [&str; 3] = ["eu-central-1", "eu-west-1", "eu-north-1"];

/// `--target` for every AWS resource of the topology.
fn aws_targets(topology: &str) -> Vec<String> {
    let loaded = vaultform::load("local.kdl", topology);
    let (_, g) = loaded.valid().expect("valid");
    let mut out = Vec::new();
    for ix in g.dag.node_indices() {
        let r = g.resource(ix);
        // The Vault cluster (runtime, bootstrap, configuration) is tests/it/cluster.rs's.
        let aws = !matches!(
            r.address.item(),
            Item::Vault { .. } | Item::IamRole(Role::Vault(_))
        );
        if aws {
            out.push("--target".to_string());
            out.push(r.address.to_string());
        }
    }
    out
}

fn run(d: &Path, ep: &str, cmd: &[&str], targets: &[String]) -> std::process::Output {
    let mut args: Vec<&str> = cmd.to_vec();
    args.extend(targets.iter().map(String::as_str));
    vaultform_aws(d, ep, &args)
}

fn setup(max: u32) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("topologies/local.kdl"))
        .unwrap()
        .replace(
            "min=1 desired=1 max=3",
            &format!("min=1 desired=1 max={max}"),
        );
    std::fs::write(dir.path().join("local.kdl"), &text).unwrap();
    (dir, text)
}

/// Counts what is left tagged with the stack, per service, straight from moto.
async fn leftovers(api: &Api) -> Vec<String> {
    let mut left = Vec::new();
    let tag = || {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag:vaultform:stack")
            .values(STACK)
            .build()
    };
    for r in REGIONS {
        let ec2 = api.ec2(r);
        let n = ec2
            .describe_vpcs()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .vpcs()
            .len()
            + ec2
                .describe_subnets()
                .filters(tag())
                .send()
                .await
                .unwrap()
                .subnets()
                .len()
            + ec2
                .describe_internet_gateways()
                .filters(tag())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len()
            + ec2
                .describe_route_tables()
                .filters(tag())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len()
            + ec2
                .describe_security_groups()
                .filters(tag())
                .send()
                .await
                .unwrap()
                .security_groups()
                .len();
        if n > 0 {
            left.push(format!("{r}: {n} EC2 resources"));
        }
        let eks = api.eks(r);
        let clusters = eks.list_clusters().send().await.unwrap();
        if !clusters.clusters().is_empty() {
            left.push(format!("{r}: clusters {:?}", clusters.clusters()));
        }
        let elb = api.elbv2(r);
        let lbs = elb.describe_load_balancers().send().await.unwrap();
        let tgs = elb.describe_target_groups().send().await.unwrap();
        if !lbs.load_balancers().is_empty() || !tgs.target_groups().is_empty() {
            left.push(format!(
                "{r}: {} load balancers, {} target groups",
                lbs.load_balancers().len(),
                tgs.target_groups().len()
            ));
        }
        let keys = api.stack_keys(r, STACK).await;
        if keys.keys().any(|s| s != "PendingDeletion") {
            left.push(format!("{r}: keys {keys:?}"));
        }
    }
    let buckets = api.stack_buckets(STACK).await;
    if !buckets.is_empty() {
        left.push(format!("buckets {buckets:?}"));
    }
    let roles = api.iam().list_roles().send().await.unwrap();
    let ours: Vec<&str> = roles
        .roles()
        .iter()
        .map(|r| r.role_name())
        .filter(|n| n.starts_with(STACK))
        .collect();
    if !ours.is_empty() {
        left.push(format!("roles {ours:?}"));
    }
    left
}

#[test]
fn the_aws_part_of_local_kdl_applies_checks_out_scales_in_place_and_destroys_completely() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let (dir, text) = setup(3);
    let d = dir.path();
    let targets = aws_targets(&text);

    let out = run(d, &ep, &["apply", "local.kdl", "--auto-approve"], &targets);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("50 created"), "{}", stderr(&out));
    // Long waits say how long they are expected to take, and the run how long it has to go.
    let log = stderr(&out);
    let started = log
        .lines()
        .find(|l| l.starts_with("region.eu-central-1.cluster.bv-eu-central-1: creating..."))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        started.contains(" (about ") && started.ends_with(" expected)"),
        "{started}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(": created (") && l.ends_with(" to go")),
        "{log}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        for r in REGIONS {
            let elb = api.elbv2(r);
            let lbs = elb.describe_load_balancers().send().await.unwrap();
            assert_eq!(
                lbs.load_balancers().len(),
                if r == "eu-central-1" { 2 } else { 1 },
                "{r}"
            );
            for tg in elb
                .describe_target_groups()
                .send()
                .await
                .unwrap()
                .target_groups()
            {
                assert_eq!(tg.health_check_path(), Some("/v1/sys/health"));
                let codes = tg.matcher().and_then(|m| m.http_code()).unwrap();
                let front = tg
                    .target_group_name()
                    .unwrap_or_default()
                    .starts_with("bv-front");
                assert_eq!(
                    codes,
                    if front { "200" } else { "200,429" },
                    "{:?}",
                    tg.target_group_name()
                );
            }
            let eks = api.eks(r);
            let name = format!("bv-{r}");
            let ng = eks
                .describe_nodegroup()
                .cluster_name(&name)
                .nodegroup_name("pool1")
                .send()
                .await
                .unwrap();
            let ng = ng.nodegroup().unwrap();
            let scaling = ng.scaling_config().unwrap();
            assert_eq!(
                (
                    scaling.min_size(),
                    scaling.desired_size(),
                    scaling.max_size()
                ),
                (Some(1), Some(1), Some(3))
            );
            assert_eq!(ng.capacity_type().map(|c| c.as_str()), Some("SPOT"));
            let cluster = eks.describe_cluster().name(&name).send().await.unwrap();
            let tags = cluster.cluster().unwrap().tags().unwrap();
            assert_eq!(tags.get("vaultform:stack").map(String::as_str), Some(STACK));
            assert_eq!(
                tags.get("purpose").map(String::as_str),
                Some("vaultform-demo")
            );
        }
        for r in ["eu-central-1", "eu-west-1"] {
            let name = format!("bv-local-unseal-{r}");
            assert_eq!(api.versioning(r, &name).await, "Enabled");
            let enc = api
                .s3(r)
                .get_bucket_encryption()
                .bucket(&name)
                .send()
                .await
                .unwrap();
            let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
            assert_eq!(rule.bucket_key_enabled(), Some(true));
            let keys = api.stack_keys(r, STACK).await;
            let key = rule
                .apply_server_side_encryption_by_default()
                .unwrap()
                .kms_master_key_id()
                .unwrap();
            assert!(key.contains(keys["Enabled"][0].as_str()), "{key}");
            let pab = api
                .s3(r)
                .get_public_access_block()
                .bucket(&name)
                .send()
                .await
                .unwrap();
            let pab = pab.public_access_block_configuration().unwrap();
            assert_eq!(
                (pab.block_public_acls(), pab.restrict_public_buckets()),
                (Some(true), Some(true))
            );
        }
    });

    // A second apply is a no-op.
    let out = run(
        d,
        &ep,
        &["plan", "local.kdl", "--detailed-exitcode"],
        &targets,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Raising a node pool's max is an in-place update.
    let raised = text.replace("min=1 desired=1 max=3", "min=1 desired=1 max=5");
    std::fs::write(d.join("local.kdl"), &raised).unwrap();
    let out = run(d, &ep, &["plan", "local.kdl", "--json"], &targets);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let changed: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no-op")
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert!(
        changed
            .iter()
            .all(|(a, act)| a.ends_with(".node-pool.pool1") && act == "update"),
        "{changed:?}"
    );
    let out = run(d, &ep, &["apply", "local.kdl", "--auto-approve"], &targets);
    assert!(stderr(&out).contains("3 updated"), "{}", stderr(&out));
    rt.block_on(async {
        let ng = api
            .eks("eu-west-1")
            .describe_nodegroup()
            .cluster_name("bv-eu-west-1")
            .nodegroup_name("pool1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            ng.nodegroup().unwrap().scaling_config().unwrap().max_size(),
            Some(5)
        );
    });

    let out = run(d, &ep, &["destroy", "local.kdl", "--auto-approve"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left = rt.block_on(leftovers(&api));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_aws_part_converges_through_20_percent_injected_faults() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint(), 0.2, 11);
    let (dir, text) = setup(3);
    let d = dir.path();
    let targets = aws_targets(&text);
    let out = run(
        d,
        &proxy.endpoint(),
        &["apply", "local.kdl", "--auto-approve"],
        &targets,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        d,
        &proxy.endpoint(),
        &["plan", "local.kdl", "--detailed-exitcode"],
        &targets,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = run(
        d,
        &proxy.endpoint(),
        &["destroy", "local.kdl", "--auto-approve"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts: serde_json::Value = serde_json::from_str(&proxy.counts()).unwrap();
    assert!(
        counts["throttled"].as_u64().unwrap() + counts["server_errors"].as_u64().unwrap() > 40,
        "{counts}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&moto.endpoint()));
    let left = rt.block_on(leftovers(&api));
    assert!(left.is_empty(), "left behind: {left:?}");
}
