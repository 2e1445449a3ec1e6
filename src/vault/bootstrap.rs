//! The ordered bootstrap as resource kinds, each idempotent: initialise the primary and store
//! its secrets in every bucket of the unseal store (`vault-init`), keep every bucket holding
//! them (`unseal-keys`), unseal a member (`vault-unseal`), join a member through the primary's
//! load balancer (`raft-join`), and wait until every member is a voter under one leader
//! (`raft-verify`). Reads observe the servers, so a restarted (sealed) member or one whose data
//! is gone shows as drift that apply repairs. Every wait polls with backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Client;
use super::cluster::{cluster_urls, first_with_health, poll, raft_view, wait_until_whole};
use super::spec::{VaultSpec, Vaults};
use super::store::{Keys, UnsealStore};
use petgraph::graph::NodeIndex;

use crate::address::{Address, Role, VaultItem};
use crate::graph::{Builder, Kind};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::retry::{self, Backoff};
use crate::state::ResourceState;
use crate::topology::{Runtime, SealKind, Topology, TransitSeal};

/// `sys/init` of the primary, its secrets stored in every bucket.
pub struct VaultInit {
    pub vaults: Arc<Vaults>,
    /// The members' data on their runtime, for an init that must start again.
    pub data: Arc<dyn MemberData>,
}

/// What the bootstrap needs of the runtime the members run on; the catalog registers it.
#[async_trait::async_trait]
pub trait MemberData: Send + Sync {
    /// Stops member `m` of `v`, removes the raft data vaultform made for it, and starts it
    /// again empty.
    async fn wipe(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        m: &super::spec::MemberSpec,
    ) -> Result<(), OpError>;
}

impl VaultInit {
    /// Whether an initialised cluster whose keys cannot be read is one this stack's own
    /// interrupted init made: the state holds the intent of an init that did not finish, every
    /// bucket answers and none holds enough shares to unseal (the killed run stored nothing,
    /// or only the root token and some shares), and every member is sealed. Then nobody can
    /// ever have unsealed it (the keys went with the killed run), so it has held no data.
    async fn lost_in_interrupted_init(
        &self,
        cx: &Cx<'_>,
        d: &Desired,
        v: &VaultSpec,
        store: &UnsealStore,
    ) -> bool {
        if !d.resumed || !matches!(store.cannot_unseal(cx.aws).await, Ok(true)) {
            return false;
        }
        for m in &v.members {
            let Ok(c) = client(v, &v.member_url(m)) else {
                return false;
            };
            if c.seal_status().await.is_ok_and(|s| !s.sealed) {
                return false;
            }
        }
        true
    }
}

