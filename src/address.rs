//! Resource addresses: one typed value per graph node, plan change and state entry. The text
//! reads like the topology (`region.eu-west-1.bucket.bv-unseal`, `vault.bv.join.vault-1`) and is
//! made once, when the address is built; code reads the typed parts, never the text.
//! `FromStr` exists for what comes from outside (the command line, state files, `depends-on`).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A resource address: its typed parts and their text.
#[derive(Clone)]
pub struct Address {
    text: Arc<str>,
    item: Item,
}

/// What an address names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    /// A global IAM role (`iam.role.<name>`).
    IamRole(Role),
    /// Something in one AWS region (`region.<region>.…`).
    Region { region: String, what: RegionItem },
    /// A part of a Vault cluster (`vault.<vault>.…`).
    Vault { vault: String, what: VaultItem },
}

/// The IAM roles vaultform makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    EksCluster,
    EksNode,
    /// The role the pods of a Vault cluster assume.
    Vault(String),
}

/// The two ports a load balancer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    Api,
    Cluster,
}

impl Port {
    pub const BOTH: [Port; 2] = [Port::Api, Port::Cluster];

    pub fn as_str(self) -> &'static str {
        match self {
            Port::Api => "api",
            Port::Cluster => "cluster",
        }
    }
}

/// What lives in a region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegionItem {
    Vpc,
    /// The subnet of the n-th availability zone (`network.subnet.a`, `.b`, …).
    Subnet(usize),
    InternetGateway,
    RouteTable,
    SecurityGroup,
    /// A network that exists already (`region.<r>.network`).
    ExistingNetwork,
    Key(String),
    Bucket(String),
    Cluster(String),
    NodePool {
        cluster: String,
        pool: String,
    },
    /// The IAM OIDC provider of an EKS cluster's issuer (`cluster.<c>.oidc`), for IRSA.
    OidcProvider(String),
    /// An EKS add-on of a cluster (`cluster.<c>.addon.<name>`).
    Addon {
        cluster: String,
        name: String,
    },
    /// An access entry of an IAM principal on an EKS cluster (`cluster.<c>.access.<arn>`).
    AccessEntry {
        cluster: String,
        principal: String,
    },
    /// The EBS volumes Kubernetes made for an EKS cluster, removed on destroy
    /// (`cluster.<c>.volumes`).
    KubeVolumes(String),
    LoadBalancer(String),
    TargetGroup {
        lb: String,
        port: Port,
    },
    Listener {
        lb: String,
        port: Port,
    },
    /// A target group attached to the auto scaling groups of an EKS cluster's node groups
    /// (`load-balancer.<lb>.target-group.<port>.nodes.<cluster>`).
    TargetAttachment {
        lb: String,
        port: Port,
        cluster: String,
    },
}

/// The parts of a Vault cluster: runtime pieces, bootstrap steps and declarative config.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VaultItem {
    /// The cluster's certificate authority (`tls.ca`).
    Ca,
    /// A member's server certificate (`tls.cert.<member>`).
    Cert(String),
    /// The local runtime's HAProxy standing for load balancer `lb`.
    Proxy(String),
    Member(String),
    Init,
    UnsealKeys,
    Unseal(String),
    Join(String),
    /// Every member a voter under one leader.
    Raft,
    Policy(String),
    Secrets(String),
    RootCa(String),
    PkiRole {
        mount: String,
        role: String,
    },
    Auth(String),
    AuthRole {
        mount: String,
        role: String,
    },
    /// The root token revoked once the cluster is configured (`revoke-root #true`).
    RevokeRoot,
    /// The transit server vaultform runs for the cluster's seal (`seal.transit`).
    SealTransit,
    /// A Kubernetes object on EKS cluster `cluster` (`kube.<cluster>.<object>`).
    Kube {
        cluster: String,
        object: KubeObject,
    },
}

