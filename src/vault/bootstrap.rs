//! The ordered bootstrap as resource kinds, each idempotent: initialise the primary and store
//! its secrets in every bucket of the unseal store (`vault-init`), keep every bucket holding
//! them (`unseal-keys`), unseal a member (`vault-unseal`), join a member through the primary's
//! load balancer (`raft-join`), and wait until every member is a voter under one leader
//! (`raft-verify`). Reads observe the servers, so a restarted (sealed) member or one whose data
//! is gone shows as drift that apply repairs. Every wait polls with backoff.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::spec::VaultSpec;
use super::store::{Keys, StoreBucket, UnsealStore};
use super::{Client, Secret, TlsSettings};
use crate::resources::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;

pub struct VaultInit;
pub struct UnsealKeys;
pub struct VaultUnseal;
pub struct RaftJoin;
pub struct RaftVerify;

/// How long a member may take to answer, unseal or join.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the cluster may take to promote every member to voter (autopilot).
const VOTERS_TIMEOUT: Duration = Duration::from_secs(180);

fn client(url: &str) -> Result<Client, OpError> {
    Client::new(url, &TlsSettings::default()).map_err(|e| OpError::fatal(e.to_string()))
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Polls `probe` with exponential backoff (50 ms to 500 ms) until it yields a value, or fails
/// with the last reason after `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(OpError::fatal(format!(
                    "{what}: gave up after {}s: {why}",
                    timeout.as_secs()
                )));
            }
            Err(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
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

/// The member named by the last segment of `address` after `marker`.
fn member<'a>(
    v: &'a VaultSpec,
    address: &str,
    marker: &str,
) -> Result<&'a super::spec::MemberSpec, OpError> {
    let name = crate::resources::last_segment(address, marker)
        .ok_or_else(|| OpError::fatal(format!("{address}: not a {marker} address")))?;
    v.member(name)
        .ok_or_else(|| OpError::fatal(format!("{name}: no such member of {}", v.name)))
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

/// The raft configuration as seen from the first of `urls` that answers: voters (sorted) and
/// the number of leaders.
pub async fn raft_view(urls: &[String], token: &Secret) -> Result<(Vec<String>, usize), String> {
    let servers = raft_servers(urls, token).await?;
    let mut voters: Vec<String> = servers
        .iter()
        .filter(|s| s.voter)
        .map(|s| s.node_id.clone())
        .collect();
    voters.sort();
    let leaders = servers.iter().filter(|s| s.leader).count();
    Ok((voters, leaders))
}

/// The raft configuration from the first of `urls` that answers.
pub async fn raft_servers(
    urls: &[String],
    token: &Secret,
) -> Result<Vec<super::RaftServer>, String> {
    let mut why = String::from("no address to ask");
    for url in urls {
        let Ok(c) = Client::new(url, &TlsSettings::default()) else {
            continue;
        };
        match c.raft_configuration(token).await {
            Ok(servers) => return Ok(servers),
            Err(e) => why = e.to_string(),
        }
    }
    Err(why)
}

/// The first of `urls` whose health code `accept` takes (200 active, 429 standby, ...).
pub async fn first_with_health(urls: &[String], accept: impl Fn(u16) -> bool) -> Option<Client> {
    for url in urls {
        let Ok(c) = Client::new(url, &TlsSettings::default()) else {
            continue;
        };
        if c.health().await.is_ok_and(|h| accept(h.status)) {
            return Some(c);
        }
    }
    None
}

/// Where to ask about the whole cluster: the front endpoint, then every member.
pub fn cluster_urls(v: &VaultSpec) -> Vec<String> {
    v.front_url()
        .into_iter()
        .chain(v.members.iter().map(|m| m.api_url()))
        .collect()
}

