//! The network of a region: VPC (DNS support and hostnames), one subnet per availability zone
//! (tagged for EKS and load balancers), an internet gateway, a route table with the default
//! route and the subnet associations, and the security group that lets the other regions
//! reach Vault on 8200/8201 and the VPC reach the EKS control plane ports.
//!
//! Every piece is created with its tags in the same call (`TagSpecifications`), so a piece
//! left behind by an interrupted run is always found again by its `vaultform:address` tag.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
};
use aws_smithy_runtime_api::client::result::SdkError;
use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

use crate::address::{Address, RegionItem, subnet_letter};
use crate::graph::{Builder, Kind, Resource};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::retry::{Backoff, retry};
use crate::state::ResourceState;
use crate::topology::{NetworkKind, Region, Topology};

/// The subnet blocks of a new network: as listed, or the VPC block cut into 16 and the first
/// `azs` taken.
pub fn subnet_blocks(vpc: Ipv4Net, azs: u8, listed: &[Ipv4Net]) -> Vec<Ipv4Net> {
    if !listed.is_empty() {
        return listed.to_vec();
    }
    let prefix = (vpc.prefix_len() + 4).min(28);
    vpc.subnets(prefix)
        .map(|s| s.take(azs as usize).collect())
        .unwrap_or_default()
}

fn region_of<'a>(t: &'a Topology, r: &Resource) -> Option<&'a Region> {
    t.region(r.region.as_deref()?)
}

fn new_network(region: &Region) -> Option<(Ipv4Net, u8, Vec<Ipv4Net>)> {
    match &region.network.as_ref()?.kind {
        NetworkKind::New {
            vpc_cidr,
            azs,
            subnets,
        } => Some((
            vpc_cidr.value,
            azs.value,
            subnets.iter().map(|s| s.value).collect(),
        )),
        NetworkKind::Existing { .. } => None,
    }
}

/// The network pieces of a region: a new network's VPC, a subnet per availability zone, the
/// internet gateway, the route table and the security group; or the existing network.
pub fn graph<'t>(b: &mut Builder<'t>, r: &'t Region) {
    let rn = r.name.value.as_str();
    let reg = Some(rn);
    let at = |what| Address::region(rn, what);
    let mut net = Vec::new();
    if let Some(n) = &r.network {
        match &n.kind {
            NetworkKind::New { azs, .. } => {
                let vpc = b.g.add(at(RegionItem::Vpc), Kind::Vpc, reg, n.span);
                b.region_vpc.insert(rn, vpc);
                for i in 0..azs.value as usize {
                    let s =
                        b.g.add(at(RegionItem::Subnet(i)), Kind::Subnet, reg, n.span);
                    b.g.edge(vpc, s);
                    net.push(s);
                }
                let igw = b.g.add(
                    at(RegionItem::InternetGateway),
                    Kind::InternetGateway,
                    reg,
                    n.span,
                );
                b.g.edge(vpc, igw);
                let rt =
                    b.g.add(at(RegionItem::RouteTable), Kind::RouteTable, reg, n.span);
                b.g.edge(igw, rt);
                b.g.edges(&net, rt);
                let sg = b.g.add(
                    at(RegionItem::SecurityGroup),
                    Kind::SecurityGroup,
                    reg,
                    n.span,
                );
                b.g.edge(vpc, sg);
                net.push(rt);
                net.push(sg);
            }
            NetworkKind::Existing { .. } => {
                let e = b.g.add(
                    at(RegionItem::ExistingNetwork),
                    Kind::ExistingNetwork,
                    reg,
                    n.span,
                );
                b.region_vpc.insert(rn, e);
                net.push(e);
            }
        }
    }
    b.region_net.insert(rn, net);
}

