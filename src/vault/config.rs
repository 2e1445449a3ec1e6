//! Declarative Vault configuration as resource kinds, applied once the cluster is whole:
//! secrets engines (`secrets-engine`; PKI's `pki-root-ca` and `pki-role`), auth methods
//! (`auth-method`, AppRole's `auth-role`) and ACL policies (`vault-policy`). Each reads the
//! server's view and reports it in the topology's terms (durations as written when they mean
//! the same number of seconds), so a second apply is a no-op and a change out of band is drift.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use petgraph::graph::NodeIndex;

use serde_json::{Map, Value, json};

use super::cluster::{cluster_urls, first_with_health};
use super::spec::{VaultSpec, Vaults};
use super::{Client, Secret, VaultError};
use crate::address::{Address, VaultItem};
use crate::graph::{Builder, Kind};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::{
    AuthKind, AuthMethod, AuthRole, PkiRole, Policy, SecretsEngine, VaultCluster, duration_seconds,
};

/// The service account whose token Kubernetes auth reviews workloads' tokens with.
pub const KUBE_REVIEWER: &str = "vault-token-reviewer";

/// What Kubernetes auth needs from the EKS cluster whose tokens it reviews.
pub struct ReviewerAccess {
    /// The API the servers reach, where it is not the endpoint EKS records (an endpoint
    /// override: a tunnel, an emulator's control plane).
    pub host: Option<String>,
    /// The API's CA (PEM).
    pub ca: String,
    /// The reviewer's token: never recorded.
    pub jwt: Secret,
}

/// The Kubernetes runtime answers what Kubernetes auth needs of a cluster (the catalog gives
/// it to this layer).
#[async_trait::async_trait]
pub trait TokenReviewer: Send + Sync {
    async fn reviewer(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        cluster: &str,
    ) -> Result<ReviewerAccess, OpError>;
}

/// One configuration item of a cluster, found by its address.
enum Item<'a> {
    Engine(&'a SecretsEngine),
    RootCa(&'a SecretsEngine),
    PkiRole(&'a SecretsEngine, &'a PkiRole),
    /// An auth method; for Kubernetes auth on EKS, its mount on one cluster.
    Auth(&'a AuthMethod, Option<&'a str>),
    /// A role; for Kubernetes auth on EKS, on the mount of one cluster.
    AuthRole(&'a AuthMethod, &'a AuthRole, Option<&'a str>),
    Policy(&'a Policy),
}

fn lookup<'a>(v: &'a VaultSpec, what: &VaultItem) -> Option<Item<'a>> {
    let engine = |path: &str| v.secrets.iter().find(|s| s.path.value == path);
    Some(match what {
        VaultItem::Secrets(path) => Item::Engine(engine(path)?),
        VaultItem::RootCa(path) => Item::RootCa(engine(path)?),
        VaultItem::PkiRole { mount, role } => {
            let s = engine(mount)?;
            Item::PkiRole(s, s.roles.iter().find(|r| &r.name.value == role)?)
        }
        VaultItem::Auth(path) => {
            let (a, cluster) = auth_mount(v, path)?;
            Item::Auth(a, cluster)
        }
        VaultItem::AuthRole { mount, role } => {
            let (a, cluster) = auth_mount(v, mount)?;
            let r = a.roles.iter().find(|r| &r.name.value == role)?;
            if cluster.is_some_and(|c| !r.on_cluster(c)) {
                return None;
            }
            Item::AuthRole(a, r, cluster)
        }
        VaultItem::Policy(name) => Item::Policy(v.policies.iter().find(|p| &p.name.value == name)?),
        _ => return None,
    })
}

/// The auth method mounted at `path`: a method's own path, or `<path>/<cluster>`, Kubernetes
/// auth's mount on one EKS cluster.
fn auth_mount<'a>(v: &'a VaultSpec, path: &str) -> Option<(&'a AuthMethod, Option<&'a str>)> {
    if let Some(a) = v.auth.iter().find(|a| a.path.value == path) {
        return Some((a, None));
    }
    let (p, cluster) = path.rsplit_once('/')?;
    let a = v
        .auth
        .iter()
        .find(|a| a.path.value == p && a.kind.value == AuthKind::Kubernetes)?;
    let m = v.members.iter().find(|m| m.cluster == cluster)?;
    Some((a, Some(m.cluster.as_str())))
}

