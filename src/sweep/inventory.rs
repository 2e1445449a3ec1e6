//! Everything one stack's tags name, listed through each service's own calls: EC2 (VPCs,
//! subnets, gateways, route tables, security groups, network interfaces, EBS volumes), EKS,
//! ELBv2, KMS, S3 and IAM, and the local runtime's processes under a work-dir; and what
//! Kubernetes or EKS made for the stack's clusters (volumes, load balancers and security
//! groups tagged `kubernetes.io/cluster/<name>`, volumes tagged `KubernetesCluster=<name>`).
//!
//! The Resource Groups Tagging API would save calls on AWS, but it knows neither IAM nor (in
//! moto) EKS, so every service is asked itself: one inventory, the same everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::Filter;
use aws_smithy_types::error::metadata::ProvideErrorMetadata as _;

use super::{Found, Thing};
use crate::aws::Aws;
use crate::provider::{OpError, TAG_ADDRESS, TAG_STACK};
use crate::state::State;
use crate::topology::Topology;

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub stack: String,
    pub regions: Vec<String>,
    /// EKS cluster names of the stack (topology and state): what Kubernetes tagged for them
    /// (`kubernetes.io/cluster/<name>`) belongs to the stack too.
    pub clusters: Vec<String>,
    /// The local runtime's working directories, by Vault cluster.
    pub work_dirs: Vec<(String, std::path::PathBuf)>,
    /// The bucket names the topology declares: one of them that exists untagged and empty is
    /// what a create cut short between `CreateBucket` and its tags leaves behind.
    pub bucket_names: Vec<String>,
}

impl Query {
    /// The stack name that matches every stack: `expired` looks for all of them.
    pub const ANY: &'static str = "*";

    /// The query of a topology: its regions (or `regions`), its EKS clusters and local
    /// work-dirs, and the clusters its state records.
    pub fn of(
        t: &Topology,
        work_dirs: Vec<(String, PathBuf)>,
        state: &State,
        regions: &[String],
    ) -> Query {
        let mut clusters: Vec<String> = t
            .regions
            .iter()
            .flat_map(|r| r.clusters.iter().map(|c| c.name.value.clone()))
            .chain(Query::recorded_clusters(state))
            .collect();
        clusters.sort();
        clusters.dedup();
        Query {
            stack: t.stack.value.clone(),
            regions: if regions.is_empty() {
                t.regions.iter().map(|r| r.name.value.clone()).collect()
            } else {
                regions.to_vec()
            },
            clusters,
            work_dirs,
            bucket_names: t
                .regions
                .iter()
                .flat_map(|r| r.buckets.iter().map(|b| b.name.value.clone()))
                .collect(),
        }
    }

    /// The names of the EKS clusters a state records.
    pub fn recorded_clusters(state: &State) -> Vec<String> {
        state
            .resources
            .values()
            .filter(|r| r.kind == crate::graph::Kind::EksCluster)
            .filter_map(|r| r.id("name").map(str::to_owned))
            .collect()
    }
}

fn tag_filter(stack: &str) -> Filter {
    if stack == Query::ANY {
        return Filter::builder().name("tag-key").values(TAG_STACK).build();
    }
    Filter::builder()
        .name(format!("tag:{TAG_STACK}"))
        .values(stack)
        .build()
}

