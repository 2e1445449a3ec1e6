//! S3 buckets for unseal keys: in their region, versioned, SSE-KMS with the region's key and
//! bucket keys, public access blocked, non-TLS requests denied. Destroy empties every object
//! version and delete marker first, and refuses a bucket that holds objects unless the
//! topology says `force-destroy`.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde_json::{Map, Value, json};

use crate::address::{Address, RegionItem};
use crate::graph::{Builder, Kind, Resource};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::state::ResourceState;
use crate::topology::{Region, Topology};

pub struct S3Bucket;

/// The buckets of region number `ri`, each after the key that encrypts it.
pub fn graph<'t>(b: &mut Builder<'t>, ri: usize, r: &'t Region) {
    let rn = r.name.value.as_str();
    for (bi, bucket) in r.buckets.iter().enumerate() {
        let ix = b.g.add(
            Address::region(rn, RegionItem::Bucket(bucket.name.value.clone())),
            Kind::S3Bucket,
            Some(rn),
            bucket.name.span,
        );
        b.g.dag[ix].origin = Some((ri, bi));
        if let Some(k) = b.keys.get(&(rn, bucket.key.value.as_str())).copied() {
            b.g.edge(k, ix);
        }
        b.buckets.insert(bucket.name.value.as_str(), ix);
        b.depends.extend(bucket.depends_on.iter().map(|d| (ix, d)));
    }
}

pub fn desired(t: &Topology, r: &Resource) -> Option<(String, Map<String, Value>)> {
    let region_name = r.region.as_deref()?;
    let b = match (r.origin, r.address.region_item()) {
        (Some((ri, bi)), _) => t.regions.get(ri)?.buckets.get(bi)?,
        (None, Some((_, RegionItem::Bucket(name)))) => t
            .region(region_name)?
            .buckets
            .iter()
            .find(|b| &b.name.value == name)?,
        _ => return None,
    };
    let mut attrs = Map::new();
    attrs.insert("region".into(), json!(region_name));
    attrs.insert(
        "kms_key".into(),
        json!(Address::region(
            region_name,
            RegionItem::Key(b.key.value.clone())
        )),
    );
    attrs.insert("versioning".into(), json!(b.versioning));
    attrs.insert("force_destroy".into(), json!(b.force_destroy));
    attrs.insert("tls_only_policy".into(), json!(tls_only_applies(t)));
    attrs.insert("tags".into(), json!(t.aws.tags));
    Some((b.name.value.clone(), attrs))
}

/// Whether the deny-non-TLS bucket policy can apply: not on a plain-HTTP emulator endpoint,
/// where it would deny vaultform's own requests (moto evaluates bucket policies).
pub fn tls_only_applies(t: &Topology) -> bool {
    let endpoint =
        crate::aws::AwsSettings::resolve(t.aws.endpoint.as_ref().map(|e| e.value.as_str()))
            .endpoint;
    !endpoint.is_some_and(|e| e.starts_with("http://"))
}

fn bucket_name(rs: &ResourceState) -> Result<&str, OpError> {
    rs.id("name")
        .ok_or_else(|| OpError::fatal("no recorded bucket name"))
}

