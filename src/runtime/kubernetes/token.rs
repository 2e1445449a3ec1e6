//! The bearer token EKS accepts for its Kubernetes API, made without the aws CLI: a
//! SigV4-presigned STS `GetCallerIdentity` URL with the cluster's name in a signed header,
//! base64url-encoded behind `k8s-aws-v1.`, and renewed before it expires.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::vault::Secret;

/// What every EKS token starts with.
pub const PREFIX: &str = "k8s-aws-v1.";
/// The signed header that names the cluster, so a token for one cluster is refused by another.
pub const CLUSTER_HEADER: &str = "x-k8s-aws-id";
/// The presigned URL's own expiry (`X-Amz-Expires`), as `aws eks get-token` signs it.
pub const URL_EXPIRES: Duration = Duration::from_secs(60);
/// How long EKS accepts a token after it was signed.
pub const LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The expiry a token is given to its users: a minute short of [`LIFETIME`], for clock skew
/// (what `aws eks get-token` reports).
pub const REPORTED: Duration = Duration::from_secs(14 * 60);
/// A cached token is renewed when less than this is left before its reported expiry.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// Why no token could be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TokenError {
    #[error("no AWS credentials are configured to sign an EKS token")]
    #[diagnostic(
        code(vaultform::eks::token),
        help(
            "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as for the other commands"
        )
    )]
    NoCredentials,
    #[error("cannot load AWS credentials to sign an EKS token: {0}")]
    #[diagnostic(
        code(vaultform::eks::token),
        help("check AWS_PROFILE or the credentials in the environment")
    )]
    Credentials(String),
    #[error("cannot sign an EKS token: {0}")]
    #[diagnostic(code(vaultform::eks::token))]
    Sign(String),
}

/// A token and when it stops being used.
#[derive(Debug, Clone)]
pub struct EksToken {
    value: Secret,
    /// Signed-at plus [`REPORTED`].
    pub expires_at: SystemTime,
}

impl EksToken {
    /// The bearer token, for the one header that carries it.
    pub fn expose(&self) -> &str {
        self.value.expose()
    }

    /// Whether it may still be sent at `now` without renewing.
    pub fn fresh_at(&self, now: SystemTime) -> bool {
        now + RENEW_BEFORE < self.expires_at
    }
}

/// The region's own STS endpoint, the one EKS accepts in a token (also with an emulator for
/// AWS: the token is only signed here, and read by whoever serves the Kubernetes API).
pub fn sts_url(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn/")
    } else {
        format!("https://sts.{region}.amazonaws.com/")
    }
}

/// The presigned `GetCallerIdentity` URL for `cluster`, signed at `now` for `region`.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    sts_url: &str,
    now: SystemTime,
) -> Result<String, TokenError> {
    let url = format!("{sts_url}?Action=GetCallerIdentity&Version=2011-06-15");
    let failed = |e: &dyn std::fmt::Display| TokenError::Sign(e.to_string());
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        [(CLUSTER_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| failed(&e))?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let mut signed = http::Request::get(url.as_str())
        .body(())
        .map_err(|e| failed(&e))?;
    instructions.apply_to_request_http1x(&mut signed);
    Ok(signed.uri().to_string())
}

/// The token for a presigned URL.
pub fn encode(url: &str) -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
}

/// The presigned URL inside a token, if it is one.
pub fn decode(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
    String::from_utf8(bytes).ok()
}

/// Makes EKS tokens for one cluster from the session's credentials, and keeps the last one
/// until it is about to expire.
#[derive(Debug)]
pub struct EksTokens {
    credentials: SharedCredentialsProvider,
    region: String,
    cluster: String,
    sts_url: String,
    cached: tokio::sync::Mutex<Option<EksToken>>,
}

impl EksTokens {
    /// Tokens for `cluster` in `region`, signed with `aws`'s credentials.
    pub fn new(aws: &crate::aws::Aws, region: &str, cluster: &str) -> Result<Self, TokenError> {
        let credentials = aws
            .credentials_provider()
            .ok_or(TokenError::NoCredentials)?;
        Ok(EksTokens {
            credentials,
            region: region.to_string(),
            cluster: cluster.to_string(),
            sts_url: sts_url(region),
            cached: tokio::sync::Mutex::new(None),
        })
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// A token valid for at least [`RENEW_BEFORE`] more: the cached one, or a new one.
    pub async fn get(&self) -> Result<EksToken, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(token) = cached.as_ref().filter(|t| t.fresh_at(now)) {
            return Ok(token.clone());
        }
        let token = self.make(now).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn make(&self, now: SystemTime) -> Result<EksToken, TokenError> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| {
            TokenError::Credentials(
                aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            )
        })?;
        let url = presign(
            &credentials,
            &self.region,
            &self.cluster,
            &self.sts_url,
            now,
        )?;
        // Temporary credentials may end before the token would.
        let expires_at = match credentials.expiry() {
            Some(end) => end.min(now + REPORTED),
            None => now + REPORTED,
        };
        Ok(EksToken {
            value: Secret::new(encode(&url)),
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_urls_per_partition() {
        assert_eq!(sts_url("eu-west-1"), "https://sts.eu-west-1.amazonaws.com/");
        assert_eq!(
            sts_url("cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
    }

    #[test]
    fn tokens_round_trip_and_refuse_others() {
        let url = "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&a=b~c";
        let token = encode(url);
        assert!(token.starts_with("k8s-aws-v1."));
        assert!(!token.contains('='), "no padding");
        assert_eq!(decode(&token).as_deref(), Some(url));
        assert_eq!(decode("k8s-aws-v2.aGVsbG8"), None);
    }

    #[test]
    fn a_token_is_renewed_a_minute_before_its_reported_expiry() {
        let signed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = EksToken {
            value: Secret::new("t".into()),
            expires_at: signed + REPORTED,
        };
        assert!(token.fresh_at(signed));
        assert!(token.fresh_at(signed + Duration::from_secs(12 * 60 + 59)));
        assert!(!token.fresh_at(signed + Duration::from_secs(13 * 60)));
    }
}
