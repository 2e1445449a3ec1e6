//! Operating a running Vault cluster with the secrets from the unseal store (decrypted in
//! memory, never shown): its status, unsealing, the resilience drills and raft snapshots.
//! Each operation returns a typed report for `ui` to render; none prints.

pub mod drill;
pub mod endpoint;
pub mod login;
pub mod snapshot;
pub mod status;
pub mod unseal;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::address::{Address, VaultItem};
use crate::aws::Aws;
use crate::catalog::Catalog;
use crate::graph::Kind;
use crate::provider::{Cx, Desired, OpError, Providers};
use crate::vault::cluster::{cluster_urls, first_with_health};
use crate::vault::spec::{MemberSpec, VaultSpec};
use crate::vault::store::UnsealStore;
use crate::vault::{Client, Secret};

/// Why an operation could not run, and what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpsError {
    pub message: String,
    pub help: String,
}

pub(crate) fn fail(message: impl Into<String>, help: &str) -> OpsError {
    OpsError {
        message: message.into(),
        help: help.to_string(),
    }
}

const STATUS_HELP: &str = "`vaultform status FILE` shows each member";

impl From<OpsError> for crate::error::Error {
    fn from(e: OpsError) -> Self {
        crate::error::Error::Vault {
            message: e.message,
            help: e.help,
        }
    }
}

impl From<OpError> for OpsError {
    fn from(e: OpError) -> Self {
        fail(e.message, STATUS_HELP)
    }
}

pub(crate) fn client(v: &VaultSpec, url: &str) -> Result<Client, OpsError> {
    v.client(url).map_err(|e| fail(e.to_string(), ""))
}

/// What the operations need: the stack's providers (with its Vault clusters), AWS, and the
/// recorded outputs (the store's key ARNs, what apply started).
pub struct Ops {
    pub catalog: Arc<Catalog>,
    pub aws: Aws,
    pub stack: String,
    pub tags: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ops {
    /// The topology's clusters (all of them, or the one named).
    pub fn vaults(&self, only: Option<&str>) -> Result<Vec<VaultSpec>, OpsError> {
        let all = &self.catalog.vaults().0;
        let picked: Vec<VaultSpec> = all
            .values()
            .filter(|v| only.is_none_or(|o| o == v.name))
            .cloned()
            .collect();
        if picked.is_empty() {
            let names: Vec<&str> = all.keys().map(String::as_str).collect();
            return Err(match only {
                Some(o) if !names.is_empty() => fail(
                    format!("the topology has no Vault cluster \"{o}\""),
                    &format!("its Vault clusters: {}", names.join(", ")),
                ),
                _ => fail(
                    "the topology declares no Vault cluster",
                    "declare one with `vault \"NAME\" { ... }`",
                ),
            });
        }
        Ok(picked)
    }

    /// The one cluster an operation acts on: the one named, or the only one.
    pub fn one(&self, only: Option<&str>) -> Result<VaultSpec, OpsError> {
        let mut all = self.vaults(only)?;
        if all.len() > 1 {
            let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
            return Err(fail(
                format!(
                    "the topology has {} Vault clusters: {}",
                    all.len(),
                    names.join(", ")
                ),
                "pass --vault NAME",
            ));
        }
        Ok(all.remove(0))
    }

    pub fn store(&self, v: &VaultSpec) -> Result<UnsealStore, OpsError> {
        Ok(v.unseal_store(&self.outputs)?)
    }

    /// A root token: the stored one, or one generated from the stored keys once
    /// `revoke-root` has revoked it (`vault::root`).
    pub async fn root_token(&self, v: &VaultSpec) -> Result<Secret, OpsError> {
        crate::vault::root::token(&self.aws, &self.outputs, v)
            .await
            .map_err(|e| fail(e.message, "has the cluster been applied?"))
    }

    pub(crate) fn cx(&self) -> Cx<'_> {
        Cx {
            aws: &self.aws,
            stack: &self.stack,
            default_tags: &self.tags,
            outputs: &self.outputs,
        }
    }

    /// Runs `kind`'s create for a part of a cluster, with the attributes a plan would give it:
    /// the same idempotent step apply runs.
    async fn ensure(&self, kind: Kind, address: Address) -> Result<(), OpError> {
        let provider = self
            .catalog
            .provider(kind)
            .ok_or_else(|| OpError::fatal(format!("{kind} is not supported")))?;
        let (name, attrs) = self
            .catalog
            .vault_desired(&address)
            .ok_or_else(|| OpError::fatal(format!("{address} is not in the topology")))?;
        let d = Desired {
            address,
            kind,
            region: None,
            name,
            attrs,
            deps: Vec::new(),
            resumed: false,
        };
        provider.create(&self.cx(), &d).await.map(drop)
    }

    /// Brings a member back the way apply does: started again by its runtime (the same
    /// configuration) and unsealed from the store through the unseal provider.
    pub async fn revive(&self, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        let member = Address::vault(&v.name, VaultItem::Member(m.name.clone()));
        // Only what apply created is started again: nothing the state would not know to stop.
        if !self.outputs.contains_key(member.as_str()) {
            return Err(OpError::fatal(format!(
                "{member} is not in the state: `vaultform apply` creates it"
            )));
        }
        self.catalog
            .runtime(v)
            .start_member(&self.cx(), v, m)
            .await?;
        self.unseal(v, m).await
    }

    /// Unseals a member from the store (or waits until it unseals itself), as apply does.
    pub async fn unseal(&self, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpError> {
        let unseal = Address::vault(&v.name, VaultItem::Unseal(m.name.clone()));
        self.ensure(Kind::VaultUnseal, unseal).await
    }
}

/// The active member, through the front endpoint or else any member.
pub async fn active_client(v: &VaultSpec) -> Result<Client, OpsError> {
    first_with_health(&v.client_tls(), &cluster_urls(v), |s| s == 200)
        .await
        .ok_or_else(|| fail(format!("no member of {} is active", v.name), STATUS_HELP))
}
