//! What the bootstrap and the Vault commands need to know about one Vault cluster, resolved
//! once from the topology: members and their addresses, the load balancer in front of each,
//! the unseal store, the server binary and the local runtime's working directory.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::address::{Address, RegionItem, VaultItem};
use crate::provider::OpError;
use crate::topology::{Flavour, HealthMode, Runtime, Topology};
use crate::vault::store::{StoreBucket, UnsealStore};

/// One Vault member behind the proxy.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub address: Ipv4Addr,
    pub api_port: u16,
    pub cluster_port: u16,
}

/// What one HAProxy serves.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub api_port: u16,
    pub cluster_port: u16,
    pub health: HealthMode,
    pub backends: Vec<Backend>,
    /// The CA the health checks verify the members' certificates against (TLS on).
    pub ca_file: Option<PathBuf>,
}

/// One member of the cluster.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub name: String,
    pub address: Ipv4Addr,
    pub api_port: u16,
    pub cluster_port: u16,
    pub load_balancer: String,
    pub primary: bool,
    /// The region of the member's cluster.
    pub region: String,
    /// Whether the member serves HTTPS.
    pub tls: bool,
    /// The EKS cluster it runs on (the Kubernetes runtime).
    pub cluster: String,
    /// Its fixed node ports (API, cluster) on that cluster: the Kubernetes runtime.
    pub node_ports: Option<(u16, u16)>,
}

impl MemberSpec {
    pub fn api_url(&self) -> String {
        format!("{}://{}:{}", scheme(self.tls), self.address, self.api_port)
    }
}

fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// A cluster's TLS settings, resolved: where the CA comes from and how long certificates last.
#[derive(Debug, Clone)]
pub struct TlsSpec {
    /// A CA of the user's: its certificate and private key files (absolute). `None`: the CA
    /// vaultform generates, whose key lives only as KMS ciphertext in the unseal store.
    pub user_ca: Option<(PathBuf, PathBuf)>,
    /// Seconds a member certificate is valid for.
    pub validity: u64,
    /// A certificate expiring within this many seconds is replaced.
    pub renew_before: u64,
}

/// A bucket of the unseal store, with the address of the key that encrypts its objects.
#[derive(Debug, Clone)]
pub struct StoreBucketSpec {
    pub region: String,
    pub bucket: String,
    pub key_address: Address,
}

/// Where a cluster's members run, resolved once from the topology. Only the runtimes
/// (`runtime/local/`, `runtime/kubernetes/`) and the catalog that registers them match on it.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Processes on this machine, each load balancer an HAProxy.
    Local,
    /// A StatefulSet per member on the EKS clusters, reached through the NLBs.
    Kubernetes(KubeSpec),
}

/// How a cluster runs on Kubernetes: the namespace on each EKS cluster, the image.
#[derive(Debug, Clone)]
pub struct KubeSpec {
    pub namespace: String,
    /// Image repository, without the tag.
    pub image: String,
    /// Image tag.
    pub version: String,
}

/// One Vault cluster, as the local runtime and the bootstrap see it.
#[derive(Debug, Clone)]
pub struct VaultSpec {
    pub name: String,
    pub stack: String,
    pub flavour: Flavour,
    /// The server binary as written (a path or a name on PATH).
    pub binary: String,
    /// Absolute: where members' data and configuration and proxies' configuration live.
    pub work_dir: PathBuf,
    /// Where the members run.
    pub placement: Placement,
    pub members: Vec<MemberSpec>,
    /// Load balancers by name, as the local runtime's HAProxy serves them.
    pub proxies: BTreeMap<String, ProxyConfig>,
    /// The region of each load balancer, by name.
    pub proxy_regions: BTreeMap<String, String>,
    pub front: Option<String>,
    pub shares: u32,
    pub threshold: u32,
    pub prefix: String,
    pub context: BTreeMap<String, String>,
    pub store: Vec<StoreBucketSpec>,
    /// TLS everywhere, unless the topology says `tls #false`.
    pub tls: Option<TlsSpec>,
    /// Declarative configuration.
    pub secrets: Vec<crate::topology::SecretsEngine>,
    pub auth: Vec<crate::topology::AuthMethod>,
    pub policies: Vec<crate::topology::Policy>,
    /// `revoke-root #true`: the root token is revoked after setup.
    pub revoke_root: bool,
    /// How the members unseal.
    pub seal: crate::vault::seal::SealSpec,
    /// The DNS names of the cluster's load balancers, by name, as apply recorded them (the
    /// Kubernetes runtime reaches members through them): learnt from the recorded outputs.
    pub lb_hosts: std::sync::Arc<std::sync::RwLock<BTreeMap<String, String>>>,
}