/// The desired attributes of a network piece.
pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let region = region_of(t, r)?;
    let rn = region.name.value.as_str();
    let (vpc_cidr, azs, listed) = new_network(region)?;
    let at = |what| Address::region(rn, what);
    let vpc_addr = at(RegionItem::Vpc);
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    let name = match r.kind {
        Kind::Vpc => {
            attrs.insert("cidr".into(), json!(vpc_cidr.to_string()));
            attrs.insert("dns".into(), json!(true));
            format!("{}-{rn}", t.stack.value)
        }
        Kind::Subnet => {
            let Some((_, RegionItem::Subnet(i))) = r.address.region_item() else {
                return None;
            };
            let (i, letter) = (*i, subnet_letter(*i));
            let block = subnet_blocks(vpc_cidr, azs, &listed).get(i).copied()?;
            attrs.insert("vpc".into(), json!(vpc_addr));
            attrs.insert("cidr".into(), json!(block.to_string()));
            attrs.insert("availability_zone".into(), json!(format!("{rn}{letter}")));
            let clusters: Vec<&str> = region
                .clusters
                .iter()
                .map(|c| c.name.value.as_str())
                .collect();
            attrs.insert("eks_clusters".into(), json!(clusters));
            format!("{}-{rn}{letter}", t.stack.value)
        }
        Kind::InternetGateway => {
            attrs.insert("vpc".into(), json!(vpc_addr));
            format!("{}-{rn}", t.stack.value)
        }
        Kind::RouteTable => {
            let subnets: Vec<Address> = (0..subnet_blocks(vpc_cidr, azs, &listed).len())
                .map(|i| at(RegionItem::Subnet(i)))
                .collect();
            attrs.insert("vpc".into(), json!(vpc_addr));
            attrs.insert(
                "internet_gateway".into(),
                json!(at(RegionItem::InternetGateway)),
            );
            attrs.insert("subnets".into(), json!(subnets));
            format!("{}-{rn}", t.stack.value)
        }
        Kind::SecurityGroup => {
            // Vault's API and cluster ports from every region's VPC; the EKS control plane
            // ports (443, 10250) from this VPC.
            let mut vault_from: Vec<String> = t
                .regions
                .iter()
                .filter_map(|o| new_network(o).map(|(c, _, _)| c.to_string()))
                .collect();
            vault_from.sort();
            attrs.insert("vpc".into(), json!(vpc_addr));
            attrs.insert("vault_from".into(), json!(vault_from));
            attrs.insert("control_plane_from".into(), json!([vpc_cidr.to_string()]));
            format!("{}-{rn}-vault", t.stack.value)
        }
        _ => return None,
    };
    Some((name, attrs))
}

fn client(cx: &Cx<'_>, region: Option<&str>) -> Result<aws_sdk_ec2::Client, OpError> {
    Ok(cx
        .aws
        .ec2(region.ok_or_else(|| OpError::fatal("a network piece needs a region"))?))
}

fn code<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> Option<&str> {
    e.code()
}

/// Gone, or (an internet gateway's detach) no longer attached.
fn is_not_found<E: aws_smithy_types::error::metadata::ProvideErrorMetadata>(e: &E) -> bool {
    crate::aws_error::is_not_found(e) || code(e) == Some("Gateway.NotAttached")
}

/// How long a delete waits out `DependencyViolation`: ENIs of a deleted load balancer or EKS
/// cluster can take many minutes to go.
const DEPENDENCY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// Runs `delete` until it stops failing with a retryable error (a dependency still in use),
/// with the AWS wait's backoff, up to [`DEPENDENCY_TIMEOUT`]; then fails for good (the engine
/// does not wait the same 20 minutes again), naming what and the last error.
async fn until_deletable<F, Fut>(what: &str, delete: F) -> Result<(), OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), OpError>>,
{
    retry(Backoff::AWS_WAIT.deadline(DEPENDENCY_TIMEOUT), delete)
        .await
        .map_err(|e| match e.retryable {
            true => OpError::fatal(format!(
                "timed out after {}s waiting for {what} to be free of dependencies; last error: {}",
                DEPENDENCY_TIMEOUT.as_secs(),
                e.message
            )),
            false => e,
        })
}

