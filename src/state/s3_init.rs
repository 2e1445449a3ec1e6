//! Bootstrapping an S3 state: the bucket (versioning, SSE-KMS, public access blocked, TLS-only
//! policy) and the KMS key that encrypts the state, created when missing and brought to that
//! configuration when present. Idempotent.

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::StateError;
use super::s3::S3Location;
use crate::aws::Aws;
use crate::aws_error::AwsError;

/// What `init` did, step by step, for people to read.
#[derive(Debug, Default)]
pub struct InitReport {
    pub steps: Vec<String>,
}

fn fail<E>(
    loc: &S3Location,
    what: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> StateError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    StateError::Remote {
        location: format!("s3://{}/{}", loc.bucket, loc.key),
        message: AwsError::from_sdk(what, e).to_string(),
    }
}

/// The state's KMS key, created (with its alias) when the topology names an alias that does
/// not exist yet. Returns the key's ARN.
async fn ensure_key(
    aws: &Aws,
    loc: &S3Location,
    report: &mut InitReport,
) -> Result<String, StateError> {
    let kms = aws.kms(&loc.region);
    match kms.describe_key().key_id(&loc.kms_key).send().await {
        Ok(out) => {
            let arn = out
                .key_metadata()
                .and_then(|m| m.arn())
                .unwrap_or(&loc.kms_key)
                .to_string();
            report
                .steps
                .push(format!("KMS key {} exists ({arn})", loc.kms_key));
            Ok(arn)
        }
        Err(e) if e.code() == Some("NotFoundException") && loc.kms_key.starts_with("alias/") => {
            let key = kms
                .create_key()
                .description(format!("vaultform state of stack {}", loc.stack))
                .tags(
                    aws_sdk_kms::types::Tag::builder()
                        .tag_key("vaultform:purpose")
                        .tag_value("state")
                        .build()
                        .map_err(|e| StateError::Remote {
                            location: loc.kms_key.clone(),
                            message: e.to_string(),
                        })?,
                )
                .send()
                .await
                .map_err(|e| fail(loc, "create the state's KMS key", e))?;
            let meta = key.key_metadata();
            let id = meta.map(|m| m.key_id()).unwrap_or_default().to_string();
            let arn = meta.and_then(|m| m.arn()).unwrap_or(&id).to_string();
            kms.create_alias()
                .alias_name(&loc.kms_key)
                .target_key_id(&id)
                .send()
                .await
                .map_err(|e| fail(loc, "create the state key's alias", e))?;
            report
                .steps
                .push(format!("created KMS key {} ({arn})", loc.kms_key));
            Ok(arn)
        }
        Err(e) => Err(fail(loc, "look up the state's KMS key", e)),
    }
}

/// Creates or converges the state bucket and its key. `policy`: the deny-non-TLS bucket policy
/// to set (`None` on a plain-HTTP emulator, where it would deny vaultform's own requests).
pub async fn init(
    aws: &Aws,
    loc: &S3Location,
    policy: Option<String>,
) -> Result<InitReport, StateError> {
    let mut report = InitReport::default();
    let key_arn = ensure_key(aws, loc, &mut report).await?;
    let s3 = aws.s3(&loc.region);
    let b = loc.bucket.as_str();
    match s3.head_bucket().bucket(b).send().await {
        Ok(_) => report.steps.push(format!("bucket {b} exists")),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            let mut req = s3.create_bucket().bucket(b);
            if loc.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(loc.region.as_str()))
                        .build(),
                );
            }
            req.send()
                .await
                .map_err(|e| fail(loc, "create the state bucket", e))?;
            report
                .steps
                .push(format!("created bucket {b} in {}", loc.region));
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            return Err(StateError::Remote {
                location: format!("s3://{b}"),
                message: "the bucket exists in another account (S3 bucket names are global); choose another".into(),
            });
        }
        Err(e) => return Err(fail(loc, "look up the state bucket", e)),
    }
    s3.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail(loc, "enable versioning", e))?;
    report.steps.push("versioning enabled".into());
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(&key_arn)
        .build()
        .map_err(|e| StateError::Remote {
            location: format!("s3://{b}"),
            message: e.to_string(),
        })?;
    let sse = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .bucket_key_enabled(true)
                .build(),
        )
        .build()
        .map_err(|e| StateError::Remote {
            location: format!("s3://{b}"),
            message: e.to_string(),
        })?;
    s3.put_bucket_encryption()
        .bucket(b)
        .server_side_encryption_configuration(sse)
        .send()
        .await
        .map_err(|e| fail(loc, "set default encryption", e))?;
    report.steps.push("SSE-KMS with the state's key".into());
    s3.put_public_access_block()
        .bucket(b)
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
        .map_err(|e| fail(loc, "block public access", e))?;
    report.steps.push("public access blocked".into());
    if let Some(policy) = policy {
        s3.put_bucket_policy()
            .bucket(b)
            .policy(policy)
            .send()
            .await
            .map_err(|e| fail(loc, "set the TLS-only policy", e))?;
        report.steps.push("TLS-only bucket policy".into());
    } else {
        report.steps.push(
            "TLS-only bucket policy skipped: the endpoint is plain HTTP (an emulator)".into(),
        );
    }
    Ok(report)
}
