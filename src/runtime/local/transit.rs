//! The transit server vaultform runs for a cluster's `seal "transit"` on the local runtime
//! (`vault.<v>.seal.transit`): a server process of its own under the cluster's working
//! directory (single-node raft storage, a certificate from the cluster's CA), initialised with a single
//! share that, with its root token, lives only as KMS ciphertext in the unseal store;
//! unsealed by vaultform; a transit engine with the key `autounseal-<vault>`, a policy that
//! allows only encrypt and decrypt with that key, and a periodic orphan token with that
//! policy for the members, kept in the unseal store too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{ensure_process, ids, io, observe_process, remove_process};
use crate::address::VaultItem;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::retry::{self, Backoff};
use crate::state::ResourceState;
use crate::vault::cluster::poll;
use crate::vault::hcl::quote;
use crate::vault::seal::{TRANSIT_ROOT, TRANSIT_SHARE, TRANSIT_TOKEN, TransitSpec};
use crate::vault::spec::{VaultSpec, Vaults};
use crate::vault::store::UnsealStore;
use crate::vault::{Client, ca, tls};

/// The provider of `vault.<v>.seal.transit`.
pub struct LocalTransit(pub Arc<Vaults>);

/// How long the members' token lives unrenewed: a member renews it while it runs, so only a
/// cluster stopped for longer than this needs a new one (an apply makes it).
pub const TOKEN_PERIOD: &str = "768h";

/// How long the transit server may take to answer, initialise or unseal.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The desired attributes of the managed transit server.
pub fn desired(v: &VaultSpec) -> Option<(String, Map<String, Value>)> {
    let t = v.seal.managed_transit()?;
    let (address, port) = t.managed?;
    let attrs = json!({
        "address": address.to_string(),
        "api_port": port,
        "key_name": t.key_name,
        "tls": t.ca_file.is_some(),
        "unsealed": true,
        "token_valid": true,
    });
    Some((
        format!("{}-seal-transit", v.name),
        attrs.as_object()?.clone(),
    ))
}

/// The transit policy's name: the key's.
fn policy_name(t: &TransitSpec) -> String {
    t.key_name.clone()
}

/// Encrypt and decrypt with the one key, nothing else (the default policy adds the token's
/// own lookup and renewal, which the seal needs).
fn policy(t: &TransitSpec) -> String {
    let path = |op: &str| quote(&format!("{}/{op}/{}", t.mount, t.key_name));
    format!(
        "path {} {{\n  capabilities = [\"update\"]\n}}\npath {} {{\n  capabilities = [\"update\"]\n}}\n",
        path("encrypt"),
        path("decrypt"),
    )
}

fn config(v: &VaultSpec, t: &TransitSpec) -> String {
    let dir = v.transit_dir();
    let (address, port) = t.managed.unwrap_or((std::net::Ipv4Addr::LOCALHOST, 8200));
    let listener_tls = if t.ca_file.is_some() {
        format!(
            "  tls_cert_file = {}\n  tls_key_file = {}\n  tls_min_version = \"tls12\"\n",
            quote(&dir.join("transit.crt").display().to_string()),
            quote(&dir.join("transit.key").display().to_string())
        )
    } else {
        "  tls_disable = true\n".to_string()
    };
    format!(
        "# vaultform: the transit seal server of Vault cluster {vault} (stack {stack}); rewritten by apply\n\
         api_addr = \"{url}\"\n\
         cluster_addr = \"https://{address}:{cluster}\"\n\
         disable_mlock = true\n\
         ui = false\n\
         log_level = \"info\"\n\n\
         storage \"raft\" {{\n  path = {data}\n  node_id = {node}\n}}\n\n\
         listener \"tcp\" {{\n  address = \"{address}:{port}\"\n  cluster_address = \"{address}:{cluster}\"\n{listener_tls}}}\n",
        cluster = port.saturating_add(1),
        vault = v.name,
        stack = v.stack,
        url = t.url,
        data = quote(&dir.join("data").display().to_string()),
        node = quote(&format!("{}-seal-transit", v.name)),
    )
}

