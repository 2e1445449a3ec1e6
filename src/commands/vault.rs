//! `status`, `unseal`, `drill failover` and `snapshot save|restore`: operating a running Vault
//! cluster with the secrets from the unseal store (decrypted in memory, never shown).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stack::{Session, lock, open};
use super::{Error, Outcome};
use crate::aws::Aws;
use crate::cli::StateArgs;
use crate::resources::OpError;
use crate::runtime::{haproxy, local, process};
use crate::topology::HealthMode;
use crate::ui::Printer;
use crate::vault::bootstrap::{
    cluster_urls, first_with_health, raft_servers, unseal_member, wait_until_whole,
};
use crate::vault::spec::VaultSpec;
use crate::vault::store::UnsealStore;
use crate::vault::{Client, RaftServer, Secret, TlsSettings};

fn vault_error(message: impl Into<String>, help: &str) -> Error {
    Error::Vault {
        message: message.into(),
        help: help.to_string(),
    }
}

fn op(e: OpError) -> Error {
    vault_error(e.message, "`vaultform status FILE` shows each member")
}

fn client(url: &str) -> Result<Client, Error> {
    Client::new(url, &TlsSettings::default()).map_err(|e| vault_error(e.to_string(), ""))
}

/// A session with its state's outputs and AWS clients: what the Vault commands need.
struct Ops {
    session: Session,
    aws: Aws,
    outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ops {
    async fn open(file: &Path, state: &StateArgs, printer: &Printer) -> Result<Option<Ops>, Error> {
        let Some(session) = open(file, None, state, None, printer)? else {
            return Ok(None);
        };
        let outputs = session.load_state().await?.outputs();
        let aws = Aws::connect(&session.aws_settings()).await;
        Ok(Some(Ops {
            session,
            aws,
            outputs,
        }))
    }

    /// The topology's clusters (all of them, or the one named).
    fn vaults(&self, only: Option<&str>) -> Result<Vec<VaultSpec>, Error> {
        let all: Vec<VaultSpec> = self
            .session
            .vaults()
            .into_values()
            .filter(|v| only.is_none_or(|o| o == v.name))
            .collect();
        if all.is_empty() {
            let names: Vec<String> = self.session.vaults().into_keys().collect();
            return Err(match only {
                Some(o) if !names.is_empty() => vault_error(
                    format!("the topology has no Vault cluster \"{o}\""),
                    &format!("its Vault clusters: {}", names.join(", ")),
                ),
                _ => vault_error(
                    "the topology declares no Vault cluster",
                    "declare one with `vault \"NAME\" { ... }`",
                ),
            });
        }
        Ok(all)
    }

    /// The one cluster a command acts on: the one named, or the only one.
    fn one(&self, only: Option<&str>) -> Result<VaultSpec, Error> {
        let mut all = self.vaults(only)?;
        if all.len() > 1 {
            let names: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
            return Err(vault_error(
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

    fn store(&self, v: &VaultSpec) -> Result<UnsealStore, Error> {
        v.unseal_store(&self.outputs).map_err(op)
    }

    async fn root_token(&self, v: &VaultSpec) -> Result<Secret, Error> {
        self.store(v)?
            .load_root(&self.aws)
            .await
            .map_err(|e| vault_error(e.to_string(), "has the cluster been applied?"))
    }
}

/// One member, as `status` reports it.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub address: String,
    pub reachable: bool,
    pub initialized: bool,
    pub sealed: bool,
    /// `active`, `standby`, `sealed`, `uninitialized` or `down`.
    pub role: String,
    pub voter: bool,
    pub leader: bool,
    pub applied_index: Option<u64>,
    /// Each load balancer in front of the member, and whether it sends traffic to it.
    pub load_balancers: BTreeMap<String, bool>,
}

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub members: Vec<MemberStatus>,
    /// The front endpoint and the member it serves.
    pub front: Option<String>,
    pub front_serves: Option<String>,
    /// Each bucket of the unseal store, and whether it holds the keys.
    pub unseal_store: Vec<StoreStatus>,
    pub healthy: bool,
}

#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub bucket: String,
    pub region: String,
    pub holds_keys: bool,
}

async fn member_status(m: &crate::vault::spec::MemberSpec, raft: &[RaftServer]) -> MemberStatus {
    let c = Client::new(&m.api_url(), &TlsSettings::default()).ok();
    let health = match &c {
        Some(c) => c.health().await.ok(),
        None => None,
    };
    let leader = match (&c, &health) {
        (Some(c), Some(_)) => c.leader().await.ok(),
        _ => None,
    };
    let role = match &health {
        None => "down",
        Some(h) if !h.initialized => "uninitialized",
        Some(h) if h.sealed => "sealed",
        Some(h) if h.status == 200 => "active",
        Some(_) => "standby",
    };
    let server = raft.iter().find(|s| s.node_id == m.name);
    MemberStatus {
        name: m.name.clone(),
        address: format!("{}:{}", m.address, m.api_port),
        reachable: health.is_some(),
        initialized: health.as_ref().is_some_and(|h| h.initialized),
        sealed: health.as_ref().is_none_or(|h| h.sealed),
        role: role.to_string(),
        voter: server.is_some_and(|s| s.voter),
        leader: server.is_some_and(|s| s.leader),
        applied_index: leader.and_then(|l| l.raft_applied_index),
        load_balancers: BTreeMap::new(),
    }
}

/// Whether a load balancer sends traffic to each member: HAProxy's own view from its stats
/// socket, or else its health rule applied to the members' health codes.
async fn load_balancer_view(
    v: &VaultSpec,
    lb: &str,
    members: &[MemberStatus],
) -> BTreeMap<String, bool> {
    let Some(p) = v.proxies.get(lb) else {
        return BTreeMap::new();
    };
    if let Ok(view) = haproxy::api_servers_up(&v.proxy_dir(lb).join("admin.sock")).await
        && !view.is_empty()
    {
        return view;
    }
    p.backends
        .iter()
        .map(|b| {
            let up = members
                .iter()
                .find(|m| m.name == b.name)
                .is_some_and(|m| match p.health {
                    HealthMode::Active => m.role == "active",
                    HealthMode::Unsealed => m.role == "active" || m.role == "standby",
                });
            (b.name.clone(), up)
        })
        .collect()
}

async fn cluster_status(ops: &Ops, v: &VaultSpec) -> ClusterStatus {
    let raft = match ops.root_token(v).await {
        Ok(token) => raft_servers(&cluster_urls(v), &token)
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut members =
        futures::future::join_all(v.members.iter().map(|m| member_status(m, &raft))).await;
    let mut views = BTreeMap::new();
    for lb in v.proxies.keys() {
        views.insert(lb.clone(), load_balancer_view(v, lb, &members).await);
    }
    for m in &mut members {
        for (lb, view) in &views {
            if let Some(up) = view.get(&m.name) {
                m.load_balancers.insert(lb.clone(), *up);
            }
        }
    }
    let front_serves = v.front.as_ref().and_then(|f| {
        views
            .get(f)?
            .iter()
            .find(|(_, up)| **up)
            .map(|(name, _)| name.clone())
    });
    let leaders = members.iter().filter(|m| m.leader).count();
    let healthy = leaders == 1
        && members.iter().any(|m| m.role == "active")
        && members
            .iter()
            .all(|m| m.voter && (m.role == "active" || m.role == "standby"));
    let mut unseal_store = Vec::new();
    if let Ok(store) = ops.store(v) {
        for b in &store.buckets {
            unseal_store.push(StoreStatus {
                bucket: b.bucket.clone(),
                region: b.region.clone(),
                holds_keys: store.has_keys(&ops.aws, b).await,
            });
        }
    }
    ClusterStatus {
        name: v.name.clone(),
        members,
        front: v.front.clone(),
        front_serves,
        unseal_store,
        healthy,
    }
}

fn render_status(c: &ClusterStatus) -> String {
    let mut rows = vec![[
        "MEMBER".to_string(),
        "ADDRESS".into(),
        "ROLE".into(),
        "SEALED".into(),
        "VOTER".into(),
        "LEADER".into(),
        "APPLIED".into(),
        "LOAD BALANCERS".into(),
    ]];
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    for m in &c.members {
        let lbs: Vec<String> = m
            .load_balancers
            .iter()
            .map(|(lb, up)| format!("{lb} ({})", if *up { "up" } else { "down" }))
            .collect();
        rows.push([
            m.name.clone(),
            m.address.clone(),
            m.role.clone(),
            yes(m.sealed),
            yes(m.voter),
            yes(m.leader),
            m.applied_index.map(|i| i.to_string()).unwrap_or("-".into()),
            lbs.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("Vault cluster {}:\n", c.name);
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(&format!("  {}\n", cells.join("  ").trim_end()));
    }
    if let Some(f) = &c.front {
        out.push_str(&format!(
            "  front endpoint {f} serves: {}\n",
            c.front_serves.as_deref().unwrap_or("no member")
        ));
    }
    let store: Vec<String> = c
        .unseal_store
        .iter()
        .map(|b| {
            format!(
                "{} ({}): {}",
                b.bucket,
                b.region,
                if b.holds_keys { "keys" } else { "NO KEYS" }
            )
        })
        .collect();
    if !store.is_empty() {
        out.push_str(&format!("  unseal store: {}\n", store.join(", ")));
    }
    out.push_str(if c.healthy {
        "  healthy: one leader, every member an unsealed voter\n"
    } else {
        "  DEGRADED: `vaultform unseal FILE` or `vaultform apply FILE` repairs sealed or stopped members\n"
    });
    out
}

pub async fn status(
    file: &Path,
    state: &StateArgs,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let mut clusters = Vec::new();
    for v in ops.vaults(vault)? {
        clusters.push(cluster_status(&ops, &v).await);
    }
    if json {
        printer.data(&format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({ "vaults": clusters }))
                .unwrap_or_default()
        ));
    } else {
        let text: Vec<String> = clusters.iter().map(render_status).collect();
        printer.data(&text.join("\n"));
    }
    Ok(if clusters.iter().all(|c| c.healthy) {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// Starts a stopped local member again (same configuration) and unseals it from the store.
async fn revive(
    ops: &Ops,
    v: &VaultSpec,
    m: &crate::vault::spec::MemberSpec,
) -> Result<(), OpError> {
    // Only what apply created is started again: nothing the state would not know to stop.
    let address = crate::graph::address::vault(&v.name, &format!("member.{}", m.name));
    if !ops.outputs.contains_key(&address) {
        return Err(OpError::fatal(format!(
            "{address} is not in the state: `vaultform apply` creates it"
        )));
    }
    if v.local {
        local::start_member(v, m).await?;
    }
    let store = v.unseal_store(&ops.outputs)?;
    let c = Client::new(&m.api_url(), &TlsSettings::default())
        .map_err(|e| OpError::fatal(e.to_string()))?;
    unseal_member(&c, &store, &ops.aws).await
}

pub async fn unseal(
    file: &Path,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&ops.session, "unseal", printer).await?;
    let mut failed = false;
    for v in ops.vaults(vault)? {
        let started = Instant::now();
        let results =
            futures::future::join_all(v.members.iter().map(|m| revive(&ops, &v, m))).await;
        for (m, r) in v.members.iter().zip(results) {
            match r {
                Ok(()) => printer.message(&format!("{}/{}: unsealed", v.name, m.name)),
                Err(e) => {
                    failed = true;
                    printer.message(&format!("{}/{}: {}", v.name, m.name, e.message));
                }
            }
        }
        if failed {
            continue;
        }
        // Unsealed is not yet serving: wait for the leader and every voter.
        let token = ops.root_token(&v).await?;
        wait_until_whole(&v, &token).await.map_err(op)?;
        printer.message(&format!(
            "{}: every member unsealed, one leader and every member a voter, in {:.1}s",
            v.name,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(if failed {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

/// How `drill failover` takes the leader away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillMethod {
    /// SIGKILL the leader's server: a crash or the loss of its region.
    Kill,
    /// SIGTERM: a clean shutdown.
    Stop,
    /// `sys/step-down`: the leader stays up as a standby.
    StepDown,
}

#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub event: &'static str,
    pub vault: String,
    pub method: String,
    pub old_leader: String,
    pub new_leader: String,
    /// From taking the leader away until the front endpoint answered 200 from the new one.
    pub failover_ms: u64,
    /// From then until the old member was back, unsealed, and every member a voter.
    pub restore_ms: u64,
}

/// Which member the front endpoint serves as active, if any.
async fn front_active(front: &Client, v: &VaultSpec) -> Option<String> {
    let h = front.health().await.ok()?;
    if h.status != 200 {
        return None;
    }
    let l = front.leader().await.ok()?;
    if !l.is_self {
        return None;
    }
    v.members
        .iter()
        .find(|m| m.api_url() == l.leader_address.trim_end_matches('/'))
        .map(|m| m.name.clone())
}

pub async fn drill_failover(
    file: &Path,
    state: &StateArgs,
    method: DrillMethod,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&ops.session, "drill", printer).await?;
    let v = ops.one(vault)?;
    let front_url = front_of(&v)?;
    let front = client(&front_url)?;
    let token = ops.root_token(&v).await?;
    let old = front_active(&front, &v).await.ok_or_else(|| {
        vault_error(
            format!("the front endpoint {front_url} serves no active member"),
            "`vaultform status FILE` shows why; the drill needs a healthy cluster",
        )
    })?;
    let old_member = v.member(&old).cloned().expect("a member");
    if method != DrillMethod::StepDown && !v.local {
        return Err(vault_error(
            "stopping a member is available on the local runtime only",
            "use `--method step-down`",
        ));
    }
    printer.message(&format!(
        "Drill: taking the leader {old} away ({method:?}); watching {front_url}."
    ));
    let started = Instant::now();
    match method {
        DrillMethod::Kill | DrillMethod::Stop => {
            let rec = local::member_process(&v, &old).ok_or_else(|| {
                vault_error(
                    format!("no running process recorded for {old}"),
                    "apply the topology first",
                )
            })?;
            if method == DrillMethod::Kill {
                process::kill(&rec);
            } else {
                process::stop(&rec, Duration::from_secs(30))
                    .await
                    .map_err(|e| vault_error(e.to_string(), ""))?;
            }
        }
        DrillMethod::StepDown => {
            client(&old_member.api_url())?
                .step_down(&token)
                .await
                .map_err(|e| vault_error(e.to_string(), ""))?;
        }
    }
    let (new, failover) = served_by_other(&front, &v, std::slice::from_ref(&old), started)
        .await
        .map_err(|why| vault_error(format!("{front_url}: {why}"), STATUS_HELP))?;
    printer.message(&format!(
        "{new} is active behind the front endpoint after {:.2}s; restoring {old}.",
        failover.as_secs_f64()
    ));
    let restore_started = Instant::now();
    if method != DrillMethod::StepDown {
        revive(&ops, &v, &old_member).await.map_err(op)?;
    }
    wait_until_whole(&v, &token).await.map_err(op)?;
    let report = DrillReport {
        event: "drill",
        vault: v.name.clone(),
        method: format!("{method:?}").to_lowercase(),
        old_leader: old.clone(),
        new_leader: new.clone(),
        failover_ms: failover.as_millis() as u64,
        restore_ms: restore_started.elapsed().as_millis() as u64,
    };
    if json {
        printer.json_line(&report);
    } else {
        printer.data(&format!(
            "Failover: {old} -> {new} through the front endpoint in {:.2}s; {old} back as an unsealed voter {:.1}s later.\n",
            failover.as_secs_f64(),
            report.restore_ms as f64 / 1000.0
        ));
    }
    Ok(Outcome::Success)
}

/// The front endpoint's URL, which the drills watch.
fn front_of(v: &VaultSpec) -> Result<String, Error> {
    v.front_url().ok_or_else(|| {
        vault_error(
            format!("Vault cluster {} has no front endpoint", v.name),
            "add `front \"LOAD-BALANCER\"` (a load balancer with health=\"active\") to the cluster",
        )
    })
}

const STATUS_HELP: &str = "`vaultform status FILE` shows the members";

/// The measurement of both drills: a tight 20 ms probe of the front endpoint (its resolution),
/// bounded at two minutes, until it serves an active member other than `gone`. Returns that
/// member and the time since `started`.
async fn served_by_other(
    front: &Client,
    v: &VaultSpec,
    gone: &[String],
    started: Instant,
) -> Result<(String, Duration), String> {
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Some(n) = front_active(front, v).await
            && !gone.contains(&n)
        {
            return Ok((n, started.elapsed()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no active member other than {} after 120 s",
                gone.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What `drill region-loss` measured.
#[derive(Debug, Serialize)]
pub struct RegionDrillReport {
    pub event: &'static str,
    pub vault: String,
    pub region: String,
    pub members_lost: Vec<String>,
    pub load_balancers_lost: Vec<String>,
    pub leader_before: String,
    pub leader_after: String,
    /// From the loss until the front endpoint answered 200 from a member in another region.
    pub served_ms: u64,
    /// From then until everything lost was back and every member a voter again.
    pub restore_ms: u64,
}

/// Takes a whole region away (SIGKILL of its members and its load balancers' HAProxies),
/// measures until the front endpoint serves from the rest, then restores the region.
pub async fn drill_region(
    file: &Path,
    state: &StateArgs,
    region: &str,
    json: bool,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&ops.session, "drill", printer).await?;
    let v = ops.one(vault)?;
    if !v.local {
        return Err(vault_error(
            "losing a region is drilled on the local runtime only",
            "`drill failover --method step-down` works on any runtime",
        ));
    }
    let front_url = front_of(&v)?;
    let lost: Vec<crate::vault::spec::MemberSpec> = v
        .members
        .iter()
        .filter(|m| m.region == region)
        .cloned()
        .collect();
    if lost.is_empty() {
        let mut regions: Vec<&str> = v.members.iter().map(|m| m.region.as_str()).collect();
        regions.sort();
        regions.dedup();
        return Err(vault_error(
            format!("no member of {} runs in {region}", v.name),
            &format!("its members run in {}", regions.join(", ")),
        ));
    }
    let left = v.members.len() - lost.len();
    if left * 2 <= v.members.len() {
        return Err(vault_error(
            format!(
                "losing {region} leaves {left} of {} members: no quorum, the cluster would stop serving",
                v.members.len()
            ),
            "spread the members so that no region holds half of them",
        ));
    }
    let lbs: Vec<String> = v
        .proxy_regions
        .iter()
        .filter(|(_, r)| r.as_str() == region)
        .map(|(lb, _)| lb.clone())
        .collect();
    if v.front.as_ref().is_some_and(|f| lbs.contains(f)) {
        return Err(vault_error(
            format!("the front endpoint is in {region}: losing it leaves clients nothing to reach"),
            "drill another region",
        ));
    }
    let front = client(&front_url)?;
    let token = ops.root_token(&v).await?;
    let before = front_active(&front, &v).await.ok_or_else(|| {
        vault_error(
            format!("the front endpoint {front_url} serves no active member"),
            "`vaultform status FILE` shows why; the drill needs a healthy cluster",
        )
    })?;
    let names: Vec<String> = lost.iter().map(|m| m.name.clone()).collect();
    printer.message(&format!(
        "Drill: losing {region} ({}; load balancers {}); watching {front_url}.",
        names.join(", "),
        lbs.join(", ")
    ));
    let records: Vec<_> = lost
        .iter()
        .filter_map(|m| local::member_process(&v, &m.name))
        .chain(lbs.iter().filter_map(|lb| local::proxy_process(&v, lb)))
        .collect();
    let started = Instant::now();
    records.iter().for_each(process::kill);
    let (after, served) = served_by_other(&front, &v, &names, started)
        .await
        .map_err(|why| vault_error(format!("{front_url}: {why}"), STATUS_HELP))?;
    printer.message(&format!(
        "{after} is active behind the front endpoint {:.2}s after the loss; restoring {region}.",
        served.as_secs_f64()
    ));
    let restore_started = Instant::now();
    for lb in &lbs {
        local::start_proxy(&v, lb).await.map_err(op)?;
    }
    let results = futures::future::join_all(lost.iter().map(|m| revive(&ops, &v, m))).await;
    for r in results {
        r.map_err(op)?;
    }
    wait_until_whole(&v, &token).await.map_err(op)?;
    let report = RegionDrillReport {
        event: "drill",
        vault: v.name.clone(),
        region: region.to_string(),
        members_lost: names,
        load_balancers_lost: lbs,
        leader_before: before,
        leader_after: after,
        served_ms: served.as_millis() as u64,
        restore_ms: restore_started.elapsed().as_millis() as u64,
    };
    if json {
        printer.json_line(&report);
    } else {
        printer.data(&format!(
            "Region loss: {region} gone; the front endpoint served {} ({}) {:.2}s later; {region} back, every member a voter, {:.1}s after that.\n",
            report.leader_after,
            if report.leader_after == report.leader_before {
                "the leader did not change"
            } else {
                "a new leader"
            },
            served.as_secs_f64(),
            report.restore_ms as f64 / 1000.0
        ));
    }
    Ok(Outcome::Success)
}

/// The active member, through the front endpoint or else any member.
async fn active_client(v: &VaultSpec) -> Result<Client, Error> {
    first_with_health(&cluster_urls(v), |s| s == 200)
        .await
        .ok_or_else(|| {
            vault_error(
                format!("no member of {} is active", v.name),
                "`vaultform status FILE` shows the members",
            )
        })
}

pub async fn snapshot_save(
    file: &Path,
    path: &Path,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let v = ops.one(vault)?;
    let token = ops.root_token(&v).await?;
    let c = active_client(&v).await?;
    let bytes = c
        .snapshot_save(&token)
        .await
        .map_err(|e| vault_error(e.to_string(), ""))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(&bytes).map(|_| f))
            .map_err(|source| Error::Write {
                path: path.display().to_string(),
                source,
            })?;
        let _ = f.flush();
    }
    printer.message(&format!(
        "Saved a raft snapshot of {} ({} bytes) to {}.",
        v.name,
        bytes.len(),
        path.display()
    ));
    Ok(Outcome::Success)
}

pub async fn snapshot_restore(
    file: &Path,
    path: &Path,
    force: bool,
    state: &StateArgs,
    vault: Option<&str>,
    printer: &Printer,
) -> Result<Outcome, Error> {
    let Some(ops) = Ops::open(file, state, printer).await? else {
        return Ok(Outcome::Failure);
    };
    let _lock = lock(&ops.session, "snapshot restore", printer).await?;
    let v = ops.one(vault)?;
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    let token = ops.root_token(&v).await?;
    let c = active_client(&v).await?;
    c.snapshot_restore(&token, bytes, force)
        .await
        .map_err(|e| {
            vault_error(
                e.to_string(),
                "a snapshot of another cluster needs --force (and that cluster's unseal keys)",
            )
        })?;
    printer.message(&format!("Restored {} from {}.", v.name, path.display()));
    Ok(Outcome::Success)
}