fn ec2_tags(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn ours(tags: &BTreeMap<String, String>, stack: &str) -> bool {
    match tags.get(TAG_STACK) {
        Some(_) if stack == Query::ANY => true,
        found => found.map(String::as_str) == Some(stack),
    }
}

fn found(
    stack: &str,
    thing: Thing,
    region: Option<&str>,
    id: &str,
    tags: &BTreeMap<String, String>,
    ids: &[(&str, &str)],
) -> Found {
    Found {
        thing,
        region: region.map(str::to_owned),
        id: id.to_string(),
        tagged: ours(tags, stack),
        address: tags.get(TAG_ADDRESS).cloned(),
        detail: None,
        belongs_to: None,
        pending_deletion: None,
        ids: ids
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        tags: tags.clone(),
    }
}

/// Everything of the stack in every region, IAM and the local processes.
pub async fn inventory(aws: &Aws, q: &Query) -> Result<Vec<Found>, OpError> {
    let regional = futures::future::try_join_all(q.regions.iter().map(|r| region(aws, q, r)));
    let (regional, iam, buckets) = futures::try_join!(regional, iam(aws, q), s3(aws, q))?;
    let mut out: Vec<Found> = regional.into_iter().flatten().collect();
    out.extend(iam);
    out.extend(buckets);
    for (vault, dir) in &q.work_dirs {
        out.extend(processes(vault, dir));
    }
    Ok(out)
}

async fn region(aws: &Aws, q: &Query, r: &str) -> Result<Vec<Found>, OpError> {
    let (mut a, b, c, d) = futures::try_join!(
        ec2(aws, q, r),
        eks(aws, q, r),
        elb(aws, q, r),
        kms(aws, q, r)
    )?;
    a.extend(b);
    a.extend(c);
    a.extend(d);
    Ok(a)
}

async fn ec2(aws: &Aws, q: &Query, r: &str) -> Result<Vec<Found>, OpError> {
    let ec2 = aws.ec2(r);
    let s = q.stack.as_str();
    let mut out = Vec::new();
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag_filter(s))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe VPCs", e))?;
    let mut vpc_ids = Vec::new();
    for v in vpcs.vpcs() {
        let id = v.vpc_id().unwrap_or_default();
        vpc_ids.push(id.to_string());
        out.push(found(
            &q.stack,
            Thing::Vpc,
            Some(r),
            id,
            &ec2_tags(v.tags()),
            &[("vpc_id", id)],
        ));
    }
    let subnets = ec2
        .describe_subnets()
        .filters(tag_filter(s))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe subnets", e))?;
    for x in subnets.subnets() {
        let id = x.subnet_id().unwrap_or_default();
        out.push(found(
            &q.stack,
            Thing::Subnet,
            Some(r),
            id,
            &ec2_tags(x.tags()),
            &[("subnet_id", id)],
        ));
    }
    let igws = ec2
        .describe_internet_gateways()
        .filters(tag_filter(s))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe internet gateways", e))?;
    for x in igws.internet_gateways() {
        let id = x.internet_gateway_id().unwrap_or_default();
        out.push(found(
            &q.stack,
            Thing::InternetGateway,
            Some(r),
            id,
            &ec2_tags(x.tags()),
            &[("internet_gateway_id", id)],
        ));
    }
    let rts = ec2
        .describe_route_tables()
        .filters(tag_filter(s))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe route tables", e))?;
    for x in rts.route_tables() {
        let id = x.route_table_id().unwrap_or_default();
        out.push(found(
            &q.stack,
            Thing::RouteTable,
            Some(r),
            id,
            &ec2_tags(x.tags()),
            &[("route_table_id", id)],
        ));
    }
    let sgs = ec2
        .describe_security_groups()
        .filters(tag_filter(s))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe security groups", e))?;
    let mut sg_seen = std::collections::BTreeSet::new();
    for x in sgs.security_groups() {
        let id = x.group_id().unwrap_or_default();
        sg_seen.insert(id.to_string());
        out.push(found(
            &q.stack,
            Thing::SecurityGroup,
            Some(r),
            id,
            &ec2_tags(x.tags()),
            &[("group_id", id)],
        ));
    }
    // Security groups Kubernetes (a Service's load balancer, the load balancer controller) or
    // EKS made for one of the stack's clusters: the cluster's while it is recorded.
    if !q.clusters.is_empty() {
        let k8s = ec2
            .describe_security_groups()
            .filters(cluster_tag_filter(&q.clusters))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe security groups", e))?;
        for x in k8s.security_groups() {
            let id = x.group_id().unwrap_or_default();
            if !sg_seen.insert(id.to_string()) {
                continue;
            }
            let tags = ec2_tags(x.tags());
            let mut f = found(
                &q.stack,
                Thing::SecurityGroup,
                Some(r),
                id,
                &tags,
                &[("group_id", id)],
            );
            f.detail = x.group_name().map(str::to_owned);
            if !ours(&tags, s) {
                f.belongs_to = k8s_cluster(&tags, &q.clusters).map(|c| (Thing::EksCluster, c));
            }
            out.push(f);
        }
    }
    // Network interfaces: tagged with the stack, or in one of its VPCs (a load balancer's or
    // a cluster's, which block deleting the VPC).
    let mut enis = ec2.describe_network_interfaces().filters(tag_filter(s));
    let tagged = enis
        .clone()
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe network interfaces", e))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut push_eni = |x: &aws_sdk_ec2::types::NetworkInterface, out: &mut Vec<Found>| {
        let id = x.network_interface_id().unwrap_or_default();
        if !seen.insert(id.to_string()) {
            return;
        }
        let mut f = found(
            &q.stack,
            Thing::NetworkInterface,
            Some(r),
            id,
            &ec2_tags(x.tag_set()),
            &[("network_interface_id", id)],
        );
        f.detail = x.description().filter(|d| !d.is_empty()).map(str::to_owned);
        if let Some(vpc) = x.vpc_id() {
            f.belongs_to = Some((Thing::Vpc, vpc.to_string()));
        }
        out.push(f);
    };
    for x in tagged.network_interfaces() {
        push_eni(x, &mut out);
    }
    if !vpc_ids.is_empty() {
        enis = ec2.describe_network_interfaces().filters(
            Filter::builder()
                .name("vpc-id")
                .set_values(Some(vpc_ids.clone()))
                .build(),
        );
        let inside = enis
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe network interfaces", e))?;
        for x in inside.network_interfaces() {
            push_eni(x, &mut out);
        }
    }
    // EBS volumes: tagged with the stack, or by Kubernetes for one of its clusters (one call:
    // the values of a filter are alternatives).
    let mut volumes = vec![tag_filter(s)];
    if !q.clusters.is_empty() {
        volumes.push(cluster_tag_filter(&q.clusters));
        // The EBS CSI driver's own tag, when it was given the cluster's name.
        volumes.push(
            Filter::builder()
                .name("tag:KubernetesCluster")
                .set_values(Some(q.clusters.clone()))
                .build(),
        );
    }
    let mut vol_seen = std::collections::BTreeSet::new();
    for filter in volumes {
        let vols = ec2
            .describe_volumes()
            .filters(filter)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe volumes", e))?;
        for x in vols.volumes() {
            let id = x.volume_id().unwrap_or_default();
            if !vol_seen.insert(id.to_string()) {
                continue;
            }
            let tags = ec2_tags(x.tags());
            let mut f = found(
                &q.stack,
                Thing::EbsVolume,
                Some(r),
                id,
                &tags,
                &[("volume_id", id)],
            );
            f.detail = Some(format!("{} GiB", x.size().unwrap_or_default()));
            if !ours(&tags, s) {
                f.belongs_to = k8s_cluster(&tags, &q.clusters).map(|c| (Thing::EksCluster, c));
            }
            out.push(f);
        }
    }
    Ok(out)
}