impl VaultSpec {
    pub fn primary(&self) -> &MemberSpec {
        self.members
            .iter()
            .find(|m| m.primary)
            .unwrap_or(&self.members[0])
    }

    pub fn member(&self, name: &str) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The namespace of the cluster's pods on each EKS cluster (Kubernetes runtime).
    pub fn namespace(&self) -> &str {
        match &self.placement {
            Placement::Kubernetes(k) => k.namespace.as_str(),
            Placement::Local => "default",
        }
    }

    /// The Kubernetes runtime's settings, on that runtime.
    pub fn kube(&self) -> Option<&KubeSpec> {
        match &self.placement {
            Placement::Kubernetes(k) => Some(k),
            Placement::Local => None,
        }
    }

    /// Whether vaultform reaches the members through their load balancers' DNS names (which
    /// AWS chooses) rather than their own addresses.
    fn through_load_balancers(&self) -> bool {
        matches!(self.placement, Placement::Kubernetes(_))
    }

    /// Learns the load balancers' DNS names from the recorded outputs.
    pub fn learn(&self, outputs: &BTreeMap<String, BTreeMap<String, String>>) {
        if !self.through_load_balancers() {
            return;
        }
        let mut hosts = self.lb_hosts.write().unwrap_or_else(|e| e.into_inner());
        for (lb, region) in &self.proxy_regions {
            let at = Address::region(region, RegionItem::LoadBalancer(lb.clone()));
            if let Some(dns) = outputs.get(at.as_str()).and_then(|o| o.get("dns_name")) {
                hosts.insert(lb.clone(), dns.clone());
            }
        }
    }

    /// The DNS name of a load balancer (Kubernetes runtime), once apply has recorded it.
    pub fn lb_host(&self, lb: &str) -> Option<String> {
        let hosts = self.lb_hosts.read().unwrap_or_else(|e| e.into_inner());
        hosts.get(lb).cloned()
    }

    /// Where vaultform reaches a member: its own address on the local runtime, its load
    /// balancer on Kubernetes (whose target is that member alone).
    pub fn member_url(&self, m: &MemberSpec) -> String {
        if !self.through_load_balancers() {
            return m.api_url();
        }
        let host = self
            .lb_host(&m.load_balancer)
            .unwrap_or_else(|| format!("{}.not-yet-created", m.load_balancer));
        format!("{}://{host}:{}", scheme(m.tls), m.api_port)
    }

    /// The URL of a load balancer's API port.
    pub fn proxy_url(&self, lb: &str) -> Option<String> {
        if self.through_load_balancers() {
            let p = self.proxies.get(lb)?;
            return Some(format!(
                "{}://{}:{}",
                scheme(self.tls.is_some()),
                self.lb_host(lb)?,
                p.api_port
            ));
        }
        self.proxies.get(lb).map(|p| {
            format!(
                "{}://{}:{}",
                scheme(self.tls.is_some()),
                p.address,
                p.api_port
            )
        })
    }

    /// The CA certificate (PEM) clients and load balancers verify the members against.
    pub fn ca_file(&self) -> PathBuf {
        self.work_dir.join("tls").join("ca.pem")
    }

    /// How a client reaches this cluster's servers: trusting the cluster's CA when TLS is on.
    /// A CA file that cannot be read leaves the client trusting nothing extra, so that the
    /// handshake fails and says why.
    pub fn client_tls(&self) -> crate::vault::TlsSettings {
        crate::vault::TlsSettings {
            ca_pem: self
                .tls
                .as_ref()
                .and_then(|_| std::fs::read(self.ca_file()).ok()),
            server_name: None,
        }
    }

    /// A client for one of this cluster's URLs.
    pub fn client(&self, url: &str) -> Result<crate::vault::Client, crate::vault::VaultError> {
        crate::vault::Client::new(url, &self.client_tls())
    }

