//! The local runtime's resource kinds: a Vault server process per member and an HAProxy per
//! load balancer, each in its own directory under the cluster's working directory with its
//! configuration, its log and a `process.json` record. A process whose record names a live
//! process with the same configuration is adopted; anything else is stopped (by its recorded
//! PID and start time, never by name) and started afresh.

pub mod haproxy;
pub mod process;
pub mod runtime;
pub mod transit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use self::process::ProcessRecord;

use crate::address::VaultItem;
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded, str_attr};
use crate::retry::{Backoff, TryPollError, try_poll};
use crate::state::ResourceState;
use crate::topology::Flavour;
use crate::vault::Client;
use crate::vault::hcl::quote;
use crate::vault::spec::{MemberSpec, ProxyConfig, VaultSpec, Vaults, which};

/// How long a started process may take to serve (`Backoff::PROCESS_READY`'s deadline).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The HAProxy standing in for a load balancer.
pub struct LocalProxy(pub Arc<Vaults>);
/// A member's Vault server process.
pub struct VaultMember(pub Arc<Vaults>);

/// The desired attributes of a proxy.
pub fn proxy_attrs(p: &ProxyConfig) -> Map<String, Value> {
    let backends: Vec<String> = p
        .backends
        .iter()
        .map(|b| format!("{}={}:{},{}", b.name, b.address, b.api_port, b.cluster_port))
        .collect();
    let health = match p.health {
        crate::topology::HealthMode::Active => "active",
        crate::topology::HealthMode::Unsealed => "unsealed",
    };
    json!({
        "address": p.address.to_string(),
        "api_port": p.api_port,
        "cluster_port": p.cluster_port,
        "health": health,
        "backends": backends,
        "tls": p.ca_file.is_some(),
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// The desired attributes of a member's server process.
pub fn member_attrs(v: &VaultSpec, m: &MemberSpec) -> Map<String, Value> {
    let attrs = json!({
        "address": m.address.to_string(),
        "api_port": m.api_port,
        "cluster_port": m.cluster_port,
        "node_id": m.name,
        "server": match v.flavour { Flavour::Bao => "bao", Flavour::Vault => "vault" },
        "binary": v.binary,
        "tls": v.tls.is_some(),
    });
    let mut attrs = attrs.as_object().cloned().unwrap_or_default();
    // Only an auto-unseal seal shows: `shamir` plans exactly as before seals existed.
    if v.seal.auto_unseal() {
        attrs.insert("seal".into(), json!(v.seal.kind_name()));
    }
    attrs
}

/// The desired attributes of a runtime piece: a proxy, by its load balancer's name; a member's
/// server, by the member's name.
pub fn desired(v: &VaultSpec, what: &VaultItem) -> Option<(String, Map<String, Value>)> {
    match what {
        VaultItem::Proxy(lb) => Some((lb.clone(), proxy_attrs(v.proxies.get(lb)?))),
        VaultItem::Member(m) => {
            let m = v.member(m)?;
            Some((m.name.clone(), member_attrs(v, m)))
        }
        _ => None,
    }
}

/// A member as the plan's attributes describe it (`member_attrs`).
fn member_of(planned: &MemberSpec, attrs: &Map<String, Value>) -> Result<MemberSpec, OpError> {
    let port = |key: &str| {
        attrs
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| OpError::fatal(format!("missing attribute {key}")))
    };
    let address = str_attr(attrs, "address")?
        .parse()
        .map_err(|_| OpError::fatal("attribute address is not an IPv4 address"))?;
    Ok(MemberSpec {
        name: str_attr(attrs, "node_id")?.to_string(),
        address,
        api_port: port("api_port")?,
        cluster_port: port("cluster_port")?,
        tls: attrs
            .get("tls")
            .and_then(Value::as_bool)
            .unwrap_or(planned.tls),
        ..planned.clone()
    })
}

/// The server configuration of a member: raft storage with the fastest timing, HTTPS with
/// its certificate on its own loopback address (plain HTTP where the topology says
/// `tls #false`), and the seal stanza of an auto-unseal seal (`VaultSpec::seal_stanza`).
pub fn member_config(v: &VaultSpec, m: &MemberSpec, data: &Path, seal: Option<&str>) -> String {
    let listener_tls = if v.tls.is_some() {
        let (crt, key) = v.cert_files(&m.name);
        format!(
            "  tls_cert_file = {}\n  tls_key_file = {}\n  tls_min_version = \"tls12\"\n",
            quote(&crt.display().to_string()),
            quote(&key.display().to_string())
        )
    } else {
        "  tls_disable = true\n".to_string()
    };
    format!(
        "# vaultform: member {member} of Vault cluster {vault} (stack {stack}); rewritten by apply\n\
         cluster_name = {name}\n\
         api_addr = {api_url}\n\
         cluster_addr = \"https://{a}:{cl}\"\n\
         disable_mlock = true\n\
         ui = false\n\
         log_level = \"info\"\n\n\
         storage \"raft\" {{\n  path = {data}\n  node_id = {node}\n  performance_multiplier = 1\n}}\n\n\
         listener \"tcp\" {{\n  address = \"{a}:{api}\"\n  cluster_address = \"{a}:{cl}\"\n{listener_tls}}}\n{seal}",
        seal = seal.map(|s| format!("\n{s}")).unwrap_or_default(),
        member = m.name,
        vault = v.name,
        stack = v.stack,
        name = quote(&v.name),
        node = quote(&m.name),
        api_url = quote(&m.api_url()),
        a = m.address,
        api = m.api_port,
        cl = m.cluster_port,
        data = quote(&data.display().to_string()),
    )
}

/// The state identifiers of a process: its record, its directory and the program it runs
/// (what delete stops and removes, with or without the topology).
pub(crate) fn ids(dir: &Path, rec: &ProcessRecord, program: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "process".to_string(),
            serde_json::to_string(rec).unwrap_or_default(),
        ),
        ("dir".to_string(), dir.display().to_string()),
        ("program".to_string(), program.to_string()),
    ])
}

