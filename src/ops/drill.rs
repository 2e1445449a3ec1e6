//! Resilience drills against a running cluster: take the leader away (or a whole region),
//! measure until the front endpoint serves an active member again, then restore what was
//! taken through the same providers apply uses. Every check runs before anything is taken.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Ops, OpsError, STATUS_HELP, client, fail};
use crate::retry::{Backoff, poll};
use crate::runtime::local::{self, process};
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
        .find(|m| v.member_url(m) == l.leader_address.trim_end_matches('/'))
        .map(|m| m.name.clone())
}

/// The front endpoint's URL and client, which the drills watch.
fn front_of(v: &VaultSpec) -> Result<(String, Client), OpsError> {
    let url = v.front_url().ok_or_else(|| {
        fail(
            format!("Vault cluster {} has no front endpoint", v.name),
            "add `front \"LOAD-BALANCER\"` (a load balancer with health=\"active\") to the cluster",
        )
    })?;
    // A new connection per probe: a kept-alive one would stay with the old leader.
    let c = Client::unpooled(&url, &v.client_tls()).map_err(|e| fail(e.to_string(), ""))?;
    Ok((url, c))
}

/// The member the front endpoint serves now: the drill needs a healthy cluster.
async fn serving(front: &Client, url: &str, v: &VaultSpec) -> Result<String, OpsError> {
    front_active(front, v).await.ok_or_else(|| {
        fail(
            format!("the front endpoint {url} serves no active member"),
            "`vaultform status FILE` shows why; the drill needs a healthy cluster",
        )
    })
}

/// The measurement of both drills: a tight 20 ms probe of the front endpoint (its resolution),
/// bounded at two minutes, until it serves an active member other than `gone`. Returns that
/// member and the time since `started`.
async fn served_by_other(
    front: &Client,
    v: &VaultSpec,
    gone: &[String],
    started: Instant,
) -> Result<(String, Duration), String> {
    let limit = Duration::from_secs(120);
    let policy = Backoff::PROBE.deadline(limit.saturating_sub(started.elapsed()));
    let probe = || async {
        match front_active(front, v).await {
            Some(n) if !gone.contains(&n) => Ok(n),
            Some(n) => Err(format!("{n} still active")),
            None => Err("no active member".to_string()),
        }
    };
    match poll(policy, "a new active member", probe).await {
        Ok(n) => Ok((n, started.elapsed())),
        Err(_) => Err(format!(
            "no active member other than {} after 120 s",
            gone.join(", ")
        )),
    }
}