fn vault_err(e: crate::vault::VaultError) -> OpError {
    OpError::fatal(e.to_string())
}

fn store_err(e: crate::vault::store::StoreError) -> OpError {
    OpError::retryable(e.to_string())
}

/// A certificate for the transit server's address from the cluster's CA, unless the one on
/// disk is one and lasts a while yet; whether a new one was written.
async fn ensure_cert(cx: &Cx<'_>, v: &VaultSpec, t: &TransitSpec) -> Result<bool, OpError> {
    let Some(settings) = &v.tls else {
        return Ok(false);
    };
    let dir = v.transit_dir();
    let (crt, key) = (dir.join("transit.crt"), dir.join("transit.key"));
    let address = t.managed.map(|(a, _)| a.to_string()).unwrap_or_default();
    let ca_pem = std::fs::read_to_string(v.ca_file()).unwrap_or_default();
    let current = std::fs::read_to_string(&crt)
        .ok()
        .filter(|_| key.is_file())
        .and_then(|c| tls::inspect(&c, &ca_pem).ok())
        .is_some_and(|info| {
            let left = info.not_after - OffsetDateTime::now_utc();
            info.signed_by_ca
                && info.names == vec![address.clone()]
                && left.whole_seconds() > settings.renew_before as i64
        });
    if current {
        return Ok(false);
    }
    let authority = ca::authority(cx, v).await?.ok_or_else(|| {
        OpError::fatal(format!(
            "vault.{}.tls.ca is not in the unseal store: apply it first",
            v.name
        ))
    })?;
    let issued = tls::issue(
        &authority,
        &format!("{}-seal-transit", v.name),
        &[address],
        OffsetDateTime::now_utc(),
        settings.validity,
    )
    .map_err(|e| OpError::fatal(e.to_string()))?;
    crate::private::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    crate::private::write(&key, issued.key_pem.expose().as_bytes())
        .map_err(|e| io("writing", &key, e))?;
    crate::private::write(&crt, issued.cert_pem.as_bytes()).map_err(|e| io("writing", &crt, e))?;
    Ok(true)
}

/// Initialises the transit server when it is not, keeping its share and root token in the
/// store; refuses a server without data whose secrets the store still holds (the members'
/// barrier keys were wrapped with a key that is gone).
async fn ensure_initialised(
    cx: &Cx<'_>,
    c: &Client,
    store: &UnsealStore,
    v: &VaultSpec,
) -> Result<(), OpError> {
    let status = c.seal_status().await.map_err(vault_err)?;
    let stored = store
        .load_object(cx.aws, TRANSIT_SHARE)
        .await
        .map_err(store_err)?;
    if status.initialized {
        if stored.is_none() {
            return Err(OpError::fatal(format!(
                "the transit server of {} is initialised, but its key is not in the unseal store (object {}{TRANSIT_SHARE}); vaultform will not touch a server whose keys it cannot read",
                v.name, v.prefix
            )));
        }
        return Ok(());
    }
    if stored.is_some() {
        return Err(OpError::fatal(format!(
            "the transit server of {} has no data, but the unseal store holds the keys of an earlier one ({}{TRANSIT_SHARE}); the members' data was sealed with that server's key: restore {}, or, if that cluster is gone, destroy it",
            v.name,
            v.prefix,
            v.transit_dir().join("data").display()
        )));
    }
    store.probe(cx.aws).await.map_err(|e| {
        OpError::fatal(format!(
            "the unseal store cannot take the transit server's key ({e}); nothing was initialised"
        ))
    })?;
    let resp = c.init(1, 1).await.map_err(vault_err)?;
    let share = resp
        .keys_base64
        .into_iter()
        .next()
        .ok_or_else(|| OpError::fatal("the transit server's init returned no share"))?;
    // The secrets exist only in memory until stored: a few tries each.
    for (name, secret) in [(TRANSIT_SHARE, &share), (TRANSIT_ROOT, &resp.root_token)] {
        retry::retry(Backoff::OPERATION.attempts(5), || async {
            store
                .store_object(cx.aws, name, secret)
                .await
                .map_err(|e| OpError::retryable(e.to_string()))
        })
        .await
        .map_err(|e| {
            OpError::fatal(format!(
                "the transit server of {} was initialised but its keys could not be stored ({}); destroy its directory {} and apply again",
                v.name,
                e.message,
                v.transit_dir().display()
            ))
        })?;
    }
    Ok(())
}

