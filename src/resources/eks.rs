//! EKS clusters and managed node groups. Creates wait for ACTIVE, deletes wait until the
//! resource is gone (node groups are deleted before their cluster by the graph's order).
//! A version bump and endpoint access are updated in place on a cluster; scaling and labels
//! on a node group; what EKS cannot change in place forces a replacement.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_eks::types::{
    AuthenticationMode, CapacityTypes, ClusterStatus, CreateAccessConfigRequest,
    NodegroupScalingConfig, NodegroupStatus, UpdateLabelsPayload, VpcConfigRequest,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use super::wait;
use crate::address::{Address, RegionItem, Role};
use crate::aws_error::is_not_found;
use crate::graph::{Builder, Kind, Resource};
use crate::lifecycle::Lifecycle;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::{Capacity, EndpointAccess, NetworkKind, Region, Topology};

const CREATE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const DELETE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The subnets of a region: addresses of new subnets, or IDs of existing ones.
fn subnets(t: &Topology, region: &str) -> (Vec<String>, Vec<String>) {
    let Some(r) = t.region(region) else {
        return (Vec::new(), Vec::new());
    };
    match r.network.as_ref().map(|n| &n.kind) {
        Some(NetworkKind::New {
            vpc_cidr,
            azs,
            subnets,
        }) => {
            let listed: Vec<_> = subnets.iter().map(|s| s.value).collect();
            let n = super::network::subnet_blocks(vpc_cidr.value, azs.value, &listed).len();
            let addrs = (0..n)
                .map(|i| Address::region(region, RegionItem::Subnet(i)).to_string())
                .collect();
            (addrs, Vec::new())
        }
        Some(NetworkKind::Existing { subnet_ids, .. }) => (
            Vec::new(),
            subnet_ids.iter().map(|s| s.value.clone()).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    }
}

/// The EKS clusters of a region, on its network and after the cluster role; their node
/// pools after them and the node role.
pub fn graph<'t>(b: &mut Builder<'t>, r: &'t Region) {
    let rn = r.name.value.as_str();
    let reg = Some(rn);
    let net = b.region_net.get(rn).cloned().unwrap_or_default();
    for c in &r.clusters {
        let name = &c.name.value;
        let ix = b.g.add(
            Address::region(rn, RegionItem::Cluster(name.clone())),
            Kind::EksCluster,
            reg,
            c.name.span,
        );
        b.g.edges(&net, ix);
        if let Some((role, _)) = b.eks_roles {
            b.g.edge(role, ix);
        }
        b.depends.extend(c.depends_on.iter().map(|d| (ix, d)));
        let mut pools = Vec::new();
        for p in &c.node_pools {
            let pool = RegionItem::NodePool {
                cluster: name.clone(),
                pool: p.name.value.clone(),
            };
            let pix = b.g.add(
                Address::region(rn, pool),
                Kind::EksNodeGroup,
                reg,
                p.name.span,
            );
            b.g.edge(ix, pix);
            if let Some((_, role)) = b.eks_roles {
                b.g.edge(role, pix);
            }
            b.depends.extend(p.depends_on.iter().map(|d| (pix, d)));
            pools.push(pix);
        }
        for a in &c.access {
            let entry = RegionItem::AccessEntry {
                cluster: name.clone(),
                principal: a.principal.value.clone(),
            };
            let aix = b.g.add(
                Address::region(rn, entry),
                Kind::AccessEntry,
                reg,
                a.principal.span,
            );
            b.g.edge(ix, aix);
        }
        let mut addons = Vec::new();
        for a in &c.addons {
            let addon = RegionItem::Addon {
                cluster: name.clone(),
                name: a.value.clone(),
            };
            let aix =
                b.g.add(Address::region(rn, addon), Kind::EksAddon, reg, a.span);
            // Its pods run on the nodes.
            b.g.edge(ix, aix);
            b.g.edges(&pools, aix);
            addons.push(aix);
        }
        b.addons.insert(name.as_str(), addons);
        b.clusters.insert(name.as_str(), (ix, pools));
    }
}

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (region, what) = r.address.region_item()?;
    let (cluster_name, pool_name) = match what {
        RegionItem::Cluster(c) => (c.as_str(), None),
        RegionItem::NodePool { cluster, pool } => (cluster.as_str(), Some(pool.as_str())),
        _ => return None,
    };
    let (_, cluster) = t.cluster(cluster_name)?;
    let (subnet_addrs, subnet_ids) = subnets(t, region);
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    attrs.insert("subnets".into(), json!(subnet_addrs));
    attrs.insert("subnet_ids".into(), json!(subnet_ids));
    match (r.kind, pool_name) {
        (Kind::EksCluster, None) => {
            let (public, private) = match cluster.endpoint_access {
                EndpointAccess::Public => (true, false),
                EndpointAccess::Private => (false, true),
                EndpointAccess::PublicAndPrivate => (true, true),
            };
            attrs.insert("version".into(), json!(cluster.version.value));
            attrs.insert("endpoint_public".into(), json!(public));
            attrs.insert("endpoint_private".into(), json!(private));
            let sg = t
                .region(region)
                .and_then(|r| r.network.as_ref())
                .is_some_and(|n| matches!(n.kind, NetworkKind::New { .. }))
                .then(|| Address::region(region, RegionItem::SecurityGroup));
            attrs.insert("security_group".into(), json!(sg));
            attrs.insert("role".into(), json!(Address::role(Role::EksCluster)));
            Some((cluster_name.to_string(), attrs))
        }
        (Kind::EksNodeGroup, Some(pool)) => {
            let p = cluster.node_pools.iter().find(|p| p.name.value == pool)?;
            attrs.insert("cluster".into(), json!(cluster_name));
            attrs.insert("instance_types".into(), json!(p.instance_types));
            attrs.insert(
                "capacity".into(),
                json!(match p.capacity {
                    Capacity::OnDemand => "ON_DEMAND",
                    Capacity::Spot => "SPOT",
                }),
            );
            attrs.insert("min".into(), json!(p.min.value));
            attrs.insert("desired".into(), json!(p.desired.value));
            attrs.insert("max".into(), json!(p.max.value));
            attrs.insert("disk_size".into(), json!(p.disk_size));
            attrs.insert("labels".into(), json!(p.labels));
            attrs.insert("role".into(), json!(Address::role(Role::EksNode)));
            Some((pool.to_string(), attrs))
        }
        _ => None,
    }
}

