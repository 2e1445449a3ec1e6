//! The AWS side of the Kubernetes runtime against moto (`tests/fixtures/clusters/eks-aws.kdl`,
//! two members on one EKS cluster in eu-west-1 and one in eu-north-1), checked through the
//! APIs: an IAM OIDC provider per cluster for the issuer EKS reports; the Vault role trusting
//! exactly each member's service account through its cluster's provider, with no policy
//! (its seal is shamir); target groups on the members' node ports with HTTPS checks, attached to the node
//! groups' auto scaling groups (made here under the name EKS reports, as real EKS would; moto
//! makes none); a second plan changes nothing; access entries refused clearly (moto has none);
//! `sweep` telling Kubernetes' security groups apart while their cluster is recorded; destroy
//! removing the volumes the EBS CSI driver made for the clusters' claims, detaching the target
//! groups, and leaving nothing billable.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::support::aws::Api;
use crate::support::stack::LocalStack;
use crate::support::{stderr, stdout};

const FILE: &str = "eks-aws.kdl";
const STATE: &str = ".vaultform/eks-aws.state.json";
const WEST: &str = "eu-west-1";
const NORTH: &str = "eu-north-1";
const ACCESS: &str = "region.eu-west-1.cluster.ea-west.access.arn:aws:iam::111122223333:role/ci";

/// `(region, cluster)` of the fixture's EKS clusters.
const CLUSTERS: [(&str, &str); 2] = [(WEST, "ea-west"), (NORTH, "ea-north")];

/// The nodes of the AWS side this test applies (with what they depend on).
fn targets() -> Vec<String> {
    let mut t = vec!["iam.role.vault.ea".to_string()];
    for (r, c) in CLUSTERS {
        t.push(format!("region.{r}.cluster.{c}.volumes"));
    }
    for (r, lb, c) in [
        (WEST, "ea-vault-0", "ea-west"),
        (WEST, "ea-vault-1", "ea-west"),
        (NORTH, "ea-vault-2", "ea-north"),
    ] {
        for port in ["api", "cluster"] {
            t.push(format!(
                "region.{r}.load-balancer.{lb}.target-group.{port}.nodes.{c}"
            ));
        }
    }
    t
}

fn with_targets<'a>(head: &[&'a str], targets: &'a [String]) -> Vec<&'a str> {
    let mut args = head.to_vec();
    for t in targets {
        args.push("--target");
        args.push(t);
    }
    args
}

fn tags(kind: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

/// The auto scaling group EKS reports for a node group, made in moto as EKS would make it.
pub(crate) async fn make_node_group_asg(api: &Api, region: &str, cluster: &str) -> String {
    let ng = api
        .eks(region)
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name("pool1")
        .send()
        .await
        .unwrap();
    let ng = ng.nodegroup().unwrap();
    let name = ng.resources().unwrap().auto_scaling_groups()[0]
        .name()
        .unwrap()
        .to_string();
    let template = format!("lt-{cluster}");
    api.ec2(region)
        .create_launch_template()
        .launch_template_name(&template)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(aws_sdk_ec2::types::InstanceType::C5Large)
                .build(),
        )
        .send()
        .await
        .unwrap();
    api.autoscaling(region)
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(&template)
                .build(),
        )
        .min_size(1)
        .max_size(2)
        .desired_capacity(1)
        .vpc_zone_identifier(ng.subnets().join(","))
        .send()
        .await
        .unwrap();
    name
}

/// The target groups attached to an auto scaling group, by name.
async fn attached(api: &Api, region: &str, asg: &str) -> BTreeSet<String> {
    let out = api
        .autoscaling(region)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(asg)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0]
        .target_group_arns()
        .iter()
        .map(|a| a.split('/').nth(1).unwrap_or_default().to_string())
        .collect()
}

/// IDs of the volumes in `region` that carry tag `key`.
async fn volumes_tagged(api: &Api, region: &str, key: &str) -> Vec<String> {
    let out = api
        .ec2(region)
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag-key")
                .values(key)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.volumes()
        .iter()
        .filter_map(|v| v.volume_id().map(str::to_owned))
        .collect()
}

