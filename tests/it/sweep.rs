//! `sweep` against a real moto server: what an apply SIGKILLed before its state was lost left
//! behind, plus resources made by hand with the stack's tags in two regions and a server
//! process under the work-dir, are reported exactly (the count matches an inventory taken
//! through the APIs here), nothing of another stack or untagged is; `--delete` leaves none of
//! them and a second sweep reports nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use aws_sdk_kms::types::KeyState;

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{aws_command, root, stderr, stdout, vaultform_aws};

const STACK: &str = "bv-local";
const REGIONS: [&str; 3] = ["eu-central-1", "eu-west-1", "eu-north-1"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ec2_tags(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

/// `(region, id)` of every resource carrying the stack's tag (or Kubernetes' tag for one of
/// its clusters), KMS keys pending deletion aside: counted here through the APIs, apart from
/// vaultform's own inventory.
pub(crate) async fn inventory(
    api: &Api,
    stack: &str,
    clusters: &[&str],
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let tag = || {
        Filter::builder()
            .name("tag:vaultform:stack")
            .values(stack)
            .build()
    };
    let ours = |tags: Option<&std::collections::HashMap<String, String>>| {
        tags.and_then(|t| t.get("vaultform:stack"))
            .map(String::as_str)
            == Some(stack)
    };
    for r in REGIONS {
        let at = |id: &str| (r.to_string(), id.to_string());
        let ec2 = api.ec2(r);
        let mut vpcs = Vec::new();
        for v in ec2
            .describe_vpcs()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .vpcs()
        {
            out.insert(at(v.vpc_id().unwrap()));
            vpcs.push(v.vpc_id().unwrap().to_string());
        }
        for n in ec2
            .describe_network_interfaces()
            .send()
            .await
            .unwrap()
            .network_interfaces()
        {
            if vpcs.iter().any(|v| Some(v.as_str()) == n.vpc_id()) {
                out.insert(at(n.network_interface_id().unwrap()));
            }
        }
        for s in ec2
            .describe_subnets()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .subnets()
        {
            out.insert(at(s.subnet_id().unwrap()));
        }
        for g in ec2
            .describe_internet_gateways()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .internet_gateways()
        {
            out.insert(at(g.internet_gateway_id().unwrap()));
        }
        for t in ec2
            .describe_route_tables()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .route_tables()
        {
            out.insert(at(t.route_table_id().unwrap()));
        }
        for g in ec2
            .describe_security_groups()
            .filters(tag())
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            out.insert(at(g.group_id().unwrap()));
        }
        for v in ec2.describe_volumes().send().await.unwrap().volumes() {
            let keys: Vec<&str> = v.tags().iter().filter_map(|t| t.key()).collect();
            let k8s = clusters
                .iter()
                .any(|c| keys.contains(&format!("kubernetes.io/cluster/{c}").as_str()));
            let tagged = v.tags().iter().any(|t| {
                (t.key() == Some("vaultform:stack") && t.value() == Some(stack))
                    || (t.key() == Some("elbv2.k8s.aws/cluster")
                        && clusters.contains(&t.value().unwrap_or_default()))
            });
            if tagged || k8s {
                out.insert(at(v.volume_id().unwrap()));
            }
        }
        let eks = api.eks(r);
        for c in eks.list_clusters().send().await.unwrap().clusters() {
            let d = eks.describe_cluster().name(c).send().await.unwrap();
            if !ours(d.cluster().unwrap().tags()) {
                continue;
            }
            out.insert(at(c));
            for g in eks
                .list_nodegroups()
                .cluster_name(c)
                .send()
                .await
                .unwrap()
                .nodegroups()
            {
                let n = eks
                    .describe_nodegroup()
                    .cluster_name(c)
                    .nodegroup_name(g)
                    .send()
                    .await
                    .unwrap();
                if ours(n.nodegroup().unwrap().tags()) {
                    out.insert(at(g));
                }
            }
        }
        let elb = api.elbv2(r);
        let mut arns: Vec<String> = Vec::new();
        for lb in elb
            .describe_load_balancers()
            .send()
            .await
            .unwrap()
            .load_balancers()
        {
            let arn = lb.load_balancer_arn().unwrap();
            arns.push(arn.to_string());
            for l in elb
                .describe_listeners()
                .load_balancer_arn(arn)
                .send()
                .await
                .unwrap()
                .listeners()
            {
                arns.push(l.listener_arn().unwrap().to_string());
            }
        }
        for tg in elb
            .describe_target_groups()
            .send()
            .await
            .unwrap()
            .target_groups()
        {
            arns.push(tg.target_group_arn().unwrap().to_string());
        }
        for arn in arns {
            let t = elb
                .describe_tags()
                .resource_arns(&arn)
                .send()
                .await
                .unwrap();
            let tagged = t.tag_descriptions().iter().flat_map(|d| d.tags()).any(|t| {
                (t.key() == Some("vaultform:stack") && t.value() == Some(stack))
                    || (t.key() == Some("elbv2.k8s.aws/cluster")
                        && clusters.contains(&t.value().unwrap_or_default()))
            });
            if tagged {
                out.insert(at(&arn));
            }
        }
        let keys = api.stack_keys(r, stack).await;
        for (state, ids) in keys {
            if state != KeyState::PendingDeletion.as_str() {
                out.extend(ids.iter().map(|id| at(id)));
            }
        }
    }
    for b in api.stack_buckets(stack).await {
        let region = REGIONS
            .iter()
            .find(|r| b.ends_with(*r))
            .unwrap_or(&"eu-central-1");
        out.insert((region.to_string(), b));
    }
    let iam = api.iam();
    for role in iam.list_roles().send().await.unwrap().roles() {
        let t = iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .unwrap();
        if t.tags()
            .iter()
            .any(|t| t.key() == "vaultform:stack" && t.value() == stack)
        {
            out.insert(("global".to_string(), role.role_name().to_string()));
        }
    }
    out
}

/// The orphans a `sweep --json` reported, as `(region, id)`.
fn reported(json: &str) -> BTreeSet<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("sweep --json");
    v["orphans"]
        .as_array()
        .expect("orphans")
        .iter()
        .filter(|o| o["thing"] != "vault-member")
        .map(|o| {
            (
                o["region"].as_str().unwrap_or("global").to_string(),
                o["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `--target` for every AWS resource of local.kdl (the Vault cluster is cluster.rs's).
fn aws_targets(text: &str) -> Vec<String> {
    let loaded = vaultform::load("local.kdl", text);
    let (_, g) = loaded.valid().expect("valid");
    let mut out = Vec::new();
    for ix in g.dag.node_indices() {
        let r = g.resource(ix);
        let a = r.address.as_str();
        if !a.starts_with("vault.") && !a.starts_with("iam.role.vault") {
            out.push("--target".to_string());
            out.push(a.to_string());
        }
    }
    out
}

/// Applies the AWS part of local.kdl and SIGKILLs the apply once its state records `n`
/// resources (or when it ends), then loses the state.
fn killed_apply_then_lost_state(d: &Path, ep: &str, targets: &[String], n: usize) {
    let mut args = vec!["apply", "local.kdl", "--auto-approve"];
    args.extend(targets.iter().map(String::as_str));
    let mut child = aws_command(d, ep, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = d.join(".vaultform/bv-local.state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let recorded = std::fs::read_to_string(&state)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["resources"].as_object().map(|o| o.len()))
            .unwrap_or(0);
        if recorded >= n || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    for f in std::fs::read_dir(d.join(".vaultform")).unwrap().flatten() {
        if f.path().is_file() {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
}

/// A `sleep` under the work-dir with the record a member's directory holds: a server whose
/// state was lost.
fn orphan_process(work: &Path) -> u32 {
    let dir = work.join("members/vault-9");
    std::fs::create_dir_all(&dir).unwrap();
    let child = std::process::Command::new("sleep")
        .arg("300")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Reaped by a thread when the sweep stops it.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    let rec = vaultform::runtime::local::process::ProcessRecord {
        pid,
        start_time: vaultform::state::lock::process_start(pid).unwrap(),
        command: vec!["sleep".into(), "300".into()],
        log: dir.join("server.log"),
    };
    std::fs::write(
        dir.join("process.json"),
        serde_json::to_string(&rec).unwrap(),
    )
    .unwrap();
    pid
}

#[test]
fn sweep_reports_exactly_the_orphans_and_delete_leaves_none() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(root().join("topologies/local.kdl")).unwrap();
    std::fs::write(d.join("local.kdl"), &text).unwrap();
    let targets = aws_targets(&text);
    killed_apply_then_lost_state(d, &ep, &targets, 25);
    let pid = orphan_process(&d.join(".vaultform/bv-local"));

    // By hand, in two regions: the stack's (some with an address, some without) and others'.
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let others = rt.block_on(async {
        let ec2 = api.ec2("eu-west-1");
        let ours = [("vaultform:stack", STACK)];
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.99.0.0/16")
            .tag_specifications(ec2_tags(ResourceType::Vpc, &ours))
            .send()
            .await
            .unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.99.1.0/24")
            .tag_specifications(ec2_tags(ResourceType::Subnet, &ours))
            .send()
            .await
            .unwrap();
        // Untagged, but inside the stack's VPC: it would keep the VPC from being deleted.
        ec2.create_network_interface()
            .subnet_id(subnet.subnet().unwrap().subnet_id().unwrap())
            .send()
            .await
            .unwrap();
        ec2.create_volume()
            .availability_zone("eu-west-1a")
            .size(1)
            .tag_specifications(ec2_tags(ResourceType::Volume, &ours))
            .send()
            .await
            .unwrap();
        let central = api.ec2("eu-central-1");
        // A volume Kubernetes made for one of the stack's clusters.
        central
            .create_volume()
            .availability_zone("eu-central-1a")
            .size(8)
            .tag_specifications(ec2_tags(
                ResourceType::Volume,
                &[("kubernetes.io/cluster/bv-eu-central-1", "owned")],
            ))
            .send()
            .await
            .unwrap();
        api.kms("eu-central-1")
            .create_key()
            .tags(
                aws_sdk_kms::types::Tag::builder()
                    .tag_key("vaultform:stack")
                    .tag_value(STACK)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        // A target group the AWS load balancer controller made for one of the stack's
        // clusters, in a VPC of nobody's.
        let plain_vpc = central
            .create_vpc()
            .cidr_block("10.97.0.0/16")
            .send()
            .await
            .unwrap();
        api.elbv2("eu-central-1")
            .create_target_group()
            .name("k8s-vault-api")
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
            .port(8200)
            .vpc_id(plain_vpc.vpc().unwrap().vpc_id().unwrap())
            .tags(
                aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                    .key("elbv2.k8s.aws/cluster")
                    .value("bv-eu-central-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        // Another stack's and untagged: never reported, never deleted.
        let other_vpc = ec2
            .create_vpc()
            .cidr_block("10.98.0.0/16")
            .tag_specifications(ec2_tags(ResourceType::Vpc, &[("vaultform:stack", "other")]))
            .send()
            .await
            .unwrap();
        let untagged = central
            .create_volume()
            .availability_zone("eu-central-1a")
            .size(1)
            .send()
            .await
            .unwrap();
        let other_key = api
            .kms("eu-west-1")
            .create_key()
            .tags(
                aws_sdk_kms::types::Tag::builder()
                    .tag_key("vaultform:stack")
                    .tag_value("other")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        vec![
            plain_vpc.vpc().unwrap().vpc_id().unwrap().to_string(),
            other_vpc.vpc().unwrap().vpc_id().unwrap().to_string(),
            untagged.volume_id().unwrap().to_string(),
            other_key.key_metadata().unwrap().key_id().to_string(),
        ]
    });

    let clusters = ["bv-eu-central-1", "bv-eu-west-1", "bv-eu-north-1"];
    let mut expected = rt.block_on(inventory(&api, STACK, &clusters));
    // A kill between a bucket's CreateBucket and its tags leaves it untagged (it depends on
    // what was in flight): one the topology names, untagged and empty, is an orphan too.
    rt.block_on(async {
        let list = api.s3("us-east-1").list_buckets().send().await.unwrap();
        for b in list.buckets() {
            let name = b.name().unwrap_or_default();
            let region = name.trim_start_matches("bv-local-unseal-");
            if name.starts_with("bv-local-unseal-")
                && api.bucket_tags(region, name).await.is_empty()
            {
                expected.insert((region.to_string(), name.to_string()));
            }
        }
    });
    assert!(expected.len() >= 10, "{expected:?}");
    let out = vaultform_aws(d, &ep, &["sweep", "local.kdl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let found = reported(&stdout(&out));
    assert_eq!(found, expected, "sweep vs the API inventory");
    assert!(
        stdout(&out).contains("\"thing\":\"vault-member\""),
        "the server under the work-dir: {}",
        stdout(&out)
    );
    for other in &others {
        assert!(!stdout(&out).contains(other.as_str()), "{other} reported");
    }
    // The human view lists the same.
    let out = vaultform_aws(d, &ep, &["sweep", "local.kdl"]);
    assert!(
        stdout(&out).contains(&format!("({} of", expected.len() + 1)),
        "{}",
        stdout(&out)
    );

    let out = vaultform_aws(
        d,
        &ep,
        &["sweep", "local.kdl", "--delete", "--auto-approve"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        rt.block_on(inventory(&api, STACK, &clusters)).is_empty(),
        "left after sweep --delete"
    );
    assert!(
        vaultform::state::lock::process_start(pid).is_none()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the orphan server is stopped"
    );
    // Others' and untagged resources are still there.
    rt.block_on(async {
        let vpcs = api
            .ec2("eu-central-1")
            .describe_vpcs()
            .vpc_ids(&others[0])
            .send()
            .await;
        assert_eq!(vpcs.unwrap().vpcs().len(), 1);
        let vpcs = api
            .ec2("eu-west-1")
            .describe_vpcs()
            .vpc_ids(&others[1])
            .send()
            .await;
        assert_eq!(vpcs.unwrap().vpcs().len(), 1);
        let vols = api
            .ec2("eu-central-1")
            .describe_volumes()
            .volume_ids(&others[2])
            .send()
            .await;
        assert_eq!(vols.unwrap().volumes().len(), 1);
        let key = api
            .kms("eu-west-1")
            .describe_key()
            .key_id(&others[3])
            .send()
            .await
            .unwrap();
        assert_eq!(
            key.key_metadata().unwrap().key_state(),
            Some(&KeyState::Enabled)
        );
    });

    let out = vaultform_aws(d, &ep, &["sweep", "local.kdl", "--json"]);
    assert!(reported(&stdout(&out)).is_empty(), "{}", stdout(&out));
    assert!(stdout(&out).contains("\"orphans\":[]"), "{}", stdout(&out));
    let out = vaultform_aws(
        d,
        &ep,
        &[
            "sweep",
            "--stack",
            STACK,
            "--regions",
            "eu-west-1,eu-central-1",
        ],
    );
    assert!(stdout(&out).contains("No orphans"), "{}", stdout(&out));

    // A live stack: everything recorded, nothing reported.
    let mut args = vec!["apply", "local.kdl", "--auto-approve"];
    args.extend(targets.iter().map(String::as_str));
    let out = vaultform_aws(d, &ep, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = vaultform_aws(d, &ep, &["sweep", "local.kdl", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["orphans"], serde_json::json!([]), "{v}");
    assert!(v["found"].as_u64().unwrap() >= 50, "{v}");
    // Every enabled region, by the stack's name alone (no state: everything is unrecorded).
    let out = vaultform_aws(
        d,
        &ep,
        &["sweep", "--stack", STACK, "--all-regions", "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let regions = v["regions"].as_array().unwrap();
    assert!(regions.len() > 3, "{v}");
    assert!(regions.iter().any(|r| r == "eu-north-1"), "{v}");
    assert!(v["found"].as_u64().unwrap() >= 50, "{v}");
}

/// The lines of a `--json` run's stdout that carry `key`.
fn json_line(out: &str, key: &str) -> serde_json::Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get(key).is_some())
        .unwrap_or_else(|| panic!("no {key} line in {out}"))
}

#[test]
fn after_destroy_the_report_lists_what_remains_with_kms_deletion_dates() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(root().join("topologies/local.kdl")).unwrap();
    std::fs::write(d.join("local.kdl"), &text).unwrap();
    let targets = aws_targets(&text);
    let run = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend(targets.iter().map(String::as_str));
        vaultform_aws(d, &ep, &args)
    };
    let out = run(&["apply", "local.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Made by hand with the stack's tag: the destroy does not know it, the report does.
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let volume = rt.block_on(async {
        let v = api
            .ec2("eu-north-1")
            .create_volume()
            .availability_zone("eu-north-1a")
            .size(4)
            .tag_specifications(ec2_tags(
                ResourceType::Volume,
                &[("vaultform:stack", STACK)],
            ))
            .send()
            .await
            .unwrap();
        v.volume_id().unwrap().to_string()
    });

    let out = run(&["destroy", "local.kdl", "--auto-approve", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let remains = json_line(&stdout(&out), "remains")["remains"].clone();
    assert_eq!(remains["checked"], true, "{remains}");
    let items = remains["items"].as_array().unwrap();
    let keys: Vec<&serde_json::Value> = items.iter().filter(|i| i["thing"] == "kms-key").collect();
    assert_eq!(keys.len(), 2, "{remains}");
    rt.block_on(async {
        for k in &keys {
            let region = k["region"].as_str().unwrap();
            let meta = api
                .kms(region)
                .describe_key()
                .key_id(k["id"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            let meta = meta.key_metadata().unwrap();
            assert_eq!(meta.key_state(), Some(&KeyState::PendingDeletion));
            let date = meta
                .deletion_date()
                .unwrap()
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap();
            assert_eq!(k["until"].as_str(), Some(date.as_str()), "{k}");
            assert_eq!(k["billed"], false, "{k}");
        }
    });
    let vol: Vec<&serde_json::Value> = items
        .iter()
        .filter(|i| i["id"] == volume.as_str())
        .collect();
    assert_eq!(vol.len(), 1, "{remains}");
    assert_eq!(vol[0]["billed"], true);
    assert_eq!(
        items.len(),
        3,
        "the keys and the volume, nothing else: {remains}"
    );

    // In words, and the verdict only once the APIs say so.
    let out = run(&["destroy", "local.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("deleted by AWS on"), "{err}");
    assert!(err.contains("1 billable resource(s) remain"), "{err}");
    assert!(!err.contains("Nothing billable remains"), "{err}");
    let out = vaultform_aws(
        d,
        &ep,
        &["sweep", "local.kdl", "--delete", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["destroy", "local.kdl", "--auto-approve"]);
    assert!(
        stderr(&out).contains("Nothing billable remains (checked through the AWS APIs)."),
        "{}",
        stderr(&out)
    );
}

/// A bucket the topology names that exists untagged and empty (a create killed between
/// `CreateBucket` and its tags) is reported and removed; one that holds an object is not
/// touched: it may be someone else's.
#[test]
fn an_untagged_empty_bucket_the_topology_names_is_an_orphan() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(root().join("topologies/local.kdl"), d.join("local.kdl")).unwrap();
    let rt = runtime();
    let api = rt.block_on(Api::new(&ep));
    let (empty, full) = ("bv-local-unseal-eu-west-1", "bv-local-unseal-eu-central-1");
    rt.block_on(async {
        for (name, region) in [(empty, "eu-west-1"), (full, "eu-central-1")] {
            api.s3(region)
                .create_bucket()
                .bucket(name)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            region,
                        ))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        api.s3("eu-central-1")
            .put_object()
            .bucket(full)
            .key("data")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    });
    let out = vaultform_aws(d, &ep, &["sweep", "local.kdl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        reported(&stdout(&out)),
        BTreeSet::from([("eu-west-1".to_string(), empty.to_string())]),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("a create cut short before its tags"));
    let out = vaultform_aws(
        d,
        &ep,
        &["sweep", "local.kdl", "--delete", "--auto-approve"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names: Vec<String> = rt.block_on(async {
        let list = api.s3("us-east-1").list_buckets().send().await.unwrap();
        list.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect()
    });
    assert_eq!(names, [full.to_string()]);
}
