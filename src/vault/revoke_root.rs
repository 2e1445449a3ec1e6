//! `revoke-root #true` as a resource kind (`vault.<v>.revoke-root`), after the bootstrap and
//! every configuration item: it sets up the way back to a root token (an AppRole whose tokens
//! may only run `sys/generate-root-token`, its secret ID derived from the key shares), proves
//! that way works by generating one, and only then revokes the stored root token. Reads
//! observe whether the stored token still works, so a root token that is valid again is drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use serde_json::{Map, Value, json};

use super::cluster::{cluster_urls, first_with_health};
use super::root;
use super::spec::{VaultSpec, Vaults};
use super::store::Keys;
use super::{Client, Secret, VaultError};
use crate::address::{Address, VaultItem};
use crate::graph::{Builder, Kind};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::VaultCluster;

/// The stored root token revoked, the way back to one in place.
pub struct RevokeRoot(pub Arc<Vaults>);

/// After `verify` and every configuration item of the cluster (they need the root token).
pub fn graph(b: &mut Builder<'_>, v: &VaultCluster, verify: NodeIndex) {
    if !v.revokes_root() {
        return;
    }
    let name = v.name.value.as_str();
    let config: Vec<NodeIndex> =
        b.g.dag
            .node_indices()
            .filter(|ix| {
                let r = &b.g.dag[*ix];
                matches!(
                    r.kind,
                    Kind::SecretsEngine
                        | Kind::PkiRootCa
                        | Kind::PkiRole
                        | Kind::AuthMethod
                        | Kind::AuthRole
                        | Kind::VaultPolicy
                ) && r.address.vault_item().is_some_and(|(vn, _)| vn == name)
            })
            .collect();
    let span = v
        .revoke_root
        .as_ref()
        .map(|r| r.span)
        .unwrap_or(v.name.span);
    let ix = b.g.add(
        Address::vault(name, VaultItem::RevokeRoot),
        Kind::RevokeRoot,
        None,
        span,
    );
    b.g.edge(verify, ix);
    b.g.edges(&config, ix);
}

pub fn desired(v: &VaultSpec) -> Option<(String, Map<String, Value>)> {
    v.revoke_root.then(|| {
        (
            v.name.clone(),
            json!({"stored_root": "revoked"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    })
}

fn recorded() -> Recorded {
    Recorded {
        ids: BTreeMap::new(),
        outputs: BTreeMap::from([("stored_root".to_string(), "revoked".to_string())]),
    }
}

/// The AppRole that may only start and feed a root token generation, with the secret ID
/// derived from the keys; idempotent.
async fn prepare(c: &Client, root: &Secret, keys: &Keys, threshold: usize) -> Result<(), OpError> {
    let fatal = |what: &str, e: VaultError| OpError::fatal(format!("{what}: {e}"));
    c.put_policy(root, root::POLICY, root::POLICY_RULES)
        .await
        .map_err(|e| fatal("writing the generate-root policy", e))?;
    let auths = c
        .read(root, "sys/auth")
        .await
        .map_err(|e| fatal("listing auth methods", e))?;
    let mounted = auths
        .get("data")
        .unwrap_or(&auths)
        .get(format!("{}/", root::MOUNT))
        .is_some();
    if !mounted {
        c.enable_auth(root, root::MOUNT, "approle")
            .await
            .map_err(|e| fatal("enabling the generate-root AppRole", e))?;
    }
    let role = format!("auth/{}/role/{}", root::MOUNT, root::ROLE);
    c.write(
        root,
        &role,
        json!({
            "token_policies": [root::POLICY],
            "token_no_default_policy": true,
            "token_ttl": "300s",
            "token_max_ttl": "600s",
            "secret_id_ttl": 0,
            "secret_id_num_uses": 0,
        }),
    )
    .await
    .map_err(|e| fatal("writing the generate-root role", e))?;
    c.write(
        root,
        &format!("{role}/role-id"),
        json!({"role_id": root::ROLE_ID}),
    )
    .await
    .map_err(|e| fatal("setting the generate-root role ID", e))?;
    let secret = root::secret_id(keys, threshold);
    if let Ok(t) = c.approle_login(root::MOUNT, root::ROLE_ID, &secret).await {
        let _ = c.revoke_self(&t.client_token).await;
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct Custom<'a> {
        secret_id: &'a str,
    }
    let body = serde_json::to_value(Custom {
        secret_id: secret.expose(),
    })
    .unwrap_or_default();
    c.write(root, &format!("{role}/custom-secret-id"), body)
        .await
        .map_err(|e| fatal("registering the generate-root secret ID", e))?;
    Ok(())
}

#[async_trait::async_trait]
impl Provider for RevokeRoot {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, _) = self.0.part(&rs.address)?;
        let stored = match v.unseal_store(cx.outputs) {
            Ok(store) => store.load_root(cx.aws).await.ok(),
            Err(_) => None,
        };
        let refused = match &stored {
            Some(token) => root::refused(v, token).await,
            None => None,
        };
        let attrs = match refused {
            Some(true) => json!({"stored_root": "revoked"}),
            Some(false) => json!({"stored_root": "valid"}),
            // The cluster cannot tell now (down, sealed): as recorded.
            None => Value::Object(rs.attributes.clone()),
        };
        Ok(Observed::Present {
            attrs: attrs.as_object().cloned().unwrap_or_default(),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, _) = self.0.part(&d.address)?;
        let store = v.unseal_store(cx.outputs)?;
        let (keys, _) = store
            .load(cx.aws)
            .await
            .map_err(|e| OpError::fatal(e.to_string()))?;
        match root::refused(v, &keys.root_token).await {
            Some(true) => return Ok(recorded()),
            Some(false) => {}
            None => {
                return Err(OpError::retryable(format!(
                    "no member of {} answers: `vaultform status` shows why",
                    v.name
                )));
            }
        }
        let c = first_with_health(&v.client_tls(), &cluster_urls(v), |s| s == 200)
            .await
            .ok_or_else(|| OpError::retryable(format!("no member of {} is active", v.name)))?;
        prepare(&c, &keys.root_token, &keys, v.threshold as usize).await?;
        // The way back is proven before the door closes: a root token generated from the
        // keys alone (it is this run's from now on).
        let mut no_stored = cx.outputs.clone();
        no_stored.insert(
            d.address.as_str().to_string(),
            recorded().outputs.into_iter().collect(),
        );
        root::token(cx.aws, &no_stored, v).await.map_err(|e| {
            OpError::fatal(format!(
                "a root token could not be generated from the stored keys, so the stored one was kept: {}",
                e.message
            ))
        })?;
        c.revoke_self(&keys.root_token)
            .await
            .map_err(|e| OpError::fatal(format!("revoking the stored root token: {e}")))?;
        Ok(recorded())
    }

    /// Dropping `revoke-root` does not bring the stored token back: vaultform keeps
    /// generating root tokens (the server refuses the stored one).
    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        Ok(())
    }
}
