//! ELBv2 for Vault: a network load balancer per declared load balancer, target groups for the
//! API (8200) and cluster (8201) ports whose HTTP health check on `/v1/sys/health` follows the
//! topology's health mode (`unsealed`: 200 or 429; `active`: 200 only), and TCP listeners.
//! Deleting a load balancer waits until it is gone, so that the subnet and security group
//! deletions after it only have lingering network interfaces left to wait for.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
    Matcher, ProtocolEnum, Tag, TargetTypeEnum,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use super::wait;
use crate::address::{Address, Port, RegionItem};
use crate::graph::{Builder, Kind, Resource};
use crate::lifecycle::Lifecycle;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::state::ResourceState;
use crate::topology::{HealthMode, NetworkKind, Region, Scheme, Topology};

const TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A target group name within ELB's 32 characters: `<lb>-api` / `<lb>-clu`, the load balancer
/// part shortened with a hash when needed.
pub fn target_group_name(lb: &str, port: &str) -> String {
    let suffix = if port == "api" { "api" } else { "clu" };
    if lb.len() + 4 <= 32 {
        return format!("{lb}-{suffix}");
    }
    let hash = lb.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let head = lb[..23].trim_end_matches('-');
    format!("{head}-{:04x}-{suffix}", hash & 0xffff)
}

/// The load balancers of a region, on its network; a target group (in its VPC) and a listener
/// for each of the API and cluster ports.
pub fn graph<'t>(b: &mut Builder<'t>, r: &'t Region) {
    let rn = r.name.value.as_str();
    let reg = Some(rn);
    let net = b.region_net.get(rn).cloned().unwrap_or_default();
    for l in &r.load_balancers {
        let name = &l.name.value;
        let ix = b.g.add(
            Address::region(rn, RegionItem::LoadBalancer(name.clone())),
            Kind::LoadBalancer,
            reg,
            l.name.span,
        );
        b.g.edges(&net, ix);
        b.depends.extend(l.depends_on.iter().map(|d| (ix, d)));
        let mut listeners = Vec::new();
        for port in Port::BOTH {
            let lb = name.clone();
            let tg = b.g.add(
                Address::region(rn, RegionItem::TargetGroup { lb, port }),
                Kind::TargetGroup,
                reg,
                l.name.span,
            );
            if let Some(vpc) = b.region_vpc.get(rn).copied() {
                b.g.edge(vpc, tg);
            }
            let lb = name.clone();
            let li = b.g.add(
                Address::region(rn, RegionItem::Listener { lb, port }),
                Kind::Listener,
                reg,
                l.name.span,
            );
            b.g.edge(ix, li);
            b.g.edge(tg, li);
            listeners.push(li);
        }
        b.load_balancers.insert(name.as_str(), (ix, listeners));
    }
}

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (region, what) = r.address.region_item()?;
    let (lb_name, part) = match what {
        RegionItem::LoadBalancer(lb) => (lb.as_str(), None),
        RegionItem::TargetGroup { lb, port } | RegionItem::Listener { lb, port } => {
            (lb.as_str(), Some(*port))
        }
        _ => return None,
    };
    let (_, lb) = t.load_balancer(lb_name)?;
    let base = Address::region(region, RegionItem::LoadBalancer(lb_name.to_string()));
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    let new_network = t
        .region(region)
        .and_then(|r| r.network.as_ref())
        .and_then(|n| match &n.kind {
            NetworkKind::New {
                vpc_cidr,
                azs,
                subnets,
            } => Some((
                vpc_cidr.value,
                azs.value,
                subnets.iter().map(|s| s.value).collect::<Vec<_>>(),
            )),
            NetworkKind::Existing { .. } => None,
        });
    match (r.kind, part) {
        (Kind::LoadBalancer, None) => {
            let subnets: Vec<String> = new_network
                .map(|(c, a, l)| {
                    (0..super::network::subnet_blocks(c, a, &l).len())
                        .map(|i| Address::region(region, RegionItem::Subnet(i)).to_string())
                        .collect()
                })
                .unwrap_or_default();
            attrs.insert(
                "scheme".into(),
                json!(match lb.scheme {
                    Scheme::InternetFacing => "internet-facing",
                    Scheme::Internal => "internal",
                }),
            );
            attrs.insert("subnets".into(), json!(subnets));
            // On an existing network: its subnets as given, and no security group of ours.
            let existing = t
                .region(region)
                .and_then(|r| r.network.as_ref())
                .and_then(|n| match &n.kind {
                    NetworkKind::Existing { subnet_ids, .. } => Some(
                        subnet_ids
                            .iter()
                            .map(|s| s.value.clone())
                            .collect::<Vec<_>>(),
                    ),
                    NetworkKind::New { .. } => None,
                });
            let sg = existing
                .is_none()
                .then(|| Address::region(region, RegionItem::SecurityGroup));
            attrs.insert("subnet_ids".into(), json!(existing.unwrap_or_default()));
            attrs.insert("security_group".into(), json!(sg));
            Some((lb_name.to_string(), attrs))
        }
        (Kind::TargetGroup, Some(port_of)) => {
            let port_name = port_of.as_str();
            let port = match port_of {
                Port::Api => lb.api_port.value,
                Port::Cluster => lb.cluster_port.value,
            };
            attrs.insert("port".into(), json!(port));
            let vpc = if new_network.is_some() {
                RegionItem::Vpc
            } else {
                RegionItem::ExistingNetwork
            };
            attrs.insert("vpc".into(), json!(Address::region(region, vpc)));
            // Health is Vault's own view: always the API port, whatever the traffic port.
            attrs.insert("health_path".into(), json!("/v1/sys/health"));
            attrs.insert("health_port".into(), json!(lb.api_port.value.to_string()));
            attrs.insert(
                "health_codes".into(),
                json!(match lb.health.value {
                    HealthMode::Unsealed => "200,429",
                    HealthMode::Active => "200",
                }),
            );
            kube_targets(t, lb_name, port_of, &mut attrs);
            Some((target_group_name(lb_name, port_name), attrs))
        }
        (Kind::Listener, Some(port_of)) => {
            let port = match port_of {
                Port::Api => lb.api_port.value,
                Port::Cluster => lb.cluster_port.value,
            };
            let tg = RegionItem::TargetGroup {
                lb: lb_name.to_string(),
                port: port_of,
            };
            attrs.insert("port".into(), json!(port));
            attrs.insert("load_balancer".into(), json!(base));
            attrs.insert("target_group".into(), json!(Address::region(region, tg)));
            Some((format!("{lb_name}:{port}"), attrs))
        }
        _ => None,
    }
}

