//! KDL document -> typed [`Topology`]: reads every node against its schema, applies `defaults`,
//! and collects every problem rather than stopping at the first.

use kdl::{KdlDocument, KdlNode};
use miette::SourceSpan;

use super::diagnostic::{Code, Problem};
use super::model::*;
use super::reader::NodeReader;

/// Settings of one resource kind that `defaults` may supply.
struct Defaults<'a> {
    cluster: Option<&'a KdlNode>,
    node_pool: Option<&'a KdlNode>,
    key: Option<&'a KdlNode>,
    bucket: Option<&'a KdlNode>,
    load_balancer: Option<&'a KdlNode>,
}

/// Reads a setting from the node, falling back to the same setting in its `defaults` entry.
struct Layered<'a> {
    own: NodeReader<'a>,
    fallback: Option<NodeReader<'a>>,
    /// Names of settings that had to come from defaults and were missing in both.
    missing: Vec<&'static str>,
}

macro_rules! layered_getter {
    ($name:ident, $ty:ty, ($($arg:ident : $argty:ty),*)) => {
        fn $name(&mut self, key: &'static str $(, $arg: $argty)*) -> Option<$ty> {
            let own = self.own.$name(key $(, $arg)*);
            let fb = self.fallback.as_mut().and_then(|f| f.$name(key $(, $arg)*));
            own.or(fb)
        }
    };
}

impl<'a> Layered<'a> {
    fn new(kind: &'static str, node: &'a KdlNode, defaults: Option<&'a KdlNode>) -> Self {
        Layered {
            own: NodeReader::node(kind, node),
            fallback: defaults.map(|d| NodeReader::node(kind, d)),
            missing: Vec::new(),
        }
    }

    layered_getter!(string, Spanned<String>, ());
    layered_getter!(bool, Spanned<bool>, ());
    layered_getter!(uint, Spanned<u32>, (min: u32, max: u32));
    layered_getter!(port, Spanned<u16>, ());
    layered_getter!(list, Vec<Spanned<String>>, ());

    fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        choices: &[(&'static str, T)],
    ) -> Option<Spanned<T>> {
        let own = self.own.choice(key, choices);
        let fb = self.fallback.as_mut().and_then(|f| f.choice(key, choices));
        own.or(fb)
    }

    fn map(&mut self, key: &'static str) -> std::collections::BTreeMap<String, String> {
        let mut out = self
            .fallback
            .as_mut()
            .map(|f| f.map(key))
            .unwrap_or_default();
        out.extend(self.own.map(key));
        out
    }

    /// A setting with no default of its own: reported when neither place sets it.
    fn required<T>(&mut self, key: &'static str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.missing.push(key);
        }
        value
    }

    /// Finishes the node; the defaults entry is checked once on its own, not here.
    fn finish(mut self, name: &str, problems: &mut Vec<Problem>) {
        let kind = self.own.kind();
        let head = self.own.head();
        for key in std::mem::take(&mut self.missing) {
            problems.push(
                Problem::error(
                    Code::MissingValue,
                    format!("{kind} \"{name}\" has no `{key}`"),
                )
                .label(head, format!("`{key}` is required"))
                .help(format!(
                    "add `{key}=...` here, or to `{kind}` in the `defaults` block"
                )),
            );
        }
        self.own.finish(problems);
        // The fallback's unknown settings are reported by `check_defaults`; drop its problems
        // here so they are not reported once per resource.
        drop(self.fallback);
    }
}

const CAPACITY: &[(&str, Capacity)] =
    &[("on-demand", Capacity::OnDemand), ("spot", Capacity::Spot)];
const ACCESS: &[(&str, EndpointAccess)] = &[
    ("public", EndpointAccess::Public),
    ("private", EndpointAccess::Private),
    ("public-and-private", EndpointAccess::PublicAndPrivate),
];
const SCHEME: &[(&str, Scheme)] = &[
    ("internet-facing", Scheme::InternetFacing),
    ("internal", Scheme::Internal),
];
const HEALTH: &[(&str, HealthMode)] = &[
    ("unsealed", HealthMode::Unsealed),
    ("active", HealthMode::Active),
];
const ACCESS_POLICY: &[(&str, AccessPolicy)] = &[
    ("cluster-admin", AccessPolicy::ClusterAdmin),
    ("admin", AccessPolicy::Admin),
    ("edit", AccessPolicy::Edit),
    ("view", AccessPolicy::View),
];
const FLAVOUR: &[(&str, Flavour)] = &[("bao", Flavour::Bao), ("vault", Flavour::Vault)];

