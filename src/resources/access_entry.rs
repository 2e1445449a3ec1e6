//! An EKS access entry: an IAM principal of the topology's `access` list given one EKS access
//! policy on the whole cluster (CreateAccessEntry + AssociateAccessPolicy). The cluster is
//! created with authentication mode `API_AND_CONFIG_MAP` and its creator as admin; these are
//! the other principals. A delete removes the entry with its policies.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_eks::types::{AccessScope, AccessScopeType};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use crate::address::RegionItem;
use crate::aws_error::is_not_found;
use crate::graph::Resource;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::state::ResourceState;
use crate::topology::Topology;

pub struct AccessEntry;

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (_, RegionItem::AccessEntry { cluster, principal }) = r.address.region_item()? else {
        return None;
    };
    let (_, c) = t.cluster(cluster)?;
    let a = c.access.iter().find(|a| &a.principal.value == principal)?;
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    attrs.insert("cluster".into(), json!(cluster));
    attrs.insert("principal".into(), json!(principal));
    attrs.insert("policy".into(), json!(a.policy.value.arn()));
    Some((principal.clone(), attrs))
}

fn client(cx: &Cx<'_>, region: Option<&str>) -> Result<aws_sdk_eks::Client, OpError> {
    Ok(cx
        .aws
        .eks(region.ok_or_else(|| OpError::fatal("an access entry needs its cluster's region"))?))
}

pub(crate) type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// Whether the endpoint has no such operation: an answer without an AWS error code (real EKS
/// names every error it returns).
pub(crate) fn unimplemented<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.raw_response()
        .is_some_and(|r| matches!(r.status().as_u16(), 404 | 500 | 501))
        && e.code().is_none()
}

/// An SDK error, said plainly when the endpoint does not implement `feature` at all (an
/// emulator answers such a call with no AWS error code): `needs` says what needs real EKS.
pub(crate) fn missing_api_error<E>(
    what: &str,
    e: SdkError<E>,
    feature: &str,
    needs: &str,
) -> OpError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unimplemented = unimplemented(&e);
    let err = OpError::from_sdk(what, e);
    if unimplemented {
        return OpError::fatal(format!(
            "{what}: this EKS endpoint does not implement {feature} ({}); {needs} needs real EKS",
            err.message
        ));
    }
    err
}

fn eks_error<E>(what: &str, e: SdkError<E>) -> OpError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    missing_api_error(what, e, "access entries", "the cluster's `access` list")
}

fn recorded(cluster: &str, principal: &str, arn: &str) -> Recorded {
    Recorded {
        ids: BTreeMap::from([
            ("cluster".into(), cluster.to_string()),
            ("principal".into(), principal.to_string()),
        ]),
        outputs: BTreeMap::from([("arn".into(), arn.to_string())]),
    }
}

/// Associates the desired policy cluster-wide and removes any other.
async fn converge(eks: &aws_sdk_eks::Client, d: &Desired) -> Result<(), OpError> {
    let cluster = str_attr(&d.attrs, "cluster")?;
    let principal = str_attr(&d.attrs, "principal")?;
    let policy = str_attr(&d.attrs, "policy")?;
    eks.associate_access_policy()
        .cluster_name(cluster)
        .principal_arn(principal)
        .policy_arn(policy)
        .access_scope(
            AccessScope::builder()
                .r#type(AccessScopeType::Cluster)
                .build(),
        )
        .send()
        .await
        .map_err(|e| eks_error("associate access policy", e))?;
    let listed = eks
        .list_associated_access_policies()
        .cluster_name(cluster)
        .principal_arn(principal)
        .send()
        .await
        .map_err(|e| eks_error("list access policies", e))?;
    for other in listed
        .associated_access_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .filter(|p| *p != policy)
    {
        eks.disassociate_access_policy()
            .cluster_name(cluster)
            .principal_arn(principal)
            .policy_arn(other)
            .send()
            .await
            .map_err(|e| eks_error("disassociate access policy", e))?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Provider for AccessEntry {
    fn service(&self) -> &'static str {
        "eks"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["cluster", "principal"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let (Some(cluster), Some(principal)) = (rs.id("cluster"), rs.id("principal")) else {
            return Ok(Observed::Gone);
        };
        match eks
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Observed::Gone),
            Err(e) => return Err(eks_error("describe access entry", e)),
        }
        let listed = eks
            .list_associated_access_policies()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
            .map_err(|e| eks_error("list access policies", e))?;
        let mut attrs = rs.attributes.clone();
        let policies: Vec<&str> = listed
            .associated_access_policies()
            .iter()
            .filter_map(|p| p.policy_arn())
            .collect();
        if let [one] = policies.as_slice() {
            attrs.insert("policy".into(), json!(one));
        } else {
            attrs.insert("policy".into(), json!(policies));
        }
        Ok(Observed::Present {
            attrs,
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        let cluster = str_attr(&d.attrs, "cluster")?;
        let principal = str_attr(&d.attrs, "principal")?;
        let tags: HashMap<String, String> = cx.tags(d.address.as_str()).into_iter().collect();
        let arn = match eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .set_tags(Some(tags))
            .send()
            .await
        {
            Ok(out) => out
                .access_entry()
                .and_then(|a| a.access_entry_arn())
                .unwrap_or_default()
                .to_string(),
            Err(e) if e.code() == Some("ResourceInUseException") => {
                let out = eks
                    .describe_access_entry()
                    .cluster_name(cluster)
                    .principal_arn(principal)
                    .send()
                    .await
                    .map_err(|e| eks_error("describe access entry", e))?;
                let entry = out.access_entry();
                let tags: BTreeMap<String, String> = entry
                    .and_then(|a| a.tags())
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                cx.check_owner(
                    &format!("the access entry of {principal} on {cluster}"),
                    d.address.as_str(),
                    &tags,
                )?;
                entry
                    .and_then(|a| a.access_entry_arn())
                    .unwrap_or_default()
                    .to_string()
            }
            Err(e) => return Err(eks_error("create access entry", e)),
        };
        converge(&eks, d).await?;
        Ok(recorded(cluster, principal, &arn))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        converge(&eks, d).await?;
        Ok(recorded(
            str_attr(&d.attrs, "cluster")?,
            str_attr(&d.attrs, "principal")?,
            rs.outputs
                .get("arn")
                .map(String::as_str)
                .unwrap_or_default(),
        ))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let (Some(cluster), Some(principal)) = (rs.id("cluster"), rs.id("principal")) else {
            return Ok(());
        };
        match eks
            .delete_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Nothing to delete, also where access entries do not exist at all.
            Err(e) if is_not_found(&e) || unimplemented(&e) => Ok(()),
            Err(e) => Err(eks_error("delete access entry", e)),
        }
    }
}
