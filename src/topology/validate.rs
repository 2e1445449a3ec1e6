//! Semantic checks on a decoded topology: names, references, regions, CIDRs, scaling, quorum.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ipnet::Ipv4Net;
use miette::SourceSpan;

use super::aws_names::*;
use super::diagnostic::{Code, Problem, did_you_mean};
use super::model::*;

/// Runs every check and appends what it finds.
pub fn validate(t: &Topology, problems: &mut Vec<Problem>) {
    let mut v = Checker { t, problems };
    v.regions();
    v.networks();
    v.clusters();
    v.keys_and_buckets();
    v.load_balancers();
    for vault in &t.vaults {
        v.vault(vault);
        v.vault_config(vault);
        v.revoke_root(vault);
        super::seal::validate(t, vault, v.problems);
    }
    v.kube_load_balancers();
    v.unique_names();
    super::names::validate(t, v.problems);
}

struct Checker<'a> {
    t: &'a Topology,
    problems: &'a mut Vec<Problem>,
}

/// Reports every name seen twice in `names`.
fn duplicates<'a>(
    what: &str,
    scope: &str,
    names: impl IntoIterator<Item = &'a Spanned<String>>,
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
    for n in names {
        if let Some(first) = seen.get(n.value.as_str()) {
            problems.push(
                Problem::error(
                    Code::DuplicateName,
                    format!("{what} \"{}\" is declared twice{scope}", n.value),
                )
                .label(n.span, "declared again here")
                .label(*first, "first declared here")
                .help(format!(
                    "{what} names must be unique{scope}; rename one of them"
                )),
            );
        } else {
            seen.insert(&n.value, n.span);
        }
    }
}

fn unknown_ref(what: &str, given: &Spanned<String>, known: &[&str]) -> Problem {
    let p = Problem::error(
        Code::UnknownReference,
        format!("no {what} is named \"{}\"", given.value),
    )
    .label(given.span, format!("unknown {what}"));
    match did_you_mean(&given.value, known.iter().copied()) {
        Some(close) => p.help(format!("did you mean \"{close}\"?")),
        None if known.is_empty() => {
            p.help(format!("declare a {what} first; this topology has none"))
        }
        None => p.help(format!("known: {}", known.join(", "))),
    }
}

