//! The Kubernetes runtime's objects as planned resources (`vault.<v>.kube.<cluster>.<object>`):
//! which objects a Vault cluster needs on each EKS cluster, in what order, their desired
//! attributes, and the provider that applies, reads and deletes them.
//!
//! An object's attributes are its manifest, flattened to one attribute per field
//! (`spec.replicas`, `metadata.labels["app.kubernetes.io/name"]`), so that `plan` diffs and
//! shows drift field by field. What only apply knows (a load balancer's DNS name, a role's
//! ARN, the certificate files) is written as a reference, `{{<address>:<output>}}` or
//! `{{file-base64:<file>}}`, resolved when the object is sent: a plan made before the load
//! balancer exists shows where the value will come from, and the state never holds the TLS
//! key (only the reference to its file).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::apply::{self as kapply, ObjectRef};
use super::clusters::Clusters;
use super::manifests::{self, KubeMember, KubeSeal, KubeVault};
use crate::address::{Address, KubeObject, RegionItem, Role, VaultItem};
use crate::graph::{Builder, Kind};
use crate::provider::{Cx, Desired, Observed, OpError, Provider, Recorded};
use crate::state::ResourceState;
use crate::topology::{Runtime, SealKind, Topology};
use crate::vault::seal::SealSpec;
use crate::vault::spec::{MemberSpec, VaultSpec, Vaults};

/// The annotation on a member's pod template that carries its certificate's digest: a new
/// certificate rolls the pod, which reads certificates only when it starts.
pub const CERT_DIGEST_ANNOTATION: &str = "vaultform.io/tls-sha256";

