//! AWS access: one shared SDK configuration (credentials, endpoint, retries), clients per
//! service and region, and a count and a debug log of the API requests each service received.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::SdkConfig;
use aws_types::region::Region;

use crate::lifecycle::TimeScale;

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

/// On every AWS client: counts each request sent and logs each attempt (service, operation,
/// region, HTTP status, duration, the error code of a failure). Never a body, a header or a
/// query string: credentials, signatures and KMS plaintexts travel there.
#[derive(Debug)]
struct ObserveCalls {
    service: &'static str,
    region: String,
    count: Arc<AtomicU64>,
}

/// When the current attempt was sent.
#[derive(Debug, Clone)]
struct Sent(Instant);

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

impl Intercept for ObserveCalls {
    fn name(&self) -> &'static str {
        "vaultform::ObserveCalls"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        cfg.interceptor_state().store_put(Sent(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // An attempt that failed before it was sent was not counted: no line either.
        let Some(Sent(sent)) = cfg.load::<Sent>().cloned() else {
            return Ok(());
        };
        cfg.interceptor_state().unset::<Sent>();
        let ms = sent.elapsed().as_millis() as u64;
        let operation = cfg.load::<Metadata>().map(Metadata::name).unwrap_or("?");
        let attempt = cfg.load::<RequestAttempts>().map(RequestAttempts::attempts);
        let status = context.response().map(|r| r.status().as_u16());
        let (service, region) = (self.service, self.region.as_str());
        match context.output_or_error() {
            Some(Err(err)) => {
                let error = if err.is_operation_error() {
                    // A 2xx that failed was an answer the SDK could not decode.
                    context.response().and_then(error_code).or_else(|| {
                        status
                            .is_some_and(|s| (200..300).contains(&s))
                            .then(|| "unreadable response".into())
                    })
                } else if err.is_timeout_error() {
                    Some("timeout".into())
                } else if err.is_connector_error() {
                    Some("connection".into())
                } else if err.is_response_error() {
                    Some("unreadable response".into())
                } else {
                    Some("other".into())
                };
                tracing::debug!(
                    service,
                    operation,
                    region,
                    status,
                    ms,
                    attempt,
                    error = error.as_deref(),
                    "aws call failed"
                );
            }
            _ => tracing::debug!(service, operation, region, status, ms, attempt, "aws call"),
        }
        Ok(())
    }
}

/// The AWS error code of a failed response, found where the SDK finds it: the
/// `x-amzn-ErrorType` header or the `__type` / `code` member (JSON protocols), or the first
/// `<Code>` (XML protocols). Only a plausible code is returned, nothing else of the answer.
fn error_code(response: &HttpResponse) -> Option<String> {
    let raw = match response.headers().get("x-amzn-errortype") {
        Some(header) => header.to_string(),
        None => {
            let body = std::str::from_utf8(response.body().bytes()?).ok()?;
            if body.trim_start().starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(body).ok()?;
                v.get("__type")
                    .or_else(|| v.get("code"))?
                    .as_str()?
                    .to_string()
            } else {
                let start = body.find("<Code>")? + "<Code>".len();
                let len = body[start..].find("</Code>")?;
                body[start..start + len].to_string()
            }
        }
    };
    // `com.amazonaws.kms#NotFoundException:http://internal.amazon.com/...`: the name alone.
    let code = raw.split(':').next()?.rsplit('#').next()?.trim();
    let plausible = !code.is_empty()
        && code.len() <= 128
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    plausible.then(|| code.to_string())
}