/// Deletes that run into lingering dependencies (ENIs of a deleted load balancer) are worth
/// retrying; [`until_deletable`] bounds how long.
fn delete_error<E>(what: &str, e: SdkError<E, aws_smithy_runtime_api::http::Response>) -> OpError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let mut err = OpError::from_sdk(what, e);
    if err.aws_code() == Some("DependencyViolation") {
        err.retryable = true;
        err.message = format!(
            "{} (still in use: lingering network interfaces are deleted by AWS within minutes; run destroy again if this persists)",
            err.message
        );
    }
    err
}

fn tag_spec(cx: &Cx<'_>, d: &Desired, kind: ResourceType) -> TagSpecification {
    let mut tags = cx.tags(d.address.as_str());
    tags.insert("Name".into(), d.name.clone());
    if kind == ResourceType::Subnet {
        tags.insert("kubernetes.io/role/elb".into(), "1".into());
        for c in d
            .attrs
            .get("eks_clusters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = c.as_str() {
                tags.insert(format!("kubernetes.io/cluster/{c}"), "shared".into());
            }
        }
    }
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// Only this stack's: addresses repeat from stack to stack (`region.<r>.network.vpc`).
fn by_stack(stack: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", crate::provider::TAG_STACK))
        .values(stack)
        .build()
}

fn by_address(address: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{}", crate::provider::TAG_ADDRESS))
        .values(address)
        .build()
}

fn tags_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn recorded(id_key: &str, id: &str) -> Recorded {
    Recorded {
        ids: BTreeMap::from([(id_key.to_string(), id.to_string())]),
        outputs: BTreeMap::from([(id_key.to_string(), id.to_string())]),
    }
}

/// Only this stack's pieces are adopted.
fn owned(cx: &Cx<'_>, d: &Desired, tags: &[Tag]) -> Result<(), OpError> {
    cx.check_owner(&d.name, d.address.as_str(), &tags_map(tags))
}

pub struct Vpc;

#[async_trait::async_trait]
impl Provider for Vpc {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["cidr"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("vpc_id") else {
            return Ok(Observed::Gone);
        };
        match ec2.describe_vpcs().vpc_ids(id).send().await {
            Ok(out) => {
                let Some(v) = out.vpcs().first() else {
                    return Ok(Observed::Gone);
                };
                let mut attrs = rs.attributes.clone();
                attrs.insert("cidr".into(), json!(v.cidr_block().unwrap_or_default()));
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe VPC", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        // A resumed create looks again for what the killed run's last request may create.
        let found = super::wait::find_resumed(d.resumed, || async {
            let out = ec2
                .describe_vpcs()
                .filters(by_address(d.address.as_str()))
                .filters(by_stack(cx.stack))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("look up VPC", e))?;
            Ok(out.vpcs().first().cloned())
        })
        .await?;
        let id = match found.as_ref() {
            Some(v) => {
                owned(cx, d, v.tags())?;
                v.vpc_id().unwrap_or_default().to_string()
            }
            None => ec2
                .create_vpc()
                .cidr_block(str_attr(&d.attrs, "cidr")?)
                .tag_specifications(tag_spec(cx, d, ResourceType::Vpc))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create VPC", e))?
                .vpc()
                .and_then(|v| v.vpc_id())
                .ok_or_else(|| OpError::fatal("EC2 returned no VPC ID"))?
                .to_string(),
        };
        // EC2 takes one attribute per call.
        let on = || AttributeBooleanValue::builder().value(true).build();
        ec2.modify_vpc_attribute()
            .vpc_id(&id)
            .enable_dns_support(on())
            .send()
            .await
            .map_err(|e| OpError::from_sdk("enable VPC DNS support", e))?;
        ec2.modify_vpc_attribute()
            .vpc_id(&id)
            .enable_dns_hostnames(on())
            .send()
            .await
            .map_err(|e| OpError::from_sdk("enable VPC DNS hostnames", e))?;
        Ok(recorded("vpc_id", &id))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("vpc_id") else {
            return Ok(());
        };
        until_deletable(&format!("VPC {id}"), || async {
            match ec2.delete_vpc().vpc_id(id).send().await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(delete_error("delete VPC", e)),
            }
        })
        .await
    }
}

