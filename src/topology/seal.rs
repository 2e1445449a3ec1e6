//! The `seal` node of a Vault cluster, read and checked: `shamir` (the default), `transit`
//! (a server vaultform runs on the local runtime, or an existing one) and `awskms`.

use kdl::KdlNode;
use miette::SourceSpan;

use super::diagnostic::{Code, Problem};
use super::model::*;
use super::reader::NodeReader;

const KINDS: &[&str] = &["shamir", "transit", "awskms"];

/// The transit server's API port when the topology names none.
const TRANSIT_PORT: u16 = 8200;

/// `seal`: absent (`shamir`), or `seal "shamir"`, `seal "transit" local-address="..."`,
/// `seal "transit" address="https://..." key-name="..." mount="transit"`, `seal "awskms" key="..."`.
pub fn decode(node: Option<&KdlNode>, vault_head: SourceSpan, problems: &mut Vec<Problem>) -> Seal {
    let shamir = |span| Seal {
        span,
        kind: SealKind::Shamir,
    };
    let Some(node) = node else {
        return shamir(vault_head);
    };
    let mut r = NodeReader::node("seal", node);
    let head = r.head();
    let Some(kind) = r.arg_string("a seal type") else {
        r.finish(problems);
        return shamir(head);
    };
    let seal = match kind.value.as_str() {
        "shamir" => Some(shamir(head)),
        "transit" => transit(&mut r, head).map(|t| Seal {
            span: head,
            kind: SealKind::Transit(t),
        }),
        "awskms" => match r.string("key") {
            Some(key) => Some(Seal {
                span: head,
                kind: SealKind::Awskms { key },
            }),
            None => {
                r.push(
                    Problem::error(Code::Seal, "an `awskms` seal needs the `key` it unseals with")
                        .label(head, "no `key`")
                        .help("name a key of the bootstrap member's region: `seal \"awskms\" key=\"unseal\"`"),
                );
                None
            }
        },
        other => {
            let mut help = format!("expected one of: {}", KINDS.join(", "));
            if let Some(close) = super::diagnostic::did_you_mean(other, KINDS.iter().copied()) {
                help = format!("did you mean \"{close}\"? ({help})");
            }
            r.push(
                Problem::error(Code::Seal, format!("there is no \"{other}\" seal"))
                    .label(kind.span, "unknown seal type")
                    .help(help),
            );
            None
        }
    };
    r.finish(problems);
    seal.unwrap_or_else(|| shamir(head))
}

fn transit(r: &mut NodeReader, head: SourceSpan) -> Option<TransitSeal> {
    let local = r.ipv4("local-address");
    let port = r.port("api-port");
    let address = r.string("address");
    let key_name = r.string("key-name");
    let mount = r.string("mount");
    let ca_cert = r.string("ca-cert");
    match (local, address) {
        (Some(local_address), None) => {
            for given in [
                key_name.map(|k| k.span),
                mount.map(|m| m.span),
                ca_cert.map(|c| c.span),
            ]
            .into_iter()
            .flatten()
            {
                r.push(
                    Problem::error(Code::Seal, "this setting is for an existing transit server")
                        .label(given, "vaultform names the key, the mount and the CA of the server it runs")
                        .help("remove it, or give the `address` of an existing server instead of `local-address`"),
                );
            }
            Some(TransitSeal::Managed {
                local_address,
                api_port: port.unwrap_or(Spanned::new(TRANSIT_PORT, head)),
            })
        }
        (None, Some(address)) => {
            if let Some(p) = port {
                r.push(
                    Problem::error(
                        Code::Seal,
                        "`api-port` is for the transit server vaultform runs",
                    )
                    .label(p.span, "not with `address`")
                    .help(
                        "put the port in the address: `address=\"https://transit.example:8200\"`",
                    ),
                );
            }
            if !(address.value.starts_with("https://") || address.value.starts_with("http://")) {
                r.push(
                    Problem::error(Code::Seal, "the transit server's `address` must be a URL")
                        .label(address.span, "no scheme")
                        .help("for example `address=\"https://transit.example:8200\"`"),
                );
            }
            let Some(key_name) = key_name else {
                r.push(
                    Problem::error(
                        Code::Seal,
                        "an existing transit server needs the `key-name` to unseal with",
                    )
                    .label(address.span, "which key of this server?")
                    .help("name the transit key: `key-name=\"autounseal\"`"),
                );
                return None;
            };
            Some(TransitSeal::Existing {
                address,
                key_name,
                mount: mount.unwrap_or(Spanned::new("transit".to_string(), head)),
                ca_cert,
            })
        }
        (Some(local), Some(address)) => {
            r.push(
                Problem::error(
                    Code::Seal,
                    "a transit seal is either run by vaultform or an existing server, not both",
                )
                .label(local.span, "vaultform runs a transit server here")
                .label(address.span, "an existing server")
                .help(
                    "keep `local-address` (the local runtime) or `address` (a server of your own)",
                ),
            );
            None
        }
        (None, None) => {
            r.push(
                Problem::error(Code::Seal, "a transit seal needs a server")
                    .label(head, "no `local-address` or `address`")
                    .help("on the local runtime, `local-address=\"127.0.10.20\"` has vaultform run one; or give an existing server's `address`, `key-name` and `mount`"),
            );
            None
        }
    }
}