/// How vaultform reaches AWS.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// An emulator's endpoint; `AWS_ENDPOINT_URL` wins over the topology's.
    pub endpoint: Option<String>,
    /// Attempts per request, throttling and transient errors included.
    pub max_attempts: u32,
    /// Fixed credentials (access key ID, secret) instead of the standard chain: for tests
    /// against an emulator, which must not set process-wide variables.
    pub static_credentials: Option<(String, String)>,
    /// How fast the endpoint runs AWS's lifecycles (`VAULTFORM_AWS_TIME_SCALE`, read by
    /// `session::open`); the waits for EKS and load balancers are paced by it.
    pub time_scale: TimeScale,
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
            static_credentials: None,
            time_scale: TimeScale::REAL,
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
    time_scale: TimeScale,
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
        if let Some((id, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
                id, secret, None, None, "static",
            ));
        }
        Aws {
            config: loader.load().await,
            endpoint: settings.endpoint.clone(),
            calls: Arc::new(ApiCalls::default()),
            account: Arc::new(tokio::sync::OnceCell::new()),
            time_scale: settings.time_scale,
        }
    }

    /// The AWS account of the credentials (STS GetCallerIdentity, asked once).
    pub async fn account_id(&self) -> Result<String, String> {
        self.account
            .get_or_try_init(|| async {
                let conf = aws_sdk_sts::config::Builder::from(&self.config)
                    .interceptor(self.observe("sts", "us-east-1"))
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

    /// Checks, before any planning, that each region's endpoint answers and the credentials
    /// work (STS GetCallerIdentity, as Terraform's AWS provider does when it is configured):
    /// all regions at once, each request at most 10 s, throttling and server errors tried again
    /// a few times, an unreachable endpoint or bad credentials not at all.
    pub async fn check(&self, regions: &[String]) -> Result<(), crate::aws_error::AwsError> {
        let checks = regions
            .iter()
            .map(|region| async move { self.identity(region).await.map(drop) });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(drop)
    }

    /// The identity (ARN) these credentials act as through `region`'s endpoint, asked as
    /// [`Aws::check`] asks: each request at most 10 s, a dead endpoint or bad credentials
    /// not tried again.
    pub async fn identity(&self, region: &str) -> Result<String, crate::aws_error::AwsError> {
        let conf = aws_sdk_sts::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(std::time::Duration::from_millis(100)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(3))
                    .operation_timeout(std::time::Duration::from_secs(10))
                    .build(),
            )
            .interceptor(self.observe("sts", region))
            .build();
        let sts = aws_sdk_sts::Client::from_conf(conf);
        // Throttling and 5xx are tried again; a dead endpoint or bad credentials are not.
        let policy = crate::retry::Backoff::OPERATION.attempts(4);
        crate::retry::retry(policy, || async {
            sts.get_caller_identity()
                .send()
                .await
                .map(|out| out.arn().unwrap_or("an unnamed identity").to_string())
                .map_err(|e| {
                    crate::aws_error::AwsError::from_sdk(
                        "check the AWS endpoint and credentials",
                        e,
                    )
                    .at(self.endpoint(), region)
                })
        })
        .await
    }

    /// AWS's clock, from the `Date` header of an answer of `region`'s STS endpoint (any
    /// answer carries one), against this machine's at the middle of the request: how far this
    /// clock is ahead (positive) or behind, in seconds. SigV4 refuses requests signed more
    /// than 5 minutes off, and an EKS token is a signed request too.
    pub async fn clock_offset(&self, region: &str) -> Result<f64, String> {
        let url = match self.endpoint() {
            Some(ep) => ep.to_string(),
            None => format!("https://sts.{region}.amazonaws.com/"),
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let before = std::time::SystemTime::now();
        let answer = client.get(&url).send().await.map_err(|e| e.to_string())?;
        let after = std::time::SystemTime::now();
        let date = answer
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .ok_or_else(|| format!("{url} answered without a Date header"))?;
        let theirs = httpdate::parse_http_date(date).map_err(|e| format!("Date {date:?}: {e}"))?;
        let half = after.duration_since(before).unwrap_or_default() / 2;
        Ok(offset_seconds(before + half, theirs))
    }

    fn observe(&self, service: &'static str, region: &str) -> ObserveCalls {
        ObserveCalls {
            service,
            region: region.to_string(),
            count: self.calls.counter(service),
        }
    }

    /// How fast the endpoint runs AWS's lifecycles.
    pub fn time_scale(&self) -> TimeScale {
        self.time_scale
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The credentials the clients sign with, for what signs by itself (the EKS token).
    pub fn credentials_provider(
        &self,
    ) -> Option<aws_credential_types::provider::SharedCredentialsProvider> {
        self.config.credentials_provider()
    }

    pub fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(self.observe("kms", region))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        let conf = aws_sdk_ec2::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(self.observe("ec2", region))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    pub fn eks(&self, region: &str) -> aws_sdk_eks::Client {
        let conf = aws_sdk_eks::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(self.observe("eks", region))
            .build();
        aws_sdk_eks::Client::from_conf(conf)
    }

    pub fn elbv2(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        let conf = aws_sdk_elasticloadbalancingv2::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(self.observe("elasticloadbalancing", region))
            .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(conf)
    }

    /// IAM is global; its endpoint is in us-east-1.
    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        let conf = aws_sdk_autoscaling::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            .interceptor(self.observe("autoscaling", region))
            .build();
        aws_sdk_autoscaling::Client::from_conf(conf)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.config)
            .region(Region::new("us-east-1"))
            .interceptor(self.observe("iam", "us-east-1"))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.config)
            .region(Region::new(region.to_string()))
            // Emulators serve buckets by path, not by virtual host.
            .force_path_style(self.endpoint.is_some())
            .interceptor(self.observe("s3", region))
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

/// How far `ours` is ahead of `theirs` (negative: behind), in seconds. `theirs` has a whole
/// second's resolution (an HTTP date): half a second of the difference is its rounding.
pub fn offset_seconds(ours: std::time::SystemTime, theirs: std::time::SystemTime) -> f64 {
    match ours.duration_since(theirs) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    }
}