/// Decodes a parsed document. Returns `None` when a required top-level piece is missing;
/// problems are appended either way.
pub fn decode(doc: &KdlDocument, problems: &mut Vec<Problem>) -> Option<Topology> {
    let mut top = NodeReader::document(doc);
    let stack_node = top.child("stack");
    let aws_node = top.child("aws");
    let state_node = top.child("state");
    let defaults_node = top.child("defaults");
    let region_nodes = top.children("region");
    let vault_nodes = top.children("vault");
    let expires_node = top.child("expires-after");
    top.finish(problems);
    let expires_after = expires_node.and_then(|n| decode_expires(n, problems));

    let stack = match stack_node {
        Some(n) => {
            let mut r = NodeReader::node("stack", n);
            let s = r.arg_string("a stack name");
            r.finish(problems);
            s
        }
        None => {
            problems.push(
                Problem::error(Code::MissingValue, "the topology has no `stack` name")
                    .label(
                        SourceSpan::from((0, 0)),
                        "expected `stack \"<name>\"` in this file",
                    )
                    .help("add `stack \"my-stack\"` at the top: it names and tags every resource"),
            );
            None
        }
    };

    let aws = aws_node
        .map(|n| decode_aws(n, problems))
        .unwrap_or_default();
    let state = state_node.and_then(|n| decode_state(n, problems));
    let defaults = decode_defaults(defaults_node, problems);
    let regions: Vec<Region> = region_nodes
        .iter()
        .filter_map(|n| decode_region(n, &defaults, problems))
        .collect();
    let vaults: Vec<VaultCluster> = vault_nodes
        .iter()
        .filter_map(|n| decode_vault(n, problems))
        .collect();

    let stack = stack?;
    let state = state.unwrap_or_else(|| StateBackend::Local {
        path: format!(".vaultform/{}.state.json", stack.value),
    });
    Some(Topology {
        stack,
        aws,
        state,
        regions,
        vaults,
        expires_after,
    })
}

/// `expires-after "8h"`: a duration, reported at its value when it is not one.
fn decode_expires(
    node: &KdlNode,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<std::time::Duration>> {
    let mut r = NodeReader::node("expires-after", node);
    let text = r.arg_string("a duration such as \"8h\"");
    r.finish(problems);
    let text = text?;
    match super::duration::parse(&text.value) {
        Ok(d) => Some(Spanned::new(d, text.span)),
        Err(message) => {
            problems.push(
                Problem::error(Code::InvalidValue, message)
                    .label(text.span, "expected numbers with units: s, m, h or d")
                    .help("write it as `expires-after \"8h\"` (or \"90m\", \"1h30m\", \"2d\")"),
            );
            None
        }
    }
}

fn decode_aws(node: &KdlNode, problems: &mut Vec<Problem>) -> AwsSettings {
    let mut r = NodeReader::node("aws", node);
    let endpoint = r.string("endpoint");
    let tags = r.map("tags");
    r.finish(problems);
    AwsSettings { endpoint, tags }
}

fn decode_state(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<StateBackend> {
    let mut r = NodeReader::node("state", node);
    let kind = r.arg_string("a backend kind (\"local\" or \"s3\")");
    let out = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("local") => r
            .string("path")
            .map(|p| StateBackend::Local { path: p.value }),
        Some("s3") => {
            let bucket = r.string("bucket");
            let key = r.string("key");
            let region = r.string("region");
            let kms_key = r.string("kms-key");
            if let Some(k) = &kms_key
                && !is_kms_key_reference(&k.value)
            {
                r.push(
                    Problem::error(
                        Code::InvalidValue,
                        format!("\"{}\" is not a KMS key alias, key ID or key ARN", k.value),
                    )
                    .label(k.span, "not a KMS key")
                    .help(
                        "write `kms-key=\"alias/NAME\"`, a key ID (`1234abcd-...`) or a key ARN (`arn:aws:kms:REGION:ACCOUNT:key/...`)",
                    ),
                );
            }
            let head = r.head();
            for (name, v) in [("bucket", &bucket), ("key", &key), ("region", &region)] {
                if v.is_none() {
                    r.push(
                        Problem::error(
                            Code::MissingValue,
                            format!("the s3 state backend needs `{name}`"),
                        )
                        .label(head, format!("`{name}` missing"))
                        .help(
                            "write it as `state \"s3\" bucket=\"...\" key=\"...\" region=\"...\"`",
                        ),
                    );
                }
            }
            match (bucket, key, region) {
                (Some(b), Some(k), Some(g)) => Some(StateBackend::S3 {
                    bucket: b.value,
                    key: k.value,
                    region: g.value,
                    kms_key: kms_key
                        .map(|k| k.value)
                        .unwrap_or_else(|| DEFAULT_STATE_KMS_KEY.to_string()),
                }),
                _ => None,
            }
        }
        Some(other) => {
            let span = kind.as_ref().map(|k| k.span).unwrap_or(r.head());
            r.push(
                Problem::error(
                    Code::InvalidValue,
                    format!("unknown state backend \"{other}\""),
                )
                .label(span, "unknown backend")
                .help("expected \"local\" or \"s3\""),
            );
            None
        }
        None => None,
    };
    r.finish(problems);
    out
}

/// The KMS key of an S3 state without `kms-key`: `vaultform init` creates it when missing.
pub const DEFAULT_STATE_KMS_KEY: &str = "alias/vaultform-state";

/// Whether `s` names a KMS key the way the KMS API takes it: `alias/NAME`, a key ID (a UUID,
/// or `mrk-` and hex for a multi-Region key) or a key or alias ARN.
pub fn is_kms_key_reference(s: &str) -> bool {
    let alias_name = |n: &str| {
        !n.is_empty()
            && n.len() <= 250
            && !n.starts_with("aws/")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
    };
    let key_id = |n: &str| {
        let hex = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit());
        match n.strip_prefix("mrk-") {
            Some(rest) => rest.len() == 32 && hex(rest),
            None => {
                let parts: Vec<&str> = n.split('-').collect();
                parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
                    && parts.iter().all(|p| hex(p))
            }
        }
    };
    if let Some(name) = s.strip_prefix("alias/") {
        return alias_name(name);
    }
    if let Some(rest) = s.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return false;
        };
        return partition.starts_with("aws")
            && service == "kms"
            && !region.is_empty()
            && account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && match resource.split_once('/') {
                Some(("key", id)) => key_id(id),
                Some(("alias", name)) => alias_name(name),
                _ => false,
            };
    }
    key_id(s)
}

