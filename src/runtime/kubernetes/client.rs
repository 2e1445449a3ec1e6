//! A Kubernetes API client for an EKS cluster with no kubeconfig and no aws CLI: the endpoint
//! and CA from `DescribeCluster`, every request carrying a fresh EKS token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, Request, header::AUTHORIZATION};
use kube::client::ClientBuilder;
use tower::{Layer, Service};

use super::token::{EksTokens, TokenError};
use crate::aws::Aws;

/// Why a cluster's API cannot be reached.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum KubeError {
    #[error("cannot describe EKS cluster {cluster} in {region}: {message}")]
    #[diagnostic(
        code(vaultform::eks::describe),
        help(
            "check that the cluster exists (`vaultform apply` creates it) and the AWS credentials"
        )
    )]
    Describe {
        cluster: String,
        region: String,
        message: String,
    },
    #[error("EKS cluster {cluster} has no {what} yet")]
    #[diagnostic(
        code(vaultform::eks::describe),
        help("a cluster being created gets its endpoint and CA when it becomes ACTIVE")
    )]
    Incomplete { cluster: String, what: &'static str },
    #[error("the CA of {cluster} is not a PEM certificate: {message}")]
    #[diagnostic(code(vaultform::eks::ca))]
    Ca { cluster: String, message: String },
    #[error("cannot set up a Kubernetes client for {cluster}: {message}")]
    #[diagnostic(code(vaultform::kube::client))]
    Client { cluster: String, message: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Token(#[from] TokenError),
}

/// How to reach one cluster's Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    pub name: String,
    pub region: String,
    /// `https://...`.
    pub endpoint: String,
    /// The cluster's CA certificate(s): PEM, base64-encoded, as EKS gives it and kubeconfig's
    /// `certificate-authority-data` holds it.
    pub ca_data: String,
}

/// The endpoint and CA of an EKS cluster, from `DescribeCluster`.
pub async fn describe(aws: &Aws, region: &str, cluster: &str) -> Result<ClusterAccess, KubeError> {
    let out = aws
        .eks(region)
        .describe_cluster()
        .name(cluster)
        .send()
        .await
        .map_err(|e| KubeError::Describe {
            cluster: cluster.to_string(),
            region: region.to_string(),
            message: crate::aws::describe_error(&e).1,
        })?;
    let incomplete = |what| KubeError::Incomplete {
        cluster: cluster.to_string(),
        what,
    };
    let c = out.cluster().ok_or_else(|| incomplete("description"))?;
    let endpoint = c.endpoint().ok_or_else(|| incomplete("endpoint"))?;
    let data = c
        .certificate_authority()
        .and_then(|ca| ca.data())
        .ok_or_else(|| incomplete("certificate authority"))?;
    Ok(ClusterAccess {
        name: cluster.to_string(),
        region: region.to_string(),
        endpoint: endpoint.to_string(),
        ca_data: data.trim().to_string(),
    })
}

/// The DER certificates of a base64-encoded PEM bundle (at least one).
fn certificates(cluster: &str, ca_data: &str) -> Result<Vec<Vec<u8>>, KubeError> {
    let failed = |message: String| KubeError::Ca {
        cluster: cluster.to_string(),
        message,
    };
    let pem_text = STANDARD
        .decode(ca_data)
        .map_err(|e| failed(format!("not base64: {e}")))?;
    let ders: Vec<Vec<u8>> = pem::parse_many(pem_text)
        .map_err(|e| failed(e.to_string()))?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if ders.is_empty() {
        return Err(failed("no CERTIFICATE block".into()));
    }
    Ok(ders)
}

/// A client for `access`, trusting only its CA, authenticating with `tokens` (a token is
/// made on the first request and renewed as it nears expiry).
pub fn client(access: &ClusterAccess, tokens: Arc<EksTokens>) -> Result<kube::Client, KubeError> {
    let failed = |message: String| KubeError::Client {
        cluster: access.name.clone(),
        message,
    };
    let url = access
        .endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| failed(e.to_string()))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(certificates(&access.name, &access.ca_data)?);
    config.default_namespace = "default".into();
    let builder = ClientBuilder::try_from(config).map_err(|e| failed(e.to_string()))?;
    Ok(builder.with_layer(&BearerLayer { tokens }).build())
}

/// Puts `Authorization: Bearer <EKS token>` on every request.
#[derive(Clone)]
struct BearerLayer {
    tokens: Arc<EksTokens>,
}

impl<S> Layer<S> for BearerLayer
where
    S: Service<Request<kube::client::Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send + Sync + 'static,
    S::Response: Send + 'static,
{
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            // The token is fetched before the inner call, so the inner service must be
            // shareable into that future: a buffer makes it so.
            inner: tower::buffer::Buffer::new(inner, 64),
            tokens: self.tokens.clone(),
        }
    }
}

struct Bearer<S>
where
    S: Service<Request<kube::client::Body>>,
{
    inner: tower::buffer::Buffer<Request<kube::client::Body>, S::Future>,
    tokens: Arc<EksTokens>,
}

type Body = kube::client::Body;

impl<S> Service<Request<Body>> for Bearer<S>
where
    S: Service<Request<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError> + Send + Sync + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Readiness was reserved on this handle; the future takes it along.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let token = tokens.get().await?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))?;
            value.set_sensitive(true);
            req.headers_mut().insert(AUTHORIZATION, value);
            inner.call(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_must_hold_a_certificate() {
        let b64 = |s: &str| STANDARD.encode(s);
        assert!(certificates("c", "!!").is_err());
        assert!(certificates("c", &b64("not pem")).is_err());
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(certificates("c", &b64(key)).is_err());
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            certificates("c", &b64(cert)).unwrap(),
            vec![vec![0u8, 0, 0]]
        );
    }
}
