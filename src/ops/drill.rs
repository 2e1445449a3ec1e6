//! Resilience drills against a running cluster, the same on every runtime: take the leader
//! away (or a whole region) through the cluster's runtime, measure until clients are served by
//! a new leader, then restore what was taken as apply would. Every check runs before anything
//! is taken.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Ops, OpsError, STATUS_HELP, client, fail};
use crate::retry::{Backoff, poll};
use crate::topology::HealthMode;
use crate::vault::Client;
use crate::vault::cluster::wait_until_whole;
use crate::vault::spec::{MemberSpec, VaultSpec};

/// How `drill failover` takes the leader away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
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

impl DrillReport {
    /// The figures of a failover that took `failover` and whose restore began at
    /// `restore_started`.
    fn new(
        v: &VaultSpec,
        method: Method,
        old_leader: String,
        new_leader: String,
        failover: Duration,
        restore_started: Instant,
    ) -> DrillReport {
        DrillReport {
            event: "drill",
            vault: v.name.clone(),
            method: format!("{method:?}").to_lowercase(),
            old_leader,
            new_leader,
            failover_ms: failover.as_millis() as u64,
            restore_ms: restore_started.elapsed().as_millis() as u64,
        }
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

/// How long a clean stop (`Method::Stop`) may take.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What a drill watches to see the leader change, as a client sees it: the front endpoint when
/// it sends to the active member only (its health checks are part of the failover), else the
/// members themselves, each through the address vaultform reaches it by (every member
/// forwards to the leader, so a client's failover is the raft election).
enum Watch {
    Front { url: String, client: Client },
    Members,
}

impl Watch {
    fn of(v: &VaultSpec) -> Result<Watch, OpsError> {
        let front = v.front.as_ref().and_then(|f| v.proxies.get(f));
        if !front.is_some_and(|p| p.health == HealthMode::Active) {
            return Ok(Watch::Members);
        }
        let url = v
            .front_url()
            .ok_or_else(|| fail(format!("{}: the front endpoint has no URL", v.name), ""))?;
        // A new connection per probe: a kept-alive one would stay with the old leader.
        let client =
            Client::unpooled(&url, &v.client_tls()).map_err(|e| fail(e.to_string(), ""))?;
        Ok(Watch::Front { url, client })
    }

    /// The leader clients are served by, other than the members in `skip`.
    async fn leader(&self, v: &VaultSpec, skip: &[String]) -> Option<String> {
        match self {
            Watch::Front { client, .. } => front_active(client, v).await,
            Watch::Members => leader_named(v, skip).await,
        }
    }

    /// The leader now, which the drill needs: a healthy cluster.
    async fn current(&self, v: &VaultSpec) -> Result<String, OpsError> {
        self.leader(v, &[]).await.ok_or_else(|| {
            fail(
                match self {
                    Watch::Front { url, .. } => {
                        format!("the front endpoint {url} serves no active member")
                    }
                    Watch::Members => format!("no member of {} names a leader", v.name),
                },
                "`vaultform status FILE` shows why; the drill needs a healthy cluster",
            )
        })
    }

    /// The measurement of both drills: a tight 20 ms probe (its resolution), bounded at two
    /// minutes, until clients are served by a leader other than those in `gone`. Returns that
    /// member and the time since `started`.
    async fn other_leader(
        &self,
        v: &VaultSpec,
        gone: &[String],
        started: Instant,
    ) -> Result<(String, Duration), OpsError> {
        let limit = Duration::from_secs(120);
        let policy = Backoff::PROBE.deadline(limit.saturating_sub(started.elapsed()));
        let probe = || async {
            match self.leader(v, gone).await {
                Some(n) if !gone.contains(&n) => Ok(n),
                Some(n) => Err(format!("{n} still leads")),
                None => Err("no leader".to_string()),
            }
        };
        match poll(policy, "a new leader", probe).await {
            Ok(n) => Ok((n, started.elapsed())),
            Err(_) => Err(fail(
                format!(
                    "{self}: no leader other than {} after 120 s",
                    gone.join(", ")
                ),
                STATUS_HELP,
            )),
        }
    }
}

impl std::fmt::Display for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watch::Front { url, .. } => write!(f, "the front endpoint {url}"),
            Watch::Members => f.write_str("the leader the members name"),
        }
    }
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
    member_at(v, &l.leader_address)
}

/// The leader the members (other than `skip`) name.
async fn leader_named(v: &VaultSpec, skip: &[String]) -> Option<String> {
    for m in v.members.iter().filter(|m| !skip.contains(&m.name)) {
        let Ok(c) = Client::unpooled(&v.member_url(m), &v.client_tls()) else {
            continue;
        };
        let Ok(l) = c.leader().await else {
            continue;
        };
        if let Some(n) = member_at(v, &l.leader_address) {
            return Some(n);
        }
    }
    None
}

