//! An AWS SDK error classified once: what kind of failure it is, whether another attempt can
//! help, and a message for people that keeps the service's code, message and request id.

use std::error::Error;
use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

/// The SDK's own throttling codes, less `LimitExceededException`: IAM, EKS and KMS use it for
/// quotas, which no wait lifts.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes of a service failing on its side, whatever the HTTP status says.
const SERVER: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "KMSInternalException",
    "DependencyTimeoutException",
];

/// Codes of a request the service timed out waiting for.
const TIMEOUT: &[&str] = &["RequestTimeout", "RequestTimeoutException"];

/// What kind of failure an AWS call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The service asked to slow down, beyond the SDK's own retries.
    Throttled,
    /// The service failed on its side (HTTP 5xx or an internal-error code).
    ServerError,
    /// The request or the connection timed out.
    Timeout,
    /// The endpoint could not be reached (connection refused, DNS): the SDK already retried.
    Unreachable,
    /// The service refused the request (HTTP 4xx or an error code).
    Client,
    /// Anything else: a request that could not be built, a response that could not be read.
    Unknown,
}

impl AwsErrorKind {
    /// Whether another attempt, after a wait, can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            AwsErrorKind::Throttled | AwsErrorKind::ServerError | AwsErrorKind::Timeout
        )
    }
}

/// A failed AWS call: its kind, what the service said, and the SDK's error as the source.
#[derive(Debug, thiserror::Error)]
pub struct AwsError {
    /// The operation, e.g. `create bucket bv-unseal`.
    pub what: String,
    pub kind: AwsErrorKind,
    /// The service's error code (`NoSuchBucket`, `ThrottlingException`, ...).
    pub code: Option<String>,
    /// The service's message, or what went wrong on the way there.
    pub message: Option<String>,
    pub request_id: Option<String>,
    /// The HTTP status of the response, when there was one.
    pub status: Option<u16>,
    /// Where the request went, for the message when it could not get there.
    endpoint: Option<String>,
    region: Option<String>,
    #[source]
    source: Box<dyn Error + Send + Sync>,
}

impl AwsError {
    /// Classifies the SDK's error from the call `what`.
    pub fn from_sdk<E>(what: impl Into<String>, err: SdkError<E, Response>) -> AwsError
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let kind = match &err {
            SdkError::TimeoutError(_) => AwsErrorKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_timeout() => AwsErrorKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_io() => AwsErrorKind::Unreachable,
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                by_response(code.as_deref(), status)
            }
            _ => AwsErrorKind::Unknown,
        };
        let message = match (&err, kind) {
            (SdkError::ServiceError(_), _) => err.message().map(str::to_owned),
            (_, AwsErrorKind::Timeout | AwsErrorKind::Unreachable) => innermost(&err),
            _ => causes(&err),
        };
        let request_id = err
            .meta()
            .request_id()
            .or_else(|| err.request_id())
            .map(str::to_owned);
        AwsError {
            what: what.into(),
            kind,
            code,
            message,
            request_id,
            status,
            endpoint: None,
            region: None,
            source: Box::new(err),
        }
    }

    /// Says where the request went: `endpoint` when one is configured, else the region's.
    pub fn at(mut self, endpoint: Option<&str>, region: &str) -> AwsError {
        self.endpoint = endpoint.map(str::to_owned);
        self.region = Some(region.to_owned());
        self
    }

    /// Whether another attempt, after a wait, can succeed.
    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