/// Takes the leader away by `method`, measures the failover, restores the old leader.
pub async fn failover(
    ops: &Ops,
    v: &VaultSpec,
    method: Method,
    note: &dyn Fn(&str),
) -> Result<DrillReport, OpsError> {
    if !v.local {
        return kube::failover(ops, v, method, note).await;
    }
    let (front_url, front) = front_of(v)?;
    let token = ops.root_token(v).await?;
    let old = serving(&front, &front_url, v).await?;
    let old_member: MemberSpec = v
        .member(&old)
        .cloned()
        .ok_or_else(|| fail(format!("{old} is not a member of {}", v.name), STATUS_HELP))?;
    if method != Method::StepDown {
        // Everything the restore needs is checked before anything is taken away.
        local::check_restartable(v, &old)?;
    }
    note(&format!(
        "Drill: taking the leader {old} away ({method:?}); watching {front_url}."
    ));
    let started = Instant::now();
    match method {
        Method::Kill | Method::Stop => {
            let rec = local::member_process(v, &old).ok_or_else(|| {
                fail(
                    format!("no running process recorded for {old}"),
                    "apply the topology first",
                )
            })?;
            if method == Method::Kill {
                process::kill(&rec);
            } else {
                process::stop(&rec, Duration::from_secs(30))
                    .await
                    .map_err(|e| fail(e.to_string(), ""))?;
            }
        }
        Method::StepDown => {
            client(v, &v.member_url(&old_member))?
                .step_down(&token)
                .await
                .map_err(|e| fail(e.to_string(), ""))?;
        }
    }
    let (new, failover) = served_by_other(&front, v, std::slice::from_ref(&old), started)
        .await
        .map_err(|why| fail(format!("{front_url}: {why}"), STATUS_HELP))?;
    note(&format!(
        "{new} is active behind the front endpoint after {:.2}s; restoring {old}.",
        failover.as_secs_f64()
    ));
    let restore_started = Instant::now();
    if method != Method::StepDown {
        ops.revive(v, &old_member).await?;
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

/// Takes a whole region away (SIGKILL of its members and its load balancers' HAProxies),
/// measures until the front endpoint serves from the rest, then restores the region.
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
    if !v.local {
        return kube::region_loss(ops, v, region, lost, note).await;
    }
    let (front_url, front) = front_of(v)?;
    let lbs: Vec<String> = v
        .proxy_regions
        .iter()
        .filter(|(_, r)| r.as_str() == region)
        .map(|(lb, _)| lb.clone())
        .collect();
    if v.front.as_ref().is_some_and(|f| lbs.contains(f)) {
        return Err(fail(
            format!("the front endpoint is in {region}: losing it leaves clients nothing to reach"),
            "drill another region",
        ));
    }
    let token = ops.root_token(v).await?;
    let before = serving(&front, &front_url, v).await?;
    for m in &lost {
        local::check_restartable(v, &m.name)?;
    }
    for lb in &lbs {
        local::program_path(&v.proxy_dir(lb), "haproxy")?;
    }
    let names: Vec<String> = lost.iter().map(|m| m.name.clone()).collect();
    note(&format!(
        "Drill: losing {region} ({}; load balancers {}); watching {front_url}.",
        names.join(", "),
        lbs.join(", ")
    ));
    let records: Vec<_> = lost
        .iter()
        .filter_map(|m| local::member_process(v, &m.name))
        .chain(lbs.iter().filter_map(|lb| local::proxy_process(v, lb)))
        .collect();
    let started = Instant::now();
    records.iter().for_each(process::kill);
    let (after, served) = served_by_other(&front, v, &names, started)
        .await
        .map_err(|why| fail(format!("{front_url}: {why}"), STATUS_HELP))?;
    note(&format!(
        "{after} is active behind the front endpoint {:.2}s after the loss; restoring {region}.",
        served.as_secs_f64()
    ));
    let restore_started = Instant::now();
    for lb in &lbs {
        ops.revive_proxy(v, lb).await?;
    }
    let results = futures::future::join_all(lost.iter().map(|m| ops.revive(v, m))).await;
    for r in results {
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

/// The drills on the Kubernetes runtime: the leader's pod deleted (the StatefulSet makes a new
/// one, which unseals itself through KMS), a region's StatefulSets scaled to 0 and back. There
/// is no front endpoint to watch: every member's own load balancer serves and forwards to the
/// active node, so a client's failover is when the surviving members name a new leader.
mod kube {
    use super::*;
    use crate::runtime::kubernetes::{actions, member::pod_name};

    /// How long a member's new pod may take to serve again (image cached, volume reattached).
    const BACK_TIMEOUT: Duration = Duration::from_secs(600);

    /// The leader the members (other than `skip`) name, through their load balancers.
    async fn leader_named(v: &VaultSpec, skip: &[String]) -> Option<String> {
        for m in v.members.iter().filter(|m| !skip.contains(&m.name)) {
            let Ok(c) = Client::unpooled(&v.member_url(m), &v.client_tls()) else {
                continue;
            };
            let Ok(l) = c.leader().await else {
                continue;
            };
            let addr = l.leader_address.trim_end_matches('/');
            if let Some(x) = v.members.iter().find(|x| v.member_url(x) == addr) {
                return Some(x.name.clone());
            }
        }
        None
    }

    /// Probes every 20 ms, for two minutes at most, until the surviving members name a
    /// leader other than `gone`.
    async fn led_by_other(
        v: &VaultSpec,
        gone: &[String],
        started: Instant,
    ) -> Result<(String, Duration), OpsError> {
        let policy = Backoff::PROBE.deadline(Duration::from_secs(120));
        poll(policy, "a new leader", || async {
            match leader_named(v, gone).await {
                Some(n) if !gone.contains(&n) => Ok(n),
                Some(n) => Err(format!("{n} still leads")),
                None => Err("no leader named".to_string()),
            }
        })
        .await
        .map(|n| (n, started.elapsed()))
        .map_err(|e| fail(e.to_string(), STATUS_HELP))
    }

    async fn client_of(ops: &Ops, m: &MemberSpec) -> Result<::kube::Client, OpsError> {
        Ok(ops
            .catalog
            .kube_clusters()
            .client(&ops.aws, &m.region, &m.cluster)
            .await?)
    }

    /// Waits until a member's new pod serves again, then unseals it from the store when the
    /// seal is `shamir` (an auto-unseal member unseals itself).
    async fn bring_back(ops: &Ops, v: &VaultSpec, m: &MemberSpec) -> Result<(), OpsError> {
        let c = client(v, &v.member_url(m))?;
        poll(
            Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10))
                .deadline(BACK_TIMEOUT),
            &format!("{} to serve again", m.name),
            || async { c.health().await.map(drop).map_err(|e| e.to_string()) },
        )
        .await
        .map_err(|e| fail(e.to_string(), STATUS_HELP))?;
        if !v.seal.auto_unseal() {
            ops.revive(v, m).await?;
        }
        Ok(())
    }

    pub async fn failover(
        ops: &Ops,
        v: &VaultSpec,
        method: Method,
        note: &dyn Fn(&str),
    ) -> Result<DrillReport, OpsError> {
        let token = ops.root_token(v).await?;
        let old = leader_named(v, &[]).await.ok_or_else(|| {
            fail(
                format!("no member of {} names a leader", v.name),
                "`vaultform status FILE` shows why; the drill needs a healthy cluster",
            )
        })?;
        let m = v
            .member(&old)
            .cloned()
            .ok_or_else(|| fail(format!("{old} is not a member of {}", v.name), STATUS_HELP))?;
        let ns = v.namespace();
        let pod = pod_name(&m);
        let k = client_of(ops, &m).await?;
        // Checked before anything is taken: the pod is there for its StatefulSet to replace.
        if method != Method::StepDown && !actions::pod_exists(&k, ns, &pod).await? {
            return Err(fail(
                format!("pod {ns}/{pod} of the leader {old} is not there"),
                "`vaultform apply FILE` brings it back",
            ));
        }
        note(&format!(
            "Drill: taking the leader {old} away ({method:?}: pod {ns}/{pod} on {}).",
            m.cluster
        ));
        let started = Instant::now();
        match method {
            Method::Kill => actions::delete_pod(&k, ns, &pod, 0).await?,
            Method::Stop => actions::delete_pod(&k, ns, &pod, 30).await?,
            Method::StepDown => client(v, &v.member_url(&m))?
                .step_down(&token)
                .await
                .map_err(|e| fail(e.to_string(), ""))?,
        }
        let (new, failover) = led_by_other(v, std::slice::from_ref(&old), started).await?;
        note(&format!(
            "{new} leads after {:.2}s; waiting for {old}'s new pod.",
            failover.as_secs_f64()
        ));
        let restore_started = Instant::now();
        if method != Method::StepDown {
            bring_back(ops, v, &m).await?;
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

    pub async fn region_loss(
        ops: &Ops,
        v: &VaultSpec,
        region: &str,
        lost: Vec<MemberSpec>,
        note: &dyn Fn(&str),
    ) -> Result<RegionDrillReport, OpsError> {
        let token = ops.root_token(v).await?;
        let before = leader_named(v, &[]).await.ok_or_else(|| {
            fail(
                format!("no member of {} names a leader", v.name),
                "`vaultform status FILE` shows why; the drill needs a healthy cluster",
            )
        })?;
        let ns = v.namespace();
        let mut clients = Vec::new();
        for m in &lost {
            let k = client_of(ops, m).await?;
            if !actions::pod_exists(&k, ns, &pod_name(m)).await? {
                return Err(fail(
                    format!("pod {ns}/{} of {} is not there", pod_name(m), m.name),
                    "`vaultform apply FILE` brings it back",
                ));
            }
            clients.push(k);
        }
        let names: Vec<String> = lost.iter().map(|m| m.name.clone()).collect();
        note(&format!(
            "Drill: losing {region} (StatefulSets of {} scaled to 0).",
            names.join(", ")
        ));
        let started = Instant::now();
        for (m, k) in lost.iter().zip(&clients) {
            actions::scale(k, ns, &m.name, 0).await?;
        }
        let (after, served) = led_by_other(v, &names, started).await?;
        note(&format!(
            "{after} leads {:.2}s after the loss; restoring {region}.",
            served.as_secs_f64()
        ));
        let restore_started = Instant::now();
        for (m, k) in lost.iter().zip(&clients) {
            actions::scale(k, ns, &m.name, 1).await?;
        }
        for m in &lost {
            bring_back(ops, v, m).await?;
        }
        wait_until_whole(v, &token).await?;
        Ok(RegionDrillReport {
            event: "drill",
            vault: v.name.clone(),
            region: region.to_string(),
            members_lost: names,
            load_balancers_lost: Vec::new(),
            leader_before: before,
            leader_after: after,
            served_ms: served.as_millis() as u64,
            restore_ms: restore_started.elapsed().as_millis() as u64,
        })
    }
}