/// The HTTP status of a failed request, when it got that far.
fn status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// The body of a response the SDK could not decode.
///
/// moto 5.2 answers GetBucketTagging and GetBucketVersioning with an `<OperationResponse>` XML
/// root where S3 sends `<Tagging>` / `<VersioningConfiguration>`; the Rust SDK rejects that
/// root, so for those two calls vaultform reads the elements from the body itself.
fn undecoded_body<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<String> {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(se) if se.raw().status().is_success() => se
            .raw()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// The text of every `<tag>` element, in order, unescaped.
pub fn xml_texts(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(
            after[..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[end + close.len()..];
    }
    out
}

/// A bucket's tags (none when it has no tag set).
pub async fn bucket_tags(
    client: &aws_sdk_s3::Client,
    name: &str,
) -> Result<BTreeMap<String, String>, OpError> {
    match client.get_bucket_tagging().bucket(name).send().await {
        Ok(out) => Ok(out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()),
        Err(e)
            if aws_smithy_types::error::metadata::ProvideErrorMetadata::code(&e)
                == Some("NoSuchTagSet") =>
        {
            Ok(BTreeMap::new())
        }
        Err(e) => match undecoded_body(&e) {
            Some(body) => Ok(xml_texts(&body, "Key")
                .into_iter()
                .zip(xml_texts(&body, "Value"))
                .collect()),
            None => Err(OpError::from_sdk("read bucket tags", e)),
        },
    }
}

/// Whether versioning is enabled.
async fn versioning_enabled(client: &aws_sdk_s3::Client, name: &str) -> Result<bool, OpError> {
    match client.get_bucket_versioning().bucket(name).send().await {
        Ok(out) => Ok(out.status() == Some(&BucketVersioningStatus::Enabled)),
        Err(e) => match undecoded_body(&e) {
            Some(body) => {
                Ok(xml_texts(&body, "Status").first().map(String::as_str) == Some("Enabled"))
            }
            None => Err(OpError::from_sdk("read bucket versioning", e)),
        },
    }
}

/// Whether the bucket exists in this account: `Some(true)` yes, `None` no; an error when the
/// name is taken by someone else.
async fn exists(client: &aws_sdk_s3::Client, name: &str) -> Result<bool, OpError> {
    match client.head_bucket().bucket(name).send().await {
        Ok(_) => Ok(true),
        Err(e) if status(&e) == Some(404) => Ok(false),
        Err(e) if status(&e) == Some(403) => Err(OpError::fatal(format!(
            "bucket {name} exists in another AWS account; S3 bucket names are global, choose another"
        ))),
        Err(e) => Err(OpError::from_sdk("look up bucket", e)),
    }
}

/// Brings an existing bucket to the desired configuration.
async fn converge(
    cx: &Cx<'_>,
    client: &aws_sdk_s3::Client,
    d: &Desired,
) -> Result<Recorded, OpError> {
    let name = d.name.as_str();
    let tags: Vec<Tag> = cx
        .tags(d.address.as_str())
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| OpError::fatal(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .map_err(|e| OpError::fatal(e.to_string()))?;
    client
        .put_bucket_tagging()
        .bucket(name)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("tag bucket", e))?;
    let versioning = d
        .attrs
        .get("versioning")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let status = if versioning {
        BucketVersioningStatus::Enabled
    } else {
        BucketVersioningStatus::Suspended
    };
    client
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .map_err(|e| OpError::from_sdk("set bucket versioning", e))?;
    let key_arn = cx.output(str_attr(&d.attrs, "kms_key")?, "arn")?;
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(key_arn)
        .build()
        .map_err(|e| OpError::fatal(e.to_string()))?;
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .bucket_key_enabled(true)
                .build(),
        )
        .build()
        .map_err(|e| OpError::fatal(e.to_string()))?;
    client
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("set bucket encryption", e))?;
    client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| OpError::from_sdk("block public access", e))?;
    if d.attrs
        .get("tls_only_policy")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        client
            .put_bucket_policy()
            .bucket(name)
            .policy(tls_only_policy(name))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("set bucket policy", e))?;
    }
    let region = str_attr(&d.attrs, "region")?;
    let arn = format!("arn:aws:s3:::{name}");
    Ok(Recorded {
        ids: BTreeMap::from([
            ("name".into(), name.to_string()),
            ("region".into(), region.to_string()),
            ("arn".into(), arn.clone()),
        ]),
        outputs: BTreeMap::from([
            ("name".into(), name.to_string()),
            ("region".into(), region.to_string()),
            ("arn".into(), arn),
        ]),
    })
}

/// Denies every request that does not use TLS.
pub fn tls_only_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
    .to_string()
}

/// Every object version and delete marker, in batches of up to 1000 as DeleteObjects takes.
async fn empty(client: &aws_sdk_s3::Client, name: &str) -> Result<(), OpError> {
    loop {
        let out = client
            .list_object_versions()
            .bucket(name)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("list object versions", e))?;
        let mut ids = Vec::new();
        for v in out.versions() {
            if let Some(k) = v.key() {
                ids.push((k.to_string(), v.version_id().map(str::to_owned)));
            }
        }
        for m in out.delete_markers() {
            if let Some(k) = m.key() {
                ids.push((k.to_string(), m.version_id().map(str::to_owned)));
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        for chunk in ids.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|(k, v)| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .set_version_id(v.clone())
                        .build()
                        .map_err(|e| OpError::fatal(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| OpError::fatal(e.to_string()))?;
            client
                .delete_objects()
                .bucket(name)
                .delete(delete)
                .send()
                .await
                .map_err(|e| OpError::from_sdk("delete object versions", e))?;
        }
    }
}

async fn object_count_hint(client: &aws_sdk_s3::Client, name: &str) -> Result<usize, OpError> {
    let out = client
        .list_object_versions()
        .bucket(name)
        .max_keys(100)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("list object versions", e))?;
    Ok(out.versions().len() + out.delete_markers().len())
}