impl Checker<'_> {
    /// `revoke-root #true` needs a way back to a root token: OpenBao's authenticated
    /// `sys/generate-root-token` (2.6 and later), through an auth path vaultform reserves.
    fn revoke_root(&mut self, v: &VaultCluster) {
        let Some(flag) = v.revoke_root.as_ref().filter(|r| r.value) else {
            return;
        };
        let too_old = v.server.version.as_deref().and_then(|ver| {
            let mut parts = ver.trim_start_matches('v').split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            ((major, minor) < (2, 6)).then(|| ver.to_string())
        });
        match (v.server.flavour, too_old) {
            (Flavour::Vault, _) => self.problems.push(
                Problem::error(
                    Code::VaultConfig,
                    "`revoke-root` is built for OpenBao servers only",
                )
                .label(flag.span, "revokes the root token")
                .help("vaultform generates root tokens again with OpenBao's `sys/generate-root-token` (2.6 and later); use `server \"bao\"`, or remove `revoke-root`"),
            ),
            (Flavour::Bao, Some(ver)) => self.problems.push(
                Problem::error(
                    Code::VaultConfig,
                    format!("`revoke-root` needs OpenBao 2.6 or later, not {ver}"),
                )
                .label(flag.span, "revokes the root token")
                .help("OpenBao 2.6 added `sys/generate-root-token`, which vaultform uses to get a root token back; raise the server's version, or remove `revoke-root`"),
            ),
            (Flavour::Bao, None) => {}
        }
        for a in v.auth.iter().filter(|a| a.path.value == REVOKE_ROOT_MOUNT) {
            self.problems.push(
                Problem::error(
                    Code::VaultConfig,
                    format!(
                        "the auth path \"{REVOKE_ROOT_MOUNT}\" is vaultform's with `revoke-root`"
                    ),
                )
                .label(a.path.span, "reserved")
                .label(flag.span, "reserves it")
                .help("mount this auth method at another path"),
            );
        }
    }

    /// Secrets engines, auth methods and policies: unique, consistent, references resolved.
    fn vault_config(&mut self, v: &VaultCluster) {
        let scope = format!(" in Vault cluster \"{}\"", v.name.value);
        duplicates(
            "secrets mount",
            &scope,
            v.secrets.iter().map(|s| &s.path),
            self.problems,
        );
        duplicates(
            "auth path",
            &scope,
            v.auth.iter().map(|a| &a.path),
            self.problems,
        );
        duplicates(
            "policy",
            &scope,
            v.policies.iter().map(|p| &p.name),
            self.problems,
        );
        for s in &v.secrets {
            duplicates(
                "role",
                &format!(" in mount \"{}\"", s.path.value),
                s.roles.iter().map(|r| &r.name),
                self.problems,
            );
            if s.kind.value != EngineKind::Pki {
                let extra = s
                    .root_ca
                    .as_ref()
                    .map(|c| c.span)
                    .into_iter()
                    .chain(s.roles.iter().map(|r| r.name.span));
                for span in extra {
                    self.problems.push(
                        Problem::error(
                            Code::VaultConfig,
                            format!(
                                "`root-ca` and `role` belong to a PKI engine; \"{}\" is not one",
                                s.path.value
                            ),
                        )
                        .label(span, "only for type=\"pki\"")
                        .label(s.kind.span, "this engine's type")
                        .help("move it into a `secrets \"...\" type=\"pki\"` block, or remove it"),
                    );
                }
            }
        }
        let mut known: Vec<&str> = v.policies.iter().map(|p| p.name.value.as_str()).collect();
        known.push("default");
        let local = matches!(v.runtime.value, Runtime::Local { .. });
        for a in &v.auth {
            if a.kind.value == AuthKind::Kubernetes && local {
                self.problems.push(
                    Problem::error(
                        Code::VaultConfig,
                        "kubernetes auth needs the kubernetes runtime",
                    )
                    .label(a.kind.span, "no Kubernetes API on the local runtime")
                    .help("use `type=\"approle\"` or `type=\"userpass\"` on the local runtime"),
                );
            }
            if a.kind.value == AuthKind::Userpass {
                for r in &a.roles {
                    self.problems.push(
                        Problem::error(
                            Code::VaultConfig,
                            "roles are declared for approle and kubernetes auth, not userpass",
                        )
                        .label(r.name.span, "a userpass method")
                        .help("userpass users carry passwords, which never go in a topology: create them with `bao write auth/<path>/users/<name>`"),
                    );
                }
            }
            for r in &a.roles {
                self.auth_role(v, a, r);
            }
            duplicates(
                "role",
                &format!(" in auth \"{}\"", a.path.value),
                a.roles.iter().map(|r| &r.name),
                self.problems,
            );
            for r in &a.roles {
                for p in &r.policies {
                    if !known.contains(&p.value.as_str()) {
                        self.problems.push(unknown_ref("policy", p, &known));
                    }
                }
            }
        }
    }

    /// A role's settings match its method: Kubernetes auth binds service accounts and
    /// namespaces (Vault refuses a role without both) on clusters the Vault cluster uses.
    fn auth_role(&mut self, v: &VaultCluster, a: &AuthMethod, r: &AuthRole) {
        if a.kind.value != AuthKind::Kubernetes {
            for span in r.kubernetes_settings() {
                self.problems.push(
                    Problem::error(
                        Code::VaultConfig,
                        format!(
                            "`service-accounts`, `namespaces`, `audience` and `clusters` are settings of kubernetes roles, not of {} roles",
                            a.kind.value.as_str()
                        ),
                    )
                    .label(span, "only for type=\"kubernetes\"")
                    .label(a.kind.span, "this method's type")
                    .help("remove it, or move the role into an `auth \"...\" type=\"kubernetes\"` block"),
                );
            }
            return;
        }
        for (what, given) in [
            ("service-accounts", &r.service_accounts),
            ("namespaces", &r.namespaces),
        ] {
            if given.is_empty() {
                self.problems.push(
                    Problem::error(
                        Code::MissingValue,
                        format!("the kubernetes role \"{}\" needs `{what}`", r.name.value),
                    )
                    .label(r.name.span, format!("no `{what}`"))
                    .help(format!(
                        "add `{what}=\"...\"`: the {} whose tokens may log in with it (\"*\" for any)",
                        if what == "namespaces" { "namespaces" } else { "service accounts" }
                    )),
                );
            }
        }
        let mut clusters: Vec<&str> = Vec::new();
        for m in &v.members {
            if !clusters.contains(&m.cluster.value.as_str()) {
                clusters.push(&m.cluster.value);
            }
        }
        for c in &r.clusters {
            if !clusters.contains(&c.value.as_str()) {
                let p = Problem::error(
                    Code::UnknownReference,
                    format!(
                        "no member of Vault cluster \"{}\" runs on a cluster named \"{}\"",
                        v.name.value, c.value
                    ),
                )
                .label(c.span, "no member there: no mount to put the role on");
                self.problems
                    .push(match did_you_mean(&c.value, clusters.iter().copied()) {
                        Some(close) => p.help(format!("did you mean \"{close}\"?")),
                        None => p.help(format!(
                            "the clusters with members: {}",
                            clusters.join(", ")
                        )),
                    });
            }
        }
    }

    fn regions(&mut self) {
        duplicates(
            "region",
            "",
            self.t.regions.iter().map(|r| &r.name),
            self.problems,
        );
        for r in &self.t.regions {
            if !REGIONS.contains(&r.name.value.as_str()) {
                let mut p = Problem::error(
                    Code::UnknownRegion,
                    format!("\"{}\" is not an AWS region", r.name.value),
                )
                .label(r.name.span, "unknown region");
                p = match did_you_mean(&r.name.value, REGIONS.iter().copied()) {
                    Some(close) => p.help(format!("did you mean \"{close}\"?")),
                    None => p.help("use a region code such as \"eu-west-1\""),
                };
                self.problems.push(p);
            }
            let needs_network = !r.clusters.is_empty() || !r.load_balancers.is_empty();
            if needs_network && r.network.is_none() {
                self.problems.push(
                    Problem::error(Code::MissingValue, format!("region \"{}\" has clusters or load balancers but no `network`", r.name.value))
                        .label(r.name.span, "no network in this region")
                        .help("add `network vpc-cidr=\"10.10.0.0/16\" azs=3`, or `network vpc-id=\"vpc-...\" subnet-ids=\"...\"`"),
                );
            }
        }
    }

    fn networks(&mut self) {
        let mut vpcs: Vec<(&Region, &Spanned<Ipv4Net>)> = Vec::new();
        for r in &self.t.regions {
            let Some(Network {
                kind:
                    NetworkKind::New {
                        vpc_cidr,
                        azs,
                        subnets,
                    },
                ..
            }) = &r.network
            else {
                continue;
            };
            let prefix = vpc_cidr.value.prefix_len();
            if !(16..=28).contains(&prefix) {
                self.problems.push(
                    Problem::error(
                        Code::Cidr,
                        format!(
                            "a VPC CIDR block is /16 to /28; \"{}\" is /{prefix}",
                            vpc_cidr.value
                        ),
                    )
                    .label(vpc_cidr.span, "prefix out of range")
                    .help("AWS allows VPC blocks from /16 (65,536 addresses) to /28 (16)"),
                );
            } else if subnets.is_empty() && prefix > 24 {
                self.problems.push(
                    Problem::error(
                        Code::Cidr,
                        format!("\"{}\" is too small to split into subnets", vpc_cidr.value),
                    )
                    .label(vpc_cidr.span, "too small")
                    .help("use /24 or larger, or list `subnets` yourself"),
                );
            }
            for (i, s) in subnets.iter().enumerate() {
                if !(16..=28).contains(&s.value.prefix_len()) {
                    self.problems.push(
                        Problem::error(
                            Code::Cidr,
                            format!(
                                "a subnet block is /16 to /28; \"{}\" is /{}",
                                s.value,
                                s.value.prefix_len()
                            ),
                        )
                        .label(s.span, "prefix out of range"),
                    );
                }
                if !vpc_cidr.value.contains(&s.value) {
                    self.problems.push(
                        Problem::error(
                            Code::SubnetOutsideVpc,
                            format!(
                                "subnet \"{}\" is outside the VPC \"{}\"",
                                s.value, vpc_cidr.value
                            ),
                        )
                        .label(s.span, "not inside the VPC block")
                        .label(vpc_cidr.span, "the VPC block")
                        .help("every subnet must be a part of the VPC's CIDR block"),
                    );
                }
                for other in &subnets[..i] {
                    if overlaps(&s.value, &other.value) {
                        self.problems.push(
                            Problem::error(
                                Code::CidrOverlap,
                                format!("subnets \"{}\" and \"{}\" overlap", other.value, s.value),
                            )
                            .label(s.span, "overlaps")
                            .label(other.span, "this subnet")
                            .help("subnets of one VPC must not share addresses"),
                        );
                    }
                }
            }
            let _ = azs;
            for (other_region, other) in &vpcs {
                if overlaps(&vpc_cidr.value, &other.value) {
                    self.problems.push(
                        Problem::error(
                            Code::CidrOverlap,
                            format!(
                                "the VPC of {} ({}) overlaps the VPC of {} ({})",
                                r.name.value, vpc_cidr.value, other_region.name.value, other.value
                            ),
                        )
                        .label(vpc_cidr.span, "overlaps")
                        .label(other.span, "this block")
                        .help("members reach each other across regions by address: give each region its own block"),
                    );
                }
            }
            vpcs.push((r, vpc_cidr));
        }
    }

    fn clusters(&mut self) {
        for r in &self.t.regions {
            for c in &r.clusters {
                if let Some(why) = eks_name_problem(&c.name.value, 100) {
                    self.problems.push(
                        Problem::error(Code::ClusterName, format!("invalid EKS cluster name \"{}\"", c.name.value))
                            .label(c.name.span, why)
                            .help("EKS cluster names: 1-100 characters, letters, digits, '-' and '_', starting with a letter or digit"),
                    );
                }
                if !is_kubernetes_version(&c.version.value) {
                    self.problems.push(
                        Problem::error(
                            Code::InvalidValue,
                            format!("\"{}\" is not a Kubernetes version", c.version.value),
                        )
                        .label(c.version.span, "expected MAJOR.MINOR")
                        .help("EKS takes a minor version such as \"1.31\""),
                    );
                }
                duplicates(
                    "node pool",
                    " within a cluster",
                    c.node_pools.iter().map(|p| &p.name),
                    self.problems,
                );
                for p in &c.node_pools {
                    self.node_pool(p);
                }
                duplicates(
                    "access entry",
                    " within a cluster",
                    c.access.iter().map(|a| &a.principal),
                    self.problems,
                );
                for a in &c.access {
                    if let Some(why) = iam_principal_problem(&a.principal.value) {
                        self.problems.push(
                            Problem::error(
                                Code::IamPrincipal,
                                format!("\"{}\" is not an IAM role or user ARN", a.principal.value),
                            )
                            .label(a.principal.span, why)
                            .help("an access entry names an IAM principal, for example \"arn:aws:iam::111122223333:role/ci\""),
                        );
                    }
                }
            }
        }
    }

    fn node_pool(&mut self, p: &NodePool) {
        if let Some(why) = eks_name_problem(&p.name.value, 63) {
            self.problems.push(
                Problem::error(
                    Code::ClusterName,
                    format!("invalid node pool name \"{}\"", p.name.value),
                )
                .label(p.name.span, why),
            );
        }
        if p.instance_types.is_empty() {
            self.problems.push(
                Problem::error(
                    Code::MissingValue,
                    format!("node pool \"{}\" lists no instance types", p.name.value),
                )
                .label(p.name.span, "no instance types")
                .help("for example `instance-types \"c5.large\"`"),
            );
        }
        if p.min.value > p.desired.value {
            self.problems.push(
                Problem::error(
                    Code::NodePoolScaling,
                    format!(
                        "node pool \"{}\": min ({}) is above desired ({})",
                        p.name.value, p.min.value, p.desired.value
                    ),
                )
                .label(p.min.span, "min")
                .label(p.desired.span, "desired")
                .help("a node pool needs min <= desired <= max"),
            );
        }
        if p.desired.value > p.max.value {
            self.problems.push(
                Problem::error(
                    Code::NodePoolScaling,
                    format!(
                        "node pool \"{}\": desired ({}) is above max ({})",
                        p.name.value, p.desired.value, p.max.value
                    ),
                )
                .label(p.desired.span, "desired")
                .label(p.max.span, "max")
                .help("a node pool needs min <= desired <= max"),
            );
        }
    }

    fn keys_and_buckets(&mut self) {
        for r in &self.t.regions {
            duplicates(
                "key",
                &format!(" in {}", r.name.value),
                r.keys.iter().map(|k| &k.name),
                self.problems,
            );
            duplicates(
                "key alias",
                &format!(" in {}", r.name.value),
                r.keys.iter().map(|k| &k.alias),
                self.problems,
            );
            for k in &r.keys {
                if let Some(why) = kms_alias_problem(&k.alias.value) {
                    self.problems.push(
                        Problem::error(
                            Code::KmsAlias,
                            format!("invalid KMS alias \"{}\"", k.alias.value),
                        )
                        .label(k.alias.span, why)
                        .help("for example \"alias/vault-unseal\""),
                    );
                }
                if !(7..=30).contains(&k.deletion_window.value) {
                    self.problems.push(
                        Problem::error(
                            Code::DeletionWindow,
                            format!(
                                "a KMS deletion window is 7 to 30 days, not {}",
                                k.deletion_window.value
                            ),
                        )
                        .label(k.deletion_window.span, "out of range")
                        .help("KMS only schedules key deletion 7 to 30 days ahead"),
                    );
                }
            }
            for b in &r.buckets {
                if let Some(why) = bucket_name_problem(&b.name.value) {
                    self.problems.push(
                        Problem::error(Code::BucketName, format!("invalid S3 bucket name \"{}\"", b.name.value))
                            .label(b.name.span, why)
                            .help("S3 bucket names are global, 3-63 characters of lowercase letters, digits, '.' and '-'"),
                    );
                }
                if r.key(&b.key.value).is_some() {
                    continue;
                }
                if let Some(other) = self
                    .t
                    .regions
                    .iter()
                    .find(|o| o.key(&b.key.value).is_some())
                {
                    let key = other.key(&b.key.value).map(|k| k.name.span);
                    let mut p = Problem::error(
                        Code::CrossRegion,
                        format!(
                            "bucket \"{}\" in {} is encrypted by key \"{}\" of {}",
                            b.name.value, r.name.value, b.key.value, other.name.value
                        ),
                    )
                    .label(b.key.span, format!("this key is in {}", other.name.value))
                    .help(format!(
                        "SSE-KMS needs a key in the bucket's own region: declare a key in {}",
                        r.name.value
                    ));
                    if let Some(span) = key {
                        p = p.label(span, "declared here");
                    }
                    self.problems.push(p);
                } else {
                    let known: Vec<&str> = r.keys.iter().map(|k| k.name.value.as_str()).collect();
                    self.problems.push(unknown_ref(
                        &format!("key in {}", r.name.value),
                        &b.key,
                        &known,
                    ));
                }
            }
        }
    }

    fn load_balancers(&mut self) {
        for r in &self.t.regions {
            for lb in &r.load_balancers {
                if let Some(why) = elb_name_problem(&lb.name.value) {
                    self.problems.push(
                        Problem::error(Code::LoadBalancerName, format!("invalid load balancer name \"{}\"", lb.name.value))
                            .label(lb.name.span, why)
                            .help("ELB names: at most 32 letters, digits and '-', not starting or ending with '-'"),
                    );
                }
                if lb.api_port.value == lb.cluster_port.value {
                    self.problems.push(
                        Problem::error(
                            Code::AddressConflict,
                            "the API and cluster listeners need different ports",
                        )
                        .label(lb.cluster_port.span, "same port as the API listener")
                        .label(lb.api_port.span, "API listener"),
                    );
                }
            }
        }
    }

    fn unique_names(&mut self) {
        let clusters = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.clusters.iter().map(|c| &c.name));
        duplicates(
            "cluster",
            " across the topology (members refer to clusters by name)",
            clusters,
            self.problems,
        );
        let lbs = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.load_balancers.iter().map(|l| &l.name));
        duplicates("load balancer", " across the topology", lbs, self.problems);
        let buckets = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.buckets.iter().map(|b| &b.name));
        duplicates(
            "bucket",
            " (S3 bucket names are global)",
            buckets,
            self.problems,
        );
        duplicates(
            "Vault cluster",
            "",
            self.t.vaults.iter().map(|v| &v.name),
            self.problems,
        );
    }

    fn vault(&mut self, v: &VaultCluster) {
        // Shamir: 1 <= threshold <= shares, and a threshold of 1 only with a single share.
        if v.threshold.value < 1 || v.threshold.value > v.shares.value {
            self.problems.push(
                Problem::error(
                    Code::Threshold,
                    format!(
                        "threshold {} is not between 1 and the {} shares",
                        v.threshold.value, v.shares.value
                    ),
                )
                .label(v.threshold.span, "threshold")
                .label(v.shares.span, "shares")
                .help("the unseal threshold must satisfy 1 <= threshold <= shares"),
            );
        } else if v.threshold.value == 1 && v.shares.value > 1 {
            self.problems.push(
                Problem::error(
                    Code::Threshold,
                    "a threshold of 1 with several shares is refused by Vault",
                )
                .label(v.threshold.span, "threshold 1")
                .help("use a threshold of at least 2, or a single share"),
            );
        }
        duplicates(
            "member",
            " within a Vault cluster",
            v.members.iter().map(|m| &m.name),
            self.problems,
        );
        let bootstraps: Vec<&Member> = v.members.iter().filter(|m| m.bootstrap).collect();
        if bootstraps.len() > 1 {
            let mut p = Problem::error(
                Code::Bootstrap,
                format!(
                    "{} members are marked `bootstrap`; exactly one initialises the cluster",
                    bootstraps.len()
                ),
            )
            .help("mark only the member whose region holds the primary");
            for m in &bootstraps {
                p = p.label(m.name.span, "bootstrap=#true");
            }
            self.problems.push(p);
        }

        let cluster_names: Vec<&str> = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.clusters.iter().map(|c| c.name.value.as_str()))
            .collect();
        let lb_names: Vec<&str> = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.load_balancers.iter().map(|l| l.name.value.as_str()))
            .collect();
        let local = matches!(v.runtime.value, Runtime::Local { .. });
        let mut member_regions: BTreeMap<&str, usize> = BTreeMap::new();
        let mut lb_used: BTreeSet<&str> = BTreeSet::new();
        for m in &v.members {
            let cluster = self.t.cluster(&m.cluster.value);
            let lb = self.t.load_balancer(&m.load_balancer.value);
            if cluster.is_none() {
                self.problems
                    .push(unknown_ref("cluster", &m.cluster, &cluster_names));
            }
            if lb.is_none() {
                self.problems
                    .push(unknown_ref("load balancer", &m.load_balancer, &lb_names));
            }
            lb_used.insert(&m.load_balancer.value);
            if let (Some((cr, _)), Some((lr, _))) = (cluster, lb)
                && cr.name.value != lr.name.value
            {
                self.problems.push(
                    Problem::error(
                        Code::CrossRegion,
                        format!(
                            "member \"{}\" runs in {} but its load balancer is in {}",
                            m.name.value, cr.name.value, lr.name.value
                        ),
                    )
                    .label(m.load_balancer.span, format!("in {}", lr.name.value))
                    .label(m.cluster.span, format!("in {}", cr.name.value))
                    .help("a load balancer can only reach targets in its own region's VPC"),
                );
            }
            if let Some((cr, _)) = cluster {
                *member_regions.entry(cr.name.value.as_str()).or_default() += 1;
            }
            match (&m.address, local) {
                (None, true) => self.problems.push(
                    Problem::error(Code::Runtime, format!("member \"{}\" needs an `address` on the local runtime", m.name.value))
                        .label(m.name.span, "no loopback address")
                        .help("give each member its own loopback address, for example `address=\"127.0.10.11\"`"),
                ),
                (Some(a), true) if !a.value.is_loopback() => self.problems.push(
                    Problem::error(Code::Runtime, format!("{} is not a loopback address", a.value))
                        .label(a.span, "not in 127.0.0.0/8")
                        .help("local members listen on loopback addresses such as 127.0.10.11"),
                ),
                (Some(a), false) => self.problems.push(
                    Problem::error(Code::Runtime, "`address` only applies to the local runtime")
                        .label(a.span, "ignored on Kubernetes")
                        .help("on Kubernetes, members are reached through their load balancer; remove `address`"),
                ),
                _ => {}
            }
        }

        if let Some(front) = &v.front {
            lb_used.insert(&front.value);
            match self.t.load_balancer(&front.value) {
                None => self
                    .problems
                    .push(unknown_ref("load balancer", front, &lb_names)),
                Some((_, lb)) => {
                    if local && lb.health.value != HealthMode::Active {
                        self.problems.push(
                            Problem::error(Code::Front, format!("the front endpoint \"{}\" must route to the active node only", front.value))
                                .label(front.span, "front endpoint")
                                .label(lb.name.span, "its health mode is `unsealed`")
                                .help("set `health=\"active\"` on this load balancer: healthy on 200 only"),
                        );
                    }
                    // On AWS an NLB takes two failed checks of at least 10 s to drop a target:
                    // routing to the active node only would make every failover 10-20 s. The
                    // front sends to every unsealed member, and standbys forward.
                    if !local && lb.health.value == HealthMode::Active {
                        self.problems.push(
                            Problem::error(Code::Front, format!("on Kubernetes the front endpoint \"{}\" routes to every unsealed member", front.value))
                                .label(front.span, "front endpoint")
                                .label(lb.health.span, "active node only")
                                .help("remove `health=\"active\"`: an NLB needs 10-20 s of failed checks to drop the old leader, while a standby forwards to the new one as soon as raft has elected it (docs/eks.md)"),
                        );
                    }
                    if let Some(m) = v
                        .members
                        .iter()
                        .find(|m| m.load_balancer.value == front.value)
                    {
                        self.problems.push(
                            Problem::error(Code::Front, format!("load balancer \"{}\" is both the front endpoint and member \"{}\"'s", front.value, m.name.value))
                                .label(front.span, "front endpoint")
                                .label(m.load_balancer.span, "member's load balancer")
                                .help("give the front endpoint a load balancer of its own"),
                        );
                    }
                }
            }
        }

        if local {
            self.local_addresses(v, &lb_used);
        }

        duplicates(
            "bucket",
            " in the unseal store",
            v.unseal_store.buckets.iter(),
            self.problems,
        );
        let bucket_names: Vec<&str> = self
            .t
            .regions
            .iter()
            .flat_map(|r| r.buckets.iter().map(|b| b.name.value.as_str()))
            .collect();
        let mut store_regions = BTreeSet::new();
        for b in &v.unseal_store.buckets {
            match self.t.bucket(&b.value) {
                Some((r, _)) => {
                    store_regions.insert(r.name.value.as_str());
                }
                None => self.problems.push(unknown_ref("bucket", b, &bucket_names)),
            }
        }

        // Warnings: legal, but not what a highly available cluster wants.
        if v.members.len().is_multiple_of(2) && !v.members.is_empty() {
            self.problems.push(
                Problem::warning(
                    Code::EvenMembers,
                    format!(
                        "Vault cluster \"{}\" has {} raft members, an even number",
                        v.name.value,
                        v.members.len()
                    ),
                )
                .label(v.name.span, "even member count")
                .help(format!(
                    "{} members tolerate as many failures as {}; use an odd number",
                    v.members.len(),
                    v.members.len() - 1
                )),
            );
        }
        if store_regions.len() == 1 {
            let region = store_regions.iter().next().copied().unwrap_or_default();
            self.problems.push(
                Problem::warning(Code::UnsealStoreOneRegion, format!("every unseal-key bucket is in {region}"))
                    .label(v.unseal_store.span, "one region only")
                    .help("losing that region would leave the cluster unable to unseal; add a bucket in another region"),
            );
        }
        let regions = member_regions.len();
        if regions > 0
            && regions < 3
            && member_regions.values().all(|n| *n == 1)
            && !v.members.is_empty()
        {
            self.problems.push(
                Problem::warning(Code::RegionQuorum, format!("one member per region across only {regions} region(s)"))
                    .label(v.name.span, "loses quorum with one region")
                    .help("raft needs a majority: spread members over at least 3 regions, or run several per region"),
            );
        }
    }

    /// On the Kubernetes runtime a load balancer's target groups are attached to the auto
    /// scaling groups of its members' node groups and send to one node port: every member it
    /// serves must run in the load balancer's region (its VPC) and have the same node ports.
    fn kube_load_balancers(&mut self) {
        for r in &self.t.regions {
            for lb in &r.load_balancers {
                let lb_name = lb.name.value.as_str();
                let mut first: Option<(&Member, (u16, u16))> = None;
                for (v, m) in self.t.kube_members_behind(lb_name) {
                    let Some((cr, _)) = self.t.cluster(&m.cluster.value) else {
                        continue;
                    };
                    if cr.name.value != r.name.value {
                        // A member's own load balancer elsewhere is `cross-region` already.
                        if m.load_balancer.value == lb_name {
                            continue;
                        }
                        self.problems.push(
                            Problem::error(
                                Code::KubeLoadBalancer,
                                format!(
                                    "load balancer \"{lb_name}\" in {} would serve member \"{}\" on a cluster in {}",
                                    r.name.value, m.name.value, cr.name.value
                                ),
                            )
                            .label(m.cluster.span, format!("in {}", cr.name.value))
                            .label(lb.name.span, format!("in {}", r.name.value))
                            .help("a network load balancer can only target the nodes of its own region's VPC: serve each region's members from a load balancer there"),
                        );
                        continue;
                    }
                    let Some(ports) = self.t.member_node_ports(&v.name.value, &m.name.value) else {
                        continue;
                    };
                    match first {
                        None => first = Some((m, ports)),
                        Some((f, fp)) if fp != ports => self.problems.push(
                            Problem::error(
                                Code::KubeLoadBalancer,
                                format!(
                                    "load balancer \"{lb_name}\" would serve members \"{}\" (node port {}) and \"{}\" (node port {})",
                                    f.name.value, fp.0, m.name.value, ports.0
                                ),
                            )
                            .label(m.name.span, format!("node port {}", ports.0))
                            .label(f.name.span, format!("node port {}", fp.0))
                            .help("its target groups send to one node port on every node; members sharing a load balancer must each be the same-numbered member of their own cluster, so give each a load balancer of its own"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// The local runtime binds every member and load balancer to a loopback address and port.
    fn local_addresses(&mut self, v: &VaultCluster, lbs: &BTreeSet<&str>) {
        let mut bound: HashMap<(std::net::Ipv4Addr, u16), SourceSpan> = HashMap::new();
        let mut bind =
            |addr: &Spanned<std::net::Ipv4Addr>, port: u16, problems: &mut Vec<Problem>| {
                if let Some(first) = bound.get(&(addr.value, port)) {
                    problems.push(
                    Problem::error(
                        Code::AddressConflict,
                        format!("{}:{port} is used twice", addr.value),
                    )
                    .label(addr.span, "bound again here")
                    .label(*first, "first bound here")
                    .help(
                        "every member and load balancer of the local runtime needs its own address",
                    ),
                );
                } else {
                    bound.insert((addr.value, port), addr.span);
                }
            };
        for m in &v.members {
            if let Some(a) = &m.address {
                bind(a, m.api_port.value, self.problems);
                bind(a, m.cluster_port.value, self.problems);
            }
        }
        // The transit server vaultform runs beside the members.
        if let SealKind::Transit(TransitSeal::Managed {
            local_address,
            api_port,
        }) = &v.seal.kind
        {
            bind(local_address, api_port.value, self.problems);
            bind(
                local_address,
                api_port.value.saturating_add(1),
                self.problems,
            );
        }
        for name in lbs {
            let Some((_, lb)) = self.t.load_balancer(name) else {
                continue;
            };
            match &lb.local_address {
                Some(a) if !a.value.is_loopback() => self.problems.push(
                    Problem::error(Code::Runtime, format!("{} is not a loopback address", a.value))
                        .label(a.span, "not in 127.0.0.0/8")
                        .help("the local runtime's HAProxy listens on a loopback address such as 127.0.10.1"),
                ),
                Some(a) => {
                    bind(a, lb.api_port.value, self.problems);
                    bind(a, lb.cluster_port.value, self.problems);
                }
                None => self.problems.push(
                    Problem::error(Code::Runtime, format!("load balancer \"{}\" needs a `local-address` for the local runtime", lb.name.value))
                        .label(lb.name.span, "no local address")
                        .help("the local runtime runs HAProxy in its place: add `local-address=\"127.0.10.1\"`"),
                ),
            }
        }
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