/// The seal status once an initialisation in progress (shares 0, threshold 0: the server
/// is still making them) has finished.
async fn settled(c: &Client) -> Result<super::SealStatus, OpError> {
    poll(
        &format!("waiting for the initialisation of {} to finish", c.addr()),
        STEP_TIMEOUT,
        || async {
            match c.seal_status().await {
                Ok(s) if s.initialized && s.n == 0 => Err("initialising".to_string()),
                Ok(s) => Ok(s),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}
/// Every bucket of the unseal store holds the keys.
pub struct UnsealKeys(pub Arc<Vaults>);
/// A member is unsealed.
pub struct VaultUnseal(pub Arc<Vaults>);
/// A member has joined the raft cluster through the primary's load balancer.
pub struct RaftJoin(pub Arc<Vaults>);
/// Every member a voter under one active leader.
pub struct RaftVerify(pub Arc<Vaults>);

/// How long a member may take to answer, unseal or join.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

fn client(v: &VaultSpec, url: &str) -> Result<Client, OpError> {
    v.client(url).map_err(|e| OpError::fatal(e.to_string()))
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The graph of each Vault cluster, in the bootstrap's one order: the local runtime's proxies
/// and the members; `init` of the primary (after the store's buckets); `unseal-keys` (the
/// secrets in every bucket before anything relies on them); the primary's unseal; each other
/// member's `join` through the primary's load balancer, then its unseal; `raft` (every member a
/// voter). The declarative configuration and the front endpoint's proxy come after `raft`.
pub fn graph<'t>(b: &mut Builder<'t>, t: &'t Topology) {
    let any_cluster = b.eks_roles.is_some();
    for v in &t.vaults {
        let vn = v.name.value.as_str();
        let at = |what| Address::vault(vn, what);
        let local = matches!(v.runtime.value, Runtime::Local { .. });
        let store: Vec<NodeIndex> = v
            .unseal_store
            .buckets
            .iter()
            .filter_map(|bucket| b.buckets.get(bucket.value.as_str()).copied())
            .collect();
        let vault_role = (!local && any_cluster).then(|| {
            let role = Address::role(Role::Vault(vn.to_string()));
            let ix = b.g.add(role, Kind::IamRole, None, v.name.span);
            b.g.edges(&store, ix);
            ix
        });
        // The CA, kept in the unseal store: before anything that serves or checks TLS.
        let ca = v.tls.enabled.then(|| {
            let ix = b.g.add(at(VaultItem::Ca), Kind::VaultCa, None, v.tls.span);
            b.g.edges(&store, ix);
            ix
        });
        // The transit server vaultform runs for the seal: its keys in the store, its
        // certificate from the CA; every member's seal needs it.
        let transit = (local
            && matches!(v.seal.kind, SealKind::Transit(TransitSeal::Managed { .. })))
        .then(|| {
            let ix = b.g.add(
                at(VaultItem::SealTransit),
                Kind::SealTransit,
                None,
                v.seal.span,
            );
            b.g.edges(&store, ix);
            b.g.edges(ca.as_slice(), ix);
            ix
        });
        // What stands for each load balancer the cluster uses: the NLB listeners, plus the
        // local HAProxy on the local runtime.
        let mut entry: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
        let lbs = v
            .members
            .iter()
            .map(|m| &m.load_balancer)
            .chain(v.front.iter());
        for lb in lbs {
            if entry.contains_key(lb.value.as_str()) {
                continue;
            }
            let mut nodes = b
                .load_balancers
                .get(lb.value.as_str())
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            if local {
                let proxy = at(VaultItem::Proxy(lb.value.clone()));
                let px = b.g.add(proxy, Kind::LocalProxy, None, lb.span);
                b.g.edges(&nodes, px);
                b.g.edges(ca.as_slice(), px);
                nodes.push(px);
            }
            entry.insert(lb.value.as_str(), nodes);
        }
        let mut members = Vec::new();
        for m in &v.members {
            let member = at(VaultItem::Member(m.name.value.clone()));
            let ix = b.g.add(member, Kind::VaultMember, None, m.name.span);
            b.g.edges(transit.as_slice(), ix);
            if let Some(ca) = ca {
                let cert = at(VaultItem::Cert(m.name.value.clone()));
                let cx = b.g.add(cert, Kind::VaultCert, None, m.name.span);
                b.g.edge(ca, cx);
                b.g.edge(cx, ix);
            }
            if let Some((c, pools)) = b.clusters.get(m.cluster.value.as_str()).cloned() {
                b.g.edge(c, ix);
                b.g.edges(&pools, ix);
            }
            if let Some(nodes) = entry.get(m.load_balancer.value.as_str()) {
                b.g.edges(nodes, ix);
            }
            if let Some(role) = vault_role {
                b.g.edge(role, ix);
            }
            b.depends.extend(m.depends_on.iter().map(|d| (ix, d)));
            members.push((m, ix));
        }
        let Some(primary) = v.bootstrap_member() else {
            continue;
        };
        let Some(&(_, primary_ix)) = members
            .iter()
            .find(|(m, _)| m.name.value == primary.name.value)
        else {
            continue;
        };
        let init =
            b.g.add(at(VaultItem::Init), Kind::VaultInit, None, v.name.span);
        b.g.edge(primary_ix, init);
        b.g.edges(&store, init);
        let keys = b.g.add(
            at(VaultItem::UnsealKeys),
            Kind::UnsealKeys,
            None,
            v.unseal_store.span,
        );
        b.g.edge(init, keys);
        b.g.edges(&store, keys);
        // The keys are safe in every bucket before anything relies on them.
        let primary_unseal = b.g.add(
            at(VaultItem::Unseal(primary.name.value.clone())),
            Kind::VaultUnseal,
            None,
            primary.name.span,
        );
        b.g.edge(keys, primary_unseal);
        let verify =
            b.g.add(at(VaultItem::Raft), Kind::RaftVerify, None, v.name.span);
        b.g.edge(primary_unseal, verify);
        let leader_entry = entry
            .get(primary.load_balancer.value.as_str())
            .cloned()
            .unwrap_or_default();
        for (m, mix) in &members {
            if m.name.value == primary.name.value {
                continue;
            }
            let join = b.g.add(
                at(VaultItem::Join(m.name.value.clone())),
                Kind::RaftJoin,
                None,
                m.name.span,
            );
            b.g.edge(primary_unseal, join);
            b.g.edge(*mix, join);
            b.g.edges(&leader_entry, join);
            let unseal = b.g.add(
                at(VaultItem::Unseal(m.name.value.clone())),
                Kind::VaultUnseal,
                None,
                m.name.span,
            );
            b.g.edge(join, unseal);
            b.g.edge(unseal, verify);
        }
        super::config::graph(b, v, verify);
        super::revoke_root::graph(b, v, verify);
        if let Some(front) = &v.front {
            // The front endpoint serves clients once the cluster is whole.
            if let Some(nodes) = entry.get(front.value.as_str()) {
                for n in nodes.clone() {
                    if b.g.dag[n].kind == Kind::LocalProxy {
                        b.g.edge(verify, n);
                    }
                }
            }
        }
    }
}

/// The desired attributes of a bootstrap step: its cloud-free name and what it ensures.
pub fn desired(v: &VaultSpec, what: &VaultItem) -> Option<(String, Map<String, Value>)> {
    let member = |m: &str| v.member(m).map(|m| m.name.clone());
    Some(match what {
        VaultItem::Init => (
            v.name.clone(),
            attrs(json!({
                "initialized": true,
                "shares": v.shares,
                "threshold": v.threshold,
                "seal": v.seal.kind_name(),
            })),
        ),
        VaultItem::UnsealKeys => {
            let buckets: Vec<&str> = v.store.iter().map(|b| b.bucket.as_str()).collect();
            (
                v.name.clone(),
                attrs(json!({"buckets": buckets, "prefix": v.prefix})),
            )
        }
        VaultItem::Unseal(m) => (member(m)?, attrs(json!({"sealed": false}))),
        VaultItem::Join(m) => (
            member(m)?,
            attrs(json!({"joined": true, "leader_api_addr": v.planned_leader_api_addr()})),
        ),
        VaultItem::Raft => {
            let mut voters: Vec<&str> = v.members.iter().map(|m| m.name.as_str()).collect();
            voters.sort();
            (v.name.clone(), attrs(json!({ "voters": voters })))
        }
        _ => return None,
    })
}

/// Waits until the server at `c` answers its health endpoint.
async fn answering(c: &Client) -> Result<super::Health, OpError> {
    poll(
        &format!("waiting for {}", c.addr()),
        STEP_TIMEOUT,
        || async { c.health().await.map_err(|e| e.to_string()) },
    )
    .await
}

fn store_err(e: super::store::StoreError) -> OpError {
    OpError::fatal(e.to_string())
}

/// Unseals the server at `c` with the stored keys, unless it is unsealed already, and waits
/// until it reports unsealed (a joining member finishes joining first).
pub async fn unseal_member(
    c: &Client,
    store: &UnsealStore,
    aws: &crate::aws::Aws,
) -> Result<(), OpError> {
    answering(c).await?;
    let status = c.seal_status().await.map_err(OpError::from)?;
    if !status.sealed {
        return Ok(());
    }
    if status.progress > 0 {
        c.unseal_reset().await.map_err(OpError::from)?;
    }
    let (keys, _) = store.load(aws).await.map_err(store_err)?;
    for share in &keys.shares {
        let s = c.unseal(share).await.map_err(OpError::from)?;
        // Unsealed, or the threshold was reached (progress back to 0): a joining member
        // finishes joining before it reports unsealed.
        if !s.sealed || s.progress == 0 {
            break;
        }
    }
    drop(keys);
    poll(
        &format!("waiting for {} to unseal", c.addr()),
        STEP_TIMEOUT,
        || async {
            match c.seal_status().await {
                Ok(s) if !s.sealed => Ok(()),
                Ok(s) => Err(format!("sealed, progress {}/{}", s.progress, s.t)),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// Refuses an initialised cluster whose seal is not the topology's: vaultform does not
/// migrate seals (docs/operations.md, Seals, says how by hand).
pub fn refuse_seal_change(v: &VaultSpec, status: &super::SealStatus) -> Result<(), OpError> {
    let want = v.seal.kind_name();
    if status.seal_type.is_empty() || status.seal_type == want {
        return Ok(());
    }
    Err(OpError::fatal(format!(
        "{} is initialised with a {} seal, the topology asks for {want}; vaultform does not migrate seals: migrate by hand (`{} operator unseal -migrate`, docs/operations.md \"Seals\") or put `seal \"{}\"` back",
        v.name, status.seal_type, v.binary, status.seal_type
    )))
}

/// Waits, with backoff, until a member with an auto-unseal seal has unsealed itself: no key
/// is submitted (the stored keys are recovery keys, which cannot unseal).
pub async fn unsealed_by_itself(c: &Client, seal: &str) -> Result<Recorded, OpError> {
    answering(c).await?;
    tracing::info!(
        "{}: waiting for it to unseal itself through its {seal} seal",
        c.addr()
    );
    poll(
        &format!(
            "waiting for {} to unseal itself through its {seal} seal",
            c.addr()
        ),
        STEP_TIMEOUT,
        || async {
            match c.seal_status().await {
                Ok(s) if !s.sealed => Ok(()),
                Ok(s) if !s.initialized => Err("not initialised (or not joined) yet".to_string()),
                Ok(_) => Err(format!("still sealed: is its {seal} seal reachable?")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(Recorded::default())
}

#[async_trait::async_trait]
impl Provider for VaultInit {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, _) = self.vaults.part(&rs.address)?;
        let c = client(v, &v.member_url(v.primary()))?;
        Ok(match c.seal_status().await {
            Ok(s) if s.initialized => Observed::Present {
                attrs: attrs(json!({
                    "initialized": true,
                    "shares": s.n,
                    "threshold": s.t,
                    "seal": s.seal_type,
                })),
                delete_blocker: None,
            },
            Ok(_) => Observed::Present {
                attrs: attrs(json!({"initialized": false})),
                delete_blocker: None,
            },
            // Not running: what was recorded (the member shows as stopped).
            Err(_) => Observed::Present {
                attrs: rs.attributes.clone(),
                delete_blocker: None,
            },
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, _) = self.vaults.part(&d.address)?;
        let count = |key: &str| {
            d.attrs
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| OpError::fatal(format!("missing attribute {key}")))
        };
        let (shares, threshold) = (count("shares")?, count("threshold")?);
        let primary = v.primary();
        let c = client(v, &v.member_url(primary))?;
        answering(&c).await?;
        let store = v.unseal_store(cx.outputs)?;
        let status = settled(&c).await?;
        if status.initialized {
            refuse_seal_change(v, &status)?;
            match store.load(cx.aws).await {
                // Adopt an initialised cluster only when its keys are where vaultform looks.
                Ok(_) if status.n != shares || status.t != threshold => {
                    return Err(OpError::fatal(format!(
                        "the cluster has {} shares with threshold {}, the topology asks for {} and {}; vaultform does not rekey (run `{} operator rekey`)",
                        status.n, status.t, shares, threshold, v.binary
                    )));
                }
                Ok(_) => return Ok(Recorded::default()),
                Err(e) if !self.lost_in_interrupted_init(cx, d, v, &store).await => {
                    return Err(OpError::fatal(format!(
                        "{} is initialised, but {e}; vaultform will not touch a cluster whose keys it cannot read",
                        primary.name
                    )));
                }
                Err(_) => {
                    tracing::warn!(
                        "{}: the init of an interrupted apply finished after it was killed, and its keys are nowhere; the cluster is sealed and has held no data: wiping {}'s raft data and initialising again",
                        d.address,
                        primary.name
                    );
                    // What the killed run stored of its keys is of no use: removed, so that
                    // the new keys can be stored.
                    store
                        .delete_all(cx.aws)
                        .await
                        .map_err(|e| OpError::retryable(e.to_string()))?;
                    // Only the primary holds that cluster: no member can have joined it, since
                    // joining needs an unsealed leader.
                    self.data.wipe(cx, v, primary).await?;
                    answering(&c).await?;
                }
            }
        }
        for b in &store.buckets {
            if store.has_keys(cx.aws, b).await {
                return Err(OpError::fatal(format!(
                    "{} is not initialised, but bucket {} already holds unseal keys (of an earlier initialisation?); vaultform will not overwrite them: delete them if that cluster is gone",
                    primary.name, b.bucket
                )));
            }
        }
        // The secrets `sys/init` makes exist nowhere else until stored: check first that every
        // bucket takes an object through its key.
        store.probe(cx.aws).await.map_err(|e| {
            OpError::fatal(format!(
                "the unseal store cannot take the keys ({e}); nothing was initialised"
            ))
        })?;
        // From here on the secrets exist only in memory until stored: nothing is retried
        // blindly, and every bucket that can take them does.
        // An auto-unseal seal unseals the server itself: its init makes recovery keys, kept
        // in the store exactly as shares are.
        let resp = if v.seal.auto_unseal() {
            c.init_recovery(shares, threshold).await
        } else {
            c.init(shares, threshold).await
        }
        .map_err(|e| OpError::fatal(e.to_string()))?;
        let keys = Keys {
            shares: if v.seal.auto_unseal() {
                resp.recovery_keys_base64
            } else {
                resp.keys_base64
            },
            root_token: resp.root_token,
        };
        store_everywhere(cx, &store, &keys).await?;
        Ok(Recorded::default())
    }

    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        // The data goes with the members; the keys with `unseal-keys`.
        Ok(())
    }
}

/// Stores freshly made secrets in every bucket, retrying each a few times; succeeds when at
/// least one bucket holds them (`unseal-keys` repairs the others).
async fn store_everywhere(cx: &Cx<'_>, store: &UnsealStore, keys: &Keys) -> Result<(), OpError> {
    let mut failures = Vec::new();
    for b in &store.buckets {
        let r = retry::retry(Backoff::OPERATION.attempts(5), || async {
            store
                .store_in(cx.aws, b, keys)
                .await
                .map_err(|e| OpError::retryable(e.to_string()))
        })
        .await;
        if let Err(e) = r {
            failures.push(e.message);
        }
    }
    if failures.len() == store.buckets.len() {
        return Err(OpError::fatal(format!(
            "the cluster was initialised but no bucket could store its keys ({}); they are lost: destroy the cluster and apply again",
            failures.join("; ")
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Provider for UnsealKeys {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, _) = self.0.part(&rs.address)?;
        let Ok(store) = v.unseal_store(cx.outputs) else {
            return Ok(Observed::Present {
                attrs: rs.attributes.clone(),
                delete_blocker: None,
            });
        };
        let mut present = Vec::new();
        for b in &store.buckets {
            if store.has_keys(cx.aws, b).await {
                present.push(Value::String(b.bucket.clone()));
            }
        }
        Ok(Observed::Present {
            attrs: attrs(json!({"buckets": present, "prefix": store.prefix})),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, _) = self.0.part(&d.address)?;
        let store = v.unseal_store(cx.outputs)?;
        let mut missing = Vec::new();
        for b in &store.buckets {
            if !store.has_keys(cx.aws, b).await {
                missing.push(b.clone());
            }
        }
        if !missing.is_empty() {
            let (keys, from) = store.load(cx.aws).await.map_err(store_err)?;
            let from = from.bucket.clone();
            for b in &missing {
                store.store_in(cx.aws, b, &keys).await.map_err(|e| {
                    OpError::retryable(format!("copying the keys from {from}: {e}"))
                })?;
            }
        }
        Ok(Recorded {
            ids: store.ids(),
            outputs: BTreeMap::new(),
        })
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let store = UnsealStore::from_ids(cx.stack, &rs.ids);
        store
            .delete_all(cx.aws)
            .await
            .map_err(|e| OpError::retryable(e.to_string()))
    }
}

#[async_trait::async_trait]
impl Provider for VaultUnseal {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, m) = self.0.member(&rs.address)?;
        let sealed = match client(v, &v.member_url(m))?.seal_status().await {
            Ok(s) => s.sealed,
            // Not running: sealed when it starts.
            Err(_) => true,
        };
        Ok(Observed::Present {
            attrs: attrs(json!({"sealed": sealed})),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, m) = self.0.member(&d.address)?;
        let c = client(v, &v.member_url(m))?;
        if v.seal.auto_unseal() {
            return unsealed_by_itself(&c, v.seal.kind_name()).await;
        }
        let store = v.unseal_store(cx.outputs)?;
        unseal_member(&c, &store, cx.aws).await?;
        Ok(Recorded::default())
    }

    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for RaftJoin {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, m) = self.0.member(&rs.address)?;
        let joined = match client(v, &v.member_url(m))?.seal_status().await {
            Ok(s) => s.initialized,
            // Not running: joined if its raft data is still there.
            Err(_) => v
                .member_dir(&m.name)
                .join("data")
                .join("raft")
                .join("raft.db")
                .exists(),
        };
        let mut a = rs.attributes.clone();
        a.insert("joined".into(), Value::Bool(joined));
        Ok(Observed::Present {
            attrs: a,
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, m) = self.0.member(&d.address)?;
        let c = client(v, &v.member_url(m))?;
        answering(&c).await?;
        if c.seal_status().await.map_err(OpError::from)?.initialized {
            return Ok(Recorded::default());
        }
        // On Kubernetes the plan names the leader's load balancer; its DNS name is recorded.
        let leader_addr = match str_attr(&d.attrs, "leader_api_addr")? {
            planned if planned.contains("{{") => v.leader_api_addr(),
            planned => planned.to_string(),
        };
        let leader = client(v, &leader_addr)?;
        // The leader serves through its load balancer; autopilot then promotes joined members
        // after one second of stability instead of ten.
        poll(
            &format!("waiting for the leader at {leader_addr}"),
            STEP_TIMEOUT,
            || async {
                match leader.health().await {
                    Ok(h) if h.status == 200 || h.status == 429 => Ok(()),
                    Ok(h) => Err(format!("health {}", h.status)),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        let token = super::root::token(cx.aws, cx.outputs, v).await?;
        poll("setting autopilot", STEP_TIMEOUT, || async {
            leader
                .autopilot_stabilization(&token, 1)
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        drop(token);
        // The joining member verifies the leader's certificate against the cluster's CA.
        let leader_ca = v
            .tls
            .as_ref()
            .map(|_| std::fs::read_to_string(v.ca_file()))
            .transpose()
            .map_err(|e| OpError::fatal(format!("reading {}: {e}", v.ca_file().display())))?;
        poll(
            &format!("joining {} through {leader_addr}", m.name),
            STEP_TIMEOUT,
            || async {
                match c.raft_join(&leader_addr, leader_ca.as_deref()).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("not joined yet".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
        Ok(Recorded::default())
    }

    /// Removes the member from the raft configuration, when the cluster answers (a member
    /// dropped from the topology); a cluster being destroyed as a whole may not.
    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Ok((v, VaultItem::Join(name))) = self.0.part(&rs.address) else {
            return Ok(());
        };
        let attempt = async {
            let token = super::root::token(cx.aws, cx.outputs, v).await.ok()?;
            for url in cluster_urls(v) {
                let Ok(c) = v.client(&url) else {
                    continue;
                };
                if c.remove_peer(&token, name).await.is_ok() {
                    return Some(());
                }
            }
            None
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), attempt).await;
        Ok(())
    }
}

/// How long a read of the raft configuration waits for an election to name a leader: a few
/// election timeouts.
const ELECTION_WAIT: Duration = Duration::from_secs(10);

#[async_trait::async_trait]
impl Provider for RaftVerify {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, _) = self.0.part(&rs.address)?;
        // An election in progress (a member just restarted) names no leader for a moment:
        // while some member answers unsealed (200 active, 429 standby, 472/473 the other
        // standbys), the view is waited for that long, not reported as a cluster without
        // voters. A cluster where no member is unsealed has none.
        let tls = v.client_tls();
        let urls = cluster_urls(v);
        let voters = match super::root::token(cx.aws, cx.outputs, v).await {
            Ok(token) => poll("one raft leader", ELECTION_WAIT, || async {
                match raft_view(&tls, &urls, &token).await {
                    Ok((voters, 1)) => Ok(voters),
                    Ok((_, n)) => Err(format!("{n} leaders")),
                    Err(e) => {
                        match first_with_health(&tls, &urls, |s| matches!(s, 200 | 429 | 472 | 473))
                            .await
                        {
                            Some(_) => Err(e),
                            None => Ok(Vec::new()),
                        }
                    }
                }
            })
            .await
            .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        Ok(Observed::Present {
            attrs: attrs(json!({ "voters": voters })),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, _) = self.0.part(&d.address)?;
        let token = super::root::token(cx.aws, cx.outputs, v).await?;
        wait_until_whole(v, &token).await?;
        Ok(Recorded::default())
    }

    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        Ok(())
    }
}
