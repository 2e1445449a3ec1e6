//! The IAM OIDC provider of an EKS cluster's issuer, so that IAM trusts the cluster's service
//! account tokens (IRSA): one per EKS cluster hosting Vault members, for the issuer EKS reports
//! (`identity.oidc.issuer`), audience `sts.amazonaws.com`, no thumbprint (IAM gets it itself).
//! One that exists for the same issuer is adopted when this stack owns it, refused otherwise.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::address::RegionItem;
use crate::aws_error::is_not_found;
use crate::graph::Resource;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::state::ResourceState;
use crate::topology::Topology;

/// The audience of the tokens the pods exchange with STS.
pub const AUDIENCE: &str = "sts.amazonaws.com";

pub struct OidcProvider;

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (_, RegionItem::OidcProvider(cluster)) = r.address.region_item()? else {
        return None;
    };
    t.cluster(cluster)?;
    let mut attrs = Map::new();
    attrs.insert("tags".into(), json!(t.aws.tags));
    attrs.insert("cluster".into(), json!(cluster));
    attrs.insert("client_ids".into(), json!([AUDIENCE]));
    Some((cluster.clone(), attrs))
}

/// The issuer without its scheme: how IAM names the provider (its ARN ends with it) and the
/// prefix of the condition keys of a trust policy (`<issuer>:sub`).
pub fn issuer_host(issuer: &str) -> &str {
    issuer.strip_prefix("https://").unwrap_or(issuer)
}

fn recorded(arn: &str, issuer: &str) -> Recorded {
    Recorded {
        ids: BTreeMap::from([("arn".into(), arn.to_string())]),
        outputs: BTreeMap::from([
            ("arn".into(), arn.to_string()),
            ("issuer".into(), issuer.to_string()),
        ]),
    }
}

/// The cluster's issuer URL, as EKS reports it.
async fn issuer(cx: &Cx<'_>, region: &str, cluster: &str) -> Result<String, OpError> {
    let out = cx
        .aws
        .eks(region)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("describe EKS cluster", e))?;
    out.cluster()
        .and_then(|c| c.identity())
        .and_then(|i| i.oidc())
        .and_then(|o| o.issuer())
        .map(str::to_owned)
        .ok_or_else(|| {
            OpError::fatal(format!(
                "EKS cluster {cluster} reports no OIDC issuer (identity.oidc.issuer)"
            ))
        })
}

/// The resource's tags as IAM takes them (not `iam_role`'s helper: that module imports this
/// one).
fn tags(cx: &Cx<'_>, address: &str) -> Result<Vec<aws_sdk_iam::types::Tag>, OpError> {
    cx.tags(address)
        .iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| OpError::fatal(e.to_string()))
        })
        .collect()
}

async fn tags_of(
    iam: &aws_sdk_iam::Client,
    arn: &str,
) -> Result<BTreeMap<String, String>, OpError> {
    let out = iam
        .list_open_id_connect_provider_tags()
        .open_id_connect_provider_arn(arn)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list OIDC provider tags", e))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

#[async_trait::async_trait]
impl Provider for OidcProvider {
    fn service(&self) -> &'static str {
        "iam"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["cluster"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let Some(arn) = rs.id("arn") else {
            return Ok(Observed::Gone);
        };
        match cx
            .aws
            .iam()
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(out) => {
                let mut attrs = rs.attributes.clone();
                attrs.insert("client_ids".into(), json!(out.client_id_list()));
                Ok(Observed::Present {
                    attrs,
                    delete_blocker: None,
                })
            }
            Err(e) if is_not_found(&e) => Ok(Observed::Gone),
            Err(e) => Err(OpError::from_sdk("read OIDC provider", e)),
        }
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let region = d
            .region
            .as_deref()
            .ok_or_else(|| OpError::fatal("an OIDC provider needs its cluster's region"))?;
        let cluster = str_attr(&d.attrs, "cluster")?;
        let issuer = issuer(cx, region, cluster).await?;
        let iam = cx.aws.iam();
        let suffix = format!(":oidc-provider/{}", issuer_host(&issuer));
        let listed = iam
            .list_open_id_connect_providers()
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list OIDC providers", e))?;
        let existing = listed
            .open_id_connect_provider_list()
            .iter()
            .filter_map(|p| p.arn())
            .find(|arn| arn.ends_with(&suffix))
            .map(str::to_owned);
        let arn = match existing {
            Some(arn) => {
                let what = format!("IAM OIDC provider for {issuer}");
                cx.check_owner(&what, d.address.as_str(), &tags_of(&iam, &arn).await?)?;
                let have = iam
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(&arn)
                    .send()
                    .await
                    .map_err(|e| OpError::from_sdk("read OIDC provider", e))?;
                if !have.client_id_list().iter().any(|c| c == AUDIENCE) {
                    iam.add_client_id_to_open_id_connect_provider()
                        .open_id_connect_provider_arn(&arn)
                        .client_id(AUDIENCE)
                        .send()
                        .await
                        .map_err(|e| OpError::from_sdk("add OIDC client id", e))?;
                }
                arn
            }
            None => iam
                .create_open_id_connect_provider()
                .url(&issuer)
                .client_id_list(AUDIENCE)
                .set_tags(Some(tags(cx, d.address.as_str())?))
                .send()
                .await
                .map_err(|e| OpError::from_sdk("create OIDC provider", e))?
                .open_id_connect_provider_arn()
                .ok_or_else(|| OpError::fatal("IAM returned no OIDC provider ARN"))?
                .to_string(),
        };
        Ok(recorded(&arn, &issuer))
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Some(arn) = rs.id("arn") else {
            return Ok(());
        };
        match cx
            .aws
            .iam()
            .delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(OpError::from_sdk("delete OIDC provider", e)),
        }
    }
}
