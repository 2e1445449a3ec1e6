//! The EBS volumes Kubernetes made for an EKS cluster's volume claims, deleted on destroy:
//! billable, and left behind by a cluster deleted before them. A create records nothing (the
//! EBS CSI driver makes the volumes); a delete finds them by the tags the driver puts on them,
//! deletes the available ones, waits for the attached ones to be released (polling with
//! backoff, up to a deadline) and names by ID whatever it could not remove.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, Volume, VolumeState};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Value, json};

use crate::address::RegionItem;
use crate::graph::Resource;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::retry::{Backoff, TryPollError, try_poll};
use crate::state::ResourceState;
use crate::topology::Topology;

/// How long a delete waits for attached volumes to be released.
const DEADLINE: Duration = Duration::from_secs(10 * 60);

/// The tag the driver puts on a volume made for a claim: the claim's namespace.
pub const PVC_NAMESPACE_TAG: &str = "kubernetes.io/created-for/pvc/namespace";
const PVC_NAME_TAG: &str = "kubernetes.io/created-for/pvc/name";

pub struct KubeVolumes;

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let (_, RegionItem::KubeVolumes(cluster)) = r.address.region_item()? else {
        return None;
    };
    t.cluster(cluster)?;
    let mut attrs = Map::new();
    attrs.insert("cluster".into(), json!(cluster));
    Some((cluster.clone(), attrs))
}

fn region(region: &Option<String>) -> Result<&str, OpError> {
    region
        .as_deref()
        .ok_or_else(|| OpError::fatal("volumes need their cluster's region"))
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The volumes made for claims on `cluster`: tagged `kubernetes.io/cluster/<c>=owned`, or
/// `ebs.csi.aws.com/cluster=true` with `KubernetesCluster=<c>`; both with the claim's
/// namespace tag.
pub async fn find(
    ec2: &aws_sdk_ec2::Client,
    cluster: &str,
) -> Result<BTreeMap<String, Volume>, OpError> {
    let claim = || filter("tag-key", PVC_NAMESPACE_TAG);
    let queries = [
        vec![
            filter(&format!("tag:kubernetes.io/cluster/{cluster}"), "owned"),
            claim(),
        ],
        vec![
            filter("tag:ebs.csi.aws.com/cluster", "true"),
            filter("tag:KubernetesCluster", cluster),
            claim(),
        ],
    ];
    let mut out = BTreeMap::new();
    for filters in queries {
        let mut token = None;
        loop {
            let page = ec2
                .describe_volumes()
                .set_filters(Some(filters.clone()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("describe volumes", e))?;
            for v in page.volumes() {
                if let Some(id) = v.volume_id() {
                    out.insert(id.to_string(), v.clone());
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// `vol-... (in-use, claim vault/data-vault-0-0)`.
fn describe(id: &str, v: &Volume) -> String {
    let tag = |k: &str| {
        v.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "{id} ({}, claim {}/{})",
        v.state().map(|s| s.as_str()).unwrap_or("unknown"),
        tag(PVC_NAMESPACE_TAG),
        tag(PVC_NAME_TAG)
    )
}

/// Deletes the available volumes; `Some` once none is left.
async fn sweep_once(ec2: &aws_sdk_ec2::Client, cluster: &str) -> Result<Option<()>, OpError> {
    let found = find(ec2, cluster).await?;
    let mut left = 0;
    for (id, v) in &found {
        match v.state() {
            Some(VolumeState::Available) => {
                match ec2.delete_volume().volume_id(id).send().await {
                    Ok(_) => {}
                    Err(e) if e.code() == Some("InvalidVolume.NotFound") => continue,
                    // Attached again between the read and the delete: wait for it.
                    Err(e) if e.code() == Some("VolumeInUse") => {}
                    Err(e) => return Err(OpError::from_sdk("delete volume", e)),
                }
                left += 1;
            }
            // In use (waiting for its detachment) or being deleted.
            _ => left += 1,
        }
    }
    Ok((left == 0).then_some(()))
}

#[async_trait::async_trait]
impl Provider for KubeVolumes {
    fn service(&self) -> &'static str {
        "ec2"
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        // Nothing of its own exists: it stands for the cluster's volumes until destroy.
        Ok(Observed::Present {
            attrs: rs.attributes.clone(),
            delete_blocker: None,
        })
    }

    async fn create(&self, _cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        Ok(Recorded {
            ids: BTreeMap::from([("cluster".into(), str_attr(&d.attrs, "cluster")?.to_string())]),
            outputs: BTreeMap::new(),
        })
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Some(cluster) = rs.id("cluster") else {
            return Ok(());
        };
        let ec2 = cx.aws.ec2(region(&rs.region)?);
        let what = format!("the EBS volumes of cluster {cluster} to be released and deleted");
        match try_poll(Backoff::AWS_WAIT.deadline(DEADLINE), &what, || {
            sweep_once(&ec2, cluster)
        })
        .await
        {
            Ok(()) => Ok(()),
            Err(TryPollError::Failed(e)) => Err(e),
            Err(TryPollError::GaveUp(_)) => {
                let left: Vec<String> = find(&ec2, cluster)
                    .await?
                    .iter()
                    .map(|(id, v)| describe(id, v))
                    .collect();
                Err(OpError::fatal(format!(
                    "{} EBS volume(s) of cluster {cluster} could not be removed within {}s: {}; detach them (or stop what uses them) and run destroy again",
                    left.len(),
                    DEADLINE.as_secs(),
                    left.join(", ")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{Tag, Volume, VolumeState};

    #[test]
    fn a_volume_left_is_named_with_its_state_and_claim() {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let v = Volume::builder()
            .state(VolumeState::InUse)
            .tags(tag(super::PVC_NAMESPACE_TAG, "vault"))
            .tags(tag(super::PVC_NAME_TAG, "data-vault-0-0"))
            .build();
        assert_eq!(
            super::describe("vol-1", &v),
            "vol-1 (in-use, claim vault/data-vault-0-0)"
        );
    }
}