/// The member whose address a leader answer names.
fn member_at(v: &VaultSpec, address: &str) -> Option<String> {
    let address = address.trim_end_matches('/');
    v.members
        .iter()
        .find(|m| v.member_url(m) == address)
        .map(|m| m.name.clone())
}

/// Takes the leader away by `method`, measures the failover, restores the old leader.
pub async fn failover(
    ops: &Ops,
    v: &VaultSpec,
    method: Method,
    note: &dyn Fn(&str),
) -> Result<DrillReport, OpsError> {
    let runtime = ops.catalog.runtime(v);
    let cx = ops.cx();
    let watch = Watch::of(v)?;
    let token = ops.root_token(v).await?;
    let old = watch.current(v).await?;
    let m: MemberSpec = v
        .member(&old)
        .cloned()
        .ok_or_else(|| fail(format!("{old} is not a member of {}", v.name), STATUS_HELP))?;
    if method != Method::StepDown {
        // Everything the restore needs is checked before anything is taken away.
        runtime.check_member(&cx, v, &m).await?;
    }
    note(&format!(
        "Drill: taking the leader {old} away ({method:?}); watching {watch}."
    ));
    let started = Instant::now();
    match method {
        Method::Kill => drop(runtime.stop_member(&cx, v, &m, None).await?),
        Method::Stop => drop(runtime.stop_member(&cx, v, &m, Some(STOP_GRACE)).await?),
        Method::StepDown => client(v, &v.member_url(&m))?
            .step_down(&token)
            .await
            .map_err(|e| fail(e.to_string(), ""))?,
    }
    let (new, failover) = watch
        .other_leader(v, std::slice::from_ref(&old), started)
        .await?;
    note(&format!(
        "{new} leads after {:.2}s; restoring {old}.",
        failover.as_secs_f64()
    ));
    let restore_started = Instant::now();
    if method != Method::StepDown {
        ops.revive(v, &m).await?;
    }
    wait_until_whole(v, &token).await?;
    Ok(DrillReport::new(
        v,
        method,
        old,
        new,
        failover,
        restore_started,
    ))
}

/// Takes a whole region away (its members at once, and whatever the runtime runs there),
/// measures until clients are served from the rest, then restores the region.
pub async fn region_loss(
    ops: &Ops,
    v: &VaultSpec,
    region: &str,
    note: &dyn Fn(&str),
) -> Result<RegionDrillReport, OpsError> {
    let lost: Vec<MemberSpec> = v
        .members
        .iter()
        .filter(|m| m.region == region)
        .cloned()
        .collect();
    if lost.is_empty() {
        let mut regions: Vec<&str> = v.members.iter().map(|m| m.region.as_str()).collect();
        regions.sort();
        regions.dedup();
        return Err(fail(
            format!("no member of {} runs in {region}", v.name),
            &format!("its members run in {}", regions.join(", ")),
        ));
    }
    let left = v.members.len() - lost.len();
    if left * 2 <= v.members.len() {
        return Err(fail(
            format!(
                "losing {region} leaves {left} of {} members: no quorum, the cluster would stop serving",
                v.members.len()
            ),
            "spread the members so that no region holds half of them",
        ));
    }
    let runtime = ops.catalog.runtime(v);
    let cx = ops.cx();
    runtime.check_region(&cx, v, region, &lost).await?;
    let watch = Watch::of(v)?;
    let token = ops.root_token(v).await?;
    let before = watch.current(v).await?;
    let names: Vec<String> = lost.iter().map(|m| m.name.clone()).collect();
    note(&format!(
        "Drill: losing {region} ({}); watching {watch}.",
        names.join(", ")
    ));
    let started = Instant::now();
    let lbs = runtime.lose_region(&cx, v, region, &lost).await?;
    let (after, served) = watch.other_leader(v, &names, started).await?;
    note(&format!(
        "{after} leads {:.2}s after the loss; restoring {region}.",
        served.as_secs_f64()
    ));
    let restore_started = Instant::now();
    runtime.restore_region(&cx, v, region, &lost).await?;
    let unsealed = futures::future::join_all(lost.iter().map(|m| ops.unseal(v, m))).await;
    for r in unsealed {
        r?;
    }
    wait_until_whole(v, &token).await?;
    Ok(RegionDrillReport {
        event: "drill",
        vault: v.name.clone(),
        region: region.to_string(),
        members_lost: names,
        load_balancers_lost: lbs,
        leader_before: before,
        leader_after: after,
        served_ms: served.as_millis() as u64,
        restore_ms: restore_started.elapsed().as_millis() as u64,
    })
}