fn decode_defaults<'a>(node: Option<&'a KdlNode>, problems: &mut Vec<Problem>) -> Defaults<'a> {
    let Some(node) = node else {
        return Defaults {
            cluster: None,
            node_pool: None,
            key: None,
            bucket: None,
            load_balancer: None,
        };
    };
    let mut r = NodeReader::node("defaults", node);
    let d = Defaults {
        cluster: r.child("cluster"),
        node_pool: r.child("node-pool"),
        key: r.child("key"),
        bucket: r.child("bucket"),
        load_balancer: r.child("load-balancer"),
    };
    r.finish(problems);
    // Each defaults entry is read once against its schema, so a typo there is reported once.
    let mut scratch = Vec::new();
    if let Some(n) = d.cluster {
        let mut l = NodeReader::node("cluster", n);
        cluster_fields(&mut l);
        l.finish(&mut scratch);
    }
    if let Some(n) = d.node_pool {
        let mut l = NodeReader::node("node-pool", n);
        pool_fields(&mut l);
        l.finish(&mut scratch);
    }
    if let Some(n) = d.key {
        let mut l = NodeReader::node("key", n);
        key_fields(&mut l);
        l.finish(&mut scratch);
    }
    if let Some(n) = d.bucket {
        let mut l = NodeReader::node("bucket", n);
        bucket_fields(&mut l);
        l.finish(&mut scratch);
    }
    if let Some(n) = d.load_balancer {
        let mut l = NodeReader::node("load-balancer", n);
        lb_fields(&mut l);
        l.finish(&mut scratch);
    }
    problems.extend(scratch.into_iter().map(|mut p| {
        if p.code == Code::UnexpectedArgument {
            p.message = format!(
                "{} (defaults apply to every resource, so they take no name)",
                p.message
            );
        }
        p
    }));
    d
}

// The `*_fields` functions name every setting of a kind once, for both the resource and its
// defaults entry.

fn cluster_fields(r: &mut NodeReader<'_>) {
    r.string("version");
    r.choice("endpoint-access", ACCESS);
}

fn pool_fields(r: &mut NodeReader<'_>) {
    r.list("instance-types");
    r.choice("capacity", CAPACITY);
    r.uint("min", 0, 1000);
    r.uint("desired", 0, 1000);
    r.uint("max", 1, 1000);
    r.uint("disk-size", 1, 16384);
    r.map("labels");
}

fn key_fields(r: &mut NodeReader<'_>) {
    r.string("alias");
    r.bool("rotation");
    r.uint("deletion-window", 0, u32::MAX);
}

fn bucket_fields(r: &mut NodeReader<'_>) {
    r.string("key");
    r.bool("versioning");
    r.bool("force-destroy");
}

fn lb_fields(r: &mut NodeReader<'_>) {
    r.choice("scheme", SCHEME);
    r.choice("health", HEALTH);
    r.port("api-port");
    r.port("cluster-port");
}

fn depends_on(r: &mut NodeReader<'_>) -> Vec<Spanned<String>> {
    r.list("depends-on").unwrap_or_default()
}

