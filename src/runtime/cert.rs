//! A member's server certificate on the local runtime (`vault.<v>.tls.cert.<member>`): issued
//! by the cluster's CA for every address the member is reached by, written beside the CA as
//! `<member>.crt` and `<member>.key` (0600). A certificate whose names no longer match, that
//! its CA did not sign, or that expires within the topology's `renew-before` plans as a
//! replacement; a running member reloads it on SIGHUP (its listener stays up, so the cluster
//! keeps serving through a rotation) and the new certificate is checked on the wire.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::local::member_process;
use crate::address::VaultItem;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::retry::{Backoff, try_poll};
use crate::state::ResourceState;
use crate::vault::ca;
use crate::vault::spec::{MemberSpec, VaultSpec, Vaults};
use crate::vault::{Client, tls};

/// The provider of `vault.<v>.tls.cert.<member>`.
pub struct LocalCert(pub Arc<Vaults>);

/// The desired attributes of a member's certificate.
pub fn desired(v: &VaultSpec, m: &MemberSpec) -> Option<(String, Map<String, Value>)> {
    v.tls.as_ref()?;
    let attrs = json!({
        "names": v.cert_names(m),
        "signed_by_ca": true,
        "renewal_due": false,
    });
    Some((format!("{}-{}", v.name, m.name), attrs.as_object()?.clone()))
}

/// What the certificate on disk says, as attributes: `None` when there is none.
fn observe(v: &VaultSpec, member: &str) -> Option<Map<String, Value>> {
    let (crt, key) = v.cert_files(member);
    let cert = std::fs::read_to_string(crt).ok()?;
    if !key.is_file() {
        return None;
    }
    let ca = std::fs::read_to_string(v.ca_file()).unwrap_or_default();
    let renew_before = v.tls.as_ref().map_or(0, |t| t.renew_before);
    let attrs = match tls::inspect(&cert, &ca) {
        Ok(info) => {
            let left = info.not_after - OffsetDateTime::now_utc();
            json!({
                "names": info.names,
                "signed_by_ca": info.signed_by_ca,
                "renewal_due": left.whole_seconds() < renew_before as i64,
            })
        }
        // A file that is not a certificate (or a CA file that is not) is replaced.
        Err(_) => json!({ "names": [], "signed_by_ca": false, "renewal_due": true }),
    };
    attrs.as_object().cloned()
}

fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> OpError {
    OpError::fatal(format!("{what} {}: {e}", path.display()))
}

/// Has a running member load its new certificate, and waits until it serves it.
async fn reload(v: &VaultSpec, m: &MemberSpec, cert_pem: &str) -> Result<(), OpError> {
    let Some(rec) = member_process(v, &m.name) else {
        // Not running: it reads the certificate when it starts.
        return Ok(());
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    );
    let want = tls::der(cert_pem).map_err(|e| OpError::fatal(e.to_string()))?;
    let settings = v.client_tls();
    let url = m.api_url();
    let what = format!("{} to serve its new certificate", m.name);
    try_poll(
        Backoff::VAULT_POLL.deadline(Duration::from_secs(20)),
        &what,
        || async {
            Ok::<_, OpError>(
                Client::served_certificate(&url, &settings)
                    .await
                    .ok()
                    .filter(|got| *got == want)
                    .map(drop),
            )
        },
    )
    .await
    .map_err(|e| {
        OpError::retryable(format!(
            "{}: still serving its old certificate after SIGHUP ({e})",
            m.name
        ))
    })
}

#[async_trait::async_trait]
impl Provider for LocalCert {
    fn service(&self) -> &'static str {
        "local"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        &["names", "signed_by_ca", "renewal_due"]
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, m) = self.member_of(&rs.address)?;
        Ok(match observe(v, &m.name) {
            Some(attrs) => Observed::Present {
                attrs,
                delete_blocker: None,
            },
            None => Observed::Gone,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, m) = self.member_of(&d.address)?;
        let t = v
            .tls
            .as_ref()
            .ok_or_else(|| OpError::fatal(format!("{}: TLS is off", v.name)))?;
        let authority = ca::authority(cx, v).await?.ok_or_else(|| {
            OpError::fatal(format!(
                "vault.{}.tls.ca is not in the unseal store: apply it first",
                v.name
            ))
        })?;
        let issued = tls::issue(
            &authority,
            &m.name,
            &v.cert_names(m),
            OffsetDateTime::now_utc(),
            t.validity,
        )
        .map_err(|e| OpError::fatal(e.to_string()))?;
        let (crt, key) = v.cert_files(&m.name);
        if let Some(dir) = crt.parent() {
            crate::private::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        }
        // The key first: a certificate on disk always has its key beside it.
        crate::private::write(&key, issued.key_pem.expose().as_bytes())
            .map_err(|e| io("writing", &key, e))?;
        crate::private::write(&crt, issued.cert_pem.as_bytes())
            .map_err(|e| io("writing", &crt, e))?;
        reload(v, m, &issued.cert_pem).await?;
        let not_after = issued
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ok(Recorded {
            outputs: [("not_after".to_string(), not_after)].into(),
            // What delete removes, so that it needs no topology.
            ids: [
                ("crt".to_string(), crt.display().to_string()),
                ("key".to_string(), key.display().to_string()),
            ]
            .into(),
        })
    }

    /// Removes the files the state records (a state written before they were recorded: the
    /// files the topology names, when it has the cluster).
    async fn delete(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let files = match (rs.id("crt"), rs.id("key")) {
            (Some(crt), Some(key)) => vec![PathBuf::from(crt), PathBuf::from(key)],
            _ => match self.member_of(&rs.address) {
                Ok((v, m)) => {
                    let (crt, key) = v.cert_files(&m.name);
                    vec![crt, key]
                }
                Err(_) => Vec::new(),
            },
        };
        for f in files {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", &f, e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl LocalCert {
    fn member_of<'a>(
        &'a self,
        address: &'a crate::address::Address,
    ) -> Result<(&'a VaultSpec, &'a MemberSpec), OpError> {
        let (v, what) = self.0.part(address)?;
        let VaultItem::Cert(name) = what else {
            return Err(OpError::fatal(format!("{address}: not a certificate")));
        };
        let m = v
            .member(name)
            .ok_or_else(|| OpError::fatal(format!("{name}: no such member of {}", v.name)))?;
        Ok((v, m))
    }
}
