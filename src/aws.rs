//! AWS access: one shared SDK configuration (credentials, endpoint, retries), clients per
//! service and region, and a count of the API requests each service received.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// Requests sent per service (every attempt, retries included).
#[derive(Debug, Default)]
pub struct ApiCalls {
    counts: Mutex<BTreeMap<&'static str, Arc<AtomicU64>>>,
}

impl ApiCalls {
    fn counter(&self, service: &'static str) -> Arc<AtomicU64> {
        self.counts
            .lock()
            .expect("api call counters")
            .entry(service)
            .or_default()
            .clone()
    }

    /// A snapshot: service -> requests.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .expect("api call counters")
            .iter()
            .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
            .filter(|(_, v)| *v > 0)
            .collect()
    }
}

#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "vaultform::CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// How vaultform reaches AWS.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// An emulator's endpoint; `AWS_ENDPOINT_URL` wins over the topology's.
    pub endpoint: Option<String>,
    /// Attempts per request, throttling and transient errors included.
    pub max_attempts: u32,
}

impl AwsSettings {
    pub fn resolve(topology_endpoint: Option<&str>) -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty())
            .or_else(|| topology_endpoint.map(str::to_owned));
        AwsSettings {
            endpoint,
            max_attempts: 10,
        }
    }
}

/// Shared AWS configuration and clients.
#[derive(Debug, Clone)]
pub struct Aws {
    config: SdkConfig,
    endpoint: Option<String>,
    pub calls: Arc<ApiCalls>,
    account: Arc<tokio::sync::OnceCell<String>>,
}

impl Aws {
    pub async fn connect(settings: &AwsSettings) -> Self {
        // A provisioning tool outlives throttling: 10 attempts with exponential backoff and
        // jitter. Not the SDK's adaptive mode: its client-side rate limiter made one apply
        // through 20% injected throttling take 24.0 s instead of 2.7 s (docs/performance.md).
        let retry = RetryConfig::standard()
            .with_max_attempts(settings.max_attempts)
            .with_initial_backoff(std::time::Duration::from_millis(200))
            .with_max_backoff(std::time::Duration::from_secs(20));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry)
            .region(Region::new("us-east-1"));
        if let Some(ep) = &settings.endpoint {
            loader = loader.endpoint_url(ep);
        }
        Aws {
            config: loader.load().await,
            endpoint: settings.endpoint.clone(),
            calls: Arc::new(ApiCalls::default()),
            account: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The AWS account of the credentials (STS GetCallerIdentity, asked once).
    pub async fn account_id(&self) -> Result<String, String> {
        self.account
            .get_or_try_init(|| async {
                let conf = aws_sdk_sts::config::Builder::from(&self.config)
                    .interceptor(CountRequests(self.calls.counter("sts")))
                    .build();
                let out = aws_sdk_sts::Client::from_conf(conf)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| describe_error(&e).1)?;
                out.account()
                    .map(str::to_owned)
                    .ok_or_else(|| "STS returned no account".to_string())
            })
            .await
            .cloned()
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(CountRequests(self.calls.counter("kms")))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(CountRequests(self.calls.counter("ec2")))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        let conf = aws_sdk_eks::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(CountRequests(self.calls.counter("eks")))
            .build();
        aws_sdk_eks::Client::from_conf(conf)
    }

    pub fn elbv2(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        let conf = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(CountRequests(self.calls.counter("elasticloadbalancing")))
            .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(conf)
    }

    /// IAM is global; its endpoint is in us-east-1.
    pub fn iam(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.config)
            .region(Region::new("us-east-1"))
            .interceptor(CountRequests(self.calls.counter("iam")))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            // Emulators serve buckets by path, not by virtual host.
            .force_path_style(self.endpoint.is_some())
            .interceptor(CountRequests(self.calls.counter("s3")))
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// An AWS error's code and message, for classification and for people.
pub fn describe_error<E>(err: &E) -> (Option<String>, String)
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_owned);
    // The service's own code and message when it answered; the whole chain otherwise
    // (connection refused, timeouts, ...), which says what went wrong on the way.
    let text = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    };
    (code, text)
}