/// The declarative configuration of a cluster, once it is whole (after `verify`): policies,
/// secrets engines (a PKI root CA after its mount, roles after the CA), auth methods and their
/// roles (after the policies they name).
pub fn graph<'t>(b: &mut Builder<'t>, v: &'t VaultCluster, verify: NodeIndex) {
    let at = |what| Address::vault(&v.name.value, what);
    let mut policy_ix: HashMap<&str, NodeIndex> = HashMap::new();
    for p in &v.policies {
        let policy = at(VaultItem::Policy(p.name.value.clone()));
        let ix = b.g.add(policy, Kind::VaultPolicy, None, p.name.span);
        b.g.edge(verify, ix);
        policy_ix.insert(p.name.value.as_str(), ix);
    }
    for s in &v.secrets {
        let mount = &s.path.value;
        let ix = b.g.add(
            at(VaultItem::Secrets(mount.clone())),
            Kind::SecretsEngine,
            None,
            s.path.span,
        );
        b.g.edge(verify, ix);
        let ca = s.root_ca.as_ref().map(|c| {
            let cix = b.g.add(
                at(VaultItem::RootCa(mount.clone())),
                Kind::PkiRootCa,
                None,
                c.span,
            );
            b.g.edge(ix, cix);
            cix
        });
        for r in &s.roles {
            let role = VaultItem::PkiRole {
                mount: mount.clone(),
                role: r.name.value.clone(),
            };
            let rix = b.g.add(at(role), Kind::PkiRole, None, r.name.span);
            b.g.edge(ca.unwrap_or(ix), rix);
        }
    }
    for a in &v.auth {
        // Kubernetes auth on EKS: one mount per cluster, each reviewing that cluster's tokens
        // (`<path>/<cluster>`), so that workloads in every region log in locally.
        if a.kind.value == AuthKind::Kubernetes
            && matches!(v.runtime.value, crate::topology::Runtime::Kubernetes { .. })
        {
            let mut clusters: Vec<&str> = Vec::new();
            for m in &v.members {
                if !clusters.contains(&m.cluster.value.as_str()) {
                    clusters.push(&m.cluster.value);
                }
            }
            for c in clusters {
                let mount = mount_path(a, Some(c));
                let ix = b.g.add(
                    at(VaultItem::Auth(mount.clone())),
                    Kind::AuthMethod,
                    None,
                    a.path.span,
                );
                b.g.edge(verify, ix);
                if let Some((cluster, _)) = b.clusters.get(c) {
                    b.g.edge(*cluster, ix);
                }
                let roles = a.roles.iter().filter(|r| r.on_cluster(c));
                auth_roles(b, v, &mount, ix, roles, &policy_ix);
            }
            continue;
        }
        let mount = &a.path.value;
        let ix = b.g.add(
            at(VaultItem::Auth(mount.clone())),
            Kind::AuthMethod,
            None,
            a.path.span,
        );
        b.g.edge(verify, ix);
        auth_roles(b, v, mount, ix, a.roles.iter(), &policy_ix);
    }
}

/// The roles of the auth method mounted at `mount` (node `method`), each after the policies
/// it names.
fn auth_roles<'t>(
    b: &mut Builder<'t>,
    v: &'t VaultCluster,
    mount: &str,
    method: NodeIndex,
    roles: impl Iterator<Item = &'t AuthRole>,
    policy_ix: &HashMap<&str, NodeIndex>,
) {
    for r in roles {
        let role = VaultItem::AuthRole {
            mount: mount.to_string(),
            role: r.name.value.clone(),
        };
        let rix = b.g.add(
            Address::vault(&v.name.value, role),
            Kind::AuthRole,
            None,
            r.name.span,
        );
        b.g.edge(method, rix);
        for p in &r.policies {
            if let Some(pix) = policy_ix.get(p.value.as_str()) {
                b.g.edge(*pix, rix);
            }
        }
    }
}

/// Where an auth method is mounted: its path, or on one EKS cluster `<path>/<cluster>`.
fn mount_path(a: &AuthMethod, cluster: Option<&str>) -> String {
    match cluster {
        Some(c) => format!("{}/{c}", a.path.value),
        None => a.path.value.clone(),
    }
}