/// The Kubernetes objects of a Vault cluster on one EKS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KubeObject {
    Namespace,
    /// The PodDisruptionBudget over the cluster's Vault pods.
    DisruptionBudget,
    /// A member's objects, named by the member.
    ServiceAccount(String),
    Config(String),
    TlsSecret(String),
    /// The transit seal's token (and its server's CA), for the server's environment.
    SealSecret(String),
    Service(String),
    NodePort(String),
    StatefulSet(String),
    /// What the Kubernetes auth method reviews tokens with: a service account, its
    /// `system:auth-delegator` binding and its token.
    ReviewerAccount,
    ReviewerBinding,
    ReviewerToken,
}

impl KubeObject {
    const SINGLE: [(&'static str, KubeObject); 5] = [
        ("namespace", KubeObject::Namespace),
        ("disruption-budget", KubeObject::DisruptionBudget),
        ("token-reviewer", KubeObject::ReviewerAccount),
        ("token-reviewer-binding", KubeObject::ReviewerBinding),
        ("token-reviewer-token", KubeObject::ReviewerToken),
    ];

    fn render(&self) -> String {
        let (what, member) = match self {
            KubeObject::ServiceAccount(m) => ("service-account", m),
            KubeObject::Config(m) => ("config", m),
            KubeObject::TlsSecret(m) => ("tls", m),
            KubeObject::SealSecret(m) => ("seal", m),
            KubeObject::Service(m) => ("service", m),
            KubeObject::NodePort(m) => ("node-port", m),
            KubeObject::StatefulSet(m) => ("statefulset", m),
            single => {
                return Self::SINGLE
                    .iter()
                    .find(|(_, o)| o == single)
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_default();
            }
        };
        format!("{what}.{member}")
    }

    fn parse(s: &str) -> Option<KubeObject> {
        if let Some((_, o)) = Self::SINGLE.iter().find(|(t, _)| *t == s) {
            return Some(o.clone());
        }
        let (what, member) = s.split_once('.')?;
        let m = nonempty(member)?;
        Some(match what {
            "service-account" => KubeObject::ServiceAccount(m),
            "config" => KubeObject::Config(m),
            "tls" => KubeObject::TlsSecret(m),
            "seal" => KubeObject::SealSecret(m),
            "service" => KubeObject::Service(m),
            "node-port" => KubeObject::NodePort(m),
            "statefulset" => KubeObject::StatefulSet(m),
            _ => return None,
        })
    }

    /// The member whose object it is.
    pub fn member(&self) -> Option<&str> {
        match self {
            KubeObject::ServiceAccount(m)
            | KubeObject::Config(m)
            | KubeObject::TlsSecret(m)
            | KubeObject::SealSecret(m)
            | KubeObject::Service(m)
            | KubeObject::NodePort(m)
            | KubeObject::StatefulSet(m) => Some(m),
            _ => None,
        }
    }
}

impl Address {
    pub fn new(item: Item) -> Self {
        let text = render(&item).into();
        Address { text, item }
    }

    pub fn region(region: &str, what: RegionItem) -> Self {
        Address::new(Item::Region {
            region: region.to_string(),
            what,
        })
    }

    pub fn vault(vault: &str, what: VaultItem) -> Self {
        Address::new(Item::Vault {
            vault: vault.to_string(),
            what,
        })
    }

    pub fn role(role: Role) -> Self {
        Address::new(Item::IamRole(role))
    }

    /// A reference to an output of this resource (`{{<address>:<key>}}`), written where a plan
    /// shows a value only apply knows, and resolved from the recorded outputs when used.
    pub fn reference(&self, key: &str) -> String {
        format!("{{{{{self}:{key}}}}}")
    }

    /// The `(address or file kind, key)` a text between `{{` and `}}` names.
    pub fn parse_reference(inner: &str) -> Option<(&str, &str)> {
        inner.rsplit_once(':')
    }