/// Adds the Kubernetes objects of every Vault cluster on the Kubernetes runtime: per EKS
/// cluster its namespace and disruption budget, per member its service account, configuration,
/// TLS secret, services and StatefulSet; each member's readiness waits for them.
pub fn graph(b: &mut Builder<'_>, t: &Topology) {
    for v in &t.vaults {
        if !matches!(v.runtime.value, Runtime::Kubernetes { .. }) {
            continue;
        }
        let vn = v.name.value.as_str();
        let at = |cluster: &str, object| {
            Address::vault(
                vn,
                VaultItem::Kube {
                    cluster: cluster.to_string(),
                    object,
                },
            )
        };
        let role = b.g.get(Address::role(Role::Vault(vn.to_string())).as_str());
        let lb_node = |b: &Builder<'_>, lb: &str| b.load_balancers.get(lb).map(|(n, _)| *n);
        let primary_lb = v
            .bootstrap_member()
            .and_then(|p| lb_node(b, &p.load_balancer.value));
        let seal_key = match &v.seal.kind {
            SealKind::Awskms { key } => v
                .bootstrap_member()
                .and_then(|p| t.cluster(&p.cluster.value))
                .and_then(|(r, _)| {
                    b.g.get(
                        Address::region(&r.name.value, RegionItem::Key(key.value.clone())).as_str(),
                    )
                }),
            _ => None,
        };
        // Kubernetes auth: a token reviewer on each cluster, before the method's mount there
        // (`vault.<v>.auth.<path>/<cluster>`).
        let kube_auth = v
            .auth
            .iter()
            .find(|a| a.kind.value == crate::topology::AuthKind::Kubernetes);
        let reviewer = |b: &mut Builder<'_>, c: &str, ns, region| {
            let mut add = |object, after| {
                let ix =
                    b.g.add(at(c, object), Kind::KubeObject, region, v.runtime.span);
                b.g.edge(after, ix);
                ix
            };
            let account = add(KubeObject::ReviewerAccount, ns);
            let binding = add(KubeObject::ReviewerBinding, account);
            let token = add(KubeObject::ReviewerToken, account);
            for a in v
                .auth
                .iter()
                .filter(|a| a.kind.value == crate::topology::AuthKind::Kubernetes)
            {
                let mount = Address::vault(vn, VaultItem::Auth(format!("{}/{c}", a.path.value)));
                if let Some(ix) = b.g.get(mount.as_str()) {
                    b.g.edge(binding, ix);
                    b.g.edge(token, ix);
                }
            }
        };
        let mut namespaces = BTreeMap::new();
        for m in &v.members {
            let c = m.cluster.value.as_str();
            let Some((region, _)) = t.cluster(c) else {
                continue;
            };
            let region = Some(region.name.value.as_str());
            let span = m.name.span;
            let (ns, pdb) = *namespaces.entry(c).or_insert_with(|| {
                let ns = b.g.add(
                    at(c, KubeObject::Namespace),
                    Kind::KubeObject,
                    region,
                    v.runtime.span,
                );
                if let Some((cluster, pools)) = b.clusters.get(c).cloned() {
                    b.g.edge(cluster, ns);
                    b.g.edges(&pools, ns);
                }
                // The claims need the EBS CSI driver add-on.
                if let Some(addons) = b.addons.get(c).cloned() {
                    b.g.edges(&addons, ns);
                }
                // The namespace (its claims) goes before the volumes' sweep at destroy.
                if let Some(volumes) = b.kube_volumes.get(c).copied() {
                    b.g.edge(volumes, ns);
                }
                let pdb = b.g.add(
                    at(c, KubeObject::DisruptionBudget),
                    Kind::KubeObject,
                    region,
                    v.runtime.span,
                );
                b.g.edge(ns, pdb);
                if kube_auth.is_some() {
                    reviewer(b, c, ns, region);
                }
                (ns, pdb)
            });
            let name = m.name.value.clone();
            let object = |b: &mut Builder<'_>, object, deps: &[Option<_>]| {
                let ix = b.g.add(at(c, object), Kind::KubeObject, region, span);
                b.g.edge(ns, ix);
                for d in deps.iter().flatten() {
                    b.g.edge(*d, ix);
                }
                ix
            };
            let cert =
                b.g.get(Address::vault(vn, VaultItem::Cert(name.clone())).as_str());
            let sa = object(b, KubeObject::ServiceAccount(name.clone()), &[role]);
            let own_lb = lb_node(b, &m.load_balancer.value);
            let config = object(
                b,
                KubeObject::Config(name.clone()),
                &[own_lb, primary_lb, seal_key],
            );
            let secret = v
                .tls
                .enabled
                .then(|| object(b, KubeObject::TlsSecret(name.clone()), &[cert]));
            // The transit seal's token, from the unseal store (after the role, after the
            // store's buckets).
            let seal = matches!(v.seal.kind, SealKind::Transit(_))
                .then(|| object(b, KubeObject::SealSecret(name.clone()), &[role]));
            let headless = object(b, KubeObject::Service(name.clone()), &[]);
            let node_port = object(b, KubeObject::NodePort(name.clone()), &[]);
            let sts = object(
                b,
                KubeObject::StatefulSet(name.clone()),
                &[Some(sa), Some(config), secret, seal, Some(headless), cert],
            );
            if let Some(member) =
                b.g.get(Address::vault(vn, VaultItem::Member(name)).as_str())
            {
                b.g.edge(sts, member);
                b.g.edge(node_port, member);
                b.g.edge(pdb, member);
            }
        }
    }
}

/// A reference to a file of the cluster's working directory, base64-encoded when sent.
fn file_ref(how: &str, file: &str) -> String {
    format!("{{{{{how}:{file}}}}}")
}

/// The reference kind of an unseal-store object (after the store's prefix), decrypted and
/// base64-encoded when sent: it is never in the state or the plan.
const STORE_REF: &str = "store-base64";

fn lb_address(v: &VaultSpec, lb: &str) -> Option<Address> {
    let region = v.proxy_regions.get(lb)?;
    Some(Address::region(
        region,
        RegionItem::LoadBalancer(lb.to_string()),
    ))
}

