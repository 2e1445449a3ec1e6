//! Where people and pipelines reach a Vault cluster: its front endpoint (or, without one, the
//! bootstrap member's load balancer) and the CA file that verifies it, as the variables the
//! `vault` and `bao` CLIs read.

use std::path::PathBuf;

use serde::Serialize;

use super::{OpsError, fail};
use crate::vault::spec::VaultSpec;
use crate::vault::{Client, TlsSettings};

/// The address clients use, and how to verify it.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub vault: String,
    /// What serves the address: a load balancer's name, or a member's.
    pub via: String,
    pub addr: String,
    /// The CA certificate (PEM) that signed the endpoint's certificate; `None` for plain HTTP.
    pub ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// The front endpoint; else the bootstrap member's load balancer; else the member itself.
    pub fn of(v: &VaultSpec) -> Endpoint {
        let primary = v.primary();
        let (via, addr) = match (&v.front, v.front_url()) {
            (Some(front), Some(url)) => (front.clone(), url),
            _ => match v.proxy_url(&primary.load_balancer) {
                Some(url) => (primary.load_balancer.clone(), url),
                None => (primary.name.clone(), v.member_url(primary)),
            },
        };
        Endpoint {
            vault: v.name.clone(),
            via,
            addr,
            ca_file: ca_file(v),
        }
    }

    /// The environment a Vault or OpenBao CLI needs to reach the endpoint, in order.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("VAULT_ADDR", self.addr.clone()),
            ("BAO_ADDR", self.addr.clone()),
        ];
        if let Some(ca) = &self.ca_file {
            let ca = ca.display().to_string();
            out.push(("VAULT_CACERT", ca.clone()));
            out.push(("BAO_CACERT", ca));
        }
        out
    }

    /// The client settings that trust exactly the endpoint's CA.
    pub fn tls(&self) -> Result<TlsSettings, OpsError> {
        let ca_pem = match &self.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                fail(
                    format!("cannot read the CA certificate {}: {e}", path.display()),
                    "`vaultform apply FILE` writes it",
                )
            })?),
            None => None,
        };
        Ok(TlsSettings {
            ca_pem,
            server_name: None,
        })
    }

    /// A client of the endpoint, verifying it as [`Endpoint::tls`] says.
    pub fn client(&self) -> Result<Client, OpsError> {
        Client::new(&self.addr, &self.tls()?).map_err(|e| fail(e.to_string(), ""))
    }
}

/// The CA file clients verify the cluster's certificates with (TLS on), the one `apply` wrote.
fn ca_file(v: &VaultSpec) -> Option<PathBuf> {
    v.tls.as_ref().map(|_| v.ca_file())
}