    /// The names a member's certificate carries: every address it is reached by (its own,
    /// its load balancer's, the front endpoint's) and its node name. Sorted, no duplicates.
    pub fn cert_names(&self, m: &MemberSpec) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        names.insert(m.address.to_string());
        names.insert(m.name.clone());
        if let Some(k) = self.kube() {
            // Its load balancer's DNS name is AWS's choice, made after the plan: every name
            // under the region's ELB domains (NLB and classic spellings). The CA is the
            // cluster's own, so only clients that trust this cluster honour the wildcard.
            names.insert(format!("*.elb.{}.amazonaws.com", m.region));
            names.insert(format!("*.{}.elb.amazonaws.com", m.region));
            // Its pod through the StatefulSet's headless service, and `localhost` in the pod.
            names.insert(format!(
                "{}-0.{}-internal.{}.svc",
                m.name, m.name, k.namespace
            ));
            names.insert("localhost".into());
            return names.into_iter().collect();
        }
        for lb in std::iter::once(&m.load_balancer).chain(self.front.iter()) {
            if let Some(p) = self.proxies.get(lb) {
                names.insert(p.address.to_string());
            }
        }
        names.into_iter().collect()
    }

    /// A member's certificate and key files (the local runtime), beside the CA and outside
    /// the member's directory, which a member's replacement removes.
    pub fn cert_files(&self, member: &str) -> (PathBuf, PathBuf) {
        let dir = self.work_dir.join("tls");
        (
            dir.join(format!("{member}.crt")),
            dir.join(format!("{member}.key")),
        )
    }

    /// Where joining members reach the leader: the primary's load balancer.
    pub fn leader_api_addr(&self) -> String {
        let p = self.primary();
        self.proxy_url(&p.load_balancer)
            .unwrap_or_else(|| self.member_url(p))
    }

    /// The leader's address as a plan shows it: on Kubernetes, a reference to its load
    /// balancer's DNS name, which AWS chooses when it creates it.
    pub fn planned_leader_api_addr(&self) -> String {
        let p = self.primary();
        match (
            self.through_load_balancers(),
            self.proxy_regions.get(&p.load_balancer),
        ) {
            (true, Some(region)) => format!(
                "{}://{}:{}",
                scheme(self.tls.is_some()),
                Address::region(region, RegionItem::LoadBalancer(p.load_balancer.clone()))
                    .reference("dns_name"),
                p.api_port
            ),
            _ => self.leader_api_addr(),
        }
    }

    /// The front endpoint's URL, when the cluster has one.
    pub fn front_url(&self) -> Option<String> {
        self.front.as_deref().and_then(|f| self.proxy_url(f))
    }

    pub fn member_dir(&self, name: &str) -> PathBuf {
        self.work_dir.join("members").join(name)
    }

    /// The directory of the transit server vaultform runs for the seal.
    pub fn transit_dir(&self) -> PathBuf {
        self.work_dir.join("seal-transit")
    }

    pub fn proxy_dir(&self, lb: &str) -> PathBuf {
        self.work_dir.join("proxies").join(lb)
    }

    /// The seal stanza of member `m`'s configuration: `None` for `shamir`. The transit token comes
    /// from the unseal store; the KMS key's ARN from the recorded outputs.
    pub async fn seal_stanza(
        &self,
        aws: &crate::aws::Aws,
        outputs: &BTreeMap<String, BTreeMap<String, String>>,
        m: &MemberSpec,
    ) -> Result<Option<String>, OpError> {
        let v = self;
        match &v.seal {
            crate::vault::seal::SealSpec::Shamir => Ok(None),
            crate::vault::seal::SealSpec::Transit(t) => {
                let store = v.unseal_store(outputs)?;
                let token = store
                    .load_object(aws, crate::vault::seal::TRANSIT_TOKEN)
                    .await
                    .map_err(|e| OpError::retryable(e.to_string()))?
                    .ok_or_else(|| {
                        OpError::fatal(format!(
                            "the transit seal's token is not in the unseal store (object {}{}); {}",
                            v.prefix,
                            crate::vault::seal::TRANSIT_TOKEN,
                            if t.managed.is_some() {
                                format!("apply vault.{}.seal.transit first", v.name)
                            } else {
                                "put a token allowed to encrypt and decrypt with the transit key there (docs/operations.md, Seals)".to_string()
                            }
                        ))
                    })?;
                Ok(Some(crate::vault::seal::transit_stanza(t, &token)))
            }
            crate::vault::seal::SealSpec::Awskms { key_address } => {
                let arn = outputs
                    .get(key_address.as_str())
                    .and_then(|o| o.get("arn"))
                    .ok_or_else(|| {
                        OpError::fatal(format!(
                            "{key_address} has no recorded ARN: apply the key before the Vault cluster"
                        ))
                    })?;
                Ok(Some(crate::vault::seal::awskms_stanza(&m.region, arn)))
            }
        }
    }

    /// The unseal store, with each bucket's KMS key ARN from the recorded outputs.
    pub fn unseal_store(
        &self,
        outputs: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<UnsealStore, OpError> {
        let mut buckets = Vec::new();
        for b in &self.store {
            let key = outputs
                .get(b.key_address.as_str())
                .and_then(|o| o.get("arn"))
                .ok_or_else(|| {
                    OpError::fatal(format!(
                        "{} has no recorded ARN: apply the key before the Vault cluster",
                        b.key_address
                    ))
                })?;
            buckets.push(StoreBucket {
                region: b.region.clone(),
                bucket: b.bucket.clone(),
                key: key.clone(),
            });
        }
        Ok(UnsealStore::new(
            &self.stack,
            &self.name,
            &self.context,
            buckets,
            &self.prefix,
            self.threshold as usize,
        ))
    }
}

