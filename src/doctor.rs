//! `doctor`: what a run of a topology needs, checked in one pass before anything runs, each
//! with what to do about it: the AWS identity per region, the clock against AWS's, the state backend (the check every
//! run makes, with its writes), the local runtime's binaries and addresses, the Kubernetes
//! API of each EKS cluster that hosts Vault members. Changes nothing (an S3 state's probe
//! object is written and deleted).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::session::Session;
use crate::state::State;
use crate::topology::{Flavour, Runtime, SealKind, StateBackend, TransitSeal};

/// How long one local program or Kubernetes API may take to answer.
const ANSWER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing; does not stop an apply.
    Warn,
    /// Would stop an apply.
    Fail,
}

/// One thing checked.
#[derive(Debug, Serialize)]
pub struct Check {
    /// `aws`, `clock`, `state`, `binary`, `address` or `kubernetes`.
    pub area: &'static str,
    pub subject: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Every check of one topology, in the order they are printed.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub checks: Vec<Check>,
    pub elapsed_ms: u64,
}

impl Report {
    /// Whether something would stop an apply.
    pub fn blocking(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}

fn ok(area: &'static str, subject: String, detail: impl Into<String>) -> Check {
    Check {
        area,
        subject,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(area: &'static str, subject: String, detail: String, fix: Option<String>) -> Check {
    Check {
        area,
        subject,
        status: Status::Fail,
        detail,
        fix,
    }
}

/// Runs every check of `session`'s topology.
pub async fn doctor(session: &Session) -> Report {
    let started = Instant::now();
    let aws = session.connect().await;
    let mut checks = Vec::new();

    // The identity in every region the run calls, the state's region included.
    let t = session.topology();
    let mut regions: Vec<String> = t.regions.iter().map(|r| r.name.value.clone()).collect();
    if let StateBackend::S3 { region, .. } = &t.state
        && !regions.contains(region)
    {
        regions.push(region.clone());
    }
    let answers =
        futures::future::join_all(regions.iter().map(|r| async { aws.identity(r).await })).await;
    let mut answering = BTreeSet::new();
    for (region, answer) in regions.iter().zip(answers) {
        let subject = format!("AWS in {region}");
        match answer {
            Ok(arn) => {
                answering.insert(region.clone());
                checks.push(ok("aws", subject, format!("acts as {arn}")));
            }
            Err(e) => checks.push(fail(
                "aws",
                subject,
                e.to_string(),
                Some("check the endpoint (AWS_ENDPOINT_URL or the topology's `aws endpoint=`), the network and the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)".into()),
            )),
        }
    }

    if let Some(region) = regions.iter().find(|r| answering.contains(*r)) {
        checks.push(clock_check(&aws, region).await);
    }
    let state = state_checks(session, &answering, &mut checks).await;
    binary_checks(session, &mut checks).await;
    address_checks(session, state.as_ref(), &mut checks);
    kubernetes_checks(session, &aws, &answering, state.as_ref(), &mut checks).await;
    Report {
        file: session.file.display().to_string(),
        checks,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// Beyond this, AWS refuses a signed request (SigV4 allows 5 minutes), an EKS token included.
const CLOCK_FAILS: f64 = 300.0;
/// Beyond this, the clock is worth setting right before it drifts further.
const CLOCK_WARNS: f64 = 30.0;

/// This machine's clock against AWS's, through one region's STS endpoint.
async fn clock_check(aws: &crate::aws::Aws, region: &str) -> Check {
    let subject = format!("clock against AWS's (STS in {region})");
    let fix =
        "set the clock right: enable NTP (`timedatectl set-ntp true`, chrony or systemd-timesyncd)";
    match aws.clock_offset(region).await {
        Err(e) => Check {
            area: "clock",
            subject,
            status: Status::Warn,
            detail: format!("not compared: {e}"),
            fix: None,
        },
        Ok(offset) => clock_verdict(subject, offset, fix),
    }
}

fn clock_verdict(subject: String, offset: f64, fix: &str) -> Check {
    let how = if offset >= 0.0 { "ahead" } else { "behind" };
    let by = offset.abs();
    let (status, detail) = if by >= CLOCK_FAILS {
        (
            Status::Fail,
            format!("{by:.0} s {how}: AWS refuses requests signed more than 5 minutes off"),
        )
    } else if by >= CLOCK_WARNS {
        (Status::Warn, format!("{by:.0} s {how}"))
    } else {
        (Status::Ok, format!("within {:.0} s", by.max(1.0)))
    };
    Check {
        area: "clock",
        subject,
        fix: (status != Status::Ok).then(|| fix.to_string()),
        status,
        detail,
    }
}

/// The backend's own checks (the ones every run makes before it starts, and the writes),
/// then the state read: the recorded state when it can be read.
async fn state_checks(
    session: &Session,
    answering: &BTreeSet<String>,
    checks: &mut Vec<Check>,
) -> Option<State> {
    if let StateBackend::S3 { region, .. } = &session.topology().state
        && !answering.contains(region)
    {
        checks.push(Check {
            area: "state",
            subject: session.backend.describe(),
            status: Status::Warn,
            detail: format!("not checked: AWS does not answer in {region}"),
            fix: None,
        });
        return None;
    }
    let mut blocked = false;
    for c in session.backend.check(true).await {
        match c.result {
            Ok(detail) => checks.push(ok("state", c.subject, detail)),
            Err(problem) => {
                blocked = true;
                let fix = crate::session::remedy(&problem, &session.file);
                checks.push(fail("state", c.subject, problem.to_string(), fix));
            }
        }
    }
    if blocked {
        return None;
    }
    let subject = format!("state {}", session.backend.describe());
    match session.load_state().await {
        Ok(s) if s.resources.is_empty() => {
            checks.push(ok("state", subject, "nothing recorded yet"));
            Some(s)
        }
        Ok(s) => {
            let detail = format!(
                "serial {}, {} resources recorded",
                s.serial,
                s.resources.len()
            );
            checks.push(ok("state", subject, detail));
            Some(s)
        }
        Err(e) => {
            let fix = miette::Diagnostic::help(&e).map(|h| h.to_string());
            checks.push(fail("state", subject, e.to_string(), fix));
            None
        }
    }
}

/// The programs the local runtime starts: each Vault server binary and HAProxy, with the
/// version each says it is.
async fn binary_checks(session: &Session, checks: &mut Vec<Check>) {
    let mut programs: BTreeMap<String, Option<String>> = BTreeMap::new();
    for v in &session.topology().vaults {
        if !matches!(v.runtime.value, Runtime::Local { .. }) {
            continue;
        }
        let default = match v.server.flavour {
            Flavour::Bao => "bao",
            Flavour::Vault => "vault",
        };
        let binary = v.server.binary.clone().unwrap_or_else(|| default.into());
        programs.insert(binary, v.server.version.clone());
        programs.insert("haproxy".into(), None);
    }
    for (program, wanted) in programs {
        let subject = format!("program {program}");
        let Some(path) = crate::vault::spec::which(&program) else {
            checks.push(fail(
                "binary",
                subject,
                "not found on PATH".into(),
                Some(format!(
                    "install {program} (`scripts/testbed setup` does) or name its path in the topology (`server ... binary=\"/path/to/{program}\"`)"
                )),
            ));
            continue;
        };
        let flag = if program == "haproxy" {
            "-v"
        } else {
            "version"
        };
        let answer = tokio::time::timeout(
            ANSWER,
            tokio::process::Command::new(&path)
                .arg(flag)
                .kill_on_drop(true)
                .output(),
        )
        .await;
        let version = match answer {
            Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            Ok(Ok(out)) => {
                checks.push(fail(
                    "binary",
                    subject,
                    format!("{} {flag} exited with {}", path.display(), out.status),
                    Some(format!(
                        "check that {} runs on this machine",
                        path.display()
                    )),
                ));
                continue;
            }
            Ok(Err(e)) => {
                checks.push(fail(
                    "binary",
                    subject,
                    format!("{}: {e}", path.display()),
                    Some(format!(
                        "check that {} runs on this machine",
                        path.display()
                    )),
                ));
                continue;
            }
            Err(_) => {
                checks.push(fail(
                    "binary",
                    subject,
                    format!(
                        "{} {flag} did not answer in {}s",
                        path.display(),
                        ANSWER.as_secs()
                    ),
                    None,
                ));
                continue;
            }
        };
        let detail = format!("{} ({version})", path.display());
        match wanted {
            Some(w) if !version.contains(&w) => checks.push(Check {
                area: "binary",
                subject,
                status: Status::Warn,
                detail,
                fix: Some(format!("the topology says version {w}")),
            }),
            _ => checks.push(ok("binary", subject, detail)),
        }
    }
}

/// The loopback addresses the local runtime listens on: each free, or held by this stack's
/// own cluster (its state records it).
fn address_checks(session: &Session, state: Option<&State>, checks: &mut Vec<Check>) {
    let t = session.topology();
    let lbs: BTreeMap<&str, _> = t
        .regions
        .iter()
        .flat_map(|r| &r.load_balancers)
        .map(|lb| (lb.name.value.as_str(), lb))
        .collect();
    // (address, port) -> (what listens there, its Vault cluster).
    let mut wanted: BTreeMap<(Ipv4Addr, u16), (String, String)> = BTreeMap::new();
    for v in &t.vaults {
        if !matches!(v.runtime.value, Runtime::Local { .. }) {
            continue;
        }
        let name = v.name.value.clone();
        let mut add = |ip: Ipv4Addr, port: u16, what: String| {
            wanted.entry((ip, port)).or_insert((what, name.clone()));
        };
        let mut served: BTreeSet<&str> = BTreeSet::new();
        for m in &v.members {
            if let Some(a) = &m.address {
                let who = format!("member {}", m.name.value);
                add(a.value, m.api_port.value, format!("{who} API"));
                add(a.value, m.cluster_port.value, format!("{who} cluster"));
            }
            served.insert(m.load_balancer.value.as_str());
        }
        if let Some(f) = &v.front {
            served.insert(f.value.as_str());
        }
        for lb in served.iter().filter_map(|n| lbs.get(n)) {
            if let Some(a) = &lb.local_address {
                let who = format!("load balancer {}", lb.name.value);
                add(a.value, lb.api_port.value, format!("{who} API"));
                add(a.value, lb.cluster_port.value, format!("{who} cluster"));
            }
        }
        if let SealKind::Transit(TransitSeal::Managed {
            local_address,
            api_port,
        }) = &v.seal.kind
        {
            add(
                local_address.value,
                api_port.value,
                "transit seal server".into(),
            );
        }
    }
    for ((ip, port), (what, vault)) in wanted {
        let subject = format!("address {ip}:{port} ({what})");
        match TcpListener::bind((ip, port)) {
            Ok(listener) => {
                drop(listener);
                checks.push(ok("address", subject, "free"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let ours = state.is_some_and(|s| {
                    let prefix = format!("vault.{vault}.");
                    s.resources.keys().any(|a| a.as_str().starts_with(&prefix))
                });
                if ours {
                    checks.push(ok(
                        "address",
                        subject,
                        format!("in use, by this stack's cluster {vault} (its state records it)"),
                    ));
                } else {
                    checks.push(fail(
                        "address",
                        subject,
                        "in use by another process".into(),
                        Some(format!(
                            "stop what listens there (`ss -ltnp 'sport = :{port}'` names it) or choose another address in the topology"
                        )),
                    ));
                }
            }
            Err(e) => checks.push(fail(
                "address",
                subject,
                format!("cannot listen there: {e}"),
                Some("choose a loopback address (127.0.0.0/8) in the topology".into()),
            )),
        }
    }
}

/// The Kubernetes API of each EKS cluster that hosts Vault members, once the state records
/// the cluster.
async fn kubernetes_checks(
    session: &Session,
    aws: &crate::aws::Aws,
    answering: &BTreeSet<String>,
    state: Option<&State>,
    checks: &mut Vec<Check>,
) {
    let t = session.topology();
    let region_of: BTreeMap<&str, &str> = t
        .regions
        .iter()
        .flat_map(|r| {
            r.clusters
                .iter()
                .map(|c| (c.name.value.as_str(), r.name.value.as_str()))
        })
        .collect();
    let mut hosting: BTreeSet<(&str, &str)> = BTreeSet::new();
    for v in &t.vaults {
        if matches!(v.runtime.value, Runtime::Kubernetes { .. }) {
            for m in &v.members {
                if let Some(r) = region_of.get(m.cluster.value.as_str()) {
                    hosting.insert((r, m.cluster.value.as_str()));
                }
            }
        }
    }
    let clients = crate::runtime::kubernetes::clusters::Clusters::default();
    for (region, cluster) in hosting {
        let subject = format!("Kubernetes API of {cluster} ({region})");
        let address = format!("region.{region}.cluster.{cluster}");
        let Some(state) = state else {
            checks.push(Check {
                area: "kubernetes",
                subject,
                status: Status::Warn,
                detail: "not checked: the state cannot be read".into(),
                fix: None,
            });
            continue;
        };
        if !state.resources.keys().any(|a| a.as_str() == address) {
            checks.push(ok(
                "kubernetes",
                subject,
                "not created yet: apply creates it",
            ));
            continue;
        }
        if !answering.contains(region) {
            checks.push(Check {
                area: "kubernetes",
                subject,
                status: Status::Warn,
                detail: format!("not checked: AWS does not answer in {region}"),
                fix: None,
            });
            continue;
        }
        let answer = tokio::time::timeout(ANSWER, async {
            let client = clients
                .client(aws, region, cluster)
                .await
                .map_err(|e| e.to_string())?;
            client
                .apiserver_version()
                .await
                .map_err(|e| format!("Kubernetes API of {cluster}: {e}"))
        })
        .await;
        match answer {
            Ok(Ok(v)) => checks.push(ok(
                "kubernetes",
                subject,
                format!("answers (Kubernetes {}.{})", v.major, v.minor),
            )),
            Ok(Err(e)) => checks.push(fail(
                "kubernetes",
                subject,
                e,
                Some(format!("check the cluster's endpoint access and that these credentials have an access entry on it (`vaultform kubeconfig {}`)", session.file.display())),
            )),
            Err(_) => checks.push(fail(
                "kubernetes",
                subject,
                format!("no answer in {}s", ANSWER.as_secs()),
                Some("check the cluster's endpoint access (`endpoint-access`) and the network".into()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_minutes_off_stops_an_apply_seconds_off_are_worth_a_warning() {
        let v = |offset| clock_verdict("clock".into(), offset, "fix it");
        assert_eq!(v(0.4).status, Status::Ok);
        assert_eq!(v(0.4).detail, "within 1 s");
        assert!(v(0.4).fix.is_none());
        assert_eq!(v(-45.0).status, Status::Warn);
        assert_eq!(v(-45.0).detail, "45 s behind");
        let far = v(400.0);
        assert_eq!(far.status, Status::Fail);
        assert!(far.detail.starts_with("400 s ahead"), "{}", far.detail);
        assert_eq!(far.fix.as_deref(), Some("fix it"));
    }

    #[test]
    fn the_offset_is_signed() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t + Duration::from_millis(1500);
        assert_eq!(crate::aws::offset_seconds(later, t), 1.5);
        assert_eq!(crate::aws::offset_seconds(t, later), -1.5);
    }
}