/// Unseals the transit server with its stored share, when sealed, and waits until it is
/// active (its single-node raft elects it).
async fn ensure_unsealed(cx: &Cx<'_>, c: &Client, store: &UnsealStore) -> Result<(), OpError> {
    if c.seal_status().await.map_err(vault_err)?.sealed {
        unseal(cx, c, store).await?;
    }
    poll(
        &format!("waiting for the transit server {} to be active", c.addr()),
        STEP_TIMEOUT,
        || async {
            match c.health().await {
                Ok(h) if h.status == 200 => Ok(()),
                Ok(h) => Err(format!("health {}", h.status)),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

async fn unseal(cx: &Cx<'_>, c: &Client, store: &UnsealStore) -> Result<(), OpError> {
    let share = store
        .load_object(cx.aws, TRANSIT_SHARE)
        .await
        .map_err(store_err)?
        .ok_or_else(|| OpError::fatal("the transit server's share is not in the unseal store"))?;
    c.unseal(&share).await.map_err(vault_err)?;
    poll(
        &format!("waiting for the transit server {} to unseal", c.addr()),
        STEP_TIMEOUT,
        || async {
            match c.seal_status().await {
                Ok(s) if !s.sealed => Ok(()),
                Ok(_) => Err("sealed".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// The transit engine, the key, the policy, and a working token for the members.
async fn ensure_key_and_token(
    cx: &Cx<'_>,
    c: &Client,
    store: &UnsealStore,
    t: &TransitSpec,
) -> Result<(), OpError> {
    let root = store
        .load_object(cx.aws, TRANSIT_ROOT)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            OpError::fatal("the transit server's root token is not in the unseal store")
        })?;
    // A server just unsealed may need a moment before it takes requests.
    let mounts = poll("the transit server's mounts", STEP_TIMEOUT, || async {
        c.mounts(&root).await.map_err(|e| e.to_string())
    })
    .await?;
    let mount = format!("{}/", t.mount);
    let mounted =
        mounts.get(&mount).is_some() || mounts.get("data").is_some_and(|d| d.get(&mount).is_some());
    if !mounted {
        c.enable_secrets_engine(&root, &t.mount, "transit", json!({}), json!({}))
            .await
            .map_err(vault_err)?;
    }
    let key_path = format!("{}/keys/{}", t.mount, t.key_name);
    if c.read(&root, &key_path).await.is_err() {
        c.write(&root, &key_path, json!({"type": "aes256-gcm96"}))
            .await
            .map_err(vault_err)?;
    }
    c.put_policy(&root, &policy_name(t), &policy(t))
        .await
        .map_err(vault_err)?;
    let current = store
        .load_object(cx.aws, TRANSIT_TOKEN)
        .await
        .map_err(store_err)?;
    let valid = match &current {
        Some(token) => c.lookup_self(token).await.is_ok(),
        None => false,
    };
    if !valid {
        let created = c
            .create_periodic_orphan(
                &root,
                &[policy_name(t).as_str()],
                TOKEN_PERIOD,
                &policy_name(t),
            )
            .await
            .map_err(vault_err)?;
        store
            .replace_object(cx.aws, TRANSIT_TOKEN, &created.client_token)
            .await
            .map_err(store_err)?;
    }
    Ok(())
}

impl LocalTransit {
    fn spec<'a>(
        &'a self,
        address: &'a crate::address::Address,
    ) -> Result<(&'a VaultSpec, &'a TransitSpec), OpError> {
        let (v, what) = self.0.part(address)?;
        if what != &VaultItem::SealTransit {
            return Err(OpError::fatal(format!("{address}: not a transit seal")));
        }
        let t = v.seal.managed_transit().ok_or_else(|| {
            OpError::fatal(format!(
                "{}: the topology has no transit seal run by vaultform",
                v.name
            ))
        })?;
        Ok((v, t))
    }
}

/// The transit server's client, trusting the cluster's CA.
fn client(v: &VaultSpec, t: &TransitSpec) -> Result<Client, OpError> {
    v.client(&t.url).map_err(vault_err)
}

#[async_trait::async_trait]
impl Provider for LocalTransit {
    fn service(&self) -> &'static str {
        "local"
    }

    fn is_process(&self, _address: &crate::address::Address) -> bool {
        true
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let observed = observe_process(rs);
        let Observed::Present { mut attrs, .. } = observed else {
            return Ok(observed);
        };
        let Ok((v, t)) = self.spec(&rs.address) else {
            return Ok(Observed::Present {
                attrs,
                delete_blocker: None,
            });
        };
        let c = client(v, t)?;
        let unsealed = c.seal_status().await.is_ok_and(|s| !s.sealed);
        let token_valid = match v.unseal_store(cx.outputs) {
            Ok(store) if unsealed => match store.load_object(cx.aws, TRANSIT_TOKEN).await {
                Ok(Some(token)) => c.lookup_self(&token).await.is_ok(),
                _ => false,
            },
            _ => false,
        };
        attrs.insert("unsealed".into(), Value::Bool(unsealed));
        attrs.insert("token_valid".into(), Value::Bool(token_valid));
        Ok(Observed::Present {
            attrs,
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, t) = self.spec(&d.address)?;
        let store = v.unseal_store(cx.outputs)?;
        let new_cert = ensure_cert(cx, v, t).await?;
        let dir = v.transit_dir();
        let data = dir.join("data");
        crate::private::create_dir_all(&data).map_err(|e| io("creating", &data, e))?;
        let args = vec![
            "server".to_string(),
            format!("-config={}", dir.join("server.hcl").display()),
        ];
        let c = client(v, t)?;
        let (address, port) = t.managed.unwrap_or((std::net::Ipv4Addr::LOCALHOST, 8200));
        let rec = ensure_process(
            &format!("{address}:{port}"),
            &dir,
            "server.hcl",
            &config(v, t),
            &v.binary,
            &args,
            || async { c.health().await.is_ok() },
        )
        .await?;
        // A server that was running already reads a new certificate on SIGHUP.
        if new_cert {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(rec.pid as i32),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
        ensure_initialised(cx, &c, &store, v).await?;
        ensure_unsealed(cx, &c, &store).await?;
        ensure_key_and_token(cx, &c, &store, t).await?;
        let mut ids = ids(&dir, &rec, &v.binary);
        ids.extend(store.ids());
        Ok(Recorded {
            ids,
            outputs: BTreeMap::from([("url".to_string(), t.url.clone())]),
        })
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        // Members still sealed through it (a topology that dropped or changed the seal) would
        // never unseal again: they go first (destroy deletes them before their seal).
        if let Ok((v, _)) = self.0.part(&rs.address) {
            for m in &v.members {
                let Ok(c) = v.client(&m.api_url()) else {
                    continue;
                };
                if let Ok(s) = c.seal_status().await
                    && s.initialized
                    && s.seal_type == "transit"
                {
                    return Err(OpError::fatal(format!(
                        "{} still unseals through this transit server; vaultform does not migrate seals: migrate by hand (`{} operator unseal -migrate`, docs/operations.md \"Seals\") or put the `seal \"transit\"` back",
                        m.name, v.binary
                    )));
                }
            }
        }
        remove_process(&self.0, rs).await?;
        UnsealStore::from_ids(cx.stack, &rs.ids)
            .delete_objects(cx.aws, &[TRANSIT_SHARE, TRANSIT_ROOT, TRANSIT_TOKEN])
            .await
            .map_err(store_err)
    }
}
