//! Topology -> dependency DAG of resources, each with a stable address that reads like the
//! topology (`region.eu-west-1.bucket.bv-unseal`); cycle check; DOT and mermaid rendering.

use std::collections::HashMap;
use std::fmt::Write as _;

use miette::SourceSpan;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::topology::diagnostic::{Code, Problem, did_you_mean};
use crate::topology::model::*;

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
    KmsKey,
    S3Bucket,
    LoadBalancer,
    TargetGroup,
    Listener,
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
}

impl Kind {
    /// A local process rather than a cloud resource.
    pub fn is_process(self) -> bool {
        matches!(self, Kind::VaultMember | Kind::LocalProxy)
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
            Kind::KmsKey => "kms-key",
            Kind::S3Bucket => "s3-bucket",
            Kind::LoadBalancer => "load-balancer",
            Kind::TargetGroup => "target-group",
            Kind::Listener => "listener",
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
    pub address: String,
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
    index: HashMap<String, NodeIndex>,
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

    fn add(
        &mut self,
        address: String,
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

    fn edge(&mut self, from: NodeIndex, to: NodeIndex) {
        if from != to && self.edges.insert((from, to)) {
            self.dag.add_edge(from, to, ());
        }
    }

    fn edges(&mut self, from: &[NodeIndex], to: NodeIndex) {
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
                a = escape(&r.address),
                k = r.kind
            );
        }
        for e in self.dag.edge_indices() {
            if let Some((a, b)) = self.dag.edge_endpoints(e) {
                let _ = writeln!(
                    out,
                    "    \"{}\" -> \"{}\";",
                    escape(&self.dag[a].address),
                    escape(&self.dag[b].address)
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
                r.address.replace('"', "#quot;"),
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

/// Address helpers, so every module spells addresses the same way.
pub mod address {
    pub fn region(region: &str, rest: &str) -> String {
        format!("region.{region}.{rest}")
    }
    pub fn vault(vault: &str, rest: &str) -> String {
        format!("vault.{vault}.{rest}")
    }
    pub fn subnet_suffix(i: usize) -> char {
        (b'a' + i as u8) as char
    }
}

/// Builds the graph of a decoded topology. Unknown `depends-on` addresses and cycles are
/// appended to `problems`; the graph is returned either way (cycle-free only without errors).
pub fn build(t: &Topology, problems: &mut Vec<Problem>) -> Graph {
    let mut g = Graph::default();
    let mut depends: Vec<(NodeIndex, &Spanned<String>)> = Vec::new();
    let any_cluster = t.regions.iter().any(|r| !r.clusters.is_empty());
    let (role_cluster, role_node) = if any_cluster {
        let span = t.stack.span;
        (
            Some(g.add("iam.role.eks-cluster".into(), Kind::IamRole, None, span)),
            Some(g.add("iam.role.eks-node".into(), Kind::IamRole, None, span)),
        )
    } else {
        (None, None)
    };

    // Per region: the network pieces every cluster and load balancer sits on.
    let mut region_net: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
    let mut region_vpc: HashMap<&str, NodeIndex> = HashMap::new();
    let mut key_ix: HashMap<(&str, &str), NodeIndex> = HashMap::new();
    let mut bucket_ix: HashMap<&str, NodeIndex> = HashMap::new();
    let mut cluster_ix: HashMap<&str, (NodeIndex, Vec<NodeIndex>)> = HashMap::new();
    let mut lb_ix: HashMap<&str, (NodeIndex, Vec<NodeIndex>)> = HashMap::new();

    for (ri, r) in t.regions.iter().enumerate() {
        let rn = r.name.value.as_str();
        let reg = Some(rn);
        let mut net = Vec::new();
        if let Some(n) = &r.network {
            match &n.kind {
                NetworkKind::New { azs, .. } => {
                    let vpc = g.add(address::region(rn, "network.vpc"), Kind::Vpc, reg, n.span);
                    region_vpc.insert(rn, vpc);
                    for i in 0..azs.value as usize {
                        let s = g.add(
                            address::region(
                                rn,
                                &format!("network.subnet.{}", address::subnet_suffix(i)),
                            ),
                            Kind::Subnet,
                            reg,
                            n.span,
                        );
                        g.edge(vpc, s);
                        net.push(s);
                    }
                    let igw = g.add(
                        address::region(rn, "network.internet-gateway"),
                        Kind::InternetGateway,
                        reg,
                        n.span,
                    );
                    g.edge(vpc, igw);
                    let rt = g.add(
                        address::region(rn, "network.route-table"),
                        Kind::RouteTable,
                        reg,
                        n.span,
                    );
                    g.edge(igw, rt);
                    g.edges(&net.clone(), rt);
                    let sg = g.add(
                        address::region(rn, "network.security-group"),
                        Kind::SecurityGroup,
                        reg,
                        n.span,
                    );
                    g.edge(vpc, sg);
                    net.push(rt);
                    net.push(sg);
                }
                NetworkKind::Existing { .. } => {
                    let e = g.add(
                        address::region(rn, "network"),
                        Kind::ExistingNetwork,
                        reg,
                        n.span,
                    );
                    region_vpc.insert(rn, e);
                    net.push(e);
                }
            }
        }
        region_net.insert(rn, net.clone());

        for (ki, k) in r.keys.iter().enumerate() {
            let ix = g.add(
                address::region(rn, &format!("key.{}", k.name.value)),
                Kind::KmsKey,
                reg,
                k.name.span,
            );
            g.dag[ix].origin = Some((ri, ki));
            key_ix.insert((rn, k.name.value.as_str()), ix);
            depends.extend(k.depends_on.iter().map(|d| (ix, d)));
        }
        for (bi, b) in r.buckets.iter().enumerate() {
            let ix = g.add(
                address::region(rn, &format!("bucket.{}", b.name.value)),
                Kind::S3Bucket,
                reg,
                b.name.span,
            );
            g.dag[ix].origin = Some((ri, bi));
            if let Some(k) = key_ix.get(&(rn, b.key.value.as_str())) {
                g.edge(*k, ix);
            }
            bucket_ix.insert(b.name.value.as_str(), ix);
            depends.extend(b.depends_on.iter().map(|d| (ix, d)));
        }
        for c in &r.clusters {
            let base = format!("cluster.{}", c.name.value);
            let ix = g.add(
                address::region(rn, &base),
                Kind::EksCluster,
                reg,
                c.name.span,
            );
            g.edges(&net, ix);
            if let Some(role) = role_cluster {
                g.edge(role, ix);
            }
            depends.extend(c.depends_on.iter().map(|d| (ix, d)));
            let mut pools = Vec::new();
            for p in &c.node_pools {
                let pix = g.add(
                    address::region(rn, &format!("{base}.node-pool.{}", p.name.value)),
                    Kind::EksNodeGroup,
                    reg,
                    p.name.span,
                );
                g.edge(ix, pix);
                if let Some(role) = role_node {
                    g.edge(role, pix);
                }
                depends.extend(p.depends_on.iter().map(|d| (pix, d)));
                pools.push(pix);
            }
            cluster_ix.insert(c.name.value.as_str(), (ix, pools));
        }
        for l in &r.load_balancers {
            let base = format!("load-balancer.{}", l.name.value);
            let ix = g.add(
                address::region(rn, &base),
                Kind::LoadBalancer,
                reg,
                l.name.span,
            );
            g.edges(&net, ix);
            depends.extend(l.depends_on.iter().map(|d| (ix, d)));
            let mut listeners = Vec::new();
            for port in ["api", "cluster"] {
                let tg = g.add(
                    address::region(rn, &format!("{base}.target-group.{port}")),
                    Kind::TargetGroup,
                    reg,
                    l.name.span,
                );
                if let Some(vpc) = region_vpc.get(rn) {
                    g.edge(*vpc, tg);
                }
                let li = g.add(
                    address::region(rn, &format!("{base}.listener.{port}")),
                    Kind::Listener,
                    reg,
                    l.name.span,
                );
                g.edge(ix, li);
                g.edge(tg, li);
                listeners.push(li);
            }
            lb_ix.insert(l.name.value.as_str(), (ix, listeners));
        }
    }

    for v in &t.vaults {
        let vn = v.name.value.as_str();
        let local = matches!(v.runtime.value, Runtime::Local { .. });
        let store: Vec<NodeIndex> = v
            .unseal_store
            .buckets
            .iter()
            .filter_map(|b| bucket_ix.get(b.value.as_str()).copied())
            .collect();
        let vault_role = (!local && any_cluster).then(|| {
            let ix = g.add(
                format!("iam.role.vault.{vn}"),
                Kind::IamRole,
                None,
                v.name.span,
            );
            g.edges(&store, ix);
            ix
        });
        // What stands for each load balancer the cluster uses: the NLB listeners, plus the
        // local HAProxy on the local runtime.
        let mut entry: HashMap<&str, Vec<NodeIndex>> = HashMap::new();
        let lbs = v
            .members
            .iter()
            .map(|m| &m.load_balancer)
            .chain(v.front.iter());
        for lb in lbs {
            if entry.contains_key(lb.value.as_str()) {
                continue;
            }
            let mut nodes = lb_ix
                .get(lb.value.as_str())
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            if local {
                let px = g.add(
                    address::vault(vn, &format!("proxy.{}", lb.value)),
                    Kind::LocalProxy,
                    None,
                    lb.span,
                );
                g.edges(&nodes, px);
                nodes.push(px);
            }
            entry.insert(lb.value.as_str(), nodes);
        }
        let mut members = Vec::new();
        for m in &v.members {
            let ix = g.add(
                address::vault(vn, &format!("member.{}", m.name.value)),
                Kind::VaultMember,
                None,
                m.name.span,
            );
            if let Some((c, pools)) = cluster_ix.get(m.cluster.value.as_str()) {
                g.edge(*c, ix);
                g.edges(pools, ix);
            }
            if let Some(nodes) = entry.get(m.load_balancer.value.as_str()) {
                g.edges(nodes, ix);
            }
            if let Some(role) = vault_role {
                g.edge(role, ix);
            }
            depends.extend(m.depends_on.iter().map(|d| (ix, d)));
            members.push((m, ix));
        }
        let Some(primary) = v.bootstrap_member() else {
            continue;
        };
        let Some(&(_, primary_ix)) = members
            .iter()
            .find(|(m, _)| m.name.value == primary.name.value)
        else {
            continue;
        };
        let init = g.add(
            address::vault(vn, "init"),
            Kind::VaultInit,
            None,
            v.name.span,
        );
        g.edge(primary_ix, init);
        g.edges(&store, init);
        let keys = g.add(
            address::vault(vn, "unseal-keys"),
            Kind::UnsealKeys,
            None,
            v.unseal_store.span,
        );
        g.edge(init, keys);
        g.edges(&store, keys);
        // The keys are safe in every bucket before anything relies on them.
        let primary_unseal = g.add(
            address::vault(vn, &format!("unseal.{}", primary.name.value)),
            Kind::VaultUnseal,
            None,
            primary.name.span,
        );
        g.edge(keys, primary_unseal);
        let verify = g.add(
            address::vault(vn, "raft"),
            Kind::RaftVerify,
            None,
            v.name.span,
        );
        g.edge(primary_unseal, verify);
        let leader_entry = entry
            .get(primary.load_balancer.value.as_str())
            .cloned()
            .unwrap_or_default();
        for (m, mix) in &members {
            if m.name.value == primary.name.value {
                continue;
            }
            let join = g.add(
                address::vault(vn, &format!("join.{}", m.name.value)),
                Kind::RaftJoin,
                None,
                m.name.span,
            );
            g.edge(primary_unseal, join);
            g.edge(*mix, join);
            g.edges(&leader_entry, join);
            let unseal = g.add(
                address::vault(vn, &format!("unseal.{}", m.name.value)),
                Kind::VaultUnseal,
                None,
                m.name.span,
            );
            g.edge(join, unseal);
            g.edge(unseal, verify);
        }
        // Declarative configuration, once the cluster is whole.
        let mut policy_ix: HashMap<&str, NodeIndex> = HashMap::new();
        for p in &v.policies {
            let ix = g.add(
                address::vault(vn, &format!("policy.{}", p.name.value)),
                Kind::VaultPolicy,
                None,
                p.name.span,
            );
            g.edge(verify, ix);
            policy_ix.insert(p.name.value.as_str(), ix);
        }
        for s in &v.secrets {
            let base = format!("secrets.{}", s.path.value);
            let ix = g.add(
                address::vault(vn, &base),
                Kind::SecretsEngine,
                None,
                s.path.span,
            );
            g.edge(verify, ix);
            let ca = s.root_ca.as_ref().map(|c| {
                let cix = g.add(
                    address::vault(vn, &format!("{base}.root-ca")),
                    Kind::PkiRootCa,
                    None,
                    c.span,
                );
                g.edge(ix, cix);
                cix
            });
            for r in &s.roles {
                let rix = g.add(
                    address::vault(vn, &format!("{base}.role.{}", r.name.value)),
                    Kind::PkiRole,
                    None,
                    r.name.span,
                );
                g.edge(ca.unwrap_or(ix), rix);
            }
        }
        for a in &v.auth {
            let base = format!("auth.{}", a.path.value);
            let ix = g.add(
                address::vault(vn, &base),
                Kind::AuthMethod,
                None,
                a.path.span,
            );
            g.edge(verify, ix);
            for r in &a.roles {
                let rix = g.add(
                    address::vault(vn, &format!("{base}.role.{}", r.name.value)),
                    Kind::AuthRole,
                    None,
                    r.name.span,
                );
                g.edge(ix, rix);
                for p in &r.policies {
                    if let Some(pix) = policy_ix.get(p.value.as_str()) {
                        g.edge(*pix, rix);
                    }
                }
            }
        }
        if let Some(front) = &v.front {
            // The front endpoint serves clients once the cluster is whole.
            if let Some(nodes) = entry.get(front.value.as_str()) {
                for n in nodes.clone() {
                    if g.dag[n].kind == Kind::LocalProxy {
                        g.edge(verify, n);
                    }
                }
            }
        }
    }

    // Explicit `depends-on`, checked against every known address.
    let mut explicit: HashMap<(NodeIndex, NodeIndex), SourceSpan> = HashMap::new();
    for (ix, dep) in depends {
        match g.get(&dep.value) {
            Some(target) => {
                explicit.insert((target, ix), dep.span);
                g.edge(target, ix);
            }
            None => {
                let known: Vec<&str> = g.index.keys().map(String::as_str).collect();
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
        text.push(&g.dag[start].address);
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
