//! The dependency DAG of resources: node kinds, the graph, the builder each area of the
//! catalog adds its nodes through, `depends-on` resolution and the cycle check; DOT and mermaid
//! rendering. Which nodes a topology yields is decided next to each kind (see `catalog`).

use std::collections::HashMap;
use std::fmt::Write as _;

use miette::SourceSpan;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::address::Address;
use crate::topology::diagnostic::{Code, Problem, did_you_mean};
use crate::topology::model::Spanned;

/// What kind of thing a graph node is: an AWS resource, a runtime piece or a bootstrap step.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    ExistingNetwork,
    IamRole,
    EksCluster,
    EksNodeGroup,
    /// The IAM OIDC provider of an EKS cluster's issuer (IRSA).
    OidcProvider,
    /// An IAM principal's EKS access entry with its access policy.
    AccessEntry,
    /// The EBS volumes Kubernetes made for an EKS cluster: deleted on destroy.
    KubeVolumes,
    KmsKey,
    S3Bucket,
    LoadBalancer,
    TargetGroup,
    Listener,
    /// A target group attached to the auto scaling groups of an EKS cluster's node groups.
    TargetAttachment,
    VaultCa,
    VaultCert,
    LocalProxy,
    VaultMember,
    VaultInit,
    UnsealKeys,
    VaultUnseal,
    RaftJoin,
    RaftVerify,
    SecretsEngine,
    PkiRootCa,
    PkiRole,
    AuthMethod,
    AuthRole,
    VaultPolicy,
    RevokeRoot,
    SealTransit,
    KubeObject,
    EksAddon,
}

impl Kind {
    /// A local process rather than a cloud resource.
    pub fn is_process(self) -> bool {
        matches!(
            self,
            Kind::VaultMember | Kind::LocalProxy | Kind::SealTransit
        )
    }