/// The manifests' inputs for cluster `v`.
pub fn kube_vault(v: &VaultSpec) -> Option<KubeVault> {
    let k = v.kube()?;
    let p = v.primary();
    Some(KubeVault {
        name: v.name.clone(),
        namespace: k.namespace.clone(),
        program: match v.flavour {
            crate::topology::Flavour::Bao => "bao",
            crate::topology::Flavour::Vault => "vault",
        }
        .into(),
        image: k.image.clone(),
        version: k.version.clone(),
        api_port: p.api_port,
        cluster_port: p.cluster_port,
        cpu_request: "250m".into(),
        memory_request: "256Mi".into(),
        memory_limit: "512Mi".into(),
        storage: "10Gi".into(),
        storage_class: None,
        // `disable_mlock = true`, as Vault's documentation recommends with raft storage: the
        // pod runs as a non-root user with every capability dropped.
        mlock: false,
    })
}

/// A member's inputs, with references where apply fills the values in.
fn kube_member(v: &VaultSpec, m: &MemberSpec) -> Option<KubeMember> {
    let host = lb_address(v, &m.load_balancer)?.reference("dns_name");
    let primary = v.primary();
    let join_url = (!m.primary)
        .then(|| {
            let lb = lb_address(v, &primary.load_balancer)?;
            Some(format!(
                "https://{}:{}",
                lb.reference("dns_name"),
                primary.api_port
            ))
        })
        .flatten();
    let seal = match &v.seal {
        // A multi-Region key has the same ID in every region: each member uses its own
        // region's replica through it.
        SealSpec::Awskms { key_address } => KubeSeal::Awskms {
            kms_key_id: key_address.reference("key_id"),
        },
        SealSpec::Transit(t) => KubeSeal::Transit {
            address: t.url.clone(),
            key_name: t.key_name.clone(),
            mount: t.mount.clone(),
            ca: t.ca_file.is_some(),
        },
        SealSpec::Shamir => KubeSeal::Shamir,
    };
    Some(KubeMember {
        name: m.name.clone(),
        region: m.region.clone(),
        advertise_host: host,
        join_url,
        seal,
        role_arn: Address::role(Role::Vault(v.name.clone())).reference("arn"),
        node_ports: m.node_ports.unwrap_or_else(|| manifests::node_ports(0)),
        tls_cert: String::new(),
        tls_key: String::new(),
        tls_ca: String::new(),
    })
}

