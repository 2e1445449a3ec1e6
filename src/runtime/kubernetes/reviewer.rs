//! What Kubernetes auth needs from an EKS cluster, read through its API: the token of the
//! reviewer service account (its long-lived token secret, which Kubernetes' token controller
//! fills in) and the cluster's CA, which that secret carries too.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;

use super::clusters::Clusters;
use super::manifests::reviewer_token_name;
use crate::provider::{Cx, OpError};
use crate::vault::Secret;
use crate::vault::config::{ReviewerAccess, TokenReviewer};
use crate::vault::spec::VaultSpec;

/// The Kubernetes runtime's answer to [`TokenReviewer`].
pub struct Reviewer {
    pub clusters: Arc<Clusters>,
}

#[async_trait::async_trait]
impl TokenReviewer for Reviewer {
    async fn reviewer(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        cluster: &str,
    ) -> Result<ReviewerAccess, OpError> {
        let m = v
            .members
            .iter()
            .find(|m| m.cluster == cluster)
            .ok_or_else(|| OpError::fatal(format!("{cluster}: no member of {} on it", v.name)))?;
        let ns = v.namespace();
        let client = self.clusters.client(cx.aws, &m.region, cluster).await?;
        let name = reviewer_token_name();
        let secrets: Api<KubeSecret> = Api::namespaced(client, ns);
        let s = secrets
            .get_opt(&name)
            .await
            .map_err(|e| OpError::retryable(format!("reading secret {ns}/{name}: {e}")))?
            .ok_or_else(|| OpError::fatal(format!("secret {ns}/{name} is missing on {cluster}")))?;
        let field = |k: &str| {
            s.data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .ok_or_else(|| {
                    // The token controller has not filled it in yet.
                    OpError::retryable(format!("secret {ns}/{name} on {cluster} has no {k} yet"))
                })
        };
        let jwt = Secret::new(field("token")?);
        let ca = field("ca.crt")?;
        let host = super::clusters::override_of(cluster, &m.region)?.map(|a| a.endpoint);
        Ok(ReviewerAccess { host, ca, jwt })
    }
}