/// The health check path of a load balancer serving members on Kubernetes in `unsealed` mode:
/// a standby (or performance standby) answers 200 like the active node, so every unsealed
/// member takes traffic and forwards it to the leader.
pub const KUBE_UNSEALED_HEALTH: &str = "/v1/sys/health?standbyok=true&perfstandbyok=true";

/// On the Kubernetes runtime a target group sends to its members' fixed node ports on every
/// node of their clusters (instance targets, registered by the node groups' auto scaling
/// groups) and checks health on the API node port, over HTTPS when the cluster has TLS.
fn kube_targets(t: &Topology, lb: &str, port: Port, attrs: &mut Map<String, Value>) {
    let Some((v, m)) = t.kube_members_behind(lb).next() else {
        return;
    };
    let Some((api, cluster)) = t.member_node_ports(&v.name.value, &m.name.value) else {
        return;
    };
    let Some((_, l)) = t.load_balancer(lb) else {
        return;
    };
    attrs.insert(
        "port".into(),
        json!(match port {
            Port::Api => api,
            Port::Cluster => cluster,
        }),
    );
    attrs.insert("target_type".into(), json!("instance"));
    attrs.insert(
        "health_protocol".into(),
        json!(if v.tls.enabled { "HTTPS" } else { "HTTP" }),
    );
    attrs.insert("health_port".into(), json!(api.to_string()));
    let (path, codes) = match l.health.value {
        HealthMode::Unsealed => (KUBE_UNSEALED_HEALTH, "200"),
        HealthMode::Active => ("/v1/sys/health", "200"),
    };
    attrs.insert("health_path".into(), json!(path));
    attrs.insert("health_codes".into(), json!(codes));
}

fn health_protocol(attrs: &Map<String, Value>) -> ProtocolEnum {
    match attrs.get("health_protocol").and_then(Value::as_str) {
        Some("HTTPS") => ProtocolEnum::Https,
        _ => ProtocolEnum::Http,
    }
}