/// The process a resource's state records.
pub fn recorded_process(rs: &ResourceState) -> Option<ProcessRecord> {
    rs.ids
        .get("process")
        .and_then(|p| serde_json::from_str(p).ok())
}

fn pidfile(dir: &Path) -> PathBuf {
    dir.join("process.json")
}

/// The process record a member's or proxy's directory holds.
pub fn read_pidfile(dir: &Path) -> Option<ProcessRecord> {
    std::fs::read(pidfile(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

pub(crate) fn io(what: &str, path: &Path, e: std::io::Error) -> OpError {
    OpError::fatal(format!("{what} {}: {e}", path.display()))
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), OpError> {
    crate::private::write(path, text.as_bytes()).map_err(|e| io("writing", path, e))
}

/// The program to run in `dir`: found on PATH, or else the one the directory's last process
/// ran (its absolute path is recorded), so that a member restarted from a shell whose PATH
/// lacks the server (a pasted `drill` command) starts the same binary again.
pub fn program_path(dir: &Path, program: &str) -> Result<PathBuf, OpError> {
    which(program)
        .or_else(|| {
            read_pidfile(dir)
                .and_then(|r| r.command.first().map(PathBuf::from))
                .filter(|p| p.is_file())
        })
        .ok_or_else(|| {
            OpError::fatal(format!(
                "{program} not found on PATH; install it (scripts/testbed setup does) or set its path in the topology"
            ))
        })
}

/// What restarting a member after a drill needs, checked before the drill takes it away: its
/// server binary.
pub fn check_restartable(v: &VaultSpec, member: &str) -> Result<PathBuf, OpError> {
    program_path(&v.member_dir(member), &v.binary)
}

/// The last lines of a log, to explain why a process did not start.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Runs `program args` in `dir` with `config` written to `dir/config_name`: adopts the process
/// already running there with the same configuration, replaces one with another, then waits
/// (polling with backoff) until `ready` says it serves.
pub(crate) async fn ensure_process<F, Fut>(
    listen: &str,
    dir: &Path,
    config_name: &str,
    config: &str,
    program: &str,
    args: &[String],
    ready: F,
) -> Result<ProcessRecord, OpError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::private::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let cfg = dir.join(config_name);
    let same_config = std::fs::read_to_string(&cfg).is_ok_and(|old| old == config);
    let log = dir.join(format!(
        "{}.log",
        config_name.split('.').next().unwrap_or("process")
    ));
    let running = read_pidfile(dir)
        .filter(process::is_running)
        .or_else(|| adopt_unrecorded(dir, program, &log));
    if let Some(old) = running {
        if same_config {
            wait_ready(&old, &ready).await?;
            return Ok(old);
        }
        process::stop(&old, Duration::from_secs(10))
            .await
            .map_err(|e| OpError::fatal(e.to_string()))?;
    }
    // Someone else's server on the address would pass for ours: refuse it by name.
    if ready().await {
        return Err(OpError::fatal(format!(
            "{listen} is already served by a process vaultform did not start; stop it, or give {program} another address in the topology"
        )));
    }
    write_private(&cfg, config)?;
    let binary = program_path(dir, program)?;
    let rec = process::spawn_detached(&binary, args, &log, dir)
        .map_err(|e| OpError::fatal(e.to_string()))?;
    write_private(
        &pidfile(dir),
        &serde_json::to_string(&rec).unwrap_or_default(),
    )?;
    wait_ready(&rec, &ready).await?;
    Ok(rec)
}

/// The process a run killed between starting it and writing its `process.json` left running
/// in `dir` (found by its command line naming this directory's configuration), recorded now.
fn adopt_unrecorded(dir: &Path, program: &str, log: &Path) -> Option<ProcessRecord> {
    let rec = process::find_under(dir, program, log).into_iter().next()?;
    write_private(&pidfile(dir), &serde_json::to_string(&rec).ok()?).ok()?;
    Some(rec)
}

async fn wait_ready<F, Fut>(rec: &ProcessRecord, ready: &F) -> Result<(), OpError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let what = format!("PID {} to serve", rec.pid);
    let probe = || async {
        if ready().await {
            Ok(Some(()))
        } else if !process::is_running(rec) {
            let tail = log_tail(&rec.log);
            let log = if tail.trim().is_empty() {
                format!("its log {} is empty", rec.log.display())
            } else {
                format!("the end of {}:\n{tail}", rec.log.display())
            };
            Err(OpError::fatal(format!(
                "{} (PID {}) {}; {log}",
                rec.command.first().map(String::as_str).unwrap_or("process"),
                rec.pid,
                process::exit_of(rec.pid),
            )))
        } else {
            Ok(None)
        }
    };
    match try_poll(Backoff::PROCESS_READY, &what, probe).await {
        Ok(()) => Ok(()),
        Err(TryPollError::Failed(e)) => Err(e),
        Err(TryPollError::GaveUp(_)) => Err(OpError::fatal(format!(
            "PID {} did not serve within {}s; see {}",
            rec.pid,
            READY_TIMEOUT.as_secs(),
            rec.log.display()
        ))),
    }
}

/// Stops what a resource's state (and its directory's record) names, and removes the
/// directory; then the parent directories that became empty, up to the working directory.
pub(crate) async fn remove_process(vaults: &Vaults, rs: &ResourceState) -> Result<(), OpError> {
    // A create interrupted before state recorded its directory: the topology names it.
    let from_topology = || match vaults.part(&rs.address).ok()? {
        (v, VaultItem::Member(m)) => Some(v.member_dir(m)),
        (v, VaultItem::Proxy(lb)) => Some(v.proxy_dir(lb)),
        (v, VaultItem::SealTransit) => Some(v.transit_dir()),
        _ => None,
    };
    let dir = rs.ids.get("dir").map(PathBuf::from).or_else(from_topology);
    // And one a killed run started but never recorded: the program the part runs, with an
    // argument naming a file in the directory (never, say, a `tail -f` of its log).
    // Recorded with the process; a state written before that: what the topology says.
    let program = rs
        .id("program")
        .or_else(|| match vaults.part(&rs.address).ok()? {
            (_, VaultItem::Proxy(_)) => Some("haproxy"),
            (v, VaultItem::Member(_) | VaultItem::SealTransit) => Some(v.binary.as_str()),
            _ => None,
        });
    let unrecorded = match (dir.as_deref(), program) {
        (Some(d), Some(p)) => process::find_under(d, p, &d.join("unrecorded.log")),
        _ => Vec::new(),
    };
    let records = recorded_process(rs)
        .into_iter()
        .chain(dir.as_deref().and_then(read_pidfile))
        .chain(unrecorded);
    for rec in records {
        process::stop(&rec, Duration::from_secs(15))
            .await
            .map_err(|e| OpError::fatal(e.to_string()))?;
    }
    if let Some(dir) = dir {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &dir, e)),
        }
        // `members/` or `proxies/`, then the working directory, when empty.
        let mut parent = dir.parent();
        for _ in 0..2 {
            match parent {
                Some(p) if std::fs::remove_dir(p).is_ok() => parent = p.parent(),
                _ => break,
            }
        }
    }
    Ok(())
}