/// The manifest of one object, with references.
pub fn manifest(v: &VaultSpec, cluster: &str, object: &KubeObject) -> Option<Value> {
    let kv = kube_vault(v)?;
    let member = |name: &str| {
        let m = v.member(name).filter(|m| m.cluster == cluster)?;
        kube_member(v, m)
    };
    let value = |r: Result<(ObjectRef, Value), kapply::ApplyError>| r.ok().map(|(_, j)| j);
    Some(match object {
        KubeObject::Namespace => value(ObjectRef::of(&manifests::namespace(&kv)))?,
        KubeObject::DisruptionBudget => value(ObjectRef::of(&manifests::disruption_budget(&kv)))?,
        KubeObject::ServiceAccount(m) => {
            value(ObjectRef::of(&manifests::service_account(&kv, &member(m)?)))?
        }
        KubeObject::Config(m) => value(ObjectRef::of(&manifests::config(&kv, &member(m)?)))?,
        KubeObject::SealSecret(m) => {
            let mut j = value(ObjectRef::of(&manifests::seal_secret(&kv, &member(m)?)))?;
            let SealSpec::Transit(t) = &v.seal else {
                return None;
            };
            j["data"]["token"] = json!(file_ref(STORE_REF, crate::vault::seal::TRANSIT_TOKEN));
            // The transit server's CA is public: its content is part of the plan (a file
            // that cannot be read now is referred to, and its send fails saying why).
            if let Some(ca) = &t.ca_file {
                j["data"]["ca.crt"] = match std::fs::read(ca) {
                    Ok(pem) => json!(STANDARD.encode(pem)),
                    Err(_) => json!(file_ref("file-base64", &ca.display().to_string())),
                };
            }
            j
        }
        KubeObject::TlsSecret(m) => {
            let mut j = value(ObjectRef::of(&manifests::tls(&kv, &member(m)?)))?;
            j["data"] = json!({
                "tls.crt": file_ref("file-base64", &format!("tls/{m}.crt")),
                "tls.key": file_ref("file-base64", &format!("tls/{m}.key")),
                "ca.crt": file_ref("file-base64", "tls/ca.pem"),
            });
            j
        }
        KubeObject::Service(m) => value(ObjectRef::of(&manifests::headless(&kv, &member(m)?)))?,
        KubeObject::NodePort(m) => value(ObjectRef::of(&manifests::node_port(&kv, &member(m)?)))?,
        KubeObject::StatefulSet(m) => {
            let mut j = value(ObjectRef::of(&manifests::statefulset(&kv, &member(m)?)))?;
            if v.tls.is_some() {
                j["spec"]["template"]["metadata"]["annotations"] = json!({
                    CERT_DIGEST_ANNOTATION: file_ref("file-sha256", &format!("tls/{m}.crt")),
                });
            }
            j
        }
        KubeObject::ReviewerAccount => value(ObjectRef::of(&manifests::reviewer_account(&kv)))?,
        KubeObject::ReviewerBinding => value(ObjectRef::of(&manifests::reviewer_binding(&kv)))?,
        KubeObject::ReviewerToken => value(ObjectRef::of(&manifests::reviewer_token(&kv)))?,
    })
}

/// The name and desired attributes of a Kubernetes object.
pub fn desired(
    v: &VaultSpec,
    cluster: &str,
    object: &KubeObject,
) -> Option<(String, Map<String, Value>)> {
    let j = manifest(v, cluster, object)?;
    let kind = j.get("kind")?.as_str()?.to_string();
    let name = j.pointer("/metadata/name")?.as_str()?.to_string();
    let ns = j.pointer("/metadata/namespace").and_then(Value::as_str);
    let shown = match ns {
        Some(ns) => format!("{cluster}/{kind}/{ns}/{name}"),
        None => format!("{cluster}/{kind}/{name}"),
    };
    Some((shown, flatten(&j)))
}

// ---------------------------------------------------------------------------------------
// Flattened manifests: one attribute per field.

/// A map key as a path segment: bare when it is a plain word, else quoted in brackets.
fn segment(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        key.to_string()
    } else {
        format!("[{}]", serde_json::to_string(key).unwrap_or_default())
    }
}

/// `value`'s leaves by path: `spec.replicas`, `spec.template.spec.containers[0].image`,
/// `metadata.labels["app.kubernetes.io/name"]`. Empty maps and lists are leaves.
pub fn flatten(value: &Value) -> Map<String, Value> {
    fn walk(v: &Value, path: String, out: &mut Map<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let s = segment(k);
                    let p = if path.is_empty() || s.starts_with('[') {
                        format!("{path}{s}")
                    } else {
                        format!("{path}.{s}")
                    };
                    walk(x, p, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{path}[{i}]"), out);
                }
            }
            leaf => {
                out.insert(path, leaf.clone());
            }
        }
    }
    let mut out = Map::new();
    walk(value, String::new(), &mut out);
    out
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            // A quoted key: a JSON string up to its closing quote and bracket.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            let key: String = serde_json::from_str(&format!("\"{}\"", &r[..end])).ok()?;
            steps.push(Step::Key(key));
            rest = r[end + 1..].strip_prefix(']')?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            steps.push(Step::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Some(steps)
}