/// Every Vault cluster of the topology, by name; relative paths resolve against `base_dir`
/// (the topology file's directory).
pub fn specs(t: &Topology, base_dir: &Path) -> Vaults {
    let mut out = BTreeMap::new();
    for v in &t.vaults {
        let name = v.name.value.clone();
        let (placement, work_dir) = match &v.runtime.value {
            Runtime::Local { work_dir } => (
                Placement::Local,
                base_dir.join(
                    work_dir
                        .clone()
                        .unwrap_or_else(|| format!(".vaultform/{}/{name}", t.stack.value)),
                ),
            ),
            // Vaultform's own files for the cluster (its CA certificate) still live here.
            Runtime::Kubernetes { namespace } => {
                let (image, version) = image_and_tag(v);
                (
                    Placement::Kubernetes(KubeSpec {
                        namespace: namespace.clone(),
                        image,
                        version,
                    }),
                    base_dir.join(format!(".vaultform/{}/{name}", t.stack.value)),
                )
            }
        };
        let primary = v.bootstrap_member().map(|m| m.name.value.clone());
        let tls = v.tls.enabled.then(|| TlsSpec {
            user_ca: v
                .tls
                .ca
                .as_ref()
                .map(|ca| (base_dir.join(&ca.cert.value), base_dir.join(&ca.key.value))),
            validity: v.tls.validity.value,
            renew_before: v.tls.renew_before.value,
        });
        let members: Vec<MemberSpec> = v
            .members
            .iter()
            .map(|m| MemberSpec {
                name: m.name.value.clone(),
                address: m
                    .address
                    .as_ref()
                    .map(|a| a.value)
                    .unwrap_or(Ipv4Addr::LOCALHOST),
                api_port: m.api_port.value,
                cluster_port: m.cluster_port.value,
                load_balancer: m.load_balancer.value.clone(),
                primary: primary.as_deref() == Some(m.name.value.as_str()),
                region: t
                    .cluster(&m.cluster.value)
                    .map(|(r, _)| r.name.value.clone())
                    .unwrap_or_default(),
                tls: tls.is_some(),
                cluster: m.cluster.value.clone(),
                node_ports: matches!(placement, Placement::Kubernetes(_))
                    .then(|| t.member_node_ports(&v.name.value, &m.name.value))
                    .flatten(),
            })
            .collect();
        let mut proxies = BTreeMap::new();
        let mut proxy_regions = BTreeMap::new();
        let lbs = members
            .iter()
            .map(|m| m.load_balancer.clone())
            .chain(v.front.iter().map(|f| f.value.clone()));
        for lb in lbs {
            if proxies.contains_key(&lb) {
                continue;
            }
            let Some((region, decl)) = t.load_balancer(&lb) else {
                continue;
            };
            proxy_regions.insert(lb.clone(), region.name.value.clone());
            // The front endpoint serves every member; a member's load balancer its own.
            let is_front = v.front.as_ref().is_some_and(|f| f.value == lb);
            let backends = members
                .iter()
                .filter(|m| is_front || m.load_balancer == lb)
                .map(|m| Backend {
                    name: m.name.clone(),
                    address: m.address,
                    api_port: m.api_port,
                    cluster_port: m.cluster_port,
                })
                .collect();
            proxies.insert(
                lb.clone(),
                ProxyConfig {
                    name: lb.clone(),
                    address: decl
                        .local_address
                        .as_ref()
                        .map(|a| a.value)
                        .unwrap_or(Ipv4Addr::LOCALHOST),
                    api_port: decl.api_port.value,
                    cluster_port: decl.cluster_port.value,
                    health: decl.health.value,
                    backends,
                    ca_file: tls.is_some().then(|| work_dir.join("tls").join("ca.pem")),
                },
            );
        }
        let store = v
            .unseal_store
            .buckets
            .iter()
            .filter_map(|b| {
                let (region, decl) = t.bucket(&b.value)?;
                Some(StoreBucketSpec {
                    region: region.name.value.clone(),
                    bucket: b.value.clone(),
                    key_address: Address::region(
                        &region.name.value,
                        RegionItem::Key(decl.key.value.clone()),
                    ),
                })
            })
            .collect();
        let binary = v.server.binary.clone().unwrap_or_else(|| {
            match v.server.flavour {
                Flavour::Bao => "bao",
                Flavour::Vault => "vault",
            }
            .to_string()
        });
        let seal = crate::vault::seal::resolve(
            t,
            v,
            base_dir,
            tls.is_some().then(|| work_dir.join("tls").join("ca.pem")),
        );
        out.insert(
            name.clone(),
            VaultSpec {
                name,
                stack: t.stack.value.clone(),
                flavour: v.server.flavour,
                binary,
                work_dir,
                placement,
                members,
                proxies,
                proxy_regions,
                front: v.front.as_ref().map(|f| f.value.clone()),
                shares: v.shares.value,
                threshold: v.threshold.value,
                prefix: v.unseal_store.prefix.clone(),
                context: v.unseal_store.context.clone(),
                store,
                tls,
                secrets: v.secrets.clone(),
                auth: v.auth.clone(),
                policies: v.policies.clone(),
                revoke_root: v.revokes_root(),
                seal,
                lb_hosts: Default::default(),
            },
        );
    }
    Vaults(out)
}

