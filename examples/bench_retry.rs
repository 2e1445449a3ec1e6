//! Benchmark: the AWS SDK's retry modes through injected faults. Makes what an apply of one
//! KMS key and one bucket makes (a key with tags, rotation and an alias; a bucket with
//! versioning, SSE-KMS under that key, a public access block and tags) against ENDPOINT
//! (`scripts/faultproxy` in front of moto), with the SDK's `standard` or `adaptive` retry mode,
//! both at vaultform's settings (10 attempts, 200 ms - 20 s exponential backoff with jitter),
//! and prints the wall time. `scripts/bench-retry` runs it through 20% faults over several
//! seeds.
//!
//!     cargo run --release --example bench_retry -- ENDPOINT standard|adaptive NAME

use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_kms::types::Tag as KmsTag;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};

const REGION: &str = "eu-west-1";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = args.first().expect("ENDPOINT").clone();
    let mode = args.get(1).map_or("standard", String::as_str);
    let name = args.get(2).map_or("bench-retry", String::as_str);
    let retry = match mode {
        "standard" => RetryConfig::standard(),
        "adaptive" => RetryConfig::adaptive(),
        other => panic!("unknown retry mode {other}: standard or adaptive"),
    }
    .with_max_attempts(10)
    .with_initial_backoff(Duration::from_millis(200))
    .with_max_backoff(Duration::from_secs(20));
    let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "bench");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .credentials_provider(creds)
        .region(aws_types::region::Region::new(REGION))
        .retry_config(retry)
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );

    let started = Instant::now();
    let key = kms
        .create_key()
        .description(format!("{name} unseal"))
        .tags(
            KmsTag::builder()
                .tag_key("vaultform:stack")
                .tag_value(name)
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("create key");
    let key_id = key
        .key_metadata()
        .map(|m| m.key_id().to_string())
        .expect("a key ID");
    kms.enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("enable rotation");
    kms.create_alias()
        .alias_name(format!("alias/{name}"))
        .target_key_id(&key_id)
        .send()
        .await
        .expect("create alias");
    kms.describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("describe key");

    s3.create_bucket()
        .bucket(name)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(&key_id)
        .build()
        .expect("encryption");
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(by_default)
                        .build(),
                )
                .build()
                .expect("encryption configuration"),
        )
        .send()
        .await
        .expect("encryption");
    s3.put_public_access_block()
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
        .expect("public access block");
    s3.put_bucket_tagging()
        .bucket(name)
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("vaultform:stack")
                        .value(name)
                        .build()
                        .expect("tag"),
                )
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("tagging");
    let out = format!("{mode}: {:.2} s\n", started.elapsed().as_secs_f64());
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