fn target_type(attrs: &Map<String, Value>) -> TargetTypeEnum {
    match attrs.get("target_type").and_then(Value::as_str) {
        Some("instance") => TargetTypeEnum::Instance,
        _ => TargetTypeEnum::Ip,
    }
}

fn client(
    cx: &Cx<'_>,
    region: Option<&str>,
) -> Result<aws_sdk_elasticloadbalancingv2::Client, OpError> {
    Ok(cx
        .aws
        .elbv2(region.ok_or_else(|| OpError::fatal("a load balancer needs a region"))?))
}

fn tags(cx: &Cx<'_>, address: &str) -> Vec<Tag> {
    cx.tags(address)
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn port(attrs: &Map<String, Value>) -> i32 {
    attrs.get("port").and_then(Value::as_i64).unwrap_or(0) as i32
}

async fn tags_of(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>, OpError> {
    let out = elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe tags", e))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect())
}

fn recorded(arn: &str, extra: &[(&str, &str)]) -> Recorded {
    let mut outputs = BTreeMap::from([("arn".to_string(), arn.to_string())]);
    for (k, v) in extra {
        outputs.insert(k.to_string(), v.to_string());
    }
    Recorded {
        ids: BTreeMap::from([("arn".into(), arn.to_string())]),
        outputs,
    }
}

pub struct LoadBalancer;

async fn create_load_balancer(
    cx: &Cx<'_>,
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    d: &Desired,
) -> Result<String, OpError> {
    let mut subnets: Vec<String> = d
        .attrs
        .get("subnet_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for s in d
        .attrs
        .get("subnets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        subnets.push(
            cx.output(s.as_str().unwrap_or_default(), "subnet_id")?
                .to_string(),
        );
    }
    let sg = match d.attrs.get("security_group").and_then(Value::as_str) {
        Some(a) => Some(cx.output(a, "group_id")?.to_string()),
        None => None,
    };
    let scheme = if str_attr(&d.attrs, "scheme")? == "internal" {
        LoadBalancerSchemeEnum::Internal
    } else {
        LoadBalancerSchemeEnum::InternetFacing
    };
    Ok(elb
        .create_load_balancer()
        .name(&d.name)
        .r#type(LoadBalancerTypeEnum::Network)
        .scheme(scheme)
        .set_subnets(Some(subnets))
        .set_security_groups(sg.map(|g| vec![g]))
        .set_tags(Some(tags(cx, d.address.as_str())))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("create load balancer", e))?
        .load_balancers()
        .first()
        .and_then(|l| l.load_balancer_arn())
        .ok_or_else(|| OpError::fatal("ELB returned no load balancer"))?
        .to_string())
}

async fn wait_active(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
    lifecycle: Lifecycle,
) -> Result<Option<String>, OpError> {
    wait::until(
        lifecycle,
        "the load balancer to be active",
        TIMEOUT,
        || async {
            let out = elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe load balancer", e))?;
            let Some(lb) = out.load_balancers().first() else {
                return Ok(None);
            };
            match lb.state().and_then(|s| s.code()) {
                Some(LoadBalancerStateEnum::Active) => Ok(Some(lb.dns_name().map(str::to_owned))),
                Some(LoadBalancerStateEnum::Failed) => {
                    Err(OpError::fatal("the load balancer failed to provision"))
                }
                _ => Ok(None),
            }
        },
    )
    .await
}

#[async_trait::async_trait]
impl Provider for LoadBalancer {
    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["scheme"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(Observed::Gone);
        };
        match elb
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .send()
            .await
        {
            Ok(out) => {
                let Some(lb) = out.load_balancers().first() else {
                    return Ok(Observed::Gone);
                };
                let mut attrs = rs.attributes.clone();
                if let Some(s) = lb.scheme() {
                    attrs.insert("scheme".into(), json!(s.as_str()));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if e.code() == Some("LoadBalancerNotFound") => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe load balancer", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let elb = client(cx, d.region.as_deref())?;
        let arn = match elb.describe_load_balancers().names(&d.name).send().await {
            Ok(out) if !out.load_balancers().is_empty() => {
                let arn = out.load_balancers()[0]
                    .load_balancer_arn()
                    .unwrap_or_default()
                    .to_string();
                cx.check_owner(
                    &format!("load balancer {}", d.name),
                    d.address.as_str(),
                    &tags_of(&elb, &arn).await?,
                )?;
                arn
            }
            Ok(_) => create_load_balancer(cx, &elb, d).await?,
            Err(e) if e.code() == Some("LoadBalancerNotFound") => {
                create_load_balancer(cx, &elb, d).await?
            }
            Err(e) => return Err(OpError::from_sdk("describe load balancer", e)),
        };
        let pace = Lifecycle::new(Kind::LoadBalancer, "create", cx.aws.time_scale());
        let dns = wait_active(&elb, &arn, pace).await?.unwrap_or_default();
        Ok(recorded(&arn, &[("dns_name", &dns), ("name", &d.name)]))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(());
        };
        match elb
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("LoadBalancerNotFound") => return Ok(()),
            Err(e) => return Err(OpError::from_sdk("delete load balancer", e)),
        }
        let pace = Lifecycle::new(Kind::LoadBalancer, "delete", cx.aws.time_scale());
        wait::until(pace, "the load balancer to be deleted", TIMEOUT, || async {
            match elb
                .describe_load_balancers()
                .load_balancer_arns(arn)
                .send()
                .await
            {
                Err(e) if e.code() == Some("LoadBalancerNotFound") => Ok(Some(())),
                Err(e) => Err(OpError::from_sdk("describe load balancer", e)),
                Ok(out) if out.load_balancers().is_empty() => Ok(Some(())),
                Ok(_) => Ok(None),
            }
        })
        .await
    }
}

pub struct TargetGroup;

async fn set_health(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
    d: &Desired,
) -> Result<(), OpError> {
    elb.modify_target_group()
        .target_group_arn(arn)
        .health_check_protocol(health_protocol(&d.attrs))
        .health_check_path(str_attr(&d.attrs, "health_path")?)
        .health_check_port(str_attr(&d.attrs, "health_port")?)
        .matcher(
            Matcher::builder()
                .http_code(str_attr(&d.attrs, "health_codes")?)
                .build(),
        )
        .send()
        .await
        .map_err(|e| OpError::from_sdk("set health check", e))?;
    Ok(())
}

#[async_trait::async_trait]
impl Provider for TargetGroup {
    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["port", "vpc", "target_type"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(Observed::Gone);
        };
        match elb
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
        {
            Ok(out) => {
                let Some(tg) = out.target_groups().first() else {
                    return Ok(Observed::Gone);
                };
                let mut attrs = rs.attributes.clone();
                if let Some(p) = tg.health_check_path() {
                    attrs.insert("health_path".into(), json!(p));
                }
                if let Some(m) = tg.matcher().and_then(|m| m.http_code()) {
                    attrs.insert("health_codes".into(), json!(m));
                }
                if attrs.contains_key("health_protocol")
                    && let Some(p) = tg.health_check_protocol()
                {
                    attrs.insert("health_protocol".into(), json!(p.as_str()));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if e.code() == Some("TargetGroupNotFound") => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("describe target group", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let elb = client(cx, d.region.as_deref())?;
        let found = match elb.describe_target_groups().names(&d.name).send().await {
            Ok(out) => out
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .map(str::to_owned),
            Err(e) if e.code() == Some("TargetGroupNotFound") => None,
            Err(e) => return Err(OpError::from_sdk("describe target group", e)),
        };
        let arn = match found {
            Some(arn) => {
                cx.check_owner(
                    &format!("target group {}", d.name),
                    d.address.as_str(),
                    &tags_of(&elb, &arn).await?,
                )?;
                arn
            }
            None => elb
                .create_target_group()
                .name(&d.name)
                .protocol(ProtocolEnum::Tcp)
                .port(port(&d.attrs))
                .vpc_id(cx.output(str_attr(&d.attrs, "vpc")?, "vpc_id")?)
                .target_type(target_type(&d.attrs))
                .health_check_protocol(health_protocol(&d.attrs))
                .health_check_path(str_attr(&d.attrs, "health_path")?)
                .health_check_port(str_attr(&d.attrs, "health_port")?)
                .health_check_interval_seconds(10)
                .healthy_threshold_count(2)
                .unhealthy_threshold_count(2)
                .matcher(
                    Matcher::builder()
                        .http_code(str_attr(&d.attrs, "health_codes")?)
                        .build(),
                )
                .set_tags(Some(tags(cx, d.address.as_str())))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create target group", e))?
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .ok_or_else(|| OpError::fatal("ELB returned no target group"))?
                .to_string(),
        };
        Ok(recorded(&arn, &[("name", &d.name)]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let elb = client(cx, d.region.as_deref())?;
        let arn = rs
            .id("arn")
            .ok_or_else(|| OpError::fatal("no recorded target group"))?;
        set_health(&elb, arn, d).await?;
        Ok(recorded(arn, &[("name", &d.name)]))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(());
        };
        match elb.delete_target_group().target_group_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("TargetGroupNotFound") => Ok(()),
            Err(e) if e.code() == Some("ResourceInUse") => Err(OpError::retryable(format!(
                "target group still in use by a listener: {}",
                e.message().unwrap_or_default()
            ))),
            Err(e) => Err(OpError::from_sdk("delete target group", e)),
        }
    }
}

pub struct Listener;

#[async_trait::async_trait]
impl Provider for Listener {
    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["load_balancer"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(Observed::Gone);
        };
        match elb.describe_listeners().listener_arns(arn).send().await {
            Ok(out) if out.listeners().is_empty() => Ok(Observed::Gone),
            Ok(out) => {
                let mut attrs = rs.attributes.clone();
                if let Some(p) = out.listeners()[0].port() {
                    attrs.insert("port".into(), json!(p));
                }
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e)
                if e.code() == Some("ListenerNotFound")
                    || e.code() == Some("LoadBalancerNotFound") =>
            {
                Ok(Observed::Gone)
            }
            Err(e) => Err(OpError::from_sdk("describe listener", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let elb = client(cx, d.region.as_deref())?;
        let lb = cx.output(str_attr(&d.attrs, "load_balancer")?, "arn")?;
        let tg = cx.output(str_attr(&d.attrs, "target_group")?, "arn")?;
        let listeners = elb
            .describe_listeners()
            .load_balancer_arn(lb)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe listeners", e))?;
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(tg)
            .build();
        let existing = listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(port(&d.attrs)));
        let arn = match existing.and_then(|l| l.listener_arn()) {
            // A listener on this port of our own load balancer is ours: point it at our group.
            Some(arn) => {
                elb.modify_listener()
                    .listener_arn(arn)
                    .default_actions(forward)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("modify listener", e))?;
                arn.to_string()
            }
            None => elb
                .create_listener()
                .load_balancer_arn(lb)
                .protocol(ProtocolEnum::Tcp)
                .port(port(&d.attrs))
                .default_actions(forward)
                .set_tags(Some(tags(cx, d.address.as_str())))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create listener", e))?
                .listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .ok_or_else(|| OpError::fatal("ELB returned no listener"))?
                .to_string(),
        };
        Ok(recorded(&arn, &[]))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let elb = client(cx, rs.region.as_deref())?;
        let Some(arn) = rs.id("arn") else {
            return Ok(());
        };
        match elb.delete_listener().listener_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ListenerNotFound") => Ok(()),
            Err(e) => Err(OpError::from_sdk("delete listener", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::address::{Address, Port, RegionItem};
    use crate::graph::{Kind, Resource};

    fn target_group(
        file: &str,
        region: &str,
        lb: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let source = crate::topology::SourceFile::new(file, std::fs::read_to_string(file).unwrap());
        let mut problems = Vec::new();
        let t = crate::topology::read(&source, &mut problems).expect("valid");
        let r = Resource {
            address: Address::region(
                region,
                RegionItem::TargetGroup {
                    lb: lb.to_string(),
                    port: Port::Api,
                },
            ),
            kind: Kind::TargetGroup,
            region: Some(region.to_string()),
            span: (0, 0).into(),
            origin: None,
        };
        super::desired(&t, &r).expect("desired").1
    }

    #[test]
    fn on_kubernetes_the_front_and_each_member_check_any_unsealed_member() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/single-region.kdl");
        let front = target_group(file, "us-east-1", "vault-front");
        // Standbys forward to the active node: failover follows raft, not NLB checks.
        assert_eq!(front["health_path"], super::KUBE_UNSEALED_HEALTH);
        assert_eq!(front["health_codes"], "200");
        assert_eq!(front["port"], 32000);
        assert_eq!(front["target_type"], "instance");
        let member = target_group(file, "us-east-1", "vault-b");
        assert_eq!(member["health_path"], super::KUBE_UNSEALED_HEALTH);
        assert_eq!(member["health_codes"], "200");
        assert_eq!(member["health_protocol"], "HTTPS");
        assert_eq!(member["health_port"], "32000");
    }
}