/// The image repository and tag of a cluster on Kubernetes: `image` with its own tag, or the
/// server's version as the tag, or the flavour's official image.
fn image_and_tag(v: &crate::topology::VaultCluster) -> (String, String) {
    let version = v.server.version.clone().unwrap_or_else(|| "latest".into());
    let image = v.server.image.clone().unwrap_or_else(|| {
        match v.server.flavour {
            Flavour::Bao => "quay.io/openbao/openbao",
            Flavour::Vault => "hashicorp/vault",
        }
        .to_string()
    });
    // A tag is a `:` after the last `/` (a registry's port comes before it).
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image, version),
    }
}

/// Every Vault cluster of the topology, by name: resolved once per run.
#[derive(Debug, Clone, Default)]
pub struct Vaults(pub BTreeMap<String, VaultSpec>);

impl Vaults {
    /// Learns what only apply can know (the load balancers' DNS names) from the recorded
    /// outputs.
    pub fn learn(&self, outputs: &BTreeMap<String, BTreeMap<String, String>>) {
        for v in self.0.values() {
            v.learn(outputs);
        }
    }

    /// The cluster a `vault.<name>.…` address belongs to, and the part it names.
    pub fn part<'a>(
        &'a self,
        address: &'a Address,
    ) -> Result<(&'a VaultSpec, &'a VaultItem), OpError> {
        let (name, what) = address
            .vault_item()
            .ok_or_else(|| OpError::fatal(format!("{address}: not a part of a Vault cluster")))?;
        let v = self.0.get(name).ok_or_else(|| {
            OpError::fatal(format!("{address}: no such Vault cluster in the topology"))
        })?;
        Ok((v, what))
    }

    /// The cluster and member a member's address (`member.`, `unseal.`, `join.`) names.
    pub fn member<'a>(
        &'a self,
        address: &'a Address,
    ) -> Result<(&'a VaultSpec, &'a MemberSpec), OpError> {
        let (v, what) = self.part(address)?;
        let name = match what {
            VaultItem::Member(m) | VaultItem::Unseal(m) | VaultItem::Join(m) => m,
            _ => return Err(OpError::fatal(format!("{address}: not a member's address"))),
        };
        let m = v
            .member(name)
            .ok_or_else(|| OpError::fatal(format!("{name}: no such member of {}", v.name)))?;
        Ok((v, m))
    }
}

/// Finds a program: a path as given, else the first match on PATH (then the sbin directories,
/// where Debian puts HAProxy).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