#[test]
fn the_aws_side_of_the_kubernetes_runtime_applies_and_destroys_to_nothing() {
    let stack = LocalStack::new(FILE, ".vaultform/ea");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&stack.moto.endpoint()));

    // The node groups first; then their auto scaling groups, as EKS would make them.
    let pools: Vec<String> = CLUSTERS
        .iter()
        .map(|(r, c)| format!("region.{r}.cluster.{c}.node-pool.pool1"))
        .collect();
    stack.ok(&with_targets(&["apply", FILE, "--auto-approve"], &pools));
    let asgs: Vec<String> = rt.block_on(async {
        let mut out = Vec::new();
        for (r, c) in CLUSTERS {
            out.push(make_node_group_asg(&api, r, c).await);
        }
        out
    });

    // Access entries: moto has no such API; the apply says so and fails.
    let out = stack.run(&["apply", FILE, "--auto-approve", "--target", ACCESS]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this EKS endpoint does not implement access entries"),
        "{}",
        stderr(&out)
    );

    let targets = targets();
    stack.ok(&with_targets(&["apply", FILE, "--auto-approve"], &targets));
    let state = stack.state(STATE);
    let output = |address: &str, key: &str| {
        state["resources"][address]["outputs"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{address} has no output {key}"))
            .to_string()
    };
    rt.block_on(async {
        let iam = api.iam();
        // One OIDC provider per cluster, for the issuer EKS reports; the audience STS; no
        // thumbprint sent.
        let mut providers = Vec::new();
        for (r, c) in CLUSTERS {
            let issuer = api
                .eks(r)
                .describe_cluster()
                .name(c)
                .send()
                .await
                .unwrap()
                .cluster()
                .unwrap()
                .identity()
                .unwrap()
                .oidc()
                .unwrap()
                .issuer()
                .unwrap()
                .to_string();
            let address = format!("region.{r}.cluster.{c}.oidc");
            assert_eq!(output(&address, "issuer"), issuer);
            let arn = output(&address, "arn");
            let host = issuer.strip_prefix("https://").unwrap();
            assert!(arn.ends_with(&format!(":oidc-provider/{host}")), "{arn}");
            let p = iam
                .get_open_id_connect_provider()
                .open_id_connect_provider_arn(&arn)
                .send()
                .await
                .unwrap();
            assert_eq!(p.client_id_list(), ["sts.amazonaws.com"]);
            assert!(p.thumbprint_list().is_empty());
            providers.push((arn, host.to_string()));
        }

        // The Vault role: web identity from each cluster's provider, for exactly the service
        // accounts of the members there; its unseal policy kept.
        let role = iam
            .get_role()
            .role_name("eks-aws-vault-ea")
            .send()
            .await
            .unwrap();
        assert_eq!(
            output("iam.role.vault.ea", "arn"),
            role.role().unwrap().arn()
        );
        let doc = role
            .role()
            .unwrap()
            .assume_role_policy_document()
            .unwrap()
            .to_string();
        let doc = percent_decode(&doc);
        let trust: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let statements = trust["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2, "{trust}");
        let subjects = [
            vec![
                "system:serviceaccount:vault:vault-0",
                "system:serviceaccount:vault:vault-1",
            ],
            vec!["system:serviceaccount:vault:vault-2"],
        ];
        for ((s, (arn, host)), want) in statements.iter().zip(&providers).zip(subjects) {
            assert_eq!(s["Principal"]["Federated"], *arn);
            assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
            let eq = &s["Condition"]["StringEquals"];
            assert_eq!(eq[format!("{host}:sub")], serde_json::json!(want), "{s}");
            assert_eq!(eq[format!("{host}:aud")], "sts.amazonaws.com");
            assert_eq!(eq.as_object().unwrap().len(), 2, "{s}");
        }
        let inline = iam
            .list_role_policies()
            .role_name("eks-aws-vault-ea")
            .send()
            .await
            .unwrap();
        // A shamir seal: the servers need nothing of AWS, and get nothing of the store.
        assert!(inline.policy_names().is_empty(), "{inline:?}");

        // The unseal key's policy is the default one: the account, through IAM policies.
        let key = output("region.eu-west-1.key.unseal", "arn");
        let policy = api
            .kms(WEST)
            .get_key_policy()
            .key_id(&key)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{policy}");
        assert_eq!(
            statements[0]["Principal"]["AWS"],
            "arn:aws:iam::123456789012:root"
        );
        assert_eq!(statements[0]["Action"], "kms:*");

        // Target groups: the member's node ports, instance targets, HTTPS checks on the API
        // node port that count a standby as healthy.
        let groups = api
            .elbv2(WEST)
            .describe_target_groups()
            .send()
            .await
            .unwrap();
        let mut seen = Vec::new();
        for tg in groups.target_groups() {
            seen.push((
                tg.target_group_name().unwrap().to_string(),
                tg.port().unwrap(),
                tg.health_check_port().unwrap().to_string(),
            ));
            assert_eq!(tg.target_type().unwrap().as_str(), "instance");
            assert_eq!(tg.health_check_protocol().unwrap().as_str(), "HTTPS");
            assert_eq!(
                tg.health_check_path(),
                Some("/v1/sys/health?standbyok=true&perfstandbyok=true")
            );
            assert_eq!(tg.matcher().unwrap().http_code(), Some("200"));
        }
        seen.sort();
        let s = |x: &str| x.to_string();
        assert_eq!(
            seen,
            [
                (s("ea-vault-0-api"), 32000, s("32000")),
                (s("ea-vault-0-clu"), 32001, s("32000")),
                (s("ea-vault-1-api"), 32002, s("32002")),
                (s("ea-vault-1-clu"), 32003, s("32002")),
            ]
        );

        // Each target group attached to its cluster's node group's auto scaling group.
        assert_eq!(
            attached(&api, WEST, &asgs[0]).await,
            [
                "ea-vault-0-api",
                "ea-vault-0-clu",
                "ea-vault-1-api",
                "ea-vault-1-clu"
            ]
            .map(String::from)
            .into()
        );
        assert_eq!(
            attached(&api, NORTH, &asgs[1]).await,
            ["ea-vault-2-api", "ea-vault-2-clu"]
                .map(String::from)
                .into()
        );
    });

    // A second plan changes nothing.
    let out = stack.run(&with_targets(
        &["plan", FILE, "--detailed-exitcode"],
        &targets,
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // What the EBS CSI driver makes for a claim (both of its tag styles), what the load
    // balancer controller makes for a cluster, and another cluster's volume.
    let (west_volume, north_volume, other_volume, sg) = rt.block_on(async {
        let volume = |region: &'static str, t: Vec<(&'static str, &'static str)>| {
            let ec2 = api.ec2(region);
            async move {
                ec2.create_volume()
                    .availability_zone(format!("{region}a"))
                    .size(10)
                    .tag_specifications(tags(ResourceType::Volume, &t))
                    .send()
                    .await
                    .unwrap()
                    .volume_id()
                    .unwrap()
                    .to_string()
            }
        };
        let claim = [
            ("kubernetes.io/created-for/pvc/namespace", "vault"),
            ("kubernetes.io/created-for/pvc/name", "data-vault-0-0"),
        ];
        let mut west = vec![("kubernetes.io/cluster/ea-west", "owned")];
        west.extend(claim);
        let mut north = vec![
            ("ebs.csi.aws.com/cluster", "true"),
            ("KubernetesCluster", "ea-north"),
        ];
        north.extend(claim);
        let mut other = vec![("kubernetes.io/cluster/someone-else", "owned")];
        other.extend(claim);
        let sg = api
            .ec2(WEST)
            .create_security_group()
            .group_name("k8s-elb-vault")
            .description("made by the load balancer controller")
            .tag_specifications(tags(
                ResourceType::SecurityGroup,
                &[("kubernetes.io/cluster/ea-west", "owned")],
            ))
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        (
            volume(WEST, west).await,
            volume(NORTH, north).await,
            volume(WEST, other).await,
            sg,
        )
    });

    rt.block_on(async {
        assert_eq!(
            volumes_tagged(&api, WEST, "kubernetes.io/cluster/ea-west").await,
            std::slice::from_ref(&west_volume)
        );
        assert_eq!(
            volumes_tagged(&api, NORTH, "KubernetesCluster").await,
            std::slice::from_ref(&north_volume)
        );
    });

    // While its cluster is recorded, what Kubernetes made for it is no orphan.
    let swept = stack.ok(&["sweep", FILE, "--json"]);
    assert!(!swept.contains(&sg), "{swept}");
    assert!(!swept.contains(&west_volume), "{swept}");

    // The west volume is still attached to a node when destroy begins; it is released 3 s
    // later (as the CSI driver does once the pod is gone): destroy waits for it.
    let instance = rt.block_on(async {
        let ec2 = api.ec2(WEST);
        let image = ec2.describe_images().send().await.unwrap().images()[0]
            .image_id()
            .unwrap()
            .to_string();
        let run = ec2
            .run_instances()
            .image_id(image)
            .min_count(1)
            .max_count(1)
            .placement(
                aws_sdk_ec2::types::Placement::builder()
                    .availability_zone("eu-west-1a")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let instance = run.instances()[0].instance_id().unwrap().to_string();
        ec2.attach_volume()
            .volume_id(&west_volume)
            .instance_id(&instance)
            .device("/dev/xvdf")
            .send()
            .await
            .unwrap();
        instance
    });
    let endpoint = stack.moto.endpoint();
    let detach_volume = west_volume.clone();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let api = Api::new(&endpoint).await;
            api.ec2(WEST)
                .detach_volume()
                .volume_id(&detach_volume)
                .instance_id(&instance)
                .send()
                .await
                .unwrap();
        });
    });
    let started = std::time::Instant::now();
    stack.ok(&["destroy", FILE, "--auto-approve"]);
    let took = started.elapsed();
    release.join().unwrap();
    assert!(
        took >= std::time::Duration::from_secs(3),
        "destroy waited for the attached volume: {took:?}"
    );
    rt.block_on(async {
        // The claims' volumes are gone, another cluster's is not.
        for (r, key) in [
            (WEST, "kubernetes.io/cluster/ea-west"),
            (NORTH, "KubernetesCluster"),
        ] {
            assert_eq!(volumes_tagged(&api, r, key).await, Vec::<String>::new());
        }
        assert_eq!(
            volumes_tagged(&api, WEST, "kubernetes.io/cluster/someone-else").await,
            std::slice::from_ref(&other_volume)
        );
        // The target groups are detached from the (hand-made) auto scaling groups.
        assert!(attached(&api, WEST, &asgs[0]).await.is_empty());
        assert!(attached(&api, NORTH, &asgs[1]).await.is_empty());
        let providers = api
            .iam()
            .list_open_id_connect_providers()
            .send()
            .await
            .unwrap();
        assert!(providers.open_id_connect_provider_list().is_empty());
    });

    // Its cluster gone, the security group Kubernetes made for it is reported.
    let swept = stack.ok(&["sweep", FILE, "--json"]);
    assert!(swept.contains(&sg), "{swept}");
    assert!(!swept.contains(&other_volume), "{swept}");
}