#[async_trait::async_trait]
impl Provider for S3Bucket {
    fn service(&self) -> &'static str {
        "s3"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["region"]
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let name = bucket_name(rs)?;
        let region = rs.region.as_deref().unwrap_or("us-east-1");
        let client = cx.aws.s3(region);
        if !exists(&client, name).await? {
            return Ok(Observed::Gone);
        }
        let mut attrs = rs.attributes.clone();
        attrs.insert(
            "versioning".into(),
            json!(versioning_enabled(&client, name).await?),
        );
        let enc = client.get_bucket_encryption().bucket(name).send().await;
        let key_arn = enc.ok().and_then(|o| {
            o.server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .and_then(|d| d.kms_master_key_id().map(str::to_owned))
        });
        let recorded_key = rs
            .attributes
            .get("kms_key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let recorded_arn = cx.outputs.get(recorded_key).and_then(|o| o.get("arn"));
        let observed_key = match (&key_arn, recorded_arn) {
            (Some(arn), Some(want)) if arn == want || want.ends_with(arn.as_str()) => {
                recorded_key.to_string()
            }
            (Some(arn), _) => arn.clone(),
            (None, _) => "none (no SSE-KMS)".to_string(),
        };
        attrs.insert("kms_key".into(), json!(observed_key));
        let mut tags = bucket_tags(&client, name).await?;
        // vaultform's own tags (ownership, expiry) are not the topology's.
        tags.retain(|k, _| !k.starts_with("vaultform:"));
        attrs.insert("tags".into(), json!(tags));
        let count = object_count_hint(&client, name).await?;
        let delete_blocker = (count > 0).then(|| {
            let at_least = if count >= 100 { "at least " } else { "" };
            format!("bucket {name} holds {at_least}{count} object version(s)")
        });
        Ok(Observed::Present {
            attrs,
            delete_blocker,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let region = str_attr(&d.attrs, "region")?;
        let client = cx.aws.s3(region);
        if exists(&client, &d.name).await? {
            let tags = bucket_tags(&client, &d.name).await?;
            // Untagged and named in our own intent record: the bucket an interrupted create left.
            if !(tags.is_empty() && d.resumed) {
                cx.check_owner(&format!("bucket {}", d.name), d.address.as_str(), &tags)?;
            }
            return converge(cx, &client, d).await;
        }
        let mut req = client.create_bucket().bucket(&d.name);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                // Created by us a moment ago (a retried request, or a run that was killed):
                // only adopt it if its tags say it is ours, or it has none yet.
                let tags = bucket_tags(&client, &d.name).await?;
                if !tags.is_empty() {
                    cx.check_owner(&format!("bucket {}", d.name), d.address.as_str(), &tags)?;
                }
            }
            Err(e) => return Err(OpError::from_sdk(&format!("create bucket {}", d.name), e)),
        }
        converge(cx, &client, d).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        let client = cx.aws.s3(str_attr(&d.attrs, "region")?);
        converge(cx, &client, d).await
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let name = bucket_name(rs)?;
        let client = cx.aws.s3(rs.region.as_deref().unwrap_or("us-east-1"));
        if !exists(&client, name).await? {
            return Ok(());
        }
        let force = rs
            .attributes
            .get("force_destroy")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !force && object_count_hint(&client, name).await? > 0 {
            return Err(OpError::fatal(format!(
                "bucket {name} holds objects and the topology does not say force-destroy"
            )));
        }
        empty(&client, name).await?;
        match client.delete_bucket().bucket(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(OpError::from_sdk(&format!("delete bucket {name}"), e)),
        }
    }
}