/// The manifest that `flatten` made `attrs` of.
pub fn unflatten(attrs: &Map<String, Value>) -> Option<Value> {
    let mut root = Value::Null;
    for (path, leaf) in attrs {
        let mut at = &mut root;
        for step in parse_path(path)? {
            at = match step {
                Step::Key(k) => {
                    if !at.is_object() {
                        *at = Value::Object(Map::new());
                    }
                    at.as_object_mut()?.entry(k).or_insert(Value::Null)
                }
                Step::Index(i) => {
                    if !at.is_array() {
                        *at = Value::Array(Vec::new());
                    }
                    let a = at.as_array_mut()?;
                    if a.len() <= i {
                        a.resize(i + 1, Value::Null);
                    }
                    &mut a[i]
                }
            };
        }
        *at = leaf.clone();
    }
    Some(root)
}

/// `flatten`'s path of a difference that `apply::read` reports (`a.b[0].c`, with map keys
/// as they are): the attribute it belongs to, among `attrs`.
fn attribute_of(diff_path: &str, attrs: &Map<String, Value>) -> Option<String> {
    let want = diff_path.replace(['[', ']', '"', '.'], "");
    attrs
        .keys()
        .find(|k| k.replace(['[', ']', '"', '.'], "") == want)
        .cloned()
}

// ---------------------------------------------------------------------------------------
// References, resolved when an object is sent.

/// The unseal-store objects `value` refers to (`{{store-base64:<name>}}`), read once each,
/// base64-encoded.
async fn store_objects(
    value: &Value,
    cx: &Cx<'_>,
    v: &VaultSpec,
) -> Result<BTreeMap<String, crate::vault::Secret>, OpError> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                let mut rest = s.as_str();
                while let Some(start) = rest.find(&format!("{{{{{STORE_REF}:")) {
                    let after = &rest[start + STORE_REF.len() + 3..];
                    let Some(end) = after.find("}}") else { break };
                    out.push(after[..end].to_string());
                    rest = &after[end..];
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    walk(value, &mut names);
    names.sort();
    names.dedup();
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let store = v.unseal_store(cx.outputs)?;
    for name in names {
        let secret = store
            .load_object(cx.aws, &name)
            .await
            .map_err(|e| OpError::retryable(e.to_string()))?
            .ok_or_else(|| {
                OpError::fatal(format!(
                    "{}{name} is not in the unseal store of {}: put it there first (docs/operations.md, Seals)",
                    v.prefix, v.name
                ))
            })?;
        out.insert(
            name,
            crate::vault::Secret::new(STANDARD.encode(secret.expose().as_bytes())),
        );
    }
    Ok(out)
}

/// `value` with every `{{...}}` reference replaced; `store` holds the unseal-store objects
/// it refers to ([`store_objects`]).
fn resolve(
    value: &Value,
    cx: &Cx<'_>,
    v: &VaultSpec,
    store: &BTreeMap<String, crate::vault::Secret>,
) -> Result<Value, OpError> {
    Ok(match value {
        Value::String(s) => Value::String(resolve_text(s, cx, v, store)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| resolve(x, cx, v, store))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve(x, cx, v, store)?)))
                .collect::<Result<_, OpError>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_text(
    text: &str,
    cx: &Cx<'_>,
    v: &VaultSpec,
    store: &BTreeMap<String, crate::vault::Secret>,
) -> Result<String, OpError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 2..start + len];
        let (what, key) = Address::parse_reference(inner)
            .ok_or_else(|| OpError::fatal(format!("bad reference {{{{{inner}}}}}")))?;
        out.push_str(&match what {
            "file-base64" | "file-sha256" => {
                let path = v.work_dir.join(key);
                let bytes = std::fs::read(&path).map_err(|e| {
                    OpError::fatal(format!(
                        "reading {}: {e} (vault.{}.tls makes it)",
                        path.display(),
                        v.name
                    ))
                })?;
                if what == "file-base64" {
                    STANDARD.encode(&bytes)
                } else {
                    use sha2::Digest as _;
                    sha2::Sha256::digest(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                }
            }
            STORE_REF => store
                .get(key)
                .ok_or_else(|| OpError::fatal(format!("{key}: not read from the unseal store")))?
                .expose()
                .to_string(),
            address => cx.output(address, key)?.to_string(),
        });
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The provider.

/// How long a delete waits for an object to be gone (a namespace waits for what is in it).
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// The provider of `vault.<v>.kube.<cluster>.<object>`.
pub struct KubeObjects {
    pub vaults: Arc<Vaults>,
    pub clusters: Arc<Clusters>,
}

fn kube_failed(e: kapply::ApplyError) -> OpError {
    let retryable = e.retryable();
    OpError {
        message: e.to_string(),
        retryable,
        source: None,
    }
}

/// The API object of a manifest (its kind's plural is its lowercased kind plus `s`, true of
/// every kind vaultform sends).
fn object_ref(manifest: &Value) -> Result<ObjectRef, OpError> {
    let field = |p: &str| {
        manifest
            .pointer(p)
            .and_then(Value::as_str)
            .ok_or_else(|| OpError::fatal(format!("the manifest has no {p}")))
    };
    let api_version = field("/apiVersion")?;
    let kind = field("/kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(ObjectRef::new(
        group,
        version,
        kind,
        &format!("{}s", kind.to_lowercase()),
        manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
        field("/metadata/name")?,
    ))
}

