//! A Vault cluster's seal, resolved from the topology, and the `seal` stanza each member's
//! server configuration carries: none for `shamir` (vaultform unseals with the stored shares),
//! `transit` with the members' limited token from the unseal store, `awskms` with the replica
//! of the multi-Region key in the member's own region.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::address::{Address, RegionItem};
use crate::topology::{SealKind, Topology, TransitSeal, VaultCluster};

use super::hcl::quote;
use super::secret::Secret;

/// Store objects (after the store's prefix) of the transit seal: the managed transit server's
/// own unseal share and root token, and the token the members unseal with (for an existing
/// transit server, the user puts that one there).
pub const TRANSIT_SHARE: &str = "vault-seal-transit-unseal";
pub const TRANSIT_ROOT: &str = "vault-seal-transit-root";
pub const TRANSIT_TOKEN: &str = "vault-seal-transit-token";

/// How the members of a cluster unseal.
#[derive(Debug, Clone)]
pub enum SealSpec {
    Shamir,
    Transit(TransitSpec),
    /// The key (in the bootstrap member's region) whose replicas the members use.
    Awskms {
        key_address: Address,
    },
}

/// A transit seal: the server, the key and where its engine is mounted.
#[derive(Debug, Clone)]
pub struct TransitSpec {
    /// The server vaultform runs (local runtime): its address and API port.
    pub managed: Option<(Ipv4Addr, u16)>,
    pub url: String,
    pub key_name: String,
    /// The engine's mount path, without slashes.
    pub mount: String,
    /// The CA certificate the members verify the transit server against.
    pub ca_file: Option<PathBuf>,
}

impl TransitSpec {
    /// A client for the transit server, trusting the CA its TLS chains to (the cluster's
    /// for the server vaultform runs, `ca-cert` for an existing one; else the system's).
    pub fn client(&self) -> Result<super::Client, super::VaultError> {
        let ca_pem = match &self.ca_file {
            Some(f) => Some(
                std::fs::read(f)
                    .map_err(|e| super::VaultError::Settings(format!("{}: {e}", f.display())))?,
            ),
            None => None,
        };
        super::Client::new(
            &self.url,
            &super::TlsSettings {
                ca_pem,
                server_name: None,
            },
        )
    }
}

impl SealSpec {
    /// `shamir`, `transit` or `awskms`: the type the server reports in `sys/seal-status`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            SealSpec::Shamir => "shamir",
            SealSpec::Transit(_) => "transit",
            SealSpec::Awskms { .. } => "awskms",
        }
    }

    /// Whether the members unseal themselves: the stored keys are recovery keys.
    pub fn auto_unseal(&self) -> bool {
        !matches!(self, SealSpec::Shamir)
    }

    /// The transit server vaultform runs, if any.
    pub fn managed_transit(&self) -> Option<&TransitSpec> {
        match self {
            SealSpec::Transit(t) if t.managed.is_some() => Some(t),
            _ => None,
        }
    }
}

/// The seal of `v`; relative paths resolve against `base_dir`, the managed server's CA is the
/// cluster's (`ca_file`, when TLS is on).
pub fn resolve(
    t: &Topology,
    v: &VaultCluster,
    base_dir: &Path,
    ca_file: Option<PathBuf>,
) -> SealSpec {
    match &v.seal.kind {
        SealKind::Shamir => SealSpec::Shamir,
        SealKind::Transit(TransitSeal::Managed {
            local_address,
            api_port,
        }) => {
            let scheme = if ca_file.is_some() { "https" } else { "http" };
            SealSpec::Transit(TransitSpec {
                managed: Some((local_address.value, api_port.value)),
                url: format!("{scheme}://{}:{}", local_address.value, api_port.value),
                key_name: format!("autounseal-{}", v.name.value),
                mount: "transit".to_string(),
                ca_file,
            })
        }
        SealKind::Transit(TransitSeal::Existing {
            address,
            key_name,
            mount,
            ca_cert,
        }) => SealSpec::Transit(TransitSpec {
            managed: None,
            url: address.value.trim_end_matches('/').to_string(),
            key_name: key_name.value.clone(),
            mount: mount.value.trim_matches('/').to_string(),
            ca_file: ca_cert.as_ref().map(|c| base_dir.join(&c.value)),
        }),
        SealKind::Awskms { key } => {
            let region = v
                .bootstrap_member()
                .and_then(|m| t.cluster(&m.cluster.value))
                .map(|(r, _)| r.name.value.clone())
                .unwrap_or_default();
            SealSpec::Awskms {
                key_address: Address::region(&region, RegionItem::Key(key.value.clone())),
            }
        }
    }
}