pub struct Subnet;

#[async_trait::async_trait]
impl Provider for Subnet {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["cidr", "availability_zone", "vpc"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("subnet_id") else {
            return Ok(Observed::Gone);
        };
        match ec2.describe_subnets().subnet_ids(id).send().await {
            Ok(out) => {
                let Some(s) = out.subnets().first() else {
                    return Ok(Observed::Gone);
                };
                let mut attrs = rs.attributes.clone();
                attrs.insert("cidr".into(), json!(s.cidr_block().unwrap_or_default()));
                attrs.insert(
                    "availability_zone".into(),
                    json!(s.availability_zone().unwrap_or_default()),
                );
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe subnet", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        // A resumed create looks again for what the killed run's last request may create.
        let found = super::wait::find_resumed(d.resumed, || async {
            let out = ec2
                .describe_subnets()
                .filters(by_address(d.address.as_str()))
                .filters(by_stack(cx.stack))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("look up subnet", e))?;
            Ok(out.subnets().first().cloned())
        })
        .await?;
        let id = match found.as_ref() {
            Some(s) => {
                owned(cx, d, s.tags())?;
                s.subnet_id().unwrap_or_default().to_string()
            }
            None => ec2
                .create_subnet()
                .vpc_id(cx.output(str_attr(&d.attrs, "vpc")?, "vpc_id")?)
                .cidr_block(str_attr(&d.attrs, "cidr")?)
                .availability_zone(str_attr(&d.attrs, "availability_zone")?)
                .tag_specifications(tag_spec(cx, d, ResourceType::Subnet))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create subnet", e))?
                .subnet()
                .and_then(|s| s.subnet_id())
                .ok_or_else(|| OpError::fatal("EC2 returned no subnet ID"))?
                .to_string(),
        };
        ec2.modify_subnet_attribute()
            .subnet_id(&id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .map_err(|e| OpError::from_sdk("set subnet public IPs", e))?;
        Ok(recorded("subnet_id", &id))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        // Tags (the EKS cluster tags follow the clusters of the region).
        let ec2 = client(cx, d.region.as_deref())?;
        let id = rs
            .id("subnet_id")
            .ok_or_else(|| OpError::fatal("no recorded subnet ID"))?;
        let spec = tag_spec(cx, d, ResourceType::Subnet);
        ec2.create_tags()
            .resources(id)
            .set_tags(Some(spec.tags().to_vec()))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("tag subnet", e))?;
        Ok(recorded("subnet_id", id))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("subnet_id") else {
            return Ok(());
        };
        until_deletable(&format!("subnet {id}"), || async {
            match ec2.delete_subnet().subnet_id(id).send().await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(delete_error("delete subnet", e)),
            }
        })
        .await
    }
}

pub struct InternetGateway;

