//! AWS SDK errors classified from real failures: a closed port, a server that never answers,
//! and a moto server refusing requests.

use std::cell::Cell;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use vaultform::aws_error::{AwsError, AwsErrorKind};
use vaultform::retry::{Backoff, retry};

use crate::support::aws::Api;
use crate::support::testbed::Moto;

/// An STS client for `endpoint` that tries once and gives up on an attempt after 500 ms.
async fn sts(endpoint: &str) -> aws_sdk_sts::Client {
    let creds = aws_sdk_sts::config::Credentials::new("test", "test", None, None, "tests");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .region(aws_types::region::Region::new("us-east-1"))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

async fn caller_identity(client: &aws_sdk_sts::Client, endpoint: &str) -> Result<(), AwsError> {
    client
        .get_caller_identity()
        .send()
        .await
        .map(drop)
        .map_err(|e| AwsError::from_sdk("get caller identity", e).at(Some(endpoint), "us-east-1"))
}

fn assert_no_sdk_internals(text: &str) {
    for internal in [
        "DispatchFailure",
        "ConnectorError",
        "hyper",
        "dispatch failure",
        "Some(",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text:?}");
    }
}

// Regression: with AWS_ENDPOINT_URL at a closed port, an apply retried connection-refused
// for 268 s because every SDK error without a code counted as retryable.
#[tokio::test]
async fn a_closed_port_is_unreachable_said_plainly_and_not_retried() {
    let endpoint = "http://127.0.0.1:1";
    let client = &sts(endpoint).await;
    let calls = &Cell::new(0);
    let started = std::time::Instant::now();
    let e = retry(Backoff::OPERATION.attempts(10), move || {
        calls.set(calls.get() + 1);
        caller_identity(client, endpoint)
    })
    .await
    .unwrap_err();
    assert_eq!(calls.get(), 1);
    // No backoff slept: generous for a loaded machine, far below the 268 s of the regression.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(e.kind, AwsErrorKind::Unreachable);
    assert!(!e.retryable());
    assert_eq!((e.code.as_deref(), e.status), (None, None));
    let text = e.to_string();
    assert!(
        text.starts_with("get caller identity: cannot reach the AWS endpoint http://127.0.0.1:1 (region us-east-1): "),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert_no_sdk_internals(&text);
    // The SDK's error stays reachable as the source, for logs.
    assert!(std::error::Error::source(&e).is_some());
}

// `.invalid` never resolves (RFC 6761), with or without a network.
#[tokio::test]
async fn an_unknown_host_is_unreachable() {
    let endpoint = "http://vaultform-test.invalid";
    let e = caller_identity(&sts(endpoint).await, endpoint)
        .await
        .unwrap_err();
    assert_eq!(e.kind, AwsErrorKind::Unreachable, "{e}");
    assert!(!e.retryable());
    let text = e.to_string();
    assert!(
        text.starts_with(
            "get caller identity: cannot reach the AWS endpoint http://vaultform-test.invalid (region us-east-1): "
        ),
        "{text}"
    );
    assert_no_sdk_internals(&text);
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_retryable_timeout() {
    // Connections are queued by the kernel and never accepted, so no response ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let e = caller_identity(&sts(&endpoint).await, &endpoint)
        .await
        .unwrap_err();
    assert_eq!(e.kind, AwsErrorKind::Timeout, "{e}");
    assert!(e.retryable());
    let text = e.to_string();
    assert!(text.starts_with("get caller identity: timed out"), "{text}");
    assert_no_sdk_internals(&text);
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_the_service_is_a_client_error_with_its_code() {
    let moto = Moto::start();
    let api = Api::new(&moto.endpoint()).await;

    let err = api
        .kms("eu-west-1")
        .describe_key()
        .key_id("alias/vaultform-missing")
        .send()
        .await
        .unwrap_err();
    let e = AwsError::from_sdk("describe key alias/vaultform-missing", err);
    assert_eq!(e.kind, AwsErrorKind::Client, "{e}");
    assert!(!e.retryable());
    assert_eq!(e.code.as_deref(), Some("NotFoundException"));
    assert_eq!(e.status, Some(400));
    assert!(e.request_id.is_some());
    let text = e.to_string();
    assert!(
        text.starts_with("describe key alias/vaultform-missing: NotFoundException: "),
        "{text}"
    );
    assert!(text.contains("alias/vaultform-missing"), "{text}");
    assert_no_sdk_internals(&text);

    let err = api
        .s3("us-east-1")
        .get_object()
        .bucket("vaultform-missing")
        .key("k")
        .send()
        .await
        .unwrap_err();
    let e = AwsError::from_sdk("read s3://vaultform-missing/k", err);
    assert_eq!(e.kind, AwsErrorKind::Client, "{e}");
    assert!(!e.retryable());
    assert_eq!(e.code.as_deref(), Some("NoSuchBucket"));
    assert_eq!(e.status, Some(404));
    assert!(e.request_id.is_some());
    assert_no_sdk_internals(&e.to_string());
}