/// The `seal "transit"` stanza of a member's configuration.
pub fn transit_stanza(t: &TransitSpec, token: &Secret) -> String {
    let ca = t
        .ca_file
        .as_ref()
        .map(|f| format!("  tls_ca_cert = {}\n", quote(&f.display().to_string())))
        .unwrap_or_default();
    format!(
        "seal \"transit\" {{\n  address = {}\n  token = {}\n  key_name = {}\n  mount_path = {}\n{ca}}}\n",
        quote(&t.url),
        quote(token.expose()),
        quote(&t.key_name),
        quote(&format!("{}/", t.mount)),
    )
}

/// The `seal "awskms"` stanza of a member in `region`, with its region's replica of the key.
pub fn awskms_stanza(region: &str, key_arn: &str) -> String {
    format!(
        "seal \"awskms\" {{\n  region = {}\n  kms_key_id = {}\n}}\n",
        quote(region),
        quote(&replica_arn(key_arn, region))
    )
}

/// The ARN of a multi-Region key's replica in `region`: replicas share the key ID, and their
/// ARNs differ only in the region (`arn:aws:kms:<region>:<account>:key/mrk-...`).
pub fn replica_arn(arn: &str, region: &str) -> String {
    let mut parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        parts[3] = region;
        parts.join(":")
    } else {
        arn.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str =
        "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab";

    #[test]
    fn a_member_uses_its_own_regions_replica() {
        insta::assert_snapshot!(awskms_stanza("us-east-1", PRIMARY), @r#"
        seal "awskms" {
          region = "us-east-1"
          kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        }
        "#);
        assert_eq!(replica_arn(PRIMARY, "eu-west-1"), PRIMARY);
        assert_eq!(replica_arn("alias/x", "us-east-1"), "alias/x");
    }

    proptest::proptest! {
        /// Whatever the transit server's settings and token, the stanza keeps its structure
        /// and every value reads back as itself; the same for the awskms stanza.
        #[test]
        fn no_value_changes_a_seal_stanzas_structure(
            url in proptest::prelude::any::<String>(),
            key_name in proptest::prelude::any::<String>(),
            mount in proptest::prelude::any::<String>(),
            token in proptest::prelude::any::<String>(),
            region in proptest::prelude::any::<String>(),
        ) {
            use crate::vault::hcl::tests::lex;
            let t = |url: &str, key_name: &str, mount: &str| TransitSpec {
                managed: None,
                url: url.into(),
                key_name: key_name.into(),
                mount: mount.into(),
                ca_file: Some(PathBuf::from("/w/tls/ca.pem")),
            };
            let plain = lex(&transit_stanza(&t("u", "k", "m"), &Secret::new("t".into()))).unwrap();
            let (structure, strings) =
                lex(&transit_stanza(&t(&url, &key_name, &mount), &Secret::new(token.clone())))
                    .unwrap();
            proptest::prop_assert_eq!(structure, plain.0);
            proptest::prop_assert_eq!(
                strings,
                vec!["transit".to_string(), url, token, key_name, format!("{mount}/"), "/w/tls/ca.pem".to_string()]
            );
            let plain = lex(&awskms_stanza("r", PRIMARY)).unwrap();
            let (structure, strings) = lex(&awskms_stanza(&region, "alias/x")).unwrap();
            proptest::prop_assert_eq!(structure, plain.0);
            proptest::prop_assert_eq!(strings, vec!["awskms".to_string(), region, "alias/x".to_string()]);
        }
    }

    #[test]
    fn the_transit_stanza_names_the_key_the_mount_and_the_ca() {
        let t = TransitSpec {
            managed: Some((Ipv4Addr::new(127, 0, 10, 20), 8200)),
            url: "https://127.0.10.20:8200".into(),
            key_name: "autounseal-main".into(),
            mount: "transit".into(),
            ca_file: Some(PathBuf::from("/w/tls/ca.pem")),
        };
        insta::assert_snapshot!(transit_stanza(&t, &Secret::new("s.token".into())), @r#"
        seal "transit" {
          address = "https://127.0.10.20:8200"
          token = "s.token"
          key_name = "autounseal-main"
          mount_path = "transit/"
          tls_ca_cert = "/w/tls/ca.pem"
        }
        "#);
    }
}