/// The API path that holds the item (and that `DELETE` removes).
fn api_path(item: &Item) -> String {
    match item {
        Item::Engine(s) => format!("sys/mounts/{}", s.path.value),
        Item::RootCa(s) => format!("{}/root", s.path.value),
        Item::PkiRole(s, r) => format!("{}/roles/{}", s.path.value, r.name.value),
        Item::Auth(m, c) => format!("sys/auth/{}", mount_path(m, *c)),
        Item::AuthRole(m, r, c) => format!("auth/{}/role/{}", mount_path(m, *c), r.name.value),
        Item::Policy(p) => format!("sys/policies/acl/{}", p.name.value),
    }
}

/// The desired attributes of a configuration resource.
pub fn desired(v: &VaultSpec, what: &VaultItem) -> Option<(String, Map<String, Value>)> {
    let item = lookup(v, what)?;
    let mut m = Map::new();
    let name = match &item {
        Item::Engine(s) => {
            let (kind, version) = s.kind.value.mount();
            m.insert("type".into(), json!(kind));
            if let Some(version) = version {
                m.insert("version".into(), json!(version));
            }
            if let Some(t) = &s.max_lease_ttl {
                m.insert("max_lease_ttl".into(), json!(t.value));
            }
            s.path.value.clone()
        }
        Item::RootCa(s) => {
            let ca = s.root_ca.as_ref()?;
            m.insert("common_name".into(), json!(ca.common_name.value));
            if let Some(t) = &ca.ttl {
                m.insert("ttl".into(), json!(t.value));
            }
            format!("{}/root", s.path.value)
        }
        Item::PkiRole(_, r) => {
            m.insert("allowed_domains".into(), json!(r.allowed_domains));
            m.insert("allow_subdomains".into(), json!(r.allow_subdomains));
            if let Some(t) = &r.max_ttl {
                m.insert("max_ttl".into(), json!(t.value));
            }
            r.name.value.clone()
        }
        Item::Auth(a, None) => {
            m.insert("type".into(), json!(a.kind.value.as_str()));
            a.path.value.clone()
        }
        Item::Auth(a, Some(c)) => {
            let member = v.members.iter().find(|m| m.cluster == *c)?;
            let cluster = Address::region(
                &member.region,
                crate::address::RegionItem::Cluster(c.to_string()),
            );
            m.insert("type".into(), json!(a.kind.value.as_str()));
            m.insert(
                "kubernetes_host".into(),
                json!(cluster.reference("endpoint")),
            );
            let ns = v.namespace();
            m.insert(
                "token_reviewer".into(),
                json!(format!("{ns}/{KUBE_REVIEWER}")),
            );
            mount_path(a, Some(c))
        }
        Item::AuthRole(a, r, _) => {
            let sorted = |l: &[crate::topology::Spanned<String>]| {
                let mut l: Vec<&str> = l.iter().map(|p| p.value.as_str()).collect();
                l.sort();
                l.dedup();
                json!(l)
            };
            m.insert("token_policies".into(), sorted(&r.policies));
            if let Some(t) = &r.token_ttl {
                m.insert("token_ttl".into(), json!(t.value));
            }
            if a.kind.value == AuthKind::Kubernetes {
                m.insert(
                    "bound_service_account_names".into(),
                    sorted(&r.service_accounts),
                );
                m.insert(
                    "bound_service_account_namespaces".into(),
                    sorted(&r.namespaces),
                );
                if let Some(aud) = &r.audience {
                    m.insert("audience".into(), json!(aud.value));
                }
            }
            r.name.value.clone()
        }
        Item::Policy(p) => {
            m.insert("rules".into(), json!(p.hcl()));
            p.name.value.clone()
        }
    };
    Some((name, m))
}

/// A client for the cluster (the front endpoint or the first member that serves) and the root
/// token from the store; `None` when no member serves.
async fn admin(cx: &Cx<'_>, v: &VaultSpec) -> Result<Option<(Client, Secret)>, OpError> {
    let Some(c) =
        first_with_health(&v.client_tls(), &cluster_urls(v), |s| s == 200 || s == 429).await
    else {
        return Ok(None);
    };
    let token = super::root::token(cx.aws, cx.outputs, v).await?;
    Ok(Some((c, token)))
}

