//! The AWS side of Vault clusters on the Kubernetes runtime, as graph nodes: per EKS cluster
//! hosting members, its IAM OIDC provider (IRSA; the Vault role trusts it) and the node that
//! deletes the EBS volumes Kubernetes made for it; per load balancer serving members, its
//! target groups attached to the auto scaling groups of the members' node groups.

use petgraph::graph::NodeIndex;

use crate::address::{Address, Port, RegionItem, Role};
use crate::graph::{Builder, Kind};
use crate::topology::{Runtime, Topology};

/// Adds the nodes; after the regions' areas (clusters, load balancers) and before the Vault
/// clusters' (whose members wait for the attachments through `b.load_balancers`).
pub fn graph<'t>(b: &mut Builder<'t>, t: &'t Topology) {
    for v in &t.vaults {
        if !matches!(v.runtime.value, Runtime::Kubernetes { .. }) {
            continue;
        }
        let mut providers: Vec<NodeIndex> = Vec::new();
        for m in &v.members {
            let Some((region, c)) = t.cluster(&m.cluster.value) else {
                continue;
            };
            let Some((cix, pools)) = b.clusters.get(c.name.value.as_str()).cloned() else {
                continue;
            };
            let rn = region.name.value.as_str();
            let cn = c.name.value.as_str();
            let oidc = match b.oidc_providers.get(cn) {
                Some(ix) => *ix,
                None => {
                    let ix = b.g.add(
                        Address::region(rn, RegionItem::OidcProvider(cn.to_string())),
                        Kind::OidcProvider,
                        Some(rn),
                        c.name.span,
                    );
                    b.g.edge(cix, ix);
                    b.oidc_providers.insert(cn, ix);
                    ix
                }
            };
            if !providers.contains(&oidc) {
                providers.push(oidc);
            }
            if !b.kube_volumes.contains_key(cn) {
                let ix = b.g.add(
                    Address::region(rn, RegionItem::KubeVolumes(cn.to_string())),
                    Kind::KubeVolumes,
                    Some(rn),
                    c.name.span,
                );
                b.g.edge(cix, ix);
                b.g.edges(&pools, ix);
                // The EBS CSI driver deletes the claims' volumes: it goes after them.
                if let Some(addons) = b.addons.get(cn).cloned() {
                    b.g.edges(&addons, ix);
                }
                b.kube_volumes.insert(cn, ix);
            }
        }
        // The role the members' pods assume trusts each cluster's provider. The Vault area
        // adds the same node (same address) and its other edges.
        if b.eks_roles.is_some() && !providers.is_empty() {
            let role = b.g.add(
                Address::role(Role::Vault(v.name.value.clone())),
                Kind::IamRole,
                None,
                v.name.span,
            );
            b.g.edges(&providers, role);
            // Its policy names the awskms seal's key (replicated into the members' regions).
            if let crate::topology::SealKind::Awskms { key } = &v.seal.kind
                && let Some((home, _)) = v
                    .bootstrap_member()
                    .and_then(|m| t.cluster(&m.cluster.value))
                && let Some(kix) = b.g.get(
                    Address::region(&home.name.value, RegionItem::Key(key.value.clone())).as_str(),
                )
            {
                b.g.edge(kix, role);
            }
        }
    }
    attachments(b, t);
}

/// Each target group of a load balancer serving members, attached to the auto scaling groups
/// of the node groups of every cluster (in its region) those members run on. The attachments
/// join the load balancer's nodes in `b.load_balancers`, which members and joins wait for.
fn attachments<'t>(b: &mut Builder<'t>, t: &'t Topology) {
    for r in &t.regions {
        let rn = r.name.value.as_str();
        for lb in &r.load_balancers {
            let ln = lb.name.value.as_str();
            let mut clusters: Vec<&'t str> = Vec::new();
            for (_, m) in t.kube_members_behind(ln) {
                let Some((cr, c)) = t.cluster(&m.cluster.value) else {
                    continue;
                };
                if cr.name.value == r.name.value && !clusters.contains(&c.name.value.as_str()) {
                    clusters.push(c.name.value.as_str());
                }
            }
            let mut added = Vec::new();
            for cn in clusters {
                let Some((_, pools)) = b.clusters.get(cn).cloned() else {
                    continue;
                };
                for port in Port::BOTH {
                    let tg = Address::region(
                        rn,
                        RegionItem::TargetGroup {
                            lb: ln.to_string(),
                            port,
                        },
                    );
                    let Some(tg) = b.g.get(tg.as_str()) else {
                        continue;
                    };
                    let ix = b.g.add(
                        Address::region(
                            rn,
                            RegionItem::TargetAttachment {
                                lb: ln.to_string(),
                                port,
                                cluster: cn.to_string(),
                            },
                        ),
                        Kind::TargetAttachment,
                        Some(rn),
                        lb.name.span,
                    );
                    b.g.edge(tg, ix);
                    b.g.edges(&pools, ix);
                    added.push(ix);
                }
            }
            if let Some((_, nodes)) = b.load_balancers.get_mut(ln) {
                nodes.extend(added);
            }
        }
    }
}
