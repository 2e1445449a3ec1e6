//! A target group attached to the auto scaling groups of an EKS cluster's node groups: every
//! node, including each spot replacement, is registered as an instance target by the auto
//! scaling group itself, with nobody running vaultform. The groups are the ones EKS reports
//! for each node group (`resources.autoScalingGroups`); a delete detaches from the recorded
//! ones.

use std::collections::BTreeMap;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use crate::address::RegionItem;
use crate::graph::Resource;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr, str_list};
use crate::state::ResourceState;
use crate::topology::Topology;

pub struct TargetAttachment;

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (region, RegionItem::TargetAttachment { lb, port, cluster }) = r.address.region_item()?
    else {
        return None;
    };
    let (_, c) = t.cluster(cluster)?;
    let tg = crate::address::Address::region(
        region,
        RegionItem::TargetGroup {
            lb: lb.clone(),
            port: *port,
        },
    );
    let pools: Vec<&str> = c.node_pools.iter().map(|p| p.name.value.as_str()).collect();
    let mut attrs = Map::new();
    attrs.insert("target_group".into(), json!(tg));
    attrs.insert("cluster".into(), json!(cluster));
    attrs.insert("node_groups".into(), json!(pools));
    Some((
        format!(
            "{}@{cluster}",
            super::elb::target_group_name(lb, port.as_str())
        ),
        attrs,
    ))
}

fn region(region: &Option<String>) -> Result<&str, OpError> {
    region
        .as_deref()
        .ok_or_else(|| OpError::fatal("a target group attachment needs a region"))
}

/// The auto scaling groups EKS made for the cluster's node groups.
async fn groups(cx: &Cx<'_>, region: &str, d: &Desired) -> Result<Vec<String>, OpError> {
    let eks = cx.aws.eks(region);
    let cluster = str_attr(&d.attrs, "cluster")?;
    let mut out = Vec::new();
    for ng in str_list(&d.attrs, "node_groups") {
        let described = eks
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(&ng)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe node group", e))?;
        let names = described
            .nodegroup()
            .and_then(|n| n.resources())
            .map(|r| r.auto_scaling_groups())
            .unwrap_or_default();
        if names.is_empty() {
            return Err(OpError::retryable(format!(
                "node group {ng} of {cluster} reports no auto scaling group yet"
            )));
        }
        out.extend(names.iter().filter_map(|g| g.name().map(str::to_owned)));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn recorded(tg_arn: &str, groups: &[String]) -> Recorded {
    let joined = groups.join(",");
    Recorded {
        ids: BTreeMap::from([
            ("target_group_arn".into(), tg_arn.to_string()),
            ("auto_scaling_groups".into(), joined.clone()),
        ]),
        outputs: BTreeMap::from([("auto_scaling_groups".into(), joined)]),
    }
}

fn recorded_groups(rs: &ResourceState) -> Vec<String> {
    rs.id("auto_scaling_groups")
        .map(|g| {
            g.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Auto scaling's answer for a group that does not exist.
fn is_missing_group<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("not found"))
}

#[async_trait::async_trait]
impl Provider for TargetAttachment {
    fn service(&self) -> &'static str {
        "autoscaling"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["target_group", "cluster"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (Some(tg), groups) = (rs.id("target_group_arn"), recorded_groups(rs)) else {
            return Ok(Observed::Gone);
        };
        if groups.is_empty() {
            return Ok(Observed::Gone);
        }
        let out = cx
            .aws
            .autoscaling(region(&rs.region)?)
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(groups.clone()))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("describe auto scaling groups", e))?;
        let attached = out
            .auto_scaling_groups()
            .iter()
            .filter(|g| g.target_group_arns().iter().any(|a| a == tg))
            .count();
        // A group gone (its node group replaced) or detached by hand: attach again.
        if attached < groups.len() {
            return Ok(Observed::Gone);
        }
        Ok(Observed::Present {
            attrs: rs.attributes.clone(),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let region = region(&d.region)?;
        let tg = cx.output(str_attr(&d.attrs, "target_group")?, "arn")?;
        let groups = groups(cx, region, d).await?;
        let asg = cx.aws.autoscaling(region);
        for g in &groups {
            // Attaching a group that is attached already changes nothing.
            match asg
                .attach_load_balancer_target_groups()
                .auto_scaling_group_name(g)
                .target_group_arns(tg)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(is_missing_group) => {
                    return Err(OpError::fatal(format!(
                        "auto scaling group {g}, which EKS reports for a node group of {}, does not exist",
                        str_attr(&d.attrs, "cluster")?
                    )));
                }
                Err(e) => return Err(OpError::from_sdk("attach target group", e)),
            }
        }
        Ok(recorded(tg, &groups))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Some(tg) = rs.id("target_group_arn") else {
            return Ok(());
        };
        let asg = cx.aws.autoscaling(region(&rs.region)?);
        for g in recorded_groups(rs) {
            match asg
                .detach_load_balancer_target_groups()
                .auto_scaling_group_name(&g)
                .target_group_arns(tg)
                .send()
                .await
            {
                Ok(_) => {}
                // The group went with its node group: nothing is attached any more.
                Err(e) if e.as_service_error().is_some_and(is_missing_group) => {}
                Err(e) => return Err(OpError::from_sdk("detach target group", e)),
            }
        }
        Ok(())
    }
}