#[async_trait::async_trait]
impl Provider for InternetGateway {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["vpc"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("internet_gateway_id") else {
            return Ok(Observed::Gone);
        };
        match ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await
        {
            Ok(out) if out.internet_gateways().is_empty() => Ok(Observed::Gone),
            Ok(_) => Ok(Observed::Present {
                attrs: rs.attributes.clone(),
                delete_blocker: None,
            }),
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe internet gateway", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        let vpc_id = cx.output(str_attr(&d.attrs, "vpc")?, "vpc_id")?.to_string();
        // A resumed create looks again for what the killed run's last request may create.
        let found = super::wait::find_resumed(d.resumed, || async {
            let out = ec2
                .describe_internet_gateways()
                .filters(by_address(d.address.as_str()))
                .filters(by_stack(cx.stack))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("look up internet gateway", e))?;
            Ok(out.internet_gateways().first().cloned())
        })
        .await?;
        let (id, attached) = match found.as_ref() {
            Some(g) => {
                owned(cx, d, g.tags())?;
                let attached = g
                    .attachments()
                    .iter()
                    .any(|a| a.vpc_id() == Some(vpc_id.as_str()));
                (
                    g.internet_gateway_id().unwrap_or_default().to_string(),
                    attached,
                )
            }
            None => {
                let id = ec2
                    .create_internet_gateway()
                    .tag_specifications(tag_spec(cx, d, ResourceType::InternetGateway))
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("create internet gateway", e))?
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .ok_or_else(|| OpError::fatal("EC2 returned no internet gateway ID"))?
                    .to_string();
                (id, false)
            }
        };
        if !attached {
            ec2.attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(&vpc_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("attach internet gateway", e))?;
        }
        Ok(recorded("internet_gateway_id", &id))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("internet_gateway_id") else {
            return Ok(());
        };
        let gw = match ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await
        {
            Ok(out) => out.internet_gateways().first().cloned(),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(OpError::from_sdk("describe internet gateway", e)),
        };
        let Some(gw) = gw else { return Ok(()) };
        for a in gw.attachments() {
            if let Some(vpc) = a.vpc_id() {
                match ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(delete_error("detach internet gateway", e)),
                }
            }
        }
        match ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(delete_error("delete internet gateway", e)),
        }
    }
}

pub struct RouteTable;

#[async_trait::async_trait]
impl Provider for RouteTable {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["vpc"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("route_table_id") else {
            return Ok(Observed::Gone);
        };
        match ec2.describe_route_tables().route_table_ids(id).send().await {
            Ok(out) if out.route_tables().is_empty() => Ok(Observed::Gone),
            Ok(out) => {
                let mut attrs = rs.attributes.clone();
                let rt = &out.route_tables()[0];
                let has_default = rt
                    .routes()
                    .iter()
                    .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
                if !has_default {
                    attrs.insert("internet_gateway".into(), json!("none (no default route)"));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe route table", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        // A resumed create looks again for what the killed run's last request may create.
        let existing = super::wait::find_resumed(d.resumed, || async {
            let out = ec2
                .describe_route_tables()
                .filters(by_address(d.address.as_str()))
                .filters(by_stack(cx.stack))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("look up route table", e))?;
            Ok(out.route_tables().first().cloned())
        })
        .await?;
        let id = match &existing {
            Some(rt) => {
                owned(cx, d, rt.tags())?;
                rt.route_table_id().unwrap_or_default().to_string()
            }
            None => ec2
                .create_route_table()
                .vpc_id(cx.output(str_attr(&d.attrs, "vpc")?, "vpc_id")?)
                .tag_specifications(tag_spec(cx, d, ResourceType::RouteTable))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create route table", e))?
                .route_table()
                .and_then(|r| r.route_table_id())
                .ok_or_else(|| OpError::fatal("EC2 returned no route table ID"))?
                .to_string(),
        };
        let igw = cx.output(
            str_attr(&d.attrs, "internet_gateway")?,
            "internet_gateway_id",
        )?;
        let has_default = existing.as_ref().is_some_and(|rt| {
            rt.routes()
                .iter()
                .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        });
        if !has_default {
            ec2.create_route()
                .route_table_id(&id)
                .destination_cidr_block("0.0.0.0/0")
                .gateway_id(igw)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create default route", e))?;
        }
        let associated: Vec<String> = existing
            .iter()
            .flat_map(|rt| rt.associations())
            .filter_map(|a| a.subnet_id().map(str::to_owned))
            .collect();
        for s in d
            .attrs
            .get("subnets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let subnet_id = cx.output(s.as_str().unwrap_or_default(), "subnet_id")?;
            if associated.iter().any(|a| a == subnet_id) {
                continue;
            }
            ec2.associate_route_table()
                .route_table_id(&id)
                .subnet_id(subnet_id)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("associate route table", e))?;
        }
        Ok(recorded("route_table_id", &id))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("route_table_id") else {
            return Ok(());
        };
        let rt = match ec2.describe_route_tables().route_table_ids(id).send().await {
            Ok(out) => out.route_tables().first().cloned(),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(OpError::from_sdk("describe route table", e)),
        };
        let Some(rt) = rt else { return Ok(()) };
        for a in rt.associations() {
            if a.main() == Some(true) {
                continue;
            }
            if let Some(assoc) = a.route_table_association_id() {
                match ec2
                    .disassociate_route_table()
                    .association_id(assoc)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(delete_error("disassociate route table", e)),
                }
            }
        }
        match ec2.delete_route_table().route_table_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(delete_error("delete route table", e)),
        }
    }
}