/// The region of an EKS cluster holding a member of `v`.
fn region_of(v: &VaultSpec, cluster: &str) -> Result<String, OpError> {
    v.members
        .iter()
        .find(|m| m.cluster == cluster)
        .map(|m| m.region.clone())
        .ok_or_else(|| OpError::fatal(format!("{cluster}: no member of {} on it", v.name)))
}

impl KubeObjects {
    fn parts<'a>(&'a self, address: &'a Address) -> Result<(&'a VaultSpec, &'a str), OpError> {
        let (v, what) = self.vaults.part(address)?;
        match what {
            VaultItem::Kube { cluster, .. } => Ok((v, cluster)),
            _ => Err(OpError::fatal(format!(
                "{address}: not a Kubernetes object"
            ))),
        }
    }

    async fn client(
        &self,
        cx: &Cx<'_>,
        v: &VaultSpec,
        cluster: &str,
    ) -> Result<kube::Client, OpError> {
        let region = region_of(v, cluster)?;
        self.clusters.client(cx.aws, &region, cluster).await
    }

    /// Whether the EKS cluster is gone (deleted outside vaultform).
    async fn gone(&self, cx: &Cx<'_>, v: &VaultSpec, cluster: &str) -> bool {
        match v.members.iter().find(|m| m.cluster == cluster) {
            Some(m) => super::clusters::cluster_gone(cx.aws, &m.region, cluster).await,
            None => false,
        }
    }

    async fn send(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        let (v, cluster) = self.parts(&d.address)?;
        let manifest = unflatten(&d.attrs)
            .ok_or_else(|| OpError::fatal(format!("{}: attributes are no manifest", d.address)))?;
        let target = object_ref(&manifest)?;
        let store = store_objects(&manifest, cx, v).await?;
        let resolved = resolve(&manifest, cx, v, &store)?;
        let client = self.client(cx, v, cluster).await?;
        let stored = kapply::apply(&client, &target, &resolved)
            .await
            .map_err(kube_failed)?;
        let uid = stored
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(Recorded {
            ids: BTreeMap::from([("uid".to_string(), uid.to_string())]),
            outputs: BTreeMap::new(),
        })
    }
}