/// The regions a multi-Region key is replicated into: those of the members of every `awskms`
/// seal naming it from its region (the bootstrap member's), its own region left out.
pub fn replica_regions(t: &Topology, region: &str, key: &str) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for v in &t.vaults {
        let SealKind::Awskms { key: k } = &v.seal.kind else {
            continue;
        };
        let home = v
            .bootstrap_member()
            .and_then(|m| t.cluster(&m.cluster.value))
            .map(|(r, _)| r.name.value.as_str());
        if k.value != key || home != Some(region) {
            continue;
        }
        for m in &v.members {
            if let Some((r, _)) = t.cluster(&m.cluster.value)
                && r.name.value != region
            {
                out.insert(r.name.value.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// What the seal asks of the cluster's runtime and regions.
pub fn validate(t: &Topology, v: &VaultCluster, problems: &mut Vec<Problem>) {
    let local = matches!(v.runtime.value, Runtime::Local { .. });
    match &v.seal.kind {
        SealKind::Shamir => {}
        SealKind::Transit(TransitSeal::Managed { local_address, .. }) => {
            if !local {
                problems.push(
                    Problem::error(Code::Seal, "vaultform runs a transit server on the local runtime only")
                        .label(local_address.span, "a loopback address on this machine")
                        .label(v.runtime.span, "the cluster runs elsewhere")
                        .help("give the `address`, `key-name` and `mount` of an existing transit server, or use `seal \"awskms\"` on EKS"),
                );
            } else if !local_address.value.is_loopback() {
                problems.push(
                    Problem::error(
                        Code::Seal,
                        format!("{} is not a loopback address", local_address.value),
                    )
                    .label(local_address.span, "not in 127.0.0.0/8")
                    .help("the transit server listens on a loopback address such as 127.0.10.20"),
                );
            }
        }
        // On Kubernetes the token reaches each pod through a secret vaultform fills from the
        // unseal store (`vault.<v>.kube.<cluster>.seal.<member>`).
        SealKind::Transit(TransitSeal::Existing { .. }) => {}
        SealKind::Awskms { key } => {
            if local {
                problems.push(
                    Problem::error(Code::Seal, "the local runtime cannot use an `awskms` seal")
                        .label(key.span, "a KMS key")
                        .label(v.runtime.span, "runs the `bao` of this machine")
                        .help("the OpenBao build vaultform runs locally has no awskms seal; use `seal \"transit\" local-address=\"127.0.10.20\"` here and `awskms` on EKS"),
                );
            }
            let region = v
                .bootstrap_member()
                .and_then(|m| t.cluster(&m.cluster.value))
                .map(|(r, _)| r);
            let other_regions: std::collections::BTreeSet<&str> = v
                .members
                .iter()
                .filter_map(|m| t.cluster(&m.cluster.value))
                .map(|(r, _)| r.name.value.as_str())
                .filter(|name| region.is_some_and(|r| r.name.value != *name))
                .collect();
            if let Some(r) = region
                && let Some(k) = r.key(&key.value)
                && !other_regions.is_empty()
                && !k.multi_region.as_ref().is_some_and(|m| m.value)
            {
                let regions: Vec<&str> = other_regions.iter().copied().collect();
                problems.push(
                    Problem::error(
                        Code::Seal,
                        format!("key \"{}\" must be a multi-Region key", key.value),
                    )
                    .label(k.name.span, "a key of one region")
                    .label(key.span, format!("members in {} unseal with its replicas", regions.join(", ")))
                    .help(format!("add `multi-region=#true` to `key \"{}\"`: vaultform replicates it into each member's region", key.value)),
                );
            }
            if let Some(r) = region
                && r.key(&key.value).is_none()
            {
                let keys: Vec<&str> = r.keys.iter().map(|k| k.name.value.as_str()).collect();
                let mut help = format!(
                    "declare `key \"{}\"` in region \"{}\", where the bootstrap member runs",
                    key.value, r.name.value
                );
                if let Some(close) =
                    super::diagnostic::did_you_mean(&key.value, keys.iter().copied())
                {
                    help = format!("did you mean \"{close}\"?");
                }
                problems.push(
                    Problem::error(
                        Code::Seal,
                        format!(
                            "no key \"{}\" in the bootstrap member's region {}",
                            key.value, r.name.value
                        ),
                    )
                    .label(key.span, "unknown key")
                    .help(help),
                );
            }
        }
    }
}
