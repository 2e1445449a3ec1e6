//! The network kinds against a real moto server: VPC, subnets, internet gateway, route table
//! and security group, checked through the EC2 API; idempotent; destroyed completely.

use crate::support::aws::Api;
use crate::support::testbed::Moto;
use crate::support::{stderr, stdout, vaultform_aws};

const TOPOLOGY: &str = r#"
stack "net"
state "local" path="net.json"

region "eu-west-1" {
    network vpc-cidr="10.1.0.0/16" azs=2
    cluster "c-west" version="1.31"
}

region "eu-north-1" {
    network vpc-cidr="10.2.0.0/16" azs=3
}
"#;

#[test]
fn networks_are_created_as_declared_idempotent_and_destroyed() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("net.kdl"), TOPOLOGY).unwrap();
    let targets = [
        "--target",
        "region.eu-west-1.network.route-table",
        "--target",
        "region.eu-west-1.network.security-group",
        "--target",
        "region.eu-north-1.network.route-table",
        "--target",
        "region.eu-north-1.network.security-group",
    ];
    let mut args = vec!["apply", "net.kdl", "--auto-approve"];
    args.extend(targets);
    let out = vaultform_aws(d, &ep, &args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("13 created"), "{}", stderr(&out));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&ep));
    rt.block_on(async {
        let ec2 = api.ec2("eu-west-1");
        let tag = |k: &str, v: &str| {
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{k}"))
                .values(v)
                .build()
        };
        let vpcs = ec2
            .describe_vpcs()
            .filters(tag("vaultform:stack", "net"))
            .send()
            .await
            .unwrap();
        assert_eq!(vpcs.vpcs().len(), 1);
        let vpc = &vpcs.vpcs()[0];
        assert_eq!(vpc.cidr_block(), Some("10.1.0.0/16"));
        let vpc_id = vpc.vpc_id().unwrap();
        let dns = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .unwrap();
        assert_eq!(
            dns.enable_dns_hostnames().and_then(|a| a.value()),
            Some(true)
        );
        let subnets = ec2
            .describe_subnets()
            .filters(tag("vaultform:stack", "net"))
            .send()
            .await
            .unwrap();
        let mut blocks: Vec<&str> = subnets
            .subnets()
            .iter()
            .filter_map(|s| s.cidr_block())
            .collect();
        blocks.sort();
        assert_eq!(blocks, vec!["10.1.0.0/20", "10.1.16.0/20"]);
        for s in subnets.subnets() {
            let tags: Vec<(&str, &str)> = s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap()))
                .collect();
            assert!(tags.contains(&("kubernetes.io/role/elb", "1")), "{tags:?}");
            assert!(
                tags.contains(&("kubernetes.io/cluster/c-west", "shared")),
                "{tags:?}"
            );
        }
        let igws = ec2
            .describe_internet_gateways()
            .filters(tag("vaultform:stack", "net"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            igws.internet_gateways()[0].attachments()[0].vpc_id(),
            Some(vpc_id)
        );
        let rts = ec2
            .describe_route_tables()
            .filters(tag("vaultform:stack", "net"))
            .send()
            .await
            .unwrap();
        let rtb = &rts.route_tables()[0];
        assert!(
            rtb.routes()
                .iter()
                .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        );
        assert_eq!(
            rtb.associations()
                .iter()
                .filter(|a| a.subnet_id().is_some())
                .count(),
            2
        );
        let sgs = ec2
            .describe_security_groups()
            .filters(tag("vaultform:stack", "net"))
            .send()
            .await
            .unwrap();
        let perms = sgs.security_groups()[0].ip_permissions();
        let vault: Vec<&str> = perms
            .iter()
            .filter(|p| p.from_port() == Some(8200) && p.to_port() == Some(8201))
            .flat_map(|p| p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
            .collect();
        assert!(
            vault.contains(&"10.2.0.0/16"),
            "the other region reaches Vault: {vault:?}"
        );
        assert!(
            perms.iter().any(|p| p.from_port() == Some(443)),
            "control plane port"
        );
    });

    let mut args = vec!["plan", "net.kdl", "--detailed-exitcode"];
    args.extend(targets);
    let out = vaultform_aws(d, &ep, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let out = vaultform_aws(d, &ep, &["destroy", "net.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rt.block_on(async {
        for r in ["eu-west-1", "eu-north-1"] {
            let ec2 = api.ec2(r);
            let f = aws_sdk_ec2::types::Filter::builder()
                .name("tag:vaultform:stack")
                .values("net")
                .build();
            assert!(
                ec2.describe_vpcs()
                    .filters(f.clone())
                    .send()
                    .await
                    .unwrap()
                    .vpcs()
                    .is_empty()
            );
            assert!(
                ec2.describe_subnets()
                    .filters(f.clone())
                    .send()
                    .await
                    .unwrap()
                    .subnets()
                    .is_empty()
            );
            assert!(
                ec2.describe_security_groups()
                    .filters(f.clone())
                    .send()
                    .await
                    .unwrap()
                    .security_groups()
                    .is_empty()
            );
            assert!(
                ec2.describe_internet_gateways()
                    .filters(f.clone())
                    .send()
                    .await
                    .unwrap()
                    .internet_gateways()
                    .is_empty()
            );
            assert!(
                ec2.describe_route_tables()
                    .filters(f)
                    .send()
                    .await
                    .unwrap()
                    .route_tables()
                    .is_empty()
            );
        }
    });
}

#[test]
fn an_existing_network_is_used_as_it_is_and_never_deleted() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(Api::new(&ep));
    let (vpc, subnets) = rt.block_on(async {
        let ec2 = api.ec2("eu-west-1");
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.9.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let mut subnets = Vec::new();
        for (i, az) in ["a", "b"].iter().enumerate() {
            let s = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.9.{i}.0/24"))
                .availability_zone(format!("eu-west-1{az}"))
                .send()
                .await
                .unwrap();
            subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
        }
        (vpc, subnets)
    });
    let topology = format!(
        "stack \"ex\"\nstate \"local\" path=\"ex.json\"\nregion \"eu-west-1\" {{\n    network vpc-id=\"{vpc}\" subnet-ids=\"{}\"\n    load-balancer \"ex-lb\" scheme=\"internal\"\n}}\n",
        subnets.join(",")
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ex.kdl"), topology).unwrap();
    let out = vaultform_aws(d, &ep, &["apply", "ex.kdl", "--auto-approve"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("6 created"), "{}", stderr(&out));
    rt.block_on(async {
        let lbs = api
            .elbv2("eu-west-1")
            .describe_load_balancers()
            .names("ex-lb")
            .send()
            .await
            .unwrap();
        let mut in_subnets: Vec<String> = lbs.load_balancers()[0]
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id().map(str::to_owned))
            .collect();
        in_subnets.sort();
        let mut want = subnets.clone();
        want.sort();
        assert_eq!(in_subnets, want);
    });
    let out = vaultform_aws(d, &ep, &["destroy", "ex.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rt.block_on(async {
        let ec2 = api.ec2("eu-west-1");
        assert_eq!(
            ec2.describe_vpcs()
                .vpc_ids(&vpc)
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
            1,
            "the VPC is not ours to delete"
        );
        assert_eq!(
            ec2.describe_subnets()
                .set_subnet_ids(Some(subnets.clone()))
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
            2
        );
    });
}