impl crate::retry::Retryable for AwsError {
    fn retryable(&self) -> bool {
        self.kind.retryable()
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.what)?;
        let head = match (self.kind, &self.code, self.status) {
            (AwsErrorKind::Unreachable, ..) => Some(match (&self.endpoint, &self.region) {
                (Some(endpoint), Some(region)) => {
                    format!("cannot reach the AWS endpoint {endpoint} (region {region})")
                }
                (Some(endpoint), None) => format!("cannot reach the AWS endpoint {endpoint}"),
                (None, Some(region)) => format!("cannot reach the AWS endpoint for {region}"),
                (None, None) => "cannot reach the AWS endpoint".to_string(),
            }),
            (_, Some(code), _) => Some(code.clone()),
            (AwsErrorKind::Timeout, None, _) => Some("timed out".to_string()),
            (_, None, Some(status)) => Some(format!("HTTP {status}")),
            (_, None, None) => None,
        };
        match (head, &self.message) {
            (Some(head), Some(message)) => write!(f, "{head}: {message}")?,
            (Some(head), None) => f.write_str(&head)?,
            (None, Some(message)) => f.write_str(message)?,
            (None, None) => f.write_str("failed")?,
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

fn by_response(code: Option<&str>, status: Option<u16>) -> AwsErrorKind {
    let is = |codes: &[&str]| code.is_some_and(|c| codes.contains(&c));
    if is(THROTTLING) || status == Some(429) {
        AwsErrorKind::Throttled
    } else if is(SERVER) || status.is_some_and(|s| (500..600).contains(&s)) {
        AwsErrorKind::ServerError
    } else if is(TIMEOUT) {
        AwsErrorKind::Timeout
    } else if code.is_some() || status.is_some_and(|s| (400..500).contains(&s)) {
        AwsErrorKind::Client
    } else {
        AwsErrorKind::Unknown
    }
}

/// The messages below the SDK's wrappers, whose own ("dispatch failure", "io error") say
/// nothing.
fn cause_chain(err: &(dyn Error + 'static)) -> Vec<String> {
    use aws_smithy_runtime_api::client::result::ConnectorError;
    std::iter::successors(err.source(), |&e| e.source())
        .filter(|e| !e.is::<ConnectorError>())
        .map(|e| e.to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The root cause's message, e.g. `Connection refused (os error 111)`.
fn innermost(err: &(dyn Error + 'static)) -> Option<String> {
    cause_chain(err).pop()
}

fn causes(err: &(dyn Error + 'static)) -> Option<String> {
    let chain = cause_chain(err);
    (!chain.is_empty()).then(|| chain.join(": "))
}

/// Whether an AWS answer says the resource does not exist, in the words of every service
/// vaultform calls (EC2's `<Thing>.NotFound`, EKS's and KMS's `ResourceNotFoundException` /
/// `NotFoundException`, IAM's `NoSuchEntity`, S3's `NoSuchBucket` / `NoSuchKey`): the one
/// reading of it for the SDK's errors.
pub fn is_not_found<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code().is_some_and(|c| {
        c.ends_with(".NotFound")
            || matches!(
                c,
                "ResourceNotFoundException"
                    | "NotFoundException"
                    | "NoSuchEntity"
                    | "NoSuchBucket"
                    | "NoSuchKey"
            )
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    type StsError = SdkError<GetCallerIdentityError, Response>;

    fn response(status: u16, request_id: Option<&str>) -> Response {
        let mut r = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        if let Some(id) = request_id {
            r.headers_mut().insert("x-amzn-requestid", id.to_string());
        }
        r
    }

    fn service(code: Option<&str>, message: Option<&str>, status: u16) -> StsError {
        let mut meta = ErrorMetadata::builder();
        if let Some(c) = code {
            meta = meta.code(c);
        }
        if let Some(m) = message {
            meta = meta.message(m);
        }
        SdkError::service_error(
            GetCallerIdentityError::generic(meta.build()),
            response(status, Some("req-1")),
        )
    }

    fn kind(err: StsError) -> AwsErrorKind {
        AwsError::from_sdk("call", err).kind
    }

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        use AwsErrorKind::*;
        assert_eq!(
            kind(service(Some("ThrottlingException"), None, 400)),
            Throttled
        );
        assert_eq!(kind(service(Some("SlowDown"), None, 503)), Throttled);
        assert_eq!(kind(service(None, None, 429)), Throttled);
        assert_eq!(
            kind(service(Some("KMSInternalException"), None, 400)),
            ServerError
        );
        assert_eq!(kind(service(None, None, 502)), ServerError);
        assert_eq!(kind(service(Some("RequestTimeout"), None, 400)), Timeout);
        assert_eq!(kind(service(Some("NotFoundException"), None, 400)), Client);
        assert_eq!(
            kind(service(Some("LimitExceededException"), None, 400)),
            Client
        );
        assert_eq!(kind(service(None, None, 403)), Client);
        assert_eq!(kind(service(None, None, 200)), Unknown);
    }

    #[test]
    fn only_throttling_server_errors_and_timeouts_are_retryable() {
        use AwsErrorKind::*;
        for (k, retryable) in [
            (Throttled, true),
            (ServerError, true),
            (Timeout, true),
            (Unreachable, false),
            (Client, false),
            (Unknown, false),
        ] {
            assert_eq!(k.retryable(), retryable, "{k:?}");
        }
    }

    #[test]
    fn a_service_error_keeps_code_message_status_and_request_id() {
        let e = AwsError::from_sdk(
            "describe key k",
            service(
                Some("NotFoundException"),
                Some("Key 'k' does not exist"),
                400,
            ),
        );
        assert_eq!(e.code.as_deref(), Some("NotFoundException"));
        assert_eq!(e.status, Some(400));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            e.to_string(),
            "describe key k: NotFoundException: Key 'k' does not exist (request id req-1)"
        );
        assert!(e.source().unwrap().is::<StsError>());
    }

    #[test]
    fn a_service_error_without_a_code_says_its_status() {
        let e = AwsError::from_sdk("call", service(None, None, 503));
        assert_eq!(e.to_string(), "call: HTTP 503 (request id req-1)");
    }

    #[test]
    fn connection_failures_are_unreachable_and_say_where() {
        let refused = || {
            let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
            StsError::dispatch_failure(ConnectorError::io(io.into()))
        };
        let e = AwsError::from_sdk("get caller identity", refused());
        assert_eq!(e.kind, AwsErrorKind::Unreachable);
        assert!(!e.retryable());
        assert_eq!(
            e.to_string(),
            "get caller identity: cannot reach the AWS endpoint: connection refused"
        );
        let e = AwsError::from_sdk("x", refused()).at(Some("http://127.0.0.1:1"), "eu-west-1");
        assert_eq!(
            e.to_string(),
            "x: cannot reach the AWS endpoint http://127.0.0.1:1 (region eu-west-1): connection refused"
        );
        let e = AwsError::from_sdk("x", refused()).at(None, "eu-west-1");
        assert_eq!(
            e.to_string(),
            "x: cannot reach the AWS endpoint for eu-west-1: connection refused"
        );
    }

    #[test]
    fn timeouts_are_retryable() {
        let e = AwsError::from_sdk(
            "x",
            StsError::timeout_error("operation timeout occurred after 2s"),
        );
        assert_eq!(e.kind, AwsErrorKind::Timeout);
        assert!(e.retryable());
        assert_eq!(
            e.to_string(),
            "x: timed out: operation timeout occurred after 2s"
        );
        let e = AwsError::from_sdk(
            "x",
            StsError::dispatch_failure(ConnectorError::timeout("connect timeout".into())),
        );
        assert_eq!(e.kind, AwsErrorKind::Timeout);
    }

    #[test]
    fn other_failures_are_unknown_and_not_retried() {
        let e = AwsError::from_sdk("x", StsError::construction_failure("no region"));
        assert_eq!(e.kind, AwsErrorKind::Unknown);
        assert!(!e.retryable());
        assert_eq!(e.to_string(), "x: no region");
    }
}