/// Running when the process state records is, or the one its directory's record names (a
/// member restarted by `drill` or `unseal`).
pub(crate) fn observe_process(rs: &ResourceState) -> Observed {
    let from_dir = || rs.ids.get("dir").and_then(|d| read_pidfile(Path::new(d)));
    match recorded_process(rs)
        .into_iter()
        .chain(from_dir())
        .find(process::is_running)
    {
        Some(_) => Observed::Present {
            attrs: rs.attributes.clone(),
            delete_blocker: None,
        },
        _ => Observed::Gone,
    }
}

async fn tcp_open(addr: std::net::SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr)
        )
        .await,
        Ok(Ok(_))
    )
}

#[async_trait::async_trait]
impl Provider for LocalProxy {
    fn service(&self) -> &'static str {
        "local"
    }

    fn is_process(&self, _address: &crate::address::Address) -> bool {
        true
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        Ok(observe_process(rs))
    }

    async fn create(&self, _cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, VaultItem::Proxy(lb)) = self.0.part(&d.address)? else {
            return Err(OpError::fatal(format!("{}: not a proxy", d.address)));
        };
        let rec = start_proxy(v, lb).await?;
        Ok(Recorded {
            ids: ids(&v.proxy_dir(lb), &rec, "haproxy"),
            outputs: BTreeMap::from([("url".to_string(), v.proxy_url(lb).unwrap_or_default())]),
        })
    }

    async fn delete(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        remove_process(&self.0, rs).await
    }
}

