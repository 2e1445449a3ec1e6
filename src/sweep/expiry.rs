//! Stacks that expire: the tags that say when (`vaultform:expires-at`) and where the state
//! lives (`vaultform:state`), stamped on every resource of a stack, and the stacks past their
//! expiry found by those tags alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Found, Thing};
use crate::aws::Aws;
use crate::provider::{OpError, TAG_EXPIRES_AT, TAG_STACK, TAG_STATE};

/// `now + after` as RFC 3339, to the second.
pub fn expires_at(after: Duration) -> String {
    let at = OffsetDateTime::now_utc() + after;
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The expiry tags of a stack whose state is at `location` (`local:<path>`, `s3://...`).
pub fn tags(expires_at: &str, location: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_EXPIRES_AT.to_string(), expires_at.to_string()),
        (TAG_STATE.to_string(), location.to_string()),
    ])
}

/// The local state file a `vaultform:state` tag names.
pub fn state_path(tag: &str) -> Option<&Path> {
    tag.strip_prefix("local:").map(Path::new)
}

/// Adds `tags` to every resource in `found` (a KMS key pending deletion and a process aside);
/// returns what could not be tagged.
pub async fn stamp(aws: &Aws, found: &[Found], tags: &BTreeMap<String, String>) -> Vec<String> {
    let mut failures = Vec::new();
    // EC2 takes many resources per call: one per region.
    let mut ec2: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in found.iter().filter(|f| f.pending_deletion.is_none()) {
        let region = f.region.as_deref().unwrap_or("us-east-1");
        let result = match f.thing {
            Thing::Vpc
            | Thing::Subnet
            | Thing::InternetGateway
            | Thing::RouteTable
            | Thing::SecurityGroup
            | Thing::NetworkInterface
            | Thing::EbsVolume => {
                ec2.entry(region).or_default().push(f.id.clone());
                Ok(())
            }
            Thing::EksCluster | Thing::EksNodeGroup => {
                let arn = f.ids.get("arn").cloned().unwrap_or_default();
                aws.eks(region)
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| OpError::from_sdk("tag EKS resource", e))
            }
            Thing::LoadBalancer | Thing::TargetGroup | Thing::Listener => aws
                .elbv2(region)
                .add_tags()
                .resource_arns(&f.id)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| {
                            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                                .key(k)
                                .value(v)
                                .build()
                        })
                        .collect(),
                ))
                .send()
                .await
                .map(drop)
                .map_err(|e| OpError::from_sdk("tag load balancer", e)),
            Thing::KmsKey => match crate::resources::kms_key::kms_tags(tags) {
                Ok(t) => aws
                    .kms(region)
                    .tag_resource()
                    .key_id(&f.id)
                    .set_tags(Some(t))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| OpError::from_sdk("tag KMS key", e)),
                Err(e) => Err(e),
            },
            Thing::S3Bucket => {
                // S3 replaces the whole set: the bucket's tags with ours over them.
                let mut all = f.tags.clone();
                all.extend(tags.clone());
                let set: Result<Vec<_>, _> = all
                    .iter()
                    .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(k).value(v).build())
                    .collect();
                let tagging = set.and_then(|s| {
                    aws_sdk_s3::types::Tagging::builder()
                        .set_tag_set(Some(s))
                        .build()
                });
                match tagging {
                    Ok(t) => aws
                        .s3(region)
                        .put_bucket_tagging()
                        .bucket(&f.id)
                        .tagging(t)
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| OpError::from_sdk("tag bucket", e)),
                    Err(e) => Err(OpError::fatal(e.to_string())),
                }
            }
            Thing::IamRole => match crate::resources::iam_role::iam_tags(tags) {
                Ok(t) => aws
                    .iam()
                    .tag_role()
                    .role_name(&f.id)
                    .set_tags(Some(t))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| OpError::from_sdk("tag IAM role", e)),
                Err(e) => Err(e),
            },
            Thing::OidcProvider => match crate::resources::iam_role::iam_tags(tags) {
                Ok(t) => aws
                    .iam()
                    .tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(&f.id)
                    .set_tags(Some(t))
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| OpError::from_sdk("tag OIDC provider", e)),
                Err(e) => Err(e),
            },
            Thing::VaultMember | Thing::LocalProxy => Ok(()),
        };
        if let Err(e) = result {
            failures.push(format!("{} {}: {}", f.thing.as_str(), f.id, e.message));
        }
    }
    for (region, ids) in ec2 {
        for chunk in ids.chunks(500) {
            let result = aws
                .ec2(region)
                .create_tags()
                .set_resources(Some(chunk.to_vec()))
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
                        .collect(),
                ))
                .send()
                .await;
            if let Err(e) = result {
                failures.push(format!(
                    "EC2 resources in {region}: {}",
                    OpError::from_sdk("tag EC2 resources", e).message
                ));
            }
        }
    }
    failures
}

/// A stack whose resources carry an expiry.
#[derive(Debug, Clone, Serialize)]
pub struct Expiring {
    pub stack: String,
    /// The earliest `vaultform:expires-at` among its resources.
    pub expires_at: String,
    pub expired: bool,
    /// Its `vaultform:state` tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Its resources found (pending KMS keys aside).
    pub resources: usize,
    pub regions: Vec<String>,
}

/// The stacks in `found` (an inventory of every stack) that carry an expiry, by name.
pub fn stacks(found: &[Found], now: OffsetDateTime) -> Vec<Expiring> {
    let mut by_stack: BTreeMap<&str, Vec<&Found>> = BTreeMap::new();
    for f in found.iter().filter(|f| f.pending_deletion.is_none()) {
        if let Some(s) = f.tags.get(TAG_STACK) {
            by_stack.entry(s).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for (stack, items) in by_stack {
        let earliest = items
            .iter()
            .filter_map(|f| f.tags.get(TAG_EXPIRES_AT))
            .filter_map(|t| Some((OffsetDateTime::parse(t, &Rfc3339).ok()?, t)))
            .min();
        let Some((at, text)) = earliest else { continue };
        let state = items.iter().find_map(|f| f.tags.get(TAG_STATE)).cloned();
        let mut regions: Vec<String> = items.iter().filter_map(|f| f.region.clone()).collect();
        regions.sort();
        regions.dedup();
        out.push(Expiring {
            stack: stack.to_string(),
            expires_at: text.clone(),
            expired: at <= now,
            state,
            resources: items.len(),
            regions,
        });
    }
    out
}