async fn require_admin(cx: &Cx<'_>, v: &VaultSpec) -> Result<(Client, Secret), OpError> {
    admin(cx, v).await?.ok_or_else(|| {
        OpError::retryable(format!(
            "no member of {} serves; `vaultform status` shows why",
            v.name
        ))
    })
}

/// How long a new KV v2 mount may take to finish its upgrade on every member.
const KV_UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Waits until a KV v2 mount answers through every load balancer and every member: a new one
/// upgrades itself first, and until a standby has followed, reads through it answer 400
/// "Waiting for the primary to upgrade". A pipeline that applies and then reads its secrets
/// must not meet that.
async fn kv_serves_everywhere(v: &VaultSpec, token: &Secret, mount: &str) -> Result<(), OpError> {
    let urls: Vec<String> = v
        .proxies
        .keys()
        .filter_map(|lb| v.proxy_url(lb))
        .chain(v.members.iter().map(|m| v.member_url(m)))
        .collect();
    let probe = format!("{mount}/data/vaultform-probe");
    for url in urls {
        let Ok(c) = v.client(&url) else {
            continue;
        };
        super::cluster::poll(
            &format!("{mount} to serve through {url}"),
            KV_UPGRADE_TIMEOUT,
            || async {
                match c.read(token, &probe).await {
                    Ok(_) | Err(VaultError::Api { status: 404, .. }) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// A read that answers `None` for 404 (and PKI's empty CA).
async fn read_opt(c: &Client, token: &Secret, path: &str) -> Result<Option<Value>, OpError> {
    match c.read(token, path).await {
        Ok(v) => Ok(Some(v)),
        Err(VaultError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A duration the server reports in seconds, in the topology's words when they agree.
fn duration_as_recorded(recorded: Option<&Value>, seconds: Option<u64>) -> Value {
    let seconds = seconds.unwrap_or(0);
    match recorded.and_then(Value::as_str) {
        Some(r) if duration_seconds(r) == Some(seconds) => json!(r),
        _ => json!(format!("{seconds}s")),
    }
}

/// Observed attributes, only for the keys state records (those the topology controls).
fn observe(rs: &ResourceState, now: Map<String, Value>) -> Observed {
    let attrs = rs
        .attributes
        .keys()
        .map(|k| (k.clone(), now.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    Observed::Present {
        attrs,
        delete_blocker: None,
    }
}

fn mount_of<'a>(mounts: &'a Value, path: &str) -> Option<&'a Value> {
    let key = format!("{}/", path.trim_end_matches('/'));
    mounts
        .get("data")
        .and_then(|d| d.get(&key))
        .or_else(|| mounts.get(&key))
}

fn secs(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(duration_seconds))
}

/// What the server holds for `item`: `None` when it does not exist.
async fn current(
    c: &Client,
    token: &Secret,
    item: &Item<'_>,
    recorded: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, OpError> {
    let mut m = Map::new();
    match item {
        Item::Engine(s) => {
            let mounts = c.mounts(token).await.map_err(OpError::from)?;
            let Some(mount) = mount_of(&mounts, &s.path.value) else {
                return Ok(None);
            };
            m.insert("type".into(), mount["type"].clone());
            let version = mount
                .pointer("/options/version")
                .and_then(Value::as_str)
                .unwrap_or("1");
            m.insert("version".into(), json!(version));
            m.insert(
                "max_lease_ttl".into(),
                duration_as_recorded(
                    recorded.get("max_lease_ttl"),
                    mount.pointer("/config/max_lease_ttl").and_then(secs),
                ),
            );
        }
        Item::RootCa(s) => {
            // No CA yet: 404, or OpenBao's 400 "no default issuer currently configured".
            let ca = match c.read(token, &format!("{}/cert/ca", s.path.value)).await {
                Ok(v) => Some(v),
                Err(VaultError::Api {
                    status: 400 | 404, ..
                }) => None,
                Err(e) => return Err(e.into()),
            };
            let has = ca
                .as_ref()
                .and_then(|v| v.pointer("/data/certificate"))
                .and_then(Value::as_str)
                .is_some_and(|cert| !cert.is_empty());
            if !has {
                return Ok(None);
            }
            // The certificate's subject is not parsed: what was recorded stands.
            m = recorded.clone();
        }
        Item::PkiRole(..) | Item::AuthRole(..) | Item::Policy(_) => {
            let Some(v) = read_opt(c, token, &api_path(item)).await? else {
                return Ok(None);
            };
            let d = &v["data"];
            match item {
                Item::PkiRole(..) => {
                    m.insert("allowed_domains".into(), d["allowed_domains"].clone());
                    m.insert("allow_subdomains".into(), d["allow_subdomains"].clone());
                    m.insert(
                        "max_ttl".into(),
                        duration_as_recorded(recorded.get("max_ttl"), secs(&d["max_ttl"])),
                    );
                }
                Item::AuthRole(..) => {
                    let sorted = |key: &str| {
                        let mut l: Vec<String> = d[key]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p.as_str().map(str::to_owned))
                            .collect();
                        l.sort();
                        json!(l)
                    };
                    m.insert("token_policies".into(), sorted("token_policies"));
                    m.insert(
                        "token_ttl".into(),
                        duration_as_recorded(recorded.get("token_ttl"), secs(&d["token_ttl"])),
                    );
                    for key in [
                        "bound_service_account_names",
                        "bound_service_account_namespaces",
                    ] {
                        m.insert(key.into(), sorted(key));
                    }
                    m.insert("audience".into(), d["audience"].clone());
                }
                _ => {
                    m.insert("rules".into(), d["policy"].clone());
                }
            }
        }
        Item::Auth(a, cluster) => {
            let mount = mount_path(a, *cluster);
            let methods = c.read(token, "sys/auth").await.map_err(OpError::from)?;
            let Some(method) = mount_of(&methods, &mount) else {
                return Ok(None);
            };
            m.insert("type".into(), method["type"].clone());
            if cluster.is_some() {
                // The host as recorded while the server holds the same one (the reference
                // resolves to it); the reviewer's token cannot be read back.
                let config = read_opt(c, token, &format!("auth/{mount}/config")).await?;
                let host = config
                    .as_ref()
                    .and_then(|c| c.pointer("/data/kubernetes_host"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let recorded_host = recorded.get("kubernetes_host").cloned();
                m.insert(
                    "kubernetes_host".into(),
                    if host.is_empty() {
                        Value::Null
                    } else {
                        recorded_host.unwrap_or(json!(host))
                    },
                );
                if let Some(r) = recorded.get("token_reviewer") {
                    m.insert("token_reviewer".into(), r.clone());
                }
            }
        }
    }
    Ok(Some(m))
}

/// Writes `item` as `attrs` say; `exists` when the server holds it already (adopted).
async fn write(
    c: &Client,
    token: &Secret,
    item: &Item<'_>,
    attrs: &Map<String, Value>,
    exists: bool,
) -> Result<(), OpError> {
    let path = api_path(item);
    let text = |key: &str| attrs.get(key).and_then(Value::as_str).unwrap_or_default();
    let r = match item {
        Item::Engine(s) => {
            let mut config = Map::new();
            if let Some(t) = attrs.get("max_lease_ttl") {
                config.insert("max_lease_ttl".into(), t.clone());
            }
            if exists {
                let tune = format!("sys/mounts/{}/tune", s.path.value);
                c.write(token, &tune, Value::Object(config)).await.map(drop)
            } else {
                let options = match attrs.get("version") {
                    Some(v) => json!({ "version": v }),
                    None => json!({}),
                };
                c.enable_secrets_engine(
                    token,
                    &s.path.value,
                    text("type"),
                    options,
                    Value::Object(config),
                )
                .await
            }
        }
        Item::RootCa(s) => {
            if exists {
                return Ok(());
            }
            let generate = format!("{}/root/generate/internal", s.path.value);
            c.write(token, &generate, Value::Object(attrs.clone()))
                .await
                .map(drop)
        }
        Item::Auth(a, cluster) => {
            if exists {
                return Ok(());
            }
            c.enable_auth(token, &mount_path(a, *cluster), text("type"))
                .await
        }
        Item::Policy(p) => c.put_policy(token, &p.name.value, text("rules")).await,
        Item::PkiRole(..) | Item::AuthRole(..) => c
            .write(token, &path, Value::Object(attrs.clone()))
            .await
            .map(drop),
    };
    r.map_err(OpError::from)
}

/// One provider for every configuration kind: the item is found by its address.
pub struct Config {
    pub kind: Kind,
    pub vaults: Arc<Vaults>,
    /// Kubernetes auth's view of each EKS cluster (from the Kubernetes runtime).
    pub reviewer: Option<Arc<dyn TokenReviewer>>,
}

#[async_trait::async_trait]
impl Provider for Config {
    fn service(&self) -> &'static str {
        "vault"
    }

    fn forces_replacement(&self) -> &'static [&'static str] {
        match self.kind {
            Kind::SecretsEngine => &["type", "version"],
            Kind::PkiRootCa => &["common_name", "ttl"],
            Kind::AuthMethod => &["type"],
            _ => &[],
        }
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let recorded = || Observed::Present {
            attrs: rs.attributes.clone(),
            delete_blocker: None,
        };
        let Ok((v, what)) = self.vaults.part(&rs.address) else {
            return Ok(recorded());
        };
        let Some(item) = lookup(v, what) else {
            return Ok(recorded());
        };
        // A cluster that does not serve (stopped, sealed) keeps what was recorded: apply
        // brings it back first.
        let Ok(Some((c, token))) = admin(cx, v).await else {
            return Ok(recorded());
        };
        Ok(match current(&c, &token, &item, &rs.attributes).await? {
            Some(now) => observe(rs, now),
            None => Observed::Gone,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, what) = self.vaults.part(&d.address)?;
        let item = lookup(v, what)
            .ok_or_else(|| OpError::fatal(format!("{}: not in the topology", d.address)))?;
        let (c, token) = require_admin(cx, v).await?;
        let exists = current(&c, &token, &item, &d.attrs).await?.is_some();
        write(&c, &token, &item, &d.attrs, exists).await?;
        if let Item::Auth(a, Some(cluster)) = &item {
            let reviewer = self.reviewer.as_ref().ok_or_else(|| {
                OpError::fatal(format!(
                    "{}: no Kubernetes runtime to review tokens",
                    d.address
                ))
            })?;
            let access = reviewer.reviewer(cx, v, cluster).await?;
            let host = d
                .attrs
                .get("kubernetes_host")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // `{{<cluster address>:endpoint}}`: the cluster's recorded API endpoint.
            let host = match access.host {
                Some(h) => h,
                None => match host
                    .strip_prefix("{{")
                    .and_then(|h| h.strip_suffix("}}"))
                    .and_then(Address::parse_reference)
                {
                    Some((address, key)) => cx.output(address, key)?.to_string(),
                    None => host.to_string(),
                },
            };
            let body = json!({
                "kubernetes_host": host,
                "kubernetes_ca_cert": access.ca,
                "token_reviewer_jwt": access.jwt.expose(),
                "disable_local_ca_jwt": true,
            });
            c.write(
                &token,
                &format!("auth/{}/config", mount_path(a, Some(cluster))),
                body,
            )
            .await
            .map_err(OpError::from)?;
        }
        if let Item::Engine(s) = &item
            && d.attrs.get("version").and_then(Value::as_str) == Some("2")
        {
            kv_serves_everywhere(v, &token, &s.path.value).await?;
        }
        Ok(Recorded {
            ids: BTreeMap::from([("path".to_string(), api_path(&item))]),
            outputs: BTreeMap::new(),
        })
    }

    /// Deletes what the state recorded; when no member serves, the configuration goes with
    /// the cluster's data (a destroy of a stopped cluster).
    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Some(path) = rs.ids.get("path") else {
            return Ok(());
        };
        let Ok((v, _)) = self.vaults.part(&rs.address) else {
            return Ok(());
        };
        // No member serves, or no token to be had: the configuration goes with the data.
        let Ok(Some((c, token))) = admin(cx, v).await else {
            return Ok(());
        };
        match c.delete(&token, path).await {
            Ok(()) | Err(VaultError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