fn decode_region(
    node: &KdlNode,
    defaults: &Defaults<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Region> {
    let mut r = NodeReader::node("region", node);
    let name = r.arg_string("a region name");
    let network = r.child("network").and_then(|n| decode_network(n, problems));
    let clusters = r
        .children("cluster")
        .into_iter()
        .filter_map(|n| decode_cluster(n, defaults, problems))
        .collect();
    let keys = r
        .children("key")
        .into_iter()
        .filter_map(|n| decode_key(n, defaults.key, problems))
        .collect();
    let buckets = r
        .children("bucket")
        .into_iter()
        .filter_map(|n| decode_bucket(n, defaults.bucket, problems))
        .collect();
    let load_balancers = r
        .children("load-balancer")
        .into_iter()
        .filter_map(|n| decode_lb(n, defaults.load_balancer, problems))
        .collect();
    r.finish(problems);
    Some(Region {
        name: name?,
        network,
        clusters,
        keys,
        buckets,
        load_balancers,
    })
}

fn decode_network(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Network> {
    let mut r = NodeReader::node("network", node);
    let cidr = r.cidr("vpc-cidr");
    let azs = r.uint("azs", 1, 6);
    let subnets_raw = r.list("subnets");
    let vpc_id = r.string("vpc-id");
    let subnet_ids = r.list("subnet-ids");
    let head = r.head();
    let mut subnets = Vec::new();
    let mut scratch = Vec::new();
    for s in subnets_raw.iter().flatten() {
        if let Some(net) = super::reader::parse_cidr(s, &mut scratch) {
            subnets.push(net);
        }
    }
    for p in scratch {
        r.push(p);
    }
    let kind = match (&vpc_id, &cidr) {
        (Some(id), Some(c)) => {
            r.push(
                Problem::error(
                    Code::InvalidValue,
                    "a network is either new (`vpc-cidr`) or existing (`vpc-id`), not both",
                )
                .label(c.span, "creates a new VPC")
                .label(id.span, "uses an existing VPC")
                .help("remove one of them"),
            );
            None
        }
        (Some(id), None) => {
            for (name, given) in [
                ("azs", azs.map(|a| a.span)),
                (
                    "subnets",
                    subnets_raw.as_ref().and_then(|s| s.first()).map(|s| s.span),
                ),
            ] {
                if let Some(span) = given {
                    r.push(
                        Problem::error(Code::InvalidValue, format!("`{name}` only applies to a new VPC (`vpc-cidr`)"))
                            .label(span, "ignored for an existing VPC")
                            .help("an existing network is used as it is: list its subnets with `subnet-ids`"),
                    );
                }
            }
            let ids = subnet_ids.unwrap_or_default();
            if ids.is_empty() {
                r.push(
                    Problem::error(Code::MissingValue, "an existing network needs `subnet-ids`")
                        .label(head, "no subnets given")
                        .help("list the subnets the clusters and load balancers use: `subnet-ids \"subnet-a\" \"subnet-b\"`"),
                );
            }
            Some(NetworkKind::Existing {
                vpc_id: id.clone(),
                subnet_ids: ids,
            })
        }
        (None, Some(c)) => {
            if let Some(first) = subnet_ids.as_ref().and_then(|s| s.first()) {
                r.push(
                    Problem::error(Code::InvalidValue, "`subnet-ids` only applies to an existing VPC (`vpc-id`)")
                        .label(first.span, "ignored for a new VPC")
                        .help("a new VPC gets new subnets: give their blocks with `subnets`, or leave them to be computed"),
                );
            }
            if !(1..=6).contains(&subnets.len()) && !subnets.is_empty() {
                r.push(
                    Problem::error(
                        Code::InvalidValue,
                        format!(
                            "{} subnets listed; a network spans 1 to 6 availability zones",
                            subnets.len()
                        ),
                    )
                    .label(subnets[0].span, "too many subnets")
                    .help("give one subnet per availability zone, at most 6"),
                );
                subnets.truncate(6);
            }
            let azs = match (azs, subnets.len()) {
                (Some(a), 0) => a,
                (None, 0) => Spanned::new(3, head),
                (None, n) => Spanned::new(n as u32, head),
                (Some(a), n) if a.value as usize == n => a,
                (Some(a), n) => {
                    r.push(
                        Problem::error(Code::InvalidValue, format!("`azs` is {} but {n} subnets are listed", a.value))
                            .label(a.span, "number of availability zones")
                            .help("give one subnet per availability zone, or leave `subnets` out to have them computed"),
                    );
                    a
                }
            };
            Some(NetworkKind::New {
                vpc_cidr: c.clone(),
                azs: Spanned::new(azs.value as u8, azs.span),
                subnets,
            })
        }
        (None, None) => {
            r.push(
                Problem::error(
                    Code::MissingValue,
                    "a network needs `vpc-cidr` (new VPC) or `vpc-id` (existing VPC)",
                )
                .label(head, "no VPC given")
                .help("for a new VPC: `network vpc-cidr=\"10.10.0.0/16\" azs=3`"),
            );
            None
        }
    };
    r.finish(problems);
    kind.map(|kind| Network {
        span: node.name().span(),
        kind,
    })
}

fn decode_cluster(
    node: &KdlNode,
    defaults: &Defaults<'_>,
    problems: &mut Vec<Problem>,
) -> Option<Cluster> {
    let mut l = Layered::new("cluster", node, defaults.cluster);
    let name = l.own.arg_string("a cluster name");
    let version = l.string("version");
    let version = l.required("version", version);
    let access = l.choice("endpoint-access", ACCESS);
    let depends = depends_on(&mut l.own);
    let pools: Vec<NodePool> = l
        .own
        .children("node-pool")
        .into_iter()
        .filter_map(|n| decode_pool(n, defaults.node_pool, problems))
        .collect();
    let entries: Vec<Access> = l
        .own
        .children("access")
        .into_iter()
        .filter_map(|n| decode_access(n, problems))
        .collect();
    let addons: Vec<Spanned<String>> = l
        .own
        .children("addon")
        .into_iter()
        .filter_map(|n| {
            let mut r = NodeReader::node("addon", n);
            let name = r.arg_string("an EKS add-on name, e.g. \"aws-ebs-csi-driver\"");
            r.finish(problems);
            name
        })
        .collect();
    let shown = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    l.finish(&shown, problems);
    Some(Cluster {
        name: name?,
        version: version?,
        endpoint_access: access
            .map(|a| a.value)
            .unwrap_or(EndpointAccess::PublicAndPrivate),
        node_pools: pools,
        access: entries,
        addons,
        depends_on: depends,
    })
}

/// `access "<IAM principal ARN>" policy="cluster-admin|admin|edit|view"`.
fn decode_access(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Access> {
    let mut r = NodeReader::node("access", node);
    let principal = r.arg_string("an IAM principal ARN");
    let policy = r.choice("policy", ACCESS_POLICY);
    let head = r.head();
    if policy.is_none()
        && !node
            .entries()
            .iter()
            .any(|e| e.name().is_some_and(|n| n.value() == "policy"))
    {
        r.push(
            Problem::error(Code::MissingValue, "an access entry needs a `policy`")
                .label(head, "no `policy`")
                .help("add `policy=\"cluster-admin\"` (or \"admin\", \"edit\", \"view\")"),
        );
    }
    r.finish(problems);
    Some(Access {
        principal: principal?,
        policy: policy?,
    })
}

fn decode_pool(
    node: &KdlNode,
    defaults: Option<&KdlNode>,
    problems: &mut Vec<Problem>,
) -> Option<NodePool> {
    let mut l = Layered::new("node-pool", node, defaults);
    let name = l.own.arg_string("a node pool name");
    let types = l.list("instance-types");
    let types = l.required("instance-types", types);
    let capacity = l.choice("capacity", CAPACITY);
    let min = l.uint("min", 0, 1000);
    let desired = l.uint("desired", 0, 1000);
    let max = l.uint("max", 1, 1000);
    let disk = l.uint("disk-size", 1, 16384);
    let labels = l.map("labels");
    let depends = depends_on(&mut l.own);
    let head = l.own.head();
    let shown = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    l.finish(&shown, problems);
    let min = min.unwrap_or(Spanned::new(1, head));
    let desired = desired.unwrap_or(Spanned::new(min.value, head));
    let max = max.unwrap_or(Spanned::new(desired.value.max(1), head));
    Some(NodePool {
        name: name?,
        instance_types: types?.into_iter().map(|t| t.value).collect(),
        capacity: capacity.map(|c| c.value).unwrap_or(Capacity::OnDemand),
        min,
        desired,
        max,
        disk_size: disk.map(|d| d.value).unwrap_or(20),
        labels,
        depends_on: depends,
    })
}

fn decode_key(
    node: &KdlNode,
    defaults: Option<&KdlNode>,
    problems: &mut Vec<Problem>,
) -> Option<Key> {
    let mut l = Layered::new("key", node, defaults);
    let name = l.own.arg_string("a key name");
    let alias = l.string("alias");
    let alias = l.required("alias", alias);
    let rotation = l.bool("rotation");
    let window = l.uint("deletion-window", 0, u32::MAX);
    let multi_region = l.own.bool("multi-region");
    let depends = depends_on(&mut l.own);
    let head = l.own.head();
    let shown = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    l.finish(&shown, problems);
    Some(Key {
        name: name?,
        alias: alias?,
        rotation: rotation.map(|r| r.value).unwrap_or(true),
        multi_region,
        deletion_window: window.unwrap_or(Spanned::new(30, head)),
        depends_on: depends,
    })
}

fn decode_bucket(
    node: &KdlNode,
    defaults: Option<&KdlNode>,
    problems: &mut Vec<Problem>,
) -> Option<Bucket> {
    let mut l = Layered::new("bucket", node, defaults);
    let name = l.own.arg_string("a bucket name");
    let key = l.string("key");
    let key = l.required("key", key);
    let versioning = l.bool("versioning");
    let force = l.bool("force-destroy");
    let depends = depends_on(&mut l.own);
    let shown = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    l.finish(&shown, problems);
    Some(Bucket {
        name: name?,
        key: key?,
        versioning: versioning.map(|v| v.value).unwrap_or(true),
        force_destroy: force.map(|v| v.value).unwrap_or(false),
        depends_on: depends,
    })
}

fn decode_lb(
    node: &KdlNode,
    defaults: Option<&KdlNode>,
    problems: &mut Vec<Problem>,
) -> Option<LoadBalancer> {
    let mut l = Layered::new("load-balancer", node, defaults);
    let name = l.own.arg_string("a load balancer name");
    let scheme = l.choice("scheme", SCHEME);
    let health = l.choice("health", HEALTH);
    let api = l.port("api-port");
    let cluster = l.port("cluster-port");
    let local = l.own.ipv4("local-address");
    let depends = depends_on(&mut l.own);
    let head = l.own.head();
    let shown = name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    l.finish(&shown, problems);
    Some(LoadBalancer {
        name: name?,
        scheme: scheme.map(|s| s.value).unwrap_or(Scheme::InternetFacing),
        health: health.unwrap_or(Spanned::new(HealthMode::Unsealed, head)),
        api_port: api.unwrap_or(Spanned::new(8200, head)),
        cluster_port: cluster.unwrap_or(Spanned::new(8201, head)),
        local_address: local,
        depends_on: depends,
    })
}

fn decode_vault(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<VaultCluster> {
    let mut r = NodeReader::node("vault", node);
    let name = r.arg_string("a Vault cluster name");
    let head = r.head();
    let server = match r.child("server") {
        Some(n) => decode_server(n, problems),
        None => {
            r.push(
                Problem::error(Code::MissingValue, "a Vault cluster needs a `server`")
                    .label(head, "no `server` in this block")
                    .help("add `server \"bao\" version=\"2.7.2\"` (OpenBao) or `server \"vault\" ...` (HashiCorp)"),
            );
            None
        }
    };
    let runtime = match r.child("runtime") {
        Some(n) => decode_runtime(n, problems),
        None => {
            r.push(
                Problem::error(Code::MissingValue, "a Vault cluster needs a `runtime`")
                    .label(head, "no `runtime` in this block")
                    .help("add `runtime \"local\"` (processes on this machine) or `runtime \"kubernetes\"` (pods on EKS)"),
            );
            None
        }
    };
    let shares = r.uint("shares", 1, 255).unwrap_or(Spanned::new(5, head));
    // Default 5 shares / threshold 3, the threshold capped by fewer shares.
    let threshold = r
        .uint("threshold", 0, 255)
        .unwrap_or(Spanned::new(3.min(shares.value), head));
    let members: Vec<Member> = r
        .children("member")
        .into_iter()
        .filter_map(|n| decode_member(n, problems))
        .collect();
    let front = r.string("front");
    let revoke_root = r.bool("revoke-root");
    let store = match r.child("unseal-store") {
        Some(n) => decode_store(n, name.as_ref().map(|n| n.value.as_str()), problems),
        None => {
            r.push(
                Problem::error(Code::MissingValue, "a Vault cluster needs an `unseal-store`")
                    .label(head, "no `unseal-store` in this block")
                    .help("list the buckets that keep the KMS-encrypted unseal keys: `unseal-store { bucket \"...\" }`"),
            );
            None
        }
    };
    let tls = decode_tls(r.child("tls"), head, problems);
    let seal = super::seal::decode(r.child("seal"), head, problems);
    let secrets: Vec<SecretsEngine> = r
        .children("secrets")
        .into_iter()
        .filter_map(|n| decode_secrets(n, problems))
        .collect();
    let auth: Vec<AuthMethod> = r
        .children("auth")
        .into_iter()
        .filter_map(|n| decode_auth(n, problems))
        .collect();
    let policies: Vec<Policy> = r
        .children("policy")
        .into_iter()
        .filter_map(|n| decode_policy(n, problems))
        .collect();
    if members.is_empty() {
        r.push(
            Problem::error(
                Code::MissingValue,
                "a Vault cluster needs at least one `member`",
            )
            .label(head, "no members")
            .help("add `member \"vault-0\" cluster=\"...\" load-balancer=\"...\"`"),
        );
    }
    r.finish(problems);
    Some(VaultCluster {
        name: name?,
        server: server?,
        runtime: runtime?,
        shares,
        threshold,
        members,
        front,
        unseal_store: store?,
        tls,
        seal,
        secrets,
        auth,
        policies,
        revoke_root,
    })
}

/// Member certificates last a year by default and are replaced 30 days before they expire.
const CERT_VALIDITY: u64 = 365 * 86400;
const CERT_RENEW_BEFORE: u64 = 30 * 86400;

/// `tls`: absent (on, generated CA), `tls #false` (plain HTTP, with a warning), or settings:
/// `tls ca-cert="ca.pem" ca-key="ca.key" validity="365d" renew-before="30d"`.
fn decode_tls(node: Option<&KdlNode>, vault_head: SourceSpan, problems: &mut Vec<Problem>) -> Tls {
    let Some(node) = node else {
        return Tls {
            span: vault_head,
            enabled: true,
            ca: None,
            validity: Spanned::new(CERT_VALIDITY, vault_head),
            renew_before: Spanned::new(CERT_RENEW_BEFORE, vault_head),
        };
    };
    let mut r = NodeReader::node("tls", node);
    let head = r.head();
    let on = r.arg_bool();
    let cert = r.string("ca-cert");
    let key = r.string("ca-key");
    let seconds = |r: &mut NodeReader, name, default| {
        duration(r, name)
            .map(|d| Spanned::new(duration_seconds(&d.value).unwrap_or(default), d.span))
            .unwrap_or(Spanned::new(default, head))
    };
    let validity = seconds(&mut r, "validity", CERT_VALIDITY);
    let renew_before = seconds(&mut r, "renew-before", CERT_RENEW_BEFORE);
    let enabled = on.as_ref().is_none_or(|b| b.value);
    if let Some(off) = on.as_ref().filter(|b| !b.value) {
        r.push(
            Problem::warning(
                Code::PlainHttp,
                "TLS is off: tokens and unseal keys cross the network in clear",
            )
            .label(off.span, "plain HTTP on every listener and load balancer")
            .help("remove `tls #false` to have vaultform make a CA and a certificate per member"),
        );
    }
    let ca = match (cert, key) {
        (Some(cert), Some(key)) => Some(UserCa { cert, key }),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            r.push(
                Problem::error(Code::MissingValue, "a CA of your own needs both `ca-cert` and `ca-key`")
                    .label(one.span, "only one of the two is given")
                    .help("name the CA certificate and its private key (PEM files): `tls ca-cert=\"ca.pem\" ca-key=\"ca.key\"`"),
            );
            None
        }
    };
    if renew_before.value >= validity.value {
        r.push(
            Problem::error(
                Code::InvalidValue,
                "`renew-before` must be shorter than `validity`",
            )
            .label(
                renew_before.span,
                "every certificate would be due for renewal at once",
            )
            .label(validity.span, "certificates last this long")
            .help("the defaults are validity=\"365d\" renew-before=\"30d\""),
        );
    }
    r.finish(problems);
    Tls {
        span: head,
        enabled,
        ca,
        validity,
        renew_before,
    }
}

const ENGINES: &[(&str, EngineKind)] = &[
    ("kv-v2", EngineKind::KvV2),
    ("kv", EngineKind::Kv),
    ("pki", EngineKind::Pki),
    ("transit", EngineKind::Transit),
];

const AUTH_KINDS: &[(&str, AuthKind)] = &[
    ("approle", AuthKind::Approle),
    ("userpass", AuthKind::Userpass),
    ("kubernetes", AuthKind::Kubernetes),
];

/// Vault's ACL capabilities.
pub const CAPABILITIES: &[&str] = &[
    "create", "read", "update", "patch", "delete", "list", "sudo", "deny",
];

/// A duration setting, checked.
fn duration(r: &mut NodeReader, name: &'static str) -> Option<Spanned<String>> {
    let d = r.string(name)?;
    if duration_seconds(&d.value).is_none() {
        r.push(
            Problem::error(
                Code::InvalidValue,
                format!("`{name}` is not a duration: \"{}\"", d.value),
            )
            .label(d.span, "not a duration")
            .help("write seconds or a number with a unit: \"90s\", \"15m\", \"72h\", \"30d\""),
        );
        return None;
    }
    Some(d)
}

fn decode_secrets(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<SecretsEngine> {
    let mut r = NodeReader::node("secrets", node);
    let path = r.arg_string("a mount path");
    let kind = r.choice("type", ENGINES);
    let head = r.head();
    if kind.is_none()
        && !node
            .entries()
            .iter()
            .any(|e| e.name().is_some_and(|n| n.value() == "type"))
    {
        r.push(
            Problem::error(Code::MissingValue, "a secrets engine needs a `type`")
                .label(head, "no `type`")
                .help("add `type=\"kv-v2\"` (or \"kv\", \"pki\", \"transit\")"),
        );
    }
    let max_lease_ttl = duration(&mut r, "max-lease-ttl");
    let root_ca = r.child("root-ca").and_then(|n| {
        let mut cr = NodeReader::node("root-ca", n);
        let common_name = cr.string("common-name");
        let ttl = duration(&mut cr, "ttl");
        let span = cr.head();
        if common_name.is_none() {
            cr.push(
                Problem::error(Code::MissingValue, "a root CA needs a `common-name`")
                    .label(span, "no `common-name`")
                    .help("add `common-name=\"example.internal\"`"),
            );
        }
        cr.finish(problems);
        Some(PkiRootCa {
            span,
            common_name: common_name?,
            ttl,
        })
    });
    let mut roles = Vec::new();
    for n in r.children("role") {
        let mut rr = NodeReader::node("role", n);
        let name = rr.arg_string("a role name");
        let allowed_domains = rr
            .list("allowed-domains")
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.value)
            .collect();
        let allow_subdomains = rr.bool("allow-subdomains").is_some_and(|b| b.value);
        let max_ttl = duration(&mut rr, "max-ttl");
        rr.finish(problems);
        if let Some(name) = name {
            roles.push(PkiRole {
                name,
                allowed_domains,
                allow_subdomains,
                max_ttl,
            });
        }
    }
    r.finish(problems);
    Some(SecretsEngine {
        path: path?,
        kind: kind?,
        max_lease_ttl,
        root_ca,
        roles,
    })
}

fn decode_auth(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<AuthMethod> {
    let mut r = NodeReader::node("auth", node);
    let path = r.arg_string("an auth path");
    let kind = r.choice("type", AUTH_KINDS);
    let head = r.head();
    if kind.is_none()
        && !node
            .entries()
            .iter()
            .any(|e| e.name().is_some_and(|n| n.value() == "type"))
    {
        r.push(
            Problem::error(Code::MissingValue, "an auth method needs a `type`")
                .label(head, "no `type`")
                .help("add `type=\"approle\"` (or \"userpass\", \"kubernetes\")"),
        );
    }
    let mut roles = Vec::new();
    for n in r.children("role") {
        let mut rr = NodeReader::node("role", n);
        let name = rr.arg_string("a role name");
        let policies = rr.list("policies").unwrap_or_default();
        let token_ttl = duration(&mut rr, "token-ttl");
        let service_accounts = rr.list("service-accounts").unwrap_or_default();
        let namespaces = rr.list("namespaces").unwrap_or_default();
        let audience = rr.string("audience");
        let clusters = rr.list("clusters").unwrap_or_default();
        rr.finish(problems);
        if let Some(name) = name {
            roles.push(AuthRole {
                name,
                policies,
                token_ttl,
                service_accounts,
                namespaces,
                audience,
                clusters,
            });
        }
    }
    r.finish(problems);
    Some(AuthMethod {
        path: path?,
        kind: kind?,
        roles,
    })
}

fn decode_policy(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Policy> {
    let mut r = NodeReader::node("policy", node);
    let name = r.arg_string("a policy name");
    let mut paths = Vec::new();
    for n in r.children("path") {
        let mut pr = NodeReader::node("path", n);
        let path = pr.arg_string("a path pattern");
        let capabilities = pr.list("capabilities").unwrap_or_default();
        for c in &capabilities {
            if !CAPABILITIES.contains(&c.value.as_str()) {
                let mut p = Problem::error(
                    Code::InvalidValue,
                    format!("unknown capability \"{}\"", c.value),
                )
                .label(c.span, "unknown capability");
                p = match super::diagnostic::did_you_mean(&c.value, CAPABILITIES.iter().copied()) {
                    Some(close) => p.help(format!("did you mean \"{close}\"?")),
                    None => p.help(format!("expected some of: {}", CAPABILITIES.join(", "))),
                };
                pr.push(p);
            }
        }
        let head = pr.head();
        if capabilities.is_empty() {
            pr.push(
                Problem::error(Code::MissingValue, "a policy path needs `capabilities`")
                    .label(head, "no capabilities")
                    .help("add `capabilities=\"read,list\"`"),
            );
        }
        pr.finish(problems);
        if let Some(path) = path {
            paths.push(PolicyPath { path, capabilities });
        }
    }
    if paths.is_empty() {
        let head = r.head();
        r.push(
            Problem::error(
                Code::MissingValue,
                "a policy grants nothing without a `path`",
            )
            .label(head, "no `path` in this block")
            .help("add `path \"kv/data/*\" capabilities=\"read,list\"`"),
        );
    }
    r.finish(problems);
    Some(Policy { name: name?, paths })
}

fn decode_server(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Server> {
    let mut r = NodeReader::node("server", node);
    let flavour = r.arg_string("a server flavour (\"bao\" or \"vault\")");
    let version = r.string("version");
    let image = r.string("image");
    let binary = r.string("binary");
    let flavour = flavour.and_then(|f| match FLAVOUR.iter().find(|(k, _)| *k == f.value) {
        Some((_, v)) => Some(*v),
        None => {
            r.push(
                Problem::error(
                    Code::InvalidValue,
                    format!("unknown server flavour \"{}\"", f.value),
                )
                .label(f.span, "unknown flavour")
                .help("expected \"bao\" (OpenBao) or \"vault\" (HashiCorp Vault)"),
            );
            None
        }
    });
    r.finish(problems);
    Some(Server {
        flavour: flavour?,
        version: version.map(|v| v.value),
        image: image.map(|v| v.value),
        binary: binary.map(|v| v.value),
    })
}

fn decode_runtime(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Spanned<Runtime>> {
    let mut r = NodeReader::node("runtime", node);
    let kind = r.arg_string("a runtime (\"local\" or \"kubernetes\")");
    let out = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("local") => {
            let dir = r.string("work-dir").map(|d| d.value);
            Some(Runtime::Local { work_dir: dir })
        }
        Some("kubernetes") => {
            let ns = r
                .string("namespace")
                .map(|d| d.value)
                .unwrap_or_else(|| "vault".into());
            Some(Runtime::Kubernetes { namespace: ns })
        }
        Some(other) => {
            let span = kind.as_ref().map(|k| k.span).unwrap_or(r.head());
            r.push(
                Problem::error(Code::InvalidValue, format!("unknown runtime \"{other}\""))
                    .label(span, "unknown runtime")
                    .help("expected \"local\" or \"kubernetes\""),
            );
            None
        }
        None => None,
    };
    r.finish(problems);
    Some(Spanned::new(out?, kind?.span))
}

fn decode_member(node: &KdlNode, problems: &mut Vec<Problem>) -> Option<Member> {
    let mut r = NodeReader::node("member", node);
    let name = r.arg_string("a member name");
    let cluster = r.string("cluster");
    let lb = r.string("load-balancer");
    let bootstrap = r.bool("bootstrap");
    let address = r.ipv4("address");
    let api = r.port("api-port");
    let cport = r.port("cluster-port");
    let depends = depends_on(&mut r);
    let head = r.head();
    for (key, v) in [
        ("cluster", cluster.is_none()),
        ("load-balancer", lb.is_none()),
    ] {
        if v {
            r.push(
                Problem::error(
                    Code::MissingValue,
                    format!(
                        "member \"{}\" has no `{key}`",
                        name.as_ref().map(|n| n.value.as_str()).unwrap_or("")
                    ),
                )
                .label(head, format!("`{key}` is required"))
                .help("a member runs on a cluster and is reached through a load balancer: `cluster=\"...\" load-balancer=\"...\"`"),
            );
        }
    }
    r.finish(problems);
    Some(Member {
        name: name?,
        cluster: cluster?,
        load_balancer: lb?,
        bootstrap: bootstrap.map(|b| b.value).unwrap_or(false),
        address,
        api_port: api.unwrap_or(Spanned::new(8200, head)),
        cluster_port: cport.unwrap_or(Spanned::new(8201, head)),
        depends_on: depends,
    })
}

/// `unseal-store`: the prefix defaults to `vault/<v>/`; a given one is a non-empty folder
/// (ends in `/`), so that the store's objects never share a key space with anything else.
fn decode_store(
    node: &KdlNode,
    vault: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<UnsealStore> {
    let mut r = NodeReader::node("unseal-store", node);
    let prefix = match r.string("prefix") {
        Some(p) if p.value.is_empty() || !p.value.ends_with('/') || p.value.starts_with('/') => {
            let why = if p.value.is_empty() {
                "an empty prefix is the whole bucket"
            } else if p.value.starts_with('/') {
                "S3 keys do not start with `/`"
            } else {
                "a prefix that does not end in `/` also matches its neighbours' keys"
            };
            r.push(
                Problem::error(
                    Code::InvalidValue,
                    format!("unseal-store prefix {:?} is not a folder", p.value),
                )
                .label(p.span, why)
                .help(format!(
                    "use a folder of its own, such as `prefix=\"vault/{}/\"` (the default)",
                    vault.unwrap_or("<v>")
                )),
            );
            p.value
        }
        Some(p) => p.value,
        None => format!("vault/{}/", vault.unwrap_or_default()),
    };
    let context = r.map("context");
    let mut buckets = Vec::new();
    for b in r.children("bucket") {
        let mut br = NodeReader::node("bucket", b);
        if let Some(name) = br.arg_string("a bucket name") {
            buckets.push(name);
        }
        br.finish(problems);
    }
    if buckets.is_empty() {
        let head = r.head();
        r.push(
            Problem::error(Code::MissingValue, "the unseal store lists no buckets")
                .label(head, "no `bucket` in this block")
                .help("add `bucket \"<name>\"` for buckets in at least two regions"),
        );
    }
    r.finish(problems);
    Some(UnsealStore {
        span: node.name().span(),
        prefix,
        buckets,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::is_kms_key_reference;

    #[test]
    fn kms_key_references() {
        for ok in [
            "alias/vaultform-state",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:111122223333:alias/state",
        ] {
            assert!(is_kms_key_reference(ok), "{ok}");
        }
        for bad in [
            "my state key",
            "alias/",
            "alias/aws/s3",
            "state",
            "arn:aws:s3:::bucket",
            "arn:aws:kms:eu-west-1:1111:key/x",
        ] {
            assert!(!is_kms_key_reference(bad), "{bad}");
        }
    }
}