fn client(cx: &Cx<'_>, region: Option<&str>) -> Result<aws_sdk_eks::Client, OpError> {
    Ok(cx
        .aws
        .eks(region.ok_or_else(|| OpError::fatal("EKS needs a region"))?))
}

/// Subnet IDs: existing ones as given, new ones from their recorded outputs.
fn subnet_ids(cx: &Cx<'_>, attrs: &Map<String, Value>) -> Result<Vec<String>, OpError> {
    let mut ids = crate::provider::str_list(attrs, "subnet_ids");
    for a in crate::provider::str_list(attrs, "subnets") {
        ids.push(cx.output(&a, "subnet_id")?.to_string());
    }
    Ok(ids)
}

fn tags(cx: &Cx<'_>, address: &str) -> HashMap<String, String> {
    cx.tags(address).into_iter().collect()
}

fn int(attrs: &Map<String, Value>, key: &str) -> i32 {
    attrs.get(key).and_then(Value::as_i64).unwrap_or(0) as i32
}

fn vpc_config(
    cx: &Cx<'_>,
    attrs: &Map<String, Value>,
    with_network: bool,
) -> Result<VpcConfigRequest, OpError> {
    let mut b = VpcConfigRequest::builder()
        .endpoint_public_access(
            attrs
                .get("endpoint_public")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        )
        .endpoint_private_access(
            attrs
                .get("endpoint_private")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        );
    if with_network {
        b = b.set_subnet_ids(Some(subnet_ids(cx, attrs)?));
        if let Some(sg) = attrs.get("security_group").and_then(Value::as_str) {
            b = b.security_group_ids(cx.output(sg, "group_id")?);
        }
    }
    Ok(b.build())
}