/// Starts the HAProxy of load balancer `lb` (or adopts the one running with the same
/// configuration) and waits until it accepts connections.
pub async fn start_proxy(v: &VaultSpec, lb: &str) -> Result<ProcessRecord, OpError> {
    let p = v
        .proxies
        .get(lb)
        .ok_or_else(|| OpError::fatal(format!("{lb}: no such load balancer")))?;
    let dir = v.proxy_dir(lb);
    let mut config = haproxy::render(p);
    let socket = dir.join("admin.sock");
    // A Unix socket path must fit in 108 bytes; without it, status asks the members.
    if socket.as_os_str().len() < 100 {
        config = config.replacen(
            "global\n",
            &format!(
                "global\n    stats socket {} mode 600 level user\n",
                socket.display()
            ),
            1,
        );
    }
    let args = vec![
        "-db".to_string(),
        "-f".to_string(),
        dir.join("haproxy.cfg").display().to_string(),
    ];
    let addr = std::net::SocketAddr::from((p.address, p.api_port));
    let listen = format!("{}:{}", p.address, p.api_port);
    ensure_process(
        &listen,
        &dir,
        "haproxy.cfg",
        &config,
        "haproxy",
        &args,
        || tcp_open(addr),
    )
    .await
}

/// The running process of a load balancer's HAProxy, from its directory's record.
pub fn proxy_process(v: &VaultSpec, lb: &str) -> Option<ProcessRecord> {
    read_pidfile(&v.proxy_dir(lb)).filter(process::is_running)
}

/// Whether a member's API answers at all (any health code).
async fn answers(client: &Client) -> bool {
    client.health().await.is_ok()
}

#[async_trait::async_trait]
impl Provider for VaultMember {
    fn service(&self) -> &'static str {
        "local"
    }

    fn is_process(&self, _address: &crate::address::Address) -> bool {
        true
    }

    async fn read(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        Ok(observe_process(rs))
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        // The plan's attributes say where it listens and what runs; the cluster's name and
        // working directory are the run's.
        let (v, planned) = self.0.member(&d.address)?;
        let m = member_of(planned, &d.attrs)?;
        let binary = str_attr(&d.attrs, "binary")?;
        // A running member initialised under another seal is never restarted with this one.
        if let Ok(c) = v.client(&m.api_url())
            && let Ok(status) = c.seal_status().await
            && status.initialized
        {
            crate::vault::bootstrap::refuse_seal_change(v, &status)?;
        }
        let seal = v.seal_stanza(cx.aws, cx.outputs, &m).await?;
        let rec = start_member(v, &m, binary, seal.as_deref()).await?;
        Ok(Recorded {
            ids: ids(&v.member_dir(&m.name), &rec, binary),
            outputs: BTreeMap::from([("api_addr".to_string(), m.api_url())]),
        })
    }

    async fn delete(&self, _cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        remove_process(&self.0, rs).await
    }
}

/// Starts a member's server (or adopts the one running with the same configuration) and waits
/// until its API answers.
pub async fn start_member(
    v: &VaultSpec,
    m: &MemberSpec,
    binary: &str,
    seal: Option<&str>,
) -> Result<ProcessRecord, OpError> {
    let dir = v.member_dir(&m.name);
    let data = dir.join("data");
    crate::private::create_dir_all(&data).map_err(|e| io("creating", &data, e))?;
    let config = member_config(v, m, &data, seal);
    let args = vec![
        "server".to_string(),
        format!("-config={}", dir.join("server.hcl").display()),
    ];
    let client = v
        .client(&m.api_url())
        .map_err(|e| OpError::fatal(e.to_string()))?;
    let listen = format!("{}:{}", m.address, m.api_port);
    ensure_process(&listen, &dir, "server.hcl", &config, binary, &args, || {
        answers(&client)
    })
    .await
}

/// The running process of a member, from its directory's record.
pub fn member_process(v: &VaultSpec, name: &str) -> Option<ProcessRecord> {
    read_pidfile(&v.member_dir(name)).filter(process::is_running)
}