/// Anything Kubernetes tagged for one of `clusters` (`kubernetes.io/cluster/<name>`; the
/// values of a filter are alternatives).
fn cluster_tag_filter(clusters: &[String]) -> Filter {
    Filter::builder()
        .name("tag-key")
        .set_values(Some(
            clusters
                .iter()
                .map(|c| format!("kubernetes.io/cluster/{c}"))
                .collect(),
        ))
        .build()
}

/// The stack's cluster that Kubernetes tagged a resource for.
fn k8s_cluster(tags: &BTreeMap<String, String>, clusters: &[String]) -> Option<String> {
    clusters
        .iter()
        .find(|c| {
            tags.contains_key(&format!("kubernetes.io/cluster/{c}"))
                || tags.get("elbv2.k8s.aws/cluster") == Some(*c)
                || tags.get("KubernetesCluster") == Some(*c)
        })
        .cloned()
}

async fn eks(aws: &Aws, q: &Query, r: &str) -> Result<Vec<Found>, OpError> {
    let eks = aws.eks(r);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let list = eks
            .list_clusters()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list EKS clusters", e))?;
        for name in list.clusters() {
            let c = eks
                .describe_cluster()
                .name(name)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe EKS cluster", e))?;
            let tags: BTreeMap<String, String> = c
                .cluster()
                .and_then(|c| c.tags())
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            if !ours(&tags, &q.stack) {
                continue;
            }
            out.push(found(
                &q.stack,
                Thing::EksCluster,
                Some(r),
                name,
                &tags,
                &[
                    ("name", name),
                    ("arn", c.cluster().and_then(|c| c.arn()).unwrap_or_default()),
                ],
            ));
            let groups = eks
                .list_nodegroups()
                .cluster_name(name)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("list node groups", e))?;
            for g in groups.nodegroups() {
                let n = eks
                    .describe_nodegroup()
                    .cluster_name(name)
                    .nodegroup_name(g)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("describe node group", e))?;
                let tags: BTreeMap<String, String> = n
                    .nodegroup()
                    .and_then(|n| n.tags())
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                if ours(&tags, &q.stack) {
                    let mut f = found(
                        &q.stack,
                        Thing::EksNodeGroup,
                        Some(r),
                        g,
                        &tags,
                        &[
                            ("cluster", name),
                            ("name", g),
                            (
                                "arn",
                                n.nodegroup()
                                    .and_then(|n| n.nodegroup_arn())
                                    .unwrap_or_default(),
                            ),
                        ],
                    );
                    f.detail = Some(format!("cluster {name}"));
                    out.push(f);
                }
            }
        }
        token = list.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Tags of up to 20 ELBv2 resources per call.