pub struct EksCluster;

/// The pace of a wait on an EKS cluster or node group going through `operation`.
fn lifecycle(cx: &Cx<'_>, kind: Kind, operation: &str) -> Lifecycle {
    Lifecycle::new(kind, operation, cx.aws.time_scale())
}

async fn wait_cluster_active(
    eks: &aws_sdk_eks::Client,
    name: &str,
    lifecycle: Lifecycle,
) -> Result<Recorded, OpError> {
    wait::until(
        lifecycle,
        &format!("EKS cluster {name} to be ACTIVE"),
        CREATE_TIMEOUT,
        || async {
            let out = eks
                .describe_cluster()
                .name(name)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe EKS cluster", e))?;
            let Some(c) = out.cluster() else {
                return Ok(None);
            };
            match c.status() {
                Some(ClusterStatus::Active) => {
                    let arn = c.arn().unwrap_or_default().to_string();
                    let mut outputs = BTreeMap::from([
                        ("name".to_string(), name.to_string()),
                        ("arn".into(), arn.clone()),
                    ]);
                    if let Some(ep) = c.endpoint() {
                        outputs.insert("endpoint".into(), ep.to_string());
                    }
                    Ok(Some(Recorded {
                        ids: BTreeMap::from([
                            ("name".into(), name.to_string()),
                            ("arn".into(), arn),
                        ]),
                        outputs,
                    }))
                }
                Some(ClusterStatus::Failed) => Err(OpError::fatal(format!(
                    "EKS cluster {name} failed to create"
                ))),
                _ => Ok(None),
            }
        },
    )
    .await
}

#[async_trait::async_trait]
impl Provider for EksCluster {
    fn service(&self) -> &'static str {
        "eks"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["subnets", "subnet_ids", "security_group", "role"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let Some(name) = rs.id("name") else {
            return Ok(Observed::Gone);
        };
        match eks.describe_cluster().name(name).send().await {
            Ok(out) => {
                let Some(c) = out.cluster() else {
                    return Ok(Observed::Gone);
                };
                if c.status() == Some(&ClusterStatus::Deleting) {
                    return Ok(Observed::Gone);
                }
                let mut attrs = rs.attributes.clone();
                if let Some(v) = c.version() {
                    attrs.insert("version".into(), json!(v));
                }
                if let Some(vpc) = c.resources_vpc_config() {
                    attrs.insert(
                        "endpoint_public".into(),
                        json!(vpc.endpoint_public_access()),
                    );
                    attrs.insert(
                        "endpoint_private".into(),
                        json!(vpc.endpoint_private_access()),
                    );
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe EKS cluster", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        match eks.describe_cluster().name(&d.name).send().await {
            Ok(out) => {
                let tags: BTreeMap<String, String> = out
                    .cluster()
                    .and_then(|c| c.tags())
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                cx.check_owner(
                    &format!("EKS cluster {}", d.name),
                    d.address.as_str(),
                    &tags,
                )?;
            }
            Err(e) if is_not_found(&e) => {
                let role = cx.output(
                    d.attrs
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    "arn",
                )?;
                let req = eks
                    .create_cluster()
                    .name(&d.name)
                    .role_arn(role)
                    .version(
                        d.attrs
                            .get("version")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    )
                    .resources_vpc_config(vpc_config(cx, &d.attrs, true)?)
                    // Access entries (the topology's `access` list) beside the aws-auth
                    // ConfigMap; the creator (vaultform's identity) is made cluster admin.
                    .access_config(
                        CreateAccessConfigRequest::builder()
                            .authentication_mode(AuthenticationMode::ApiAndConfigMap)
                            .bootstrap_cluster_creator_admin_permissions(true)
                            .build(),
                    )
                    .set_tags(Some(tags(cx, d.address.as_str())));
                match req.send().await {
                    Ok(_) => {}
                    // Created a moment ago by a request whose answer was lost: adopt it.
                    Err(e) if e.code() == Some("ResourceInUseException") => {}
                    Err(e) => return Err(OpError::from_sdk("create EKS cluster", e)),
                }
            }
            Err(e) => return Err(OpError::from_sdk("describe EKS cluster", e)),
        }
        let pace = lifecycle(cx, Kind::EksCluster, "create");
        wait_cluster_active(&eks, &d.name, pace).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        let want = d
            .attrs
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rs.attributes.get("version").and_then(Value::as_str) != Some(want) {
            eks.update_cluster_version()
                .name(&d.name)
                .version(want)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("update EKS cluster version", e))?;
            let pace = lifecycle(cx, Kind::EksCluster, "update");
            wait_cluster_active(&eks, &d.name, pace).await?;
        }
        let access = ["endpoint_public", "endpoint_private"];
        if access
            .iter()
            .any(|k| rs.attributes.get(*k) != d.attrs.get(*k))
        {
            eks.update_cluster_config()
                .name(&d.name)
                .resources_vpc_config(vpc_config(cx, &d.attrs, false)?)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("update EKS endpoint access", e))?;
        }
        let pace = lifecycle(cx, Kind::EksCluster, "update");
        wait_cluster_active(&eks, &d.name, pace).await
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let Some(name) = rs.id("name") else {
            return Ok(());
        };
        match eks.delete_cluster().name(name).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(OpError::from_sdk("delete EKS cluster", e)),
        }
        wait::until(
            lifecycle(cx, Kind::EksCluster, "delete"),
            &format!("EKS cluster {name} to be deleted"),
            DELETE_TIMEOUT,
            || async {
                match eks.describe_cluster().name(name).send().await {
                    Err(e) if is_not_found(&e) => Ok(Some(())),
                    Err(e) => Err(OpError::from_sdk("describe EKS cluster", e)),
                    Ok(_) => Ok(None),
                }
            },
        )
        .await
    }
}