/// IAM returns policy documents URL-encoded.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The state with one resource forgotten, as after a lost save.
fn forget(stack: &LocalStack, address: &str) {
    let mut state = stack.state(STATE);
    state["resources"]
        .as_object_mut()
        .unwrap()
        .remove(address)
        .expect("recorded");
    std::fs::write(
        stack.path().join(STATE),
        serde_json::to_vec_pretty(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn an_oidc_provider_of_the_issuer_is_adopted_when_ours_and_refused_otherwise() {
    const OIDC: &str = "region.eu-north-1.cluster.ea-north.oidc";
    let stack = LocalStack::new(FILE, ".vaultform/ea");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&stack.moto.endpoint()));
    stack.ok(&["apply", FILE, "--auto-approve", "--target", OIDC]);
    let arn = stack.state(STATE)["resources"][OIDC]["outputs"]["arn"]
        .as_str()
        .unwrap()
        .to_string();

    // Forgotten by the state but tagged as this stack's: adopted, not made twice.
    forget(&stack, OIDC);
    stack.ok(&["apply", FILE, "--auto-approve", "--target", OIDC]);
    assert_eq!(
        stack.state(STATE)["resources"][OIDC]["outputs"]["arn"],
        arn.as_str()
    );
    let listed = rt.block_on(api.iam().list_open_id_connect_providers().send());
    assert_eq!(listed.unwrap().open_id_connect_provider_list().len(), 1);

    // Without our tags it is someone else's: refused.
    rt.block_on(
        api.iam()
            .untag_open_id_connect_provider()
            .open_id_connect_provider_arn(&arn)
            .tag_keys("vaultform:stack")
            .tag_keys("vaultform:address")
            .send(),
    )
    .unwrap();
    forget(&stack, OIDC);
    let out = stack.run(&["apply", FILE, "--auto-approve", "--target", OIDC]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("already exists and no vaultform stack owns it"),
        "{}",
        stderr(&out)
    );
}

/// The fenced block that follows `heading` in docs/eks.md.
fn doc_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(crate::support::root().join("docs/eks.md")).unwrap();
    let at = doc.find(heading).unwrap_or_else(|| panic!("{heading}"));
    let rest = &doc[at..];
    let open = rest.find("```").unwrap();
    let body = &rest[open..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("```").unwrap();
    body[start..start + end].to_string()
}

#[test]
fn the_documented_iam_policy_is_what_the_script_finds_in_the_source() {
    let out = std::process::Command::new(crate::support::root().join("scripts/iam-policy"))
        .current_dir(crate::support::root())
        .output()
        .expect("run scripts/iam-policy");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let documented: serde_json::Value =
        serde_json::from_str(&doc_block("## IAM permissions vaultform needs")).unwrap();
    assert_eq!(
        documented, printed,
        "run scripts/iam-policy and update docs/eks.md"
    );
    let actions = printed["Statement"][0]["Action"].as_array().unwrap();
    for a in [
        "iam:CreateOpenIDConnectProvider",
        "eks:CreateAccessEntry",
        "eks:AssociateAccessPolicy",
        "autoscaling:AttachLoadBalancerTargetGroups",
        "ec2:DeleteVolume",
        "iam:PassRole",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing");
    }
}

#[test]
fn the_documented_cost_command_prints_the_documented_total() {
    let script = doc_block("## What it costs per hour");
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vaultform"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let script = script.replace(
        "/tmp/none.json",
        &dir.path().join("none.json").display().to_string(),
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(crate::support::root())
        .env(
            "PATH",
            format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("NO_COLOR", "1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Total: 0.5506/h, 401.95/month"),
        "{}",
        stdout(&out)
    );
}
