//! Looks at what exists in the emulator through the real AWS API, as a user would.

use std::collections::BTreeMap;

use aws_config::BehaviorVersion;
use aws_sdk_kms::types::KeyState;

pub struct Api {
    config: aws_types::SdkConfig,
    endpoint: String,
}

impl Api {
    pub async fn new(endpoint: &str) -> Api {
        let creds = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests");
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .credentials_provider(creds)
            .region(aws_types::region::Region::new("us-east-1"))
            .load()
            .await;
        Api {
            config,
            endpoint: endpoint.to_string(),
        }
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        let conf = aws_sdk_eks::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        aws_sdk_eks::Client::from_conf(conf)
    }

    pub fn elbv2(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        let conf = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(conf)
    }

    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        let conf = aws_sdk_autoscaling::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        aws_sdk_autoscaling::Client::from_conf(conf)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config)
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.config)
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// The raw body of a GET on a bucket sub-resource, straight from the emulator (moto's XML
    /// roots for tagging and versioning are not the ones the SDK decodes; see
    /// `resources::s3_bucket`).
    async fn bucket_get(&self, name: &str, query: &str) -> String {
        let url = format!("{}/{name}?{query}", self.endpoint);
        reqwest::get(&url)
            .await
            .expect("GET bucket")
            .text()
            .await
            .expect("body")
    }

    pub async fn bucket_tags(&self, _region: &str, name: &str) -> BTreeMap<String, String> {
        let body = self.bucket_get(name, "tagging").await;
        let texts = vaultform::resources::s3_bucket::xml_texts;
        texts(&body, "Key")
            .into_iter()
            .zip(texts(&body, "Value"))
            .collect()
    }

    pub async fn versioning(&self, _region: &str, name: &str) -> String {
        let body = self.bucket_get(name, "versioning").await;
        vaultform::resources::s3_bucket::xml_texts(&body, "Status")
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Bucket names tagged with `vaultform:stack = stack` (S3 lists buckets of every region).
    pub async fn stack_buckets(&self, stack: &str) -> Vec<String> {
        let s3 = self.s3("us-east-1");
        let mut out = Vec::new();
        let list = s3.list_buckets().send().await.expect("list buckets");
        for b in list.buckets() {
            let Some(name) = b.name() else { continue };
            if self
                .bucket_tags("us-east-1", name)
                .await
                .get("vaultform:stack")
                .map(String::as_str)
                == Some(stack)
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        out
    }

    /// Keys tagged with the stack in `region`, by state (`Enabled`, `PendingDeletion`, ...).
    pub async fn stack_keys(&self, region: &str, stack: &str) -> BTreeMap<String, Vec<String>> {
        let kms = self.kms(region);
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let keys = kms.list_keys().send().await.expect("list keys");
        for k in keys.keys() {
            let Some(id) = k.key_id() else { continue };
            let tags = kms
                .list_resource_tags()
                .key_id(id)
                .send()
                .await
                .expect("tags");
            if !tags
                .tags()
                .iter()
                .any(|t| t.tag_key() == "vaultform:stack" && t.tag_value() == stack)
            {
                continue;
            }
            let meta = kms
                .describe_key()
                .key_id(id)
                .send()
                .await
                .expect("describe");
            let state = meta
                .key_metadata()
                .and_then(|m| m.key_state())
                .cloned()
                .unwrap_or(KeyState::Unavailable);
            out.entry(state.as_str().to_string())
                .or_default()
                .push(id.to_string());
        }
        out
    }
}