    /// Whether a resource of this kind must be made again when a dependency of kind `dep`
    /// is (a certificate when its CA is new).
    pub fn reissued_with(self, dep: Kind) -> bool {
        // A member's TLS secret and StatefulSet (whose pod template carries the
        // certificate's digest) go with a new certificate.
        matches!(
            (self, dep),
            (Kind::VaultCert, Kind::VaultCa) | (Kind::KubeObject, Kind::VaultCert)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet-gateway",
            Kind::RouteTable => "route-table",
            Kind::SecurityGroup => "security-group",
            Kind::ExistingNetwork => "existing-network",
            Kind::IamRole => "iam-role",
            Kind::EksCluster => "eks-cluster",
            Kind::EksNodeGroup => "eks-node-group",
            Kind::OidcProvider => "oidc-provider",
            Kind::AccessEntry => "access-entry",
            Kind::KubeVolumes => "kube-volumes",
            Kind::KmsKey => "kms-key",
            Kind::S3Bucket => "s3-bucket",
            Kind::LoadBalancer => "load-balancer",
            Kind::TargetGroup => "target-group",
            Kind::Listener => "listener",
            Kind::TargetAttachment => "target-attachment",
            Kind::VaultCa => "vault-ca",
            Kind::VaultCert => "vault-cert",
            Kind::LocalProxy => "local-proxy",
            Kind::VaultMember => "vault-member",
            Kind::VaultInit => "vault-init",
            Kind::UnsealKeys => "unseal-keys",
            Kind::VaultUnseal => "vault-unseal",
            Kind::RaftJoin => "raft-join",
            Kind::RaftVerify => "raft-verify",
            Kind::SecretsEngine => "secrets-engine",
            Kind::PkiRootCa => "pki-root-ca",
            Kind::PkiRole => "pki-role",
            Kind::AuthMethod => "auth-method",
            Kind::AuthRole => "auth-role",
            Kind::VaultPolicy => "vault-policy",
            Kind::RevokeRoot => "revoke-root",
            Kind::SealTransit => "seal-transit",
            Kind::KubeObject => "kube-object",
            Kind::EksAddon => "eks-addon",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Resource {
    pub address: Address,
    pub kind: Kind,
    /// The AWS region it lives in; `None` for global (IAM) and Vault-level nodes.
    pub region: Option<String>,
    /// Where it was declared (or implied) in the topology.
    pub span: SourceSpan,
    /// For a declared key or bucket: its region's index and its index in that region's list,
    /// so that resource kinds find the declaration without a search.
    pub origin: Option<(usize, usize)>,
}

/// The dependency DAG: an edge `a -> b` means `a` must exist before `b`.
#[derive(Debug, Default)]
pub struct Graph {
    pub dag: DiGraph<Resource, ()>,
    index: HashMap<Address, NodeIndex>,
    /// Every edge, for a constant-time duplicate check (petgraph's scans a node's edges).
    edges: std::collections::HashSet<(NodeIndex, NodeIndex)>,
}

impl Graph {
    pub fn get(&self, address: &str) -> Option<NodeIndex> {
        self.index.get(address).copied()
    }

    pub fn resource(&self, ix: NodeIndex) -> &Resource {
        &self.dag[ix]
    }

    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Addresses this resource depends on directly.
    pub fn dependencies(&self, ix: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.dag.neighbors_directed(ix, Direction::Incoming)
    }

    /// Adds a node (or returns the one with that address).
    pub fn add(
        &mut self,
        address: Address,
        kind: Kind,
        region: Option<&str>,
        span: SourceSpan,
    ) -> NodeIndex {
        if let Some(ix) = self.index.get(&address) {
            return *ix;
        }
        let ix = self.dag.add_node(Resource {
            address: address.clone(),
            kind,
            region: region.map(str::to_owned),
            span,
            origin: None,
        });
        self.index.insert(address, ix);
        ix
    }

    /// `from` must exist before `to`.
    pub fn edge(&mut self, from: NodeIndex, to: NodeIndex) {
        if from != to && self.edges.insert((from, to)) {
            self.dag.add_edge(from, to, ());
        }
    }

    pub fn edges(&mut self, from: &[NodeIndex], to: NodeIndex) {
        for f in from {
            self.edge(*f, to);
        }
    }

    /// Renders Graphviz DOT, nodes labelled with address and kind.
    pub fn to_dot(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", escape(name));
        out.push_str("    rankdir=LR;\n    node [shape=box, fontname=\"monospace\"];\n");
        for ix in self.dag.node_indices() {
            let r = &self.dag[ix];
            let _ = writeln!(
                out,
                "    \"{a}\" [label=\"{a}\\n({k})\"];",
                a = escape(r.address.as_str()),
                k = r.kind
            );
        }
        for e in self.dag.edge_indices() {
            if let Some((a, b)) = self.dag.edge_endpoints(e) {
                let _ = writeln!(
                    out,
                    "    \"{}\" -> \"{}\";",
                    escape(self.dag[a].address.as_str()),
                    escape(self.dag[b].address.as_str())
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// Renders a mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for ix in self.dag.node_indices() {
            let r = &self.dag[ix];
            let _ = writeln!(
                out,
                "    n{}[\"{}<br/><i>{}</i>\"]",
                ix.index(),
                r.address.as_str().replace('"', "#quot;"),
                r.kind
            );
        }
        for e in self.dag.edge_indices() {
            if let Some((a, b)) = self.dag.edge_endpoints(e) {
                let _ = writeln!(out, "    n{} --> n{}", a.index(), b.index());
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// What the areas of the catalog share while they add their nodes: the graph, where each
/// declared thing landed, and the `depends-on` edges to resolve once every node exists.
#[derive(Default)]
pub struct Builder<'t> {
    pub g: Graph,
    /// Explicit `depends-on` of each node, resolved by [`Builder::finish`].
    pub depends: Vec<(NodeIndex, &'t Spanned<String>)>,
    /// The network pieces every cluster and load balancer of a region sits on.
    pub region_net: HashMap<&'t str, Vec<NodeIndex>>,
    /// The VPC (or existing network) of a region.
    pub region_vpc: HashMap<&'t str, NodeIndex>,
    /// KMS keys by (region, name).
    pub keys: HashMap<(&'t str, &'t str), NodeIndex>,
    /// Buckets by name.
    pub buckets: HashMap<&'t str, NodeIndex>,
    /// EKS clusters by name, with their node pools.
    pub clusters: HashMap<&'t str, (NodeIndex, Vec<NodeIndex>)>,
    /// Load balancers by name, with their listeners.
    pub load_balancers: HashMap<&'t str, (NodeIndex, Vec<NodeIndex>)>,
    /// The EKS cluster and node roles, when the topology has a cluster.
    pub eks_roles: Option<(NodeIndex, NodeIndex)>,
    /// Per EKS cluster hosting members on the Kubernetes runtime: the node that deletes the
    /// EBS volumes Kubernetes made for it (`region.<r>.cluster.<c>.volumes`). The Kubernetes
    /// objects that make volumes come after it, so they are destroyed before it.
    pub kube_volumes: HashMap<&'t str, NodeIndex>,
    /// The EKS add-ons of each cluster, by cluster name.
    pub addons: HashMap<&'t str, Vec<NodeIndex>>,
    /// Per EKS cluster hosting members on the Kubernetes runtime: its IAM OIDC provider.
    pub oidc_providers: HashMap<&'t str, NodeIndex>,
}

impl<'t> Builder<'t> {
    /// Resolves `depends-on` against every known address and reports cycles; unknown
    /// addresses and cycles are appended to `problems`.
    pub fn finish(self, problems: &mut Vec<Problem>) -> Graph {
        let Builder { mut g, depends, .. } = self;
        // Explicit `depends-on`, checked against every known address.
        let mut explicit: HashMap<(NodeIndex, NodeIndex), SourceSpan> = HashMap::new();
        for (ix, dep) in depends {
            match g.get(&dep.value) {
                Some(target) => {
                    explicit.insert((target, ix), dep.span);
                    g.edge(target, ix);
                }
                None => {
                    let known: Vec<&str> = g.index.keys().map(Address::as_str).collect();
                    let mut p = Problem::error(
                        Code::UnknownReference,
                        format!("no resource has the address \"{}\"", dep.value),
                    )
                    .label(dep.span, "unknown address");
                    p = match did_you_mean(&dep.value, known) {
                        Some(close) => p.help(format!("did you mean \"{close}\"?")),
                        None => p.help("`vaultform graph FILE` lists every address"),
                    };
                    problems.push(p);
                }
            }
        }
        if !explicit.is_empty() {
            report_cycles(&g, &explicit, problems);
        }
        g
    }
}

/// Reports each dependency cycle once, as the path around it.
fn report_cycles(
    g: &Graph,
    explicit: &HashMap<(NodeIndex, NodeIndex), SourceSpan>,
    problems: &mut Vec<Problem>,
) {
    for scc in petgraph::algo::tarjan_scc(&g.dag) {
        if scc.len() < 2 {
            continue;
        }
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc.iter().min().unwrap_or(&scc[0]);
        let path = cycle_path(g, start, &members);
        let mut text: Vec<&str> = path.iter().map(|ix| g.dag[*ix].address.as_str()).collect();
        text.push(g.dag[start].address.as_str());
        let mut p = Problem::error(
            Code::Cycle,
            format!("dependency cycle: {}", text.join(" -> ")),
        )
        .help("remove one `depends-on` so that the resources can be ordered");
        let mut labelled = false;
        for w in path.iter().zip(path.iter().cycle().skip(1)) {
            if let Some(span) = explicit.get(&(*w.0, *w.1)) {
                p = p.label(
                    *span,
                    format!("{} waits for {}", g.dag[*w.1].address, g.dag[*w.0].address),
                );
                labelled = true;
            }
        }
        if !labelled {
            p = p.label(g.dag[start].span, "part of the cycle");
        }
        problems.push(p);
    }
}

/// A simple path from `start` that returns to it, inside one strongly connected component.
fn cycle_path(
    g: &Graph,
    start: NodeIndex,
    scc: &std::collections::HashSet<NodeIndex>,
) -> Vec<NodeIndex> {
    // Breadth-first search for the shortest way back to `start`.
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for next in g.dag.neighbors_directed(n, Direction::Outgoing) {
            if !scc.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(next) {
                e.insert(n);
                queue.push_back(next);
            }
        }
    }
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{RegionItem, VaultItem};

    fn span(at: usize) -> SourceSpan {
        SourceSpan::from((at, 1))
    }

    #[test]
    fn nodes_are_added_once_and_edges_once() {
        let mut g = Graph::default();
        let a = Address::region("r", RegionItem::Key("k".into()));
        let x = g.add(a.clone(), Kind::KmsKey, Some("r"), span(0));
        let y = g.add(a, Kind::KmsKey, Some("r"), span(5));
        assert_eq!(x, y);
        let b = g.add(
            Address::vault("v", VaultItem::Init),
            Kind::VaultInit,
            None,
            span(1),
        );
        g.edge(x, b);
        g.edge(x, b);
        g.edge(b, b);
        assert_eq!(g.dag.edge_count(), 1);
        assert_eq!(g.get("vault.v.init"), Some(b));
        assert_eq!(g.dependencies(b).collect::<Vec<_>>(), vec![x]);
    }

    #[test]
    fn depends_on_resolves_reports_unknown_addresses_and_cycles() {
        let unknown = Spanned::new("vault.v.inti".to_string(), span(10));
        let init_needs_raft = Spanned::new("vault.v.raft".to_string(), span(20));
        let mut b = Builder::default();
        let init = b.g.add(
            Address::vault("v", VaultItem::Init),
            Kind::VaultInit,
            None,
            span(0),
        );
        let raft = b.g.add(
            Address::vault("v", VaultItem::Raft),
            Kind::RaftVerify,
            None,
            span(1),
        );
        b.g.edge(init, raft);
        b.depends.push((init, &unknown));
        b.depends.push((init, &init_needs_raft));
        let mut problems = Vec::new();
        let g = b.finish(&mut problems);
        assert_eq!(g.dag.edge_count(), 2);
        assert_eq!(problems.len(), 2, "{problems:?}");
        let unknown = problems
            .iter()
            .find(|p| p.code == Code::UnknownReference)
            .expect("unknown address reported");
        assert!(
            unknown
                .help
                .as_deref()
                .unwrap_or("")
                .contains("vault.v.init")
        );
        let cycle = problems
            .iter()
            .find(|p| p.code == Code::Cycle)
            .expect("cycle reported");
        assert!(
            cycle
                .message
                .contains("vault.v.init -> vault.v.raft -> vault.v.init")
        );
    }
}
