//! An EKS add-on of a cluster (`addon "aws-ebs-csi-driver"` in the topology): created with
//! the version EKS picks by default, waited for until `ACTIVE`, deleted on destroy (after
//! what needs it: the Vault pods' volume claims). The EBS CSI driver takes its AWS
//! permissions from the node role, which gets `AmazonEBSCSIDriverPolicy` when a cluster
//! declares it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_eks::types::AddonStatus;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use crate::address::RegionItem;
use crate::graph::Resource;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::retry::{Backoff, Jitter, TryPollError, try_poll};
use crate::state::ResourceState;
use crate::topology::Topology;

pub struct EksAddon;

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (_, RegionItem::Addon { cluster, name }) = r.address.region_item()? else {
        return None;
    };
    t.cluster(cluster)?;
    let mut attrs = Map::new();
    attrs.insert("cluster".into(), json!(cluster));
    attrs.insert("addon".into(), json!(name));
    attrs.insert("tags".into(), json!(t.aws.tags));
    Some((name.clone(), attrs))
}

/// An SDK error, said plainly when the endpoint has no add-on API at all.
fn eks_error<E>(what: &str, e: super::access_entry::SdkError<E>) -> OpError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    super::access_entry::missing_api_error(what, e, "add-ons", "`addon`")
}

fn client(cx: &Cx<'_>, region: Option<&str>) -> Result<aws_sdk_eks::Client, OpError> {
    Ok(cx
        .aws
        .eks(region.ok_or_else(|| OpError::fatal("an add-on needs its cluster's region"))?))
}

/// An add-on reaches `ACTIVE` in about a minute (its pods scheduled and ready).
const ADDON_WAIT: Backoff = Backoff::exponential(Duration::from_secs(2), Duration::from_secs(15))
    .jitter(Jitter::between(0.5, 1.0));
const ADDON_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The add-on's status, `None` when it does not exist.
async fn status(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    addon: &str,
) -> Result<Option<AddonStatus>, OpError> {
    match eks
        .describe_addon()
        .cluster_name(cluster)
        .addon_name(addon)
        .send()
        .await
    {
        Ok(out) => Ok(out.addon().and_then(|a| a.status().cloned())),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(eks_error("describe EKS add-on", e)),
    }
}

#[async_trait::async_trait]
impl Provider for EksAddon {
    fn service(&self) -> &'static str {
        "eks"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let cluster = str_attr(&rs.attributes, "cluster")?;
        let addon = str_attr(&rs.attributes, "addon")?;
        Ok(match status(&eks, cluster, addon).await? {
            None | Some(AddonStatus::Deleting) => Observed::Gone,
            Some(_) => Observed::Present {
                attrs: rs.attributes.clone(),
                delete_blocker: None,
            },
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let eks = client(cx, d.region.as_deref())?;
        let cluster = str_attr(&d.attrs, "cluster")?;
        let addon = str_attr(&d.attrs, "addon")?;
        if status(&eks, cluster, addon).await?.is_none() {
            eks.create_addon()
                .cluster_name(cluster)
                .addon_name(addon)
                .set_tags(Some(cx.tags(d.address.as_str()).into_iter().collect()))
                .send()
                .await
                .map_err(|e| eks_error("create EKS add-on", e))?;
        }
        let waited = try_poll(
            ADDON_WAIT.deadline(ADDON_TIMEOUT),
            &format!("add-on {addon} on {cluster} to be active"),
            || async {
                match status(&eks, cluster, addon).await? {
                    Some(AddonStatus::Active) => Ok(Some(())),
                    Some(s @ (AddonStatus::CreateFailed | AddonStatus::Degraded)) => {
                        Err(OpError::fatal(format!(
                            "add-on {addon} on {cluster} is {}; `DescribeAddon` lists its health issues",
                            s.as_str()
                        )))
                    }
                    _ => Ok(None),
                }
            },
        )
        .await;
        match waited {
            Ok(()) => Ok(Recorded {
                ids: BTreeMap::from([
                    ("cluster".to_string(), cluster.to_string()),
                    ("addon".to_string(), addon.to_string()),
                ]),
                outputs: BTreeMap::new(),
            }),
            Err(TryPollError::Failed(e)) => Err(e),
            Err(TryPollError::GaveUp(e)) => Err(OpError::retryable(e.to_string())),
        }
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let eks = client(cx, rs.region.as_deref())?;
        let cluster = str_attr(&rs.attributes, "cluster")?;
        let addon = str_attr(&rs.attributes, "addon")?;
        if status(&eks, cluster, addon).await?.is_none() {
            return Ok(());
        }
        match eks
            .delete_addon()
            .cluster_name(cluster)
            .addon_name(addon)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(()),
            Err(e) => return Err(eks_error("delete EKS add-on", e)),
        }
        try_poll(
            ADDON_WAIT.deadline(ADDON_TIMEOUT),
            &format!("add-on {addon} on {cluster} to be deleted"),
            || async {
                Ok::<_, OpError>(status(&eks, cluster, addon).await?.is_none().then_some(()))
            },
        )
        .await
        .map_err(|e| match e {
            TryPollError::Failed(e) => e,
            TryPollError::GaveUp(e) => OpError::retryable(e.to_string()),
        })
    }
}