#[async_trait::async_trait]
impl Provider for KubeObjects {
    fn service(&self) -> &'static str {
        "kubernetes"
    }

    async fn read(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<Observed, OpError> {
        let (v, cluster) = self.parts(&rs.address)?;
        let Some(manifest) = unflatten(&rs.attributes) else {
            return Ok(Observed::Gone);
        };
        let target = object_ref(&manifest)?;
        // References that cannot be resolved any more compare as they are recorded.
        let store = store_objects(&manifest, cx, v).await.unwrap_or_default();
        let resolved = resolve(&manifest, cx, v, &store).unwrap_or_else(|_| manifest.clone());
        let client = match self.client(cx, v, cluster).await {
            Ok(c) => c,
            // The cluster was deleted outside vaultform: so was everything on it.
            Err(_) if self.gone(cx, v, cluster).await => return Ok(Observed::Gone),
            Err(e) => return Err(e),
        };
        let Some(seen) = kapply::read(&client, &target, &resolved)
            .await
            .map_err(kube_failed)?
        else {
            return Ok(Observed::Gone);
        };
        let secret = target.resource.kind == "Secret";
        let mut attrs = rs.attributes.clone();
        for d in &seen.drift {
            let key = attribute_of(&d.path, &attrs).unwrap_or_else(|| d.path.clone());
            let live = match (&d.live, secret) {
                // A secret's live value is never shown, state or plan.
                (Some(_), true) => json!("(differs)"),
                (Some(x), false) => {
                    let by: Vec<&str> = seen.other_managers.iter().map(String::as_str).collect();
                    if by.is_empty() {
                        x.clone()
                    } else {
                        json!(format!("{} (set by {})", compact(x), by.join(", ")))
                    }
                }
                (None, _) => Value::Null,
            };
            attrs.insert(key, live);
        }
        Ok(Observed::Present {
            attrs,
            delete_blocker: None,
        })
    }

    async fn create(&self, cx: &Cx<'_>, d: &Desired) -> Result<Recorded, OpError> {
        self.send(cx, d).await
    }

    /// Deletes the object the state records, on the cluster and region it records: no
    /// topology needed.
    async fn delete(&self, cx: &Cx<'_>, rs: &ResourceState) -> Result<(), OpError> {
        let Some((_, VaultItem::Kube { cluster, .. })) = rs.address.vault_item() else {
            return Err(OpError::fatal(format!(
                "{}: not a Kubernetes object",
                rs.address
            )));
        };
        let Some(manifest) = unflatten(&rs.attributes) else {
            return Ok(());
        };
        let region = match &rs.region {
            Some(r) => r.clone(),
            None => {
                let (v, _) = self.parts(&rs.address)?;
                region_of(v, cluster)?
            }
        };
        let target = object_ref(&manifest)?;
        let client = match self.clusters.client(cx.aws, &region, cluster).await {
            Ok(c) => c,
            Err(_) if super::clusters::cluster_gone(cx.aws, &region, cluster).await => {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        kapply::delete(&client, &target, DELETE_TIMEOUT)
            .await
            .map(drop)
            .map_err(kube_failed)
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattening_reads_back_to_the_same_manifest() {
        let m = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app.kubernetes.io/name": "vault", "x\"y": "q"}},
            "data": {"config.hcl": "a = 1\n", "empty": {}},
            "list": [[1, 2], {"k": []}],
        });
        let flat = flatten(&m);
        assert_eq!(flat["metadata.labels[\"app.kubernetes.io/name\"]"], "vault");
        assert_eq!(flat["data[\"config.hcl\"]"], "a = 1\n");
        assert_eq!(flat["list[0][1]"], 2);
        assert_eq!(flat["list[1].k"], json!([]));
        assert_eq!(unflatten(&flat).unwrap(), m);
    }

    #[test]
    fn a_difference_names_its_attribute() {
        let flat =
            flatten(&json!({"metadata": {"labels": {"a.b/c": "1"}}, "spec": {"replicas": 1}}));
        assert_eq!(
            attribute_of("spec.replicas", &flat).as_deref(),
            Some("spec.replicas")
        );
        assert_eq!(
            attribute_of("metadata.labels.a.b/c", &flat).as_deref(),
            Some("metadata.labels[\"a.b/c\"]")
        );
    }
}