pub struct SecurityGroup;

/// The ingress rules a security group should have: (from port, to port, CIDR).
fn wanted_rules(attrs: &Map<String, Value>) -> Vec<(i32, i32, String)> {
    let list = |k: &str| crate::provider::str_list(attrs, k);
    let mut rules = Vec::new();
    for c in list("vault_from") {
        rules.push((8200, 8201, c));
    }
    for c in list("control_plane_from") {
        rules.push((443, 443, c.clone()));
        rules.push((10250, 10250, c));
    }
    rules.sort();
    rules
}

fn present_rules(perms: &[IpPermission]) -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    for p in perms {
        for r in p.ip_ranges() {
            if let (Some(from), Some(to), Some(c)) = (p.from_port(), p.to_port(), r.cidr_ip()) {
                out.push((from, to, c.to_string()));
            }
        }
    }
    out.sort();
    out
}

fn permission((from, to, cidr): &(i32, i32, String)) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(*from)
        .to_port(*to)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip(cidr)
                .description("vaultform")
                .build(),
        )
        .build()
}

#[async_trait::async_trait]
impl Provider for SecurityGroup {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["vpc"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("group_id") else {
            return Ok(Observed::Gone);
        };
        match ec2.describe_security_groups().group_ids(id).send().await {
            Ok(out) => {
                let Some(g) = out.security_groups().first() else {
                    return Ok(Observed::Gone);
                };
                let mut attrs = rs.attributes.clone();
                if present_rules(g.ip_permissions()) != wanted_rules(&rs.attributes) {
                    attrs.insert("rules".into(), json!("changed outside vaultform"));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe security group", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        let vpc_id = cx.output(str_attr(&d.attrs, "vpc")?, "vpc_id")?.to_string();
        // A resumed create looks again for what the killed run's last request may create.
        let found = super::wait::find_resumed(d.resumed, || async {
            let out = ec2
                .describe_security_groups()
                .filters(by_address(d.address.as_str()))
                .filters(by_stack(cx.stack))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("look up security group", e))?;
            Ok(out.security_groups().first().cloned())
        })
        .await?;
        let (id, present) = match found.as_ref() {
            Some(g) => {
                owned(cx, d, g.tags())?;
                (
                    g.group_id().unwrap_or_default().to_string(),
                    present_rules(g.ip_permissions()),
                )
            }
            None => {
                let id = ec2
                    .create_security_group()
                    .group_name(&d.name)
                    .description(format!(
                        "vaultform {}: Vault API and cluster ports",
                        cx.stack
                    ))
                    .vpc_id(&vpc_id)
                    .tag_specifications(tag_spec(cx, d, ResourceType::SecurityGroup))
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("create security group", e))?
                    .group_id()
                    .ok_or_else(|| OpError::fatal("EC2 returned no security group ID"))?
                    .to_string();
                (id, Vec::new())
            }
        };
        let wanted = wanted_rules(&d.attrs);
        let add: Vec<IpPermission> = wanted
            .iter()
            .filter(|r| !present.contains(r))
            .map(permission)
            .collect();
        let remove: Vec<IpPermission> = present
            .iter()
            .filter(|r| !wanted.contains(r))
            .map(permission)
            .collect();
        if !add.is_empty() {
            match ec2
                .authorize_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(add))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if code(&e) == Some("InvalidPermission.Duplicate") => {}
                Err(e) => return Err(OpError::from_sdk("authorize ingress", e)),
            }
        }
        if !remove.is_empty() {
            ec2.revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(remove))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("revoke ingress", e))?;
        }
        Ok(recorded("group_id", &id))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        let Some(id) = rs.id("group_id") else {
            return Ok(());
        };
        until_deletable(&format!("security group {id}"), || async {
            match ec2.delete_security_group().group_id(id).send().await {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(delete_error("delete security group", e)),
            }
        })
        .await
    }
}