    pub fn item(&self) -> &Item {
        &self.item
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The region part of a `region.…` address.
    pub fn region_item(&self) -> Option<(&str, &RegionItem)> {
        match &self.item {
            Item::Region { region, what } => Some((region, what)),
            _ => None,
        }
    }

    /// The Vault cluster and part of a `vault.…` address.
    pub fn vault_item(&self) -> Option<(&str, &VaultItem)> {
        match &self.item {
            Item::Vault { vault, what } => Some((vault, what)),
            _ => None,
        }
    }
}

/// The letter of the n-th availability zone's subnet.
pub fn subnet_letter(i: usize) -> char {
    (b'a' + (i.min(25)) as u8) as char
}

fn render(item: &Item) -> String {
    match item {
        Item::IamRole(Role::EksCluster) => "iam.role.eks-cluster".into(),
        Item::IamRole(Role::EksNode) => "iam.role.eks-node".into(),
        Item::IamRole(Role::Vault(v)) => format!("iam.role.vault.{v}"),
        Item::Region { region, what } => {
            let rest = match what {
                RegionItem::Vpc => "network.vpc".to_string(),
                RegionItem::Subnet(i) => format!("network.subnet.{}", subnet_letter(*i)),
                RegionItem::InternetGateway => "network.internet-gateway".into(),
                RegionItem::RouteTable => "network.route-table".into(),
                RegionItem::SecurityGroup => "network.security-group".into(),
                RegionItem::ExistingNetwork => "network".into(),
                RegionItem::Key(k) => format!("key.{k}"),
                RegionItem::Bucket(b) => format!("bucket.{b}"),
                RegionItem::Cluster(c) => format!("cluster.{c}"),
                RegionItem::NodePool { cluster, pool } => {
                    format!("cluster.{cluster}.node-pool.{pool}")
                }
                RegionItem::OidcProvider(c) => format!("cluster.{c}.oidc"),
                RegionItem::Addon { cluster, name } => format!("cluster.{cluster}.addon.{name}"),
                RegionItem::AccessEntry { cluster, principal } => {
                    format!("cluster.{cluster}.access.{principal}")
                }
                RegionItem::KubeVolumes(c) => format!("cluster.{c}.volumes"),
                RegionItem::LoadBalancer(lb) => format!("load-balancer.{lb}"),
                RegionItem::TargetGroup { lb, port } => {
                    format!("load-balancer.{lb}.target-group.{}", port.as_str())
                }
                RegionItem::Listener { lb, port } => {
                    format!("load-balancer.{lb}.listener.{}", port.as_str())
                }
                RegionItem::TargetAttachment { lb, port, cluster } => {
                    format!(
                        "load-balancer.{lb}.target-group.{}.nodes.{cluster}",
                        port.as_str()
                    )
                }
            };
            format!("region.{region}.{rest}")
        }
        Item::Vault { vault, what } => {
            let rest = match what {
                VaultItem::Ca => "tls.ca".into(),
                VaultItem::Cert(m) => format!("tls.cert.{m}"),
                VaultItem::Proxy(lb) => format!("proxy.{lb}"),
                VaultItem::Member(m) => format!("member.{m}"),
                VaultItem::Init => "init".into(),
                VaultItem::UnsealKeys => "unseal-keys".into(),
                VaultItem::Unseal(m) => format!("unseal.{m}"),
                VaultItem::Join(m) => format!("join.{m}"),
                VaultItem::Raft => "raft".into(),
                VaultItem::Policy(p) => format!("policy.{p}"),
                VaultItem::Secrets(p) => format!("secrets.{p}"),
                VaultItem::RootCa(p) => format!("secrets.{p}.root-ca"),
                VaultItem::PkiRole { mount, role } => format!("secrets.{mount}.role.{role}"),
                VaultItem::Auth(p) => format!("auth.{p}"),
                VaultItem::AuthRole { mount, role } => format!("auth.{mount}.role.{role}"),
                VaultItem::RevokeRoot => "revoke-root".into(),
                VaultItem::SealTransit => "seal.transit".into(),
                VaultItem::Kube { cluster, object } => {
                    format!("kube.{cluster}.{}", object.render())
                }
            };
            format!("vault.{vault}.{rest}")
        }
    }
}

/// Why a text is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a resource address (`vaultform graph FILE` lists them)")]
pub struct ParseError(pub String);

impl FromStr for Address {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let item = parse(s).ok_or_else(|| ParseError(s.to_string()))?;
        // Only the canonical spelling is an address: the text is kept as given.
        (render(&item) == s)
            .then(|| Address {
                text: s.into(),
                item,
            })
            .ok_or_else(|| ParseError(s.to_string()))
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn parse(s: &str) -> Option<Item> {
    if let Some(role) = s.strip_prefix("iam.role.") {
        return Some(Item::IamRole(match role {
            "eks-cluster" => Role::EksCluster,
            "eks-node" => Role::EksNode,
            other => Role::Vault(nonempty(other.strip_prefix("vault.")?)?),
        }));
    }
    if let Some(rest) = s.strip_prefix("region.") {
        let (region, rest) = rest.split_once('.')?;
        let what = parse_region(rest)?;
        return Some(Item::Region {
            region: nonempty(region)?,
            what,
        });
    }
    let rest = s.strip_prefix("vault.")?;
    let (vault, rest) = rest.split_once('.')?;
    Some(Item::Vault {
        vault: nonempty(vault)?,
        what: parse_vault(rest)?,
    })
}

fn parse_port(s: &str) -> Option<Port> {
    match s {
        "api" => Some(Port::Api),
        "cluster" => Some(Port::Cluster),
        _ => None,
    }
}

fn port_only(s: &str) -> Option<&str> {
    (!s.contains('.')).then_some(s)
}

fn parse_region(rest: &str) -> Option<RegionItem> {
    Some(match rest {
        "network" => RegionItem::ExistingNetwork,
        "network.vpc" => RegionItem::Vpc,
        "network.internet-gateway" => RegionItem::InternetGateway,
        "network.route-table" => RegionItem::RouteTable,
        "network.security-group" => RegionItem::SecurityGroup,
        _ => {
            let (head, tail) = rest.split_once('.')?;
            match head {
                "network" => {
                    let letter = tail.strip_prefix("subnet.")?;
                    let mut chars = letter.chars();
                    let c = chars.next().filter(|c| c.is_ascii_lowercase())?;
                    if chars.next().is_some() {
                        return None;
                    }
                    RegionItem::Subnet((c as u8 - b'a') as usize)
                }
                "key" => RegionItem::Key(nonempty(tail)?),
                "bucket" => RegionItem::Bucket(nonempty(tail)?),
                // Cluster names have no dots: the first one ends the name.
                "cluster" => match tail.split_once('.') {
                    None => RegionItem::Cluster(nonempty(tail)?),
                    Some((cluster, "oidc")) => RegionItem::OidcProvider(nonempty(cluster)?),
                    Some((cluster, rest)) if rest.starts_with("addon.") => RegionItem::Addon {
                        cluster: nonempty(cluster)?,
                        name: nonempty(&rest["addon.".len()..])?,
                    },
                    Some((cluster, "volumes")) => RegionItem::KubeVolumes(nonempty(cluster)?),
                    Some((cluster, rest)) => {
                        if let Some(pool) = rest.strip_prefix("node-pool.") {
                            RegionItem::NodePool {
                                cluster: nonempty(cluster)?,
                                pool: nonempty(pool)?,
                            }
                        } else {
                            RegionItem::AccessEntry {
                                cluster: nonempty(cluster)?,
                                principal: nonempty(rest.strip_prefix("access.")?)?,
                            }
                        }
                    }
                },
                "load-balancer" => {
                    if let Some((lb, rest)) = tail.rsplit_once(".target-group.") {
                        match rest.split_once(".nodes.") {
                            Some((port, cluster)) => RegionItem::TargetAttachment {
                                lb: nonempty(lb)?,
                                port: parse_port(port)?,
                                cluster: nonempty(cluster)?,
                            },
                            None => RegionItem::TargetGroup {
                                lb: nonempty(lb)?,
                                port: parse_port(port_only(rest)?)?,
                            },
                        }
                    } else if let Some((lb, port)) = tail.rsplit_once(".listener.") {
                        RegionItem::Listener {
                            lb: nonempty(lb)?,
                            port: parse_port(port)?,
                        }
                    } else {
                        RegionItem::LoadBalancer(nonempty(tail)?)
                    }
                }
                _ => return None,
            }
        }
    })
}

fn parse_vault(rest: &str) -> Option<VaultItem> {
    Some(match rest {
        "init" => VaultItem::Init,
        "unseal-keys" => VaultItem::UnsealKeys,
        "raft" => VaultItem::Raft,
        "tls.ca" => VaultItem::Ca,
        "revoke-root" => VaultItem::RevokeRoot,
        "seal.transit" => VaultItem::SealTransit,
        _ => {
            let (head, tail) = rest.split_once('.')?;
            let tail_s = nonempty(tail)?;
            match head {
                "proxy" => VaultItem::Proxy(tail_s),
                "member" => VaultItem::Member(tail_s),
                "tls" => VaultItem::Cert(nonempty(tail.strip_prefix("cert.")?)?),
                "unseal" => VaultItem::Unseal(tail_s),
                "join" => VaultItem::Join(tail_s),
                "policy" => VaultItem::Policy(tail_s),
                "kube" => {
                    let (cluster, object) = tail.split_once('.')?;
                    VaultItem::Kube {
                        cluster: nonempty(cluster)?,
                        object: KubeObject::parse(object)?,
                    }
                }
                "secrets" => {
                    if let Some(mount) = tail.strip_suffix(".root-ca") {
                        VaultItem::RootCa(nonempty(mount)?)
                    } else if let Some((mount, role)) = tail.rsplit_once(".role.") {
                        VaultItem::PkiRole {
                            mount: nonempty(mount)?,
                            role: nonempty(role)?,
                        }
                    } else {
                        VaultItem::Secrets(tail_s)
                    }
                }
                "auth" => match tail.rsplit_once(".role.") {
                    Some((mount, role)) => VaultItem::AuthRole {
                        mount: nonempty(mount)?,
                        role: nonempty(role)?,
                    },
                    None => VaultItem::Auth(tail_s),
                },
                _ => return None,
            }
        }
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.text)
    }
}

// Equality, order and hashing are the text's, so that maps keyed by address can be queried
// with a `&str` and list addresses in the same order as before.
impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Address {}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for Address {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl Borrow<str> for Address {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for Address {
    fn eq(&self, other: &str) -> bool {
        &*self.text == other
    }
}

impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        &*self.text == *other
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Address> {
        let r = |what| Address::region("eu-west-1", what);
        let v = |what| Address::vault("bv", what);
        let s = |x: &str| x.to_string();
        vec![
            Address::role(Role::EksCluster),
            Address::role(Role::EksNode),
            Address::role(Role::Vault(s("bv"))),
            r(RegionItem::Vpc),
            r(RegionItem::Subnet(0)),
            r(RegionItem::Subnet(2)),
            r(RegionItem::InternetGateway),
            r(RegionItem::RouteTable),
            r(RegionItem::SecurityGroup),
            r(RegionItem::ExistingNetwork),
            r(RegionItem::Key(s("unseal"))),
            r(RegionItem::Bucket(s("bv.unseal.bucket"))),
            r(RegionItem::Cluster(s("c1"))),
            r(RegionItem::NodePool {
                cluster: s("c1"),
                pool: s("spot"),
            }),
            r(RegionItem::OidcProvider(s("c1"))),
            r(RegionItem::Addon {
                cluster: s("c1"),
                name: s("aws-ebs-csi-driver"),
            }),
            r(RegionItem::KubeVolumes(s("c1"))),
            r(RegionItem::AccessEntry {
                cluster: s("c1"),
                principal: s("arn:aws:iam::111122223333:role/team.ci/deploy"),
            }),
            r(RegionItem::TargetAttachment {
                lb: s("lb"),
                port: Port::Api,
                cluster: s("c1"),
            }),
            r(RegionItem::LoadBalancer(s("lb"))),
            r(RegionItem::TargetGroup {
                lb: s("lb"),
                port: Port::Api,
            }),
            r(RegionItem::Listener {
                lb: s("lb"),
                port: Port::Cluster,
            }),
            v(VaultItem::Ca),
            v(VaultItem::Cert(s("vault-0"))),
            v(VaultItem::Proxy(s("lb"))),
            v(VaultItem::Member(s("vault-0"))),
            v(VaultItem::Init),
            v(VaultItem::UnsealKeys),
            v(VaultItem::Unseal(s("vault-0"))),
            v(VaultItem::Join(s("vault-1"))),
            v(VaultItem::Raft),
            v(VaultItem::Policy(s("reader"))),
            v(VaultItem::Secrets(s("kv"))),
            v(VaultItem::RootCa(s("pki"))),
            v(VaultItem::PkiRole {
                mount: s("pki"),
                role: s("web"),
            }),
            v(VaultItem::Auth(s("approle"))),
            v(VaultItem::AuthRole {
                mount: s("approle"),
                role: s("ci"),
            }),
            v(VaultItem::Kube {
                cluster: s("c1"),
                object: KubeObject::Namespace,
            }),
            v(VaultItem::Kube {
                cluster: s("c1"),
                object: KubeObject::ReviewerBinding,
            }),
            v(VaultItem::Kube {
                cluster: s("c1"),
                object: KubeObject::StatefulSet(s("vault-0")),
            }),
            v(VaultItem::Kube {
                cluster: s("c1"),
                object: KubeObject::TlsSecret(s("vault-0")),
            }),
        ]
    }

    #[test]
    fn every_kind_reads_back_as_the_same_parts() {
        for a in every_kind() {
            let back: Address = a.as_str().parse().unwrap();
            assert_eq!(back.item(), a.item(), "{a}");
            assert_eq!(back, a);
        }
    }

    #[test]
    fn the_text_reads_like_the_topology() {
        let a = Address::region("eu-west-1", RegionItem::Subnet(1));
        assert_eq!(a.to_string(), "region.eu-west-1.network.subnet.b");
        let a = Address::vault(
            "bv",
            VaultItem::PkiRole {
                mount: "pki".into(),
                role: "web".into(),
            },
        );
        assert_eq!(a.as_str(), "vault.bv.secrets.pki.role.web");
    }

    #[test]
    fn what_is_not_an_address_is_refused() {
        for bad in [
            "",
            "region",
            "region.eu-west-1",
            "region.eu-west-1.nothing.x",
            "region.eu-west-1.network.subnet.ab",
            "region.eu-west-1.load-balancer.lb.listener.other",
            "vault.bv",
            "vault.bv.member.",
            "iam.role.vault.",
            "iam.role.other",
            "s3.bucket",
            "vault.bv.kube.c1",
            "vault.bv.kube.c1.pod.vault-0",
            "vault.bv.kube.c1.statefulset.",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_keyed_by_address_answer_to_text() {
        let mut m = std::collections::BTreeMap::new();
        let a = Address::vault("bv", VaultItem::Init);
        m.insert(a.clone(), 1);
        assert_eq!(m.get("vault.bv.init"), Some(&1));
        let b = Address::vault("bv", VaultItem::Raft);
        assert!(a < b, "ordered as text");
    }

    #[test]
    fn serde_uses_the_text() {
        let a = Address::region("eu-north-1", RegionItem::Key("k".into()));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"region.eu-north-1.key.k\"");
        let back: Address = serde_json::from_str(&json).unwrap();
        assert_eq!(back.item(), a.item());
        assert!(serde_json::from_str::<Address>("\"nope\"").is_err());
    }
}