/// Waits (polling with backoff) until every member is a voter under one leader, and the leader
/// serves as the active node.
pub async fn wait_until_whole(v: &VaultSpec, token: &Secret) -> Result<(), OpError> {
    let urls = cluster_urls(v);
    let member_urls: Vec<String> = v.members.iter().map(|m| m.api_url()).collect();
    let mut want: Vec<String> = v.members.iter().map(|m| m.name.clone()).collect();
    want.sort();
    poll(
        "waiting until every member is a voter under one active leader",
        VOTERS_TIMEOUT,
        || async {
            match raft_view(&urls, token).await {
                Ok((voters, 1)) if voters == want => first_with_health(&member_urls, |s| s == 200)
                    .await
                    .map(|_| ())
                    .ok_or_else(|| "no member is active yet".to_string()),
                Ok((voters, leaders)) => Err(format!(
                    "voters [{}], {leaders} leader(s)",
                    voters.join(", ")
                )),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

#[async_trait::async_trait]
impl Provider for VaultInit {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let v = cx.vault(&rs.address)?;
        let c = client(&v.primary().api_url())?;
        Ok(match c.seal_status().await {
            Ok(s) if s.initialized => Observed::Present {
                attrs: attrs(json!({"initialized": true, "shares": s.n, "threshold": s.t})),
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
        let v = cx.vault(&d.address)?;
        let primary = v.primary();
        let c = client(&primary.api_url())?;
        answering(&c).await?;
        let store = v.unseal_store(cx.outputs)?;
        let status = c.seal_status().await.map_err(OpError::from)?;
        if status.initialized {
            if status.n != v.shares || status.t != v.threshold {
                return Err(OpError::fatal(format!(
                    "the cluster has {} shares with threshold {}, the topology asks for {} and {}; vaultform does not rekey (run `{} operator rekey`)",
                    status.n, status.t, v.shares, v.threshold, v.binary
                )));
            }
            // Adopt an initialised cluster only when its keys are where vaultform looks.
            store.load(cx.aws).await.map_err(|e| {
                OpError::fatal(format!(
                    "{} is initialised, but {e}; vaultform will not touch a cluster whose keys it cannot read",
                    primary.name
                ))
            })?;
            return Ok(Recorded::default());
        }
        for b in &store.buckets {
            if store.has_keys(cx.aws, b).await {
                return Err(OpError::fatal(format!(
                    "{} is not initialised, but bucket {} already holds unseal keys (of an earlier initialisation?); vaultform will not overwrite them: delete them if that cluster is gone",
                    primary.name, b.bucket
                )));
            }
        }
        // From here on the secrets exist only in memory until stored: nothing is retried
        // blindly, and every bucket that can take them does.
        let resp = c
            .init(v.shares, v.threshold)
            .await
            .map_err(|e| OpError::fatal(e.to_string()))?;
        let keys = Keys {
            shares: resp.keys_base64,
            root_token: resp.root_token,
        };
        store_everywhere(cx, &store, &keys).await?;
        Ok(Recorded::default())
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _rs: &ResourceState,
        d: &Desired,
    ) -> Result<Recorded, OpError> {
        self.create(cx, d).await
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
        let r = crate::engine::apply::with_retries(5, || async {
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

fn store_ids(store: &UnsealStore) -> BTreeMap<String, String> {
    let buckets: Vec<Value> = store
        .buckets
        .iter()
        .map(|b| json!({"region": b.region, "bucket": b.bucket}))
        .collect();
    BTreeMap::from([
        ("buckets".to_string(), Value::Array(buckets).to_string()),
        ("prefix".to_string(), store.prefix.clone()),
    ])
}

#[async_trait::async_trait]
impl Provider for UnsealKeys {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let v = cx.vault(&rs.address)?;
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
        let v = cx.vault(&d.address)?;
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
            ids: store_ids(&store),
            outputs: BTreeMap::new(),
        })
    }

    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        #[derive(serde::Deserialize)]
        struct B {
            region: String,
            bucket: String,
        }
        let buckets: Vec<B> = rs
            .ids
            .get("buckets")
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default();
        let prefix = rs.ids.get("prefix").cloned().unwrap_or_default();
        let store = UnsealStore::new(
            cx.stack,
            "",
            &BTreeMap::new(),
            buckets
                .into_iter()
                .map(|b| StoreBucket {
                    region: b.region,
                    bucket: b.bucket,
                    key: String::new(),
                })
                .collect(),
            &prefix,
            0,
        );
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

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let v = cx.vault(&rs.address)?;
        let m = member(v, &rs.address, "unseal.")?;
        let sealed = match client(&m.api_url())?.seal_status().await {
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
        let v = cx.vault(&d.address)?;
        let m = member(v, &d.address, "unseal.")?;
        let store = v.unseal_store(cx.outputs)?;
        unseal_member(&client(&m.api_url())?, &store, cx.aws).await?;
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

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let v = cx.vault(&rs.address)?;
        let m = member(v, &rs.address, "join.")?;
        let joined = match client(&m.api_url())?.seal_status().await {
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
        let v = cx.vault(&d.address)?;
        let m = member(v, &d.address, "join.")?;
        let c = client(&m.api_url())?;
        answering(&c).await?;
        if c.seal_status().await.map_err(OpError::from)?.initialized {
            return Ok(Recorded::default());
        }
        let leader_addr = v.leader_api_addr();
        let leader = client(&leader_addr)?;
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
        let store = v.unseal_store(cx.outputs)?;
        let token = store.load_root(cx.aws).await.map_err(store_err)?;
        poll("setting autopilot", STEP_TIMEOUT, || async {
            leader
                .autopilot_stabilization(&token, 1)
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        drop(token);
        poll(
            &format!("joining {} through {leader_addr}", m.name),
            STEP_TIMEOUT,
            || async {
                match c.raft_join(&leader_addr).await {
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
        let Ok(v) = cx.vault(&rs.address) else {
            return Ok(());
        };
        let Some(name) = crate::resources::last_segment(&rs.address, "join.") else {
            return Ok(());
        };
        let Ok(store) = v.unseal_store(cx.outputs) else {
            return Ok(());
        };
        let attempt = async {
            let token = store.load_root(cx.aws).await.ok()?;
            for url in cluster_urls(v) {
                let Ok(c) = Client::new(&url, &TlsSettings::default()) else {
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

#[async_trait::async_trait]
impl Provider for RaftVerify {
    fn service(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let v = cx.vault(&rs.address)?;
        let voters = match v.unseal_store(cx.outputs) {
            Ok(store) => match store.load_root(cx.aws).await {
                Ok(token) => match raft_view(&cluster_urls(v), &token).await {
                    Ok((voters, 1)) => voters,
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        Ok(Observed::Present {
            attrs: attrs(json!({ "voters": voters })),
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let v = cx.vault(&d.address)?;
        let store = v.unseal_store(cx.outputs)?;
        let token = store.load_root(cx.aws).await.map_err(store_err)?;
        wait_until_whole(v, &token).await?;
        Ok(Recorded::default())
    }

    async fn delete(&self, _cx: &Cx<'_>, _rs: &ResourceState) -> Result<(), OpError> {
        Ok(())
    }
}
