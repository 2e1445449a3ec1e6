//! A Vault cluster's certificate authority as a planned resource (`vault.<v>.tls.ca`). The CA
//! vaultform generates lives only in the unseal store, certificate and key together as one KMS
//! ciphertext per bucket, like the shares; a CA of the user's stays in the user's files. Either
//! way its certificate is written to the cluster's `tls/ca.pem`, which clients, load balancers
//! and `vaultform env` trust.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::secret::Secret;
use super::spec::{VaultSpec, Vaults};
use super::store::UnsealStore;
use super::tls::{self, Authority};
use crate::address::VaultItem;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;

/// Where the CA certificate is written, in the cluster's working directory.
const CA_FILE: &str = "tls/ca.pem";
/// What `ca.pem` says when it does not hold the CA's certificate.
const FILE_STALE: &str = "(missing or different)";

/// The provider of `vault.<v>.tls.ca`.
pub struct VaultCa(pub Arc<Vaults>);

/// The CA as it rests in the store (inside one encrypted secret).
#[derive(Serialize, Deserialize)]
struct Stored {
    cert: String,
    key: String,
}

/// The desired attributes of a cluster's CA.
pub fn desired(v: &VaultSpec) -> Option<(String, Map<String, Value>)> {
    let tls = v.tls.as_ref()?;
    let source = match &tls.user_ca {
        Some((cert, _)) => cert.display().to_string(),
        None => "generated".to_string(),
    };
    // The file is named relative to the cluster's working directory: plans read the same on
    // every machine.
    let attrs = json!({ "source": source, "file": CA_FILE });
    Some((format!("{}-ca", v.name), attrs.as_object()?.clone()))
}

/// The cluster's CA with its private key: from the user's files, or from the unseal store
/// (`None` when the store holds none).
pub async fn authority(cx: &Cx<'_>, v: &VaultSpec) -> Result<Option<Authority>, OpError> {
    let Some(t) = &v.tls else {
        return Err(OpError::fatal(format!("{}: TLS is off", v.name)));
    };
    if let Some((cert, key)) = &t.user_ca {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map_err(|e| OpError::fatal(format!("reading {}: {e}", p.display())))
        };
        let ca = tls::user_authority(&read(cert)?, Zeroizing::new(read(key)?))
            .map_err(|e| OpError::fatal(format!("the CA in {}: {e}", cert.display())))?;
        return Ok(Some(ca));
    }
    let store = v.unseal_store(cx.outputs)?;
    let Some(secret) = store
        .load_ca(cx.aws)
        .await
        .map_err(|e| OpError::retryable(e.to_string()))?
    else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_str(secret.expose())
        .map_err(|_| OpError::fatal("the unseal store's TLS CA object is not readable"))?;
    let key = Secret::new(stored.key);
    Ok(Some(Authority {
        cert_pem: stored.cert,
        key_pem: key,
    }))
}

/// The state identifiers of the CA: the file it is written to, whether vaultform generated it
/// (then the store holds its key) and the store, so that delete needs no topology.
fn recorded_ids(cx: &Cx<'_>, v: &VaultSpec) -> Result<BTreeMap<String, String>, OpError> {
    let mut ids = v.unseal_store(cx.outputs)?.ids();
    ids.insert(FILE_ID.into(), v.ca_file().display().to_string());
    let generated = v.tls.as_ref().is_none_or(|t| t.user_ca.is_none());
    ids.insert(GENERATED_ID.into(), generated.to_string());
    Ok(ids)
}

const FILE_ID: &str = "file";
const GENERATED_ID: &str = "generated";

fn write_ca_file(v: &VaultSpec, cert_pem: &str) -> Result<(), OpError> {
    let path = v.ca_file();
    if let Some(dir) = path.parent() {
        crate::private::create_dir_all(dir)
            .map_err(|e| OpError::fatal(format!("creating {}: {e}", dir.display())))?;
    }
    crate::private::write(&path, cert_pem.as_bytes())
        .map_err(|e| OpError::fatal(format!("writing {}: {e}", path.display())))
}

#[async_trait::async_trait]
impl Provider for VaultCa {
    fn service(&self) -> &'static str {
        "kms"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, _) = self.0.part(&rs.address)?;
        let Some((_, mut attrs)) = desired(v) else {
            return Ok(Observed::Gone);
        };
        let Some(ca) = authority(cx, v).await? else {
            return Ok(Observed::Gone);
        };
        let on_disk = std::fs::read_to_string(v.ca_file()).ok();
        if on_disk.as_deref() != Some(ca.cert_pem.as_str()) {
            attrs.insert("file".into(), FILE_STALE.into());
        }
        Ok(Observed::Present {
            attrs,
            delete_blocker: None,
        })
    }

    /// Adopts the CA the store holds already (an interrupted create), or makes one and
    /// stores it before anything uses it; then writes `ca.pem`.
    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, what) = self.0.part(&d.address)?;
        debug_assert_eq!(what, &VaultItem::Ca);
        let ca = match authority(cx, v).await? {
            Some(ca) => ca,
            None => {
                let name = format!("vaultform {} / {} CA", v.stack, v.name);
                let ca = tls::new_authority(&name, OffsetDateTime::now_utc())
                    .map_err(|e| OpError::fatal(e.to_string()))?;
                let stored = Secret::new(
                    serde_json::to_string(&Stored {
                        cert: ca.cert_pem.clone(),
                        key: ca.key_pem.expose().to_string(),
                    })
                    .map_err(|e| OpError::fatal(e.to_string()))?,
                );
                v.unseal_store(cx.outputs)?
                    .store_ca(cx.aws, &stored)
                    .await
                    .map_err(|e| OpError::retryable(e.to_string()))?;
                ca
            }
        };
        write_ca_file(v, &ca.cert_pem)?;
        Ok(Recorded {
            outputs: [("cert_pem".to_string(), ca.cert_pem.clone())].into(),
            ids: recorded_ids(cx, v)?,
        })
    }

    /// Deletes the generated CA from the store (a user's CA is the user's) and `ca.pem`.
    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        // What the state records; a state written before it did: what the topology says.
        let ids = match rs.id(FILE_ID) {
            Some(_) => rs.ids.clone(),
            None => recorded_ids(cx, self.0.part(&rs.address)?.0)?,
        };
        if ids.get(GENERATED_ID).map(String::as_str) == Some("true") {
            UnsealStore::from_ids(cx.stack, &ids)
                .delete_ca(cx.aws)
                .await
                .map_err(|e| OpError::retryable(e.to_string()))?;
        }
        let file = PathBuf::from(&ids[FILE_ID]);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(OpError::fatal(format!("removing {}: {e}", file.display())));
            }
            _ => {}
        }
        // `tls/`, then the working directory, when the members' deletes left them empty.
        let mut dir = file.parent();
        for _ in 0..2 {
            match dir {
                Some(d) if std::fs::remove_dir(d).is_ok() => dir = d.parent(),
                _ => break,
            }
        }
        Ok(())
    }
}