/// An existing VPC and subnets (`network vpc-id=... subnet-ids=...`): read and recorded, never
/// modified or deleted.
pub struct ExistingNetwork;

pub fn desired_existing(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let region = region_of(t, r)?;
    let NetworkKind::Existing { vpc_id, subnet_ids } = &region.network.as_ref()?.kind else {
        return None;
    };
    let ids: Vec<&str> = subnet_ids.iter().map(|s| s.value.as_str()).collect();
    let mut attrs = Map::new();
    attrs.insert("vpc_id".into(), json!(vpc_id.value));
    attrs.insert("subnet_ids".into(), json!(ids));
    Some((vpc_id.value.clone(), attrs))
}

/// Checks that the VPC and every subnet exist and belong together.
async fn verify_existing(
    ec2: &aws_sdk_ec2::Client,
    attrs: &Map<String, Value>,
) -> Result<Option<Recorded>, OpError> {
    let vpc_id = str_attr(attrs, "vpc_id")?;
    match ec2.describe_vpcs().vpc_ids(vpc_id).send().await {
        Ok(out) if !out.vpcs().is_empty() => {}
        Ok(_) => return Ok(None),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(OpError::from_sdk("describe VPC", e)),
    }
    let wanted: Vec<String> = attrs
        .get("subnet_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let subnets = match ec2
        .describe_subnets()
        .set_subnet_ids(Some(wanted.clone()))
        .send()
        .await
    {
        Ok(out) => out.subnets().to_vec(),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(OpError::from_sdk("describe subnets", e)),
    };
    if let Some(s) = subnets.iter().find(|s| s.vpc_id() != Some(vpc_id)) {
        return Err(OpError::fatal(format!(
            "subnet {} is not in {vpc_id}",
            s.subnet_id().unwrap_or_default()
        )));
    }
    if subnets.len() != wanted.len() {
        return Ok(None);
    }
    Ok(Some(Recorded {
        ids: BTreeMap::from([("vpc_id".into(), vpc_id.to_string())]),
        outputs: BTreeMap::from([
            ("vpc_id".into(), vpc_id.to_string()),
            ("subnet_ids".into(), wanted.join(",")),
        ]),
    }))
}

#[async_trait::async_trait]
impl Provider for ExistingNetwork {
    fn service(&self) -> &'static str {
        "ec2"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &[]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let ec2 = client(cx, rs.region.as_deref())?;
        Ok(match verify_existing(&ec2, &rs.attributes).await? {
            Some(_) => Observed::Present {
                attrs: rs.attributes.clone(),
                delete_blocker: None,
            },
            None => Observed::Gone,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let ec2 = client(cx, d.region.as_deref())?;
        verify_existing(&ec2, &d.attrs).await?.ok_or_else(|| {
            OpError::fatal(format!(
                "the existing network {} or one of its subnets does not exist",
                str_attr(&d.attrs, "vpc_id").unwrap_or_default()
            ))
        })
    }

    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        // Not ours: forgetting it is all a destroy does.
        Ok(())
    }
}