async fn elb_tags(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arns: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, OpError> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let t = elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe load balancer tags", e))?;
        for d in t.tag_descriptions() {
            let tags = d
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    Ok(out)
}

async fn elb(aws: &Aws, q: &Query, r: &str) -> Result<Vec<Found>, OpError> {
    let elb = aws.elbv2(r);
    let mut out = Vec::new();
    let mut lbs = Vec::new();
    let mut marker = None;
    loop {
        let page = elb
            .describe_load_balancers()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe load balancers", e))?;
        lbs.extend(page.load_balancers().iter().map(|l| {
            (
                l.load_balancer_arn().unwrap_or_default().to_string(),
                l.load_balancer_name().unwrap_or_default().to_string(),
            )
        }));
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let mut tgs = Vec::new();
    let mut marker = None;
    loop {
        let page = elb
            .describe_target_groups()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe target groups", e))?;
        tgs.extend(page.target_groups().iter().map(|t| {
            (
                t.target_group_arn().unwrap_or_default().to_string(),
                t.target_group_name().unwrap_or_default().to_string(),
            )
        }));
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = lbs.iter().chain(&tgs).map(|(a, _)| a.clone()).collect();
    let tags = elb_tags(&elb, &arns).await?;
    let empty = BTreeMap::new();
    let stack_lb = |arn: &str| {
        let t = tags.get(arn).unwrap_or(&empty);
        ours(t, &q.stack) || k8s_cluster(t, &q.clusters).is_some()
    };
    for (arn, name) in &lbs {
        if !stack_lb(arn) {
            continue;
        }
        let t = tags.get(arn).unwrap_or(&empty);
        let mut f = found(
            &q.stack,
            Thing::LoadBalancer,
            Some(r),
            arn,
            t,
            &[("arn", arn)],
        );
        f.detail = Some(name.clone());
        if !ours(t, &q.stack) {
            f.belongs_to = k8s_cluster(t, &q.clusters).map(|c| (Thing::EksCluster, c));
        }
        out.push(f);
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe listeners", e))?;
        let larns: Vec<String> = listeners
            .listeners()
            .iter()
            .filter_map(|l| l.listener_arn().map(str::to_owned))
            .collect();
        let ltags = elb_tags(&elb, &larns).await?;
        for l in listeners.listeners() {
            let larn = l.listener_arn().unwrap_or_default();
            let lt = ltags.get(larn).unwrap_or(&empty);
            let mut f = found(
                &q.stack,
                Thing::Listener,
                Some(r),
                larn,
                lt,
                &[("arn", larn)],
            );
            f.detail = Some(format!("{name}:{}", l.port().unwrap_or_default()));
            // A listener goes with its load balancer.
            f.belongs_to = Some((Thing::LoadBalancer, arn.clone()));
            out.push(f);
        }
    }
    for (arn, name) in &tgs {
        if !stack_lb(arn) {
            continue;
        }
        let t = tags.get(arn).unwrap_or(&empty);
        let mut f = found(
            &q.stack,
            Thing::TargetGroup,
            Some(r),
            arn,
            t,
            &[("arn", arn)],
        );
        f.detail = Some(name.clone());
        if !ours(t, &q.stack) {
            f.belongs_to = k8s_cluster(t, &q.clusters).map(|c| (Thing::EksCluster, c));
        }
        out.push(f);
    }
    Ok(out)
}

async fn kms(aws: &Aws, q: &Query, r: &str) -> Result<Vec<Found>, OpError> {
    let kms = aws.kms(r);
    let mut out = Vec::new();
    let mut marker = None;
    let mut keys = Vec::new();
    loop {
        let page = kms
            .list_keys()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list KMS keys", e))?;
        keys.extend(
            page.keys()
                .iter()
                .filter_map(|k| k.key_id().map(str::to_owned)),
        );
        marker = page.next_marker().map(str::to_owned);
        if !page.truncated() || marker.is_none() {
            break;
        }
    }
    let aliases = kms
        .list_aliases()
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list KMS aliases", e))?;
    for id in keys {
        let tags: BTreeMap<String, String> = match kms.list_resource_tags().key_id(&id).send().await
        {
            Ok(t) => t
                .tags()
                .iter()
                .map(|t| (t.tag_key().to_string(), t.tag_value().to_string()))
                .collect(),
            // AWS managed keys and keys of other accounts' grants: not ours to look at.
            Err(e) if e.code() == Some("AccessDeniedException") => continue,
            Err(e) => return Err(OpError::from_sdk("list KMS key tags", e)),
        };
        if !ours(&tags, &q.stack) {
            continue;
        }
        let key = kms
            .describe_key()
            .key_id(&id)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe KMS key", e))?;
        let meta = key.key_metadata();
        let mut f = found(
            &q.stack,
            Thing::KmsKey,
            Some(r),
            &id,
            &tags,
            &[("key_id", &id)],
        );
        let names: Vec<&str> = aliases
            .aliases()
            .iter()
            .filter(|a| a.target_key_id() == Some(id.as_str()))
            .filter_map(|a| a.alias_name())
            .collect();
        if !names.is_empty() {
            f.detail = Some(names.join(", "));
        }
        if meta.and_then(|m| m.key_state()) == Some(&aws_sdk_kms::types::KeyState::PendingDeletion)
        {
            f.pending_deletion = Some(
                meta.and_then(|m| m.deletion_date())
                    .and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
                    .unwrap_or_else(|| "unknown".into()),
            );
        }
        out.push(f);
    }
    Ok(out)
}

async fn s3(aws: &Aws, q: &Query) -> Result<Vec<Found>, OpError> {
    let Some(first) = q.regions.first() else {
        return Ok(Vec::new());
    };
    let list = aws
        .s3(first)
        .list_buckets()
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list buckets", e))?;
    let mut out = Vec::new();
    for b in list.buckets() {
        let Some(name) = b.name() else { continue };
        let region = match b.bucket_region() {
            Some(r) => r.to_string(),
            None => {
                let loc = aws
                    .s3(first)
                    .get_bucket_location()
                    .bucket(name)
                    .send()
                    .await;
                let loc = match loc {
                    Ok(loc) => loc,
                    // Deleted since the list: nothing to report.
                    Err(e) if e.code() == Some("NoSuchBucket") => continue,
                    Err(e) => return Err(OpError::from_sdk("get bucket location", e)),
                };
                loc.location_constraint()
                    .map(|c| c.as_str().to_string())
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "us-east-1".into())
            }
        };
        if !q.regions.contains(&region) {
            continue;
        }
        let tags = match crate::resources::s3_bucket::bucket_tags(&aws.s3(&region), name).await {
            Ok(tags) => tags,
            Err(e) if e.aws_code() == Some("NoSuchBucket") => continue,
            Err(e) => return Err(e),
        };
        if ours(&tags, &q.stack) {
            out.push(found(
                &q.stack,
                Thing::S3Bucket,
                Some(&region),
                name,
                &tags,
                &[("name", name)],
            ));
        } else if !tags.contains_key(crate::provider::TAG_STACK)
            && q.bucket_names.iter().any(|b| b == name)
            && bucket_is_empty(aws, &region, name).await?
        {
            // Named by the topology, untagged and empty: a create cut short before its tags
            // (nothing can be lost by deleting it).
            let mut f = found(
                &q.stack,
                Thing::S3Bucket,
                Some(&region),
                name,
                &tags,
                &[("name", name)],
            );
            f.detail = Some("untagged and empty: a create cut short before its tags".into());
            out.push(f);
        }
    }
    Ok(out)
}

/// Whether a bucket holds no object version and no delete marker.
async fn bucket_is_empty(aws: &Aws, region: &str, name: &str) -> Result<bool, OpError> {
    let out = aws
        .s3(region)
        .list_object_versions()
        .bucket(name)
        .max_keys(1)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list object versions", e))?;
    Ok(out.versions().is_empty() && out.delete_markers().is_empty())
}

async fn iam(aws: &Aws, q: &Query) -> Result<Vec<Found>, OpError> {
    let iam = aws.iam();
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = iam
            .list_roles()
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list IAM roles", e))?;
        for role in page.roles() {
            let name = role.role_name();
            let t = iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("list IAM role tags", e))?;
            let tags: BTreeMap<String, String> = t
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            if ours(&tags, &q.stack) {
                out.push(found(
                    &q.stack,
                    Thing::IamRole,
                    None,
                    name,
                    &tags,
                    &[("name", name)],
                ));
            }
        }
        marker = page.marker().map(str::to_owned);
        if !page.is_truncated() || marker.is_none() {
            break;
        }
    }
    let providers = iam
        .list_open_id_connect_providers()
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list OIDC providers", e))?;
    for p in providers.open_id_connect_provider_list() {
        let Some(arn) = p.arn() else { continue };
        let t = iam
            .list_open_id_connect_provider_tags()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list OIDC provider tags", e))?;
        let tags: BTreeMap<String, String> = t
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        if ours(&tags, &q.stack) {
            out.push(found(
                &q.stack,
                Thing::OidcProvider,
                None,
                arn,
                &tags,
                &[("arn", arn)],
            ));
        }
    }
    Ok(out)
}

/// The running servers and proxies whose records are under a local work-dir.
fn processes(vault: &str, work_dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    for (sub, thing, part) in [
        ("members", Thing::VaultMember, "member"),
        ("proxies", Thing::LocalProxy, "proxy"),
    ] {
        let Ok(entries) = std::fs::read_dir(work_dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let dir = e.path();
            let Some(rec) = crate::runtime::local::read_pidfile(&dir) else {
                continue;
            };
            if !crate::runtime::local::process::is_running(&rec) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let dir_text = dir.display().to_string();
            out.push(Found {
                thing,
                region: None,
                id: format!("pid {}", rec.pid),
                tagged: true,
                address: Some(format!("vault.{vault}.{part}.{name}")),
                detail: Some(dir_text.clone()),
                belongs_to: None,
                pending_deletion: None,
                ids: BTreeMap::from([("dir".to_string(), dir_text)]),
                tags: BTreeMap::new(),
            });
        }
    }
    out
}
