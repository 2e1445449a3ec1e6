//! The dependency graph of each shipped topology, as DOT snapshots, plus its ordering rules.

use crate::support::{kdl_files, root};
use vaultform::graph::Kind;

fn load(path: &std::path::Path) -> vaultform::Loaded {
    let text = std::fs::read_to_string(root().join(path)).expect("read topology");
    vaultform::load(path.display().to_string(), text)
}

#[test]
fn every_topology_is_valid_and_its_dot_is_stable() {
    let files = kdl_files("topologies");
    assert!(files.len() >= 3);
    for path in files {
        let loaded = load(&path);
        let rendered = vaultform::ui::diagnostics::render(&loaded, false);
        let (t, g) = loaded.valid().unwrap_or_else(|| panic!("{rendered}"));
        let name = format!("dot-{}", path.file_stem().unwrap().to_string_lossy());
        insta::with_settings!({snapshot_path => "snapshots/graph", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(name, g.to_dot(&t.stack.value));
        });
    }
}

/// `a` must come before `b`: there is a path from `a` to `b`.
fn before(g: &vaultform::graph::Graph, a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (g.get(a), g.get(b)) else {
        panic!("missing address {a} or {b}");
    };
    petgraph::algo::has_path_connecting(&g.dag, a, b, None)
}

#[test]
fn implicit_order_follows_the_bootstrap() {
    let loaded = load(std::path::Path::new("topologies/local.kdl"));
    let (_, g) = loaded.valid().expect("valid");
    let r = "region.eu-west-1";
    assert!(before(
        g,
        &format!("{r}.network.vpc"),
        &format!("{r}.cluster.bv-eu-west-1")
    ));
    assert!(before(
        g,
        "iam.role.eks-cluster",
        &format!("{r}.cluster.bv-eu-west-1")
    ));
    assert!(before(
        g,
        &format!("{r}.cluster.bv-eu-west-1"),
        &format!("{r}.cluster.bv-eu-west-1.node-pool.pool1")
    ));
    assert!(before(
        g,
        &format!("{r}.key.unseal"),
        &format!("{r}.bucket.bv-local-unseal-eu-west-1")
    ));
    assert!(before(
        g,
        &format!("{r}.network.subnet.a"),
        &format!("{r}.load-balancer.bv-eu-west-1")
    ));
    assert!(before(
        g,
        &format!("{r}.load-balancer.bv-eu-west-1"),
        "vault.bv.member.vault-1"
    ));
    assert!(before(
        g,
        &format!("{r}.cluster.bv-eu-west-1"),
        "vault.bv.member.vault-1"
    ));
    assert!(before(g, "vault.bv.member.vault-0", "vault.bv.init"));
    assert!(before(
        g,
        &format!("{r}.bucket.bv-local-unseal-eu-west-1"),
        "vault.bv.init"
    ));
    assert!(before(g, "vault.bv.init", "vault.bv.unseal.vault-0"));
    assert!(before(
        g,
        "vault.bv.unseal.vault-0",
        "vault.bv.join.vault-1"
    ));
    // Joining goes through the primary's load balancer.
    assert!(before(
        g,
        "vault.bv.proxy.bv-eu-central-1",
        "vault.bv.join.vault-1"
    ));
    assert!(before(
        g,
        "vault.bv.join.vault-1",
        "vault.bv.unseal.vault-1"
    ));
    assert!(before(g, "vault.bv.unseal.vault-2", "vault.bv.raft"));
    assert!(
        !before(g, "vault.bv.join.vault-1", "vault.bv.join.vault-2"),
        "joins run side by side"
    );
    assert_eq!(
        g.resource(g.get("vault.bv.raft").unwrap()).kind,
        Kind::RaftVerify
    );
    assert!(petgraph::algo::toposort(&g.dag, None).is_ok());
}

#[test]
fn existing_networks_are_one_read_only_node() {
    let text = r#"
stack "t"
region "eu-west-1" {
    network vpc-id="vpc-0abc" subnet-ids="subnet-1,subnet-2"
    load-balancer "lb1"
}
"#;
    let loaded = vaultform::load("inline.kdl", text);
    let (_, g) = loaded.valid().expect("valid");
    let net = g
        .get("region.eu-west-1.network")
        .expect("existing network node");
    assert_eq!(g.resource(net).kind, Kind::ExistingNetwork);
    assert!(before(
        g,
        "region.eu-west-1.network",
        "region.eu-west-1.load-balancer.lb1"
    ));
    assert!(g.get("region.eu-west-1.network.vpc").is_none());
}