pub struct EksNodeGroup;

fn cluster_of(attrs: &Map<String, Value>) -> Result<&str, OpError> {
    attrs
        .get("cluster")
        .and_then(Value::as_str)
        .ok_or_else(|| OpError::fatal("node group without a cluster"))
}

fn scaling(attrs: &Map<String, Value>) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(int(attrs, "min"))
        .desired_size(int(attrs, "desired"))
        .max_size(int(attrs, "max"))
        .build()
}

fn labels(attrs: &Map<String, Value>) -> HashMap<String, String> {
    attrs
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_nodegroup_active(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
    lifecycle: Lifecycle,
) -> Result<Recorded, OpError> {
    wait::until(
        lifecycle,
        &format!("node group {name} to be ACTIVE"),
        CREATE_TIMEOUT,
        || async {
            let out = eks
                .describe_nodegroup()
                .cluster_name(cluster)
                .nodegroup_name(name)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe node group", e))?;
            let Some(ng) = out.nodegroup() else {
                return Ok(None);
            };
            match ng.status() {
                Some(NodegroupStatus::Active) => {
                    let arn = ng.nodegroup_arn().unwrap_or_default().to_string();
                    Ok(Some(Recorded {
                        ids: BTreeMap::from([
                            ("cluster".into(), cluster.to_string()),
                            ("name".into(), name.to_string()),
                            ("arn".into(), arn.clone()),
                        ]),
                        outputs: BTreeMap::from([
                            ("name".into(), name.to_string()),
                            ("arn".into(), arn),
                        ]),
                    }))
                }
                Some(NodegroupStatus::CreateFailed) | Some(NodegroupStatus::Degraded) => Err(
                    OpError::fatal(format!("node group {name} is {:?}", ng.status())),
                ),
                _ => Ok(None),
            }
        },
    )
    .await
}

#[async_trait::async_trait]
impl Provider for EksNodeGroup {
    fn service(&self) -> &'static str {
        "eks"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &[
            "instance_types",
            "capacity",
            "disk_size",
            "subnets",
            "subnet_ids",
            "role",
            "cluster",
        ]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let (Some(cluster), Some(name)) = (rs.id("cluster"), rs.id("name")) else {
            return Ok(Observed::Gone);
        };
        match eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let Some(ng) = out.nodegroup() else {
                    return Ok(Observed::Gone);
                };
                if ng.status() == Some(&NodegroupStatus::Deleting) {
                    return Ok(Observed::Gone);
                }
                let mut attrs = rs.attributes.clone();
                if let Some(s) = ng.scaling_config() {
                    attrs.insert("min".into(), json!(s.min_size()));
                    attrs.insert("desired".into(), json!(s.desired_size()));
                    attrs.insert("max".into(), json!(s.max_size()));
                }
                if let Some(l) = ng.labels() {
                    let l: BTreeMap<&String, &String> = l.iter().collect();
                    attrs.insert("labels".into(), json!(l));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe node group", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        let cluster = cluster_of(&d.attrs)?;
        match eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&d.name)
            .send()
            .await
        {
            Ok(out) => {
                let tags: BTreeMap<String, String> = out
                    .nodegroup()
                    .and_then(|n| n.tags())
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                cx.check_owner(&format!("node group {}", d.name), d.address.as_str(), &tags)?;
            }
            Err(e) if is_not_found(&e) => {
                let role = cx.output(
                    d.attrs
                        .get("role")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    "arn",
                )?;
                let capacity = match d.attrs.get("capacity").and_then(Value::as_str) {
                    Some("SPOT") => CapacityTypes::Spot,
                    _ => CapacityTypes::OnDemand,
                };
                let req = eks
                    .create_nodegroup()
                    .cluster_name(cluster)
                    .nodegroup_name(&d.name)
                    .node_role(role)
                    .set_subnets(Some(subnet_ids(cx, &d.attrs)?))
                    .set_instance_types(Some(crate::provider::str_list(&d.attrs, "instance_types")))
                    .capacity_type(capacity)
                    .scaling_config(scaling(&d.attrs))
                    .disk_size(int(&d.attrs, "disk_size"))
                    .set_labels(Some(labels(&d.attrs)))
                    .set_tags(Some(tags(cx, d.address.as_str())));
                match req.send().await {
                    Ok(_) => {}
                    Err(e) if e.code() == Some("ResourceInUseException") => {}
                    Err(e) => return Err(OpError::from_sdk("create node group", e)),
                }
            }
            Err(e) => return Err(OpError::from_sdk("describe node group", e)),
        }
        let pace = lifecycle(cx, Kind::EksNodeGroup, "create");
        wait_nodegroup_active(&eks, cluster, &d.name, pace).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        let cluster = cluster_of(&d.attrs)?;
        let old = labels(&rs.attributes);
        let new = labels(&d.attrs);
        let removed: Vec<String> = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        let mut req = eks
            .update_nodegroup_config()
            .cluster_name(cluster)
            .nodegroup_name(&d.name)
            .scaling_config(scaling(&d.attrs));
        if old != new {
            req = req.labels(
                UpdateLabelsPayload::builder()
                    .set_add_or_update_labels(Some(new))
                    .set_remove_labels((!removed.is_empty()).then_some(removed))
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| OpError::from_sdk("update node group", e))?;
        let pace = lifecycle(cx, Kind::EksNodeGroup, "update");
        wait_nodegroup_active(&eks, cluster, &d.name, pace).await
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let (Some(cluster), Some(name)) = (rs.id("cluster"), rs.id("name")) else {
            return Ok(());
        };
        match eks
            .delete_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(OpError::from_sdk("delete node group", e)),
        }
        wait::until(
            lifecycle(cx, Kind::EksNodeGroup, "delete"),
            &format!("node group {name} to be deleted"),
            DELETE_TIMEOUT,
            || async {
                match eks
                    .describe_nodegroup()
                    .cluster_name(cluster)
                    .nodegroup_name(name)
                    .send()
                    .await
                {
                    Err(e) if is_not_found(&e) => Ok(Some(())),
                    Err(e) => Err(OpError::from_sdk("describe node group", e)),
                    Ok(_) => Ok(None),
                }
            },
        )
        .await
    }
}
