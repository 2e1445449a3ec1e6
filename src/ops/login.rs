//! `login`: a short-lived, non-root token made with the root token (which stays in memory and
//! is never shown), for a person's shell or a pipeline; and the CLIs' token file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::endpoint::Endpoint;
use super::{Ops, OpsError, active_client, fail};
use crate::topology::duration_seconds;
use crate::vault::spec::VaultSpec;
use crate::vault::{Client, Secret, TokenRequest, VaultError};

/// What a login asks for, checked before anything is read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRequest {
    pub ttl_seconds: u64,
    /// Sorted, without duplicates; `default` when none was asked for.
    pub policies: Vec<String>,
    /// Whether a policy that grants `sudo` is taken (`--allow-sudo`).
    pub allow_sudo: bool,
}

impl LoginRequest {
    /// `ttl` as `--ttl` takes it (`90s`, `15m`, `1h`, `1h30m`, or seconds); `policies` as
    /// given; `allow_sudo` as `--allow-sudo`.
    pub fn resolve(ttl: &str, policies: &[String], allow_sudo: bool) -> Result<Self, OpsError> {
        let ttl_seconds = duration_seconds(ttl).filter(|s| *s > 0).ok_or_else(|| {
            fail(
                format!("--ttl {ttl:?} is not a duration"),
                "write it like 90s, 15m, 1h or 1h30m",
            )
        })?;
        let mut policies: Vec<String> = policies.iter().map(|p| p.trim().to_string()).collect();
        // The server lowercases policy names: `Root` is `root`.
        if policies.iter().any(|p| p.eq_ignore_ascii_case("root")) {
            return Err(fail(
                "--policy root would make another root token",
                "login makes short-lived tokens with the policies you name; declare a policy in the topology (`policy \"NAME\" { path ... }`) and pass --policy NAME",
            ));
        }
        if policies.iter().any(String::is_empty) {
            return Err(fail("--policy needs a name", "pass --policy NAME"));
        }
        if policies.is_empty() {
            policies.push("default".to_string());
        }
        policies.sort();
        policies.dedup();
        Ok(LoginRequest {
            ttl_seconds,
            policies,
            allow_sudo,
        })
    }
}

/// A token made by `login`, and where it works.
#[derive(Debug)]
pub struct IssuedToken {
    pub endpoint: Endpoint,
    pub token: Secret,
    pub accessor: String,
    pub policies: Vec<String>,
    pub ttl_seconds: u64,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// Makes the token: an orphan (it outlives the root token that made it, which may be revoked
/// right after), not renewable, with an explicit maximum TTL equal to its TTL.
pub async fn login(ops: &Ops, v: &VaultSpec, req: &LoginRequest) -> Result<IssuedToken, OpsError> {
    let endpoint = Endpoint::of(v);
    let front = endpoint.client()?;
    // Through the endpoint people use; when it does not serve, any member that does.
    let c = match front.health().await {
        Ok(h) if h.status == 200 || h.status == 429 => front,
        _ => active_client(v).await?,
    };
    let root = ops.root_token(v).await?;
    check_policies(&c, &root, req).await?;
    let ttl = format!("{}s", req.ttl_seconds);
    let request = TokenRequest {
        policies: req.policies.clone(),
        ttl: ttl.clone(),
        explicit_max_ttl: ttl,
        renewable: false,
        no_parent: true,
        display_name: "vaultform-login".to_string(),
        meta: BTreeMap::from([("issued-by".to_string(), "vaultform login".to_string())]),
    };
    let issued_at = time::OffsetDateTime::now_utc();
    let created = c
        .create_token(&root, &request)
        .await
        .map_err(|e| fail(e.to_string(), "`vaultform status FILE` shows each member"))?;
    drop(root);
    let expires = issued_at + time::Duration::seconds(created.lease_duration as i64);
    Ok(IssuedToken {
        endpoint,
        token: created.client_token,
        accessor: created.accessor,
        policies: created.policies,
        ttl_seconds: created.lease_duration,
        expires_at: expires
            .replace_nanosecond(0)
            .unwrap_or(expires)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })
}

/// Refuses policies the cluster does not have (a token would be made with them all the same,
/// and fail on every request), and without `--allow-sudo` those that grant `sudo`.
async fn check_policies(c: &Client, root: &Secret, req: &LoginRequest) -> Result<(), OpsError> {
    let mut missing = Vec::new();
    for p in &req.policies {
        match c.read(root, &format!("sys/policies/acl/{p}")).await {
            Ok(v) => {
                let text = v.pointer("/data/policy").and_then(|t| t.as_str());
                let sudo = sudo_paths(text.unwrap_or_default());
                if !req.allow_sudo && !sudo.is_empty() {
                    return Err(fail(
                        format!(
                            "policy {p} grants sudo on {}: a token with it reaches root-protected paths",
                            sudo.join(", ")
                        ),
                        "pass --allow-sudo if that is what the token is for, or log in with a policy without sudo",
                    ));
                }
            }
            Err(VaultError::Api { status: 404, .. }) => missing.push(p.clone()),
            Err(e) => return Err(fail(e.to_string(), "")),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let known = c
        .read(root, "sys/policies/acl?list=true")
        .await
        .ok()
        .and_then(|v| {
            v.pointer("/data/keys")?.as_array().map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str())
                    .filter(|k| *k != "root")
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_default();
    Err(fail(
        format!("the cluster has no policy {}", missing.join(", ")),
        &format!("its policies: {}", known.join(", ")),
    ))
}

/// The paths of an ACL policy (HCL, as the server returns it) whose capabilities include
/// `sudo`. A policy that mentions `sudo` in a shape this does not read counts as granting it
/// everywhere (`*`): refusing too much is the safe side.
fn sudo_paths(policy: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = policy;
    while let Some(at) = rest.find("path") {
        let after = &rest[at + 4..];
        let Some(open) = after.find('{') else { break };
        let Some(close) = after[open..].find('}') else {
            break;
        };
        let raw = after[..open].trim();
        let quoted = raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"');
        if !quoted {
            // Not `path "..." {`: a shape this does not read.
            out.clear();
            break;
        }
        if after[open..open + close].contains("\"sudo\"") {
            out.push(raw[1..raw.len() - 1].to_string());
        }
        rest = &after[open + close..];
    }
    if out.is_empty() && policy.contains("sudo") {
        out.push("*".to_string());
    }
    out
}

/// The token file the `vault` and `bao` CLIs read when no token variable is set:
/// `$HOME/.vault-token`.
pub fn token_helper_path() -> Result<PathBuf, OpsError> {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(&home).join(".vault-token")),
        None => Err(fail(
            "HOME is not set: there is no ~/.vault-token to write",
            "set HOME, or print the token without --token-helper",
        )),
    }
}

/// Writes the token to `path`, owner-only (0600, also over an existing wider file).
pub fn write_token(path: &Path, token: &Secret) -> Result<(), OpsError> {
    crate::private::write(path, token.expose().as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display()), ""))
}

#[cfg(test)]
mod tests {
    use super::LoginRequest;

    #[test]
    fn a_request_is_checked_before_anything_is_read() {
        let r =
            LoginRequest::resolve("1h30m", &["b".into(), "a".into(), "b".into()], false).unwrap();
        assert_eq!(r.ttl_seconds, 5400);
        assert_eq!(r.policies, ["a", "b"]);
        assert_eq!(
            LoginRequest::resolve("90", &[], false).unwrap().policies,
            ["default"]
        );
        for root in ["root", "Root", " ROOT "] {
            let refused =
                LoginRequest::resolve("1h", &["kv".into(), root.into()], false).unwrap_err();
            assert!(refused.message.contains("--policy root"), "{refused}");
        }
        for bad in ["", "0", "1y", "h", "-1h"] {
            assert!(LoginRequest::resolve(bad, &[], false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_paths_a_policy_grants_sudo_on_are_found() {
        let policy = "path \"kv/data/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n\npath \"sys/raft/*\" {\n  capabilities = [\"read\", \"sudo\"]\n}\n";
        assert_eq!(super::sudo_paths(policy), ["sys/raft/*"]);
        assert!(super::sudo_paths("path \"kv/*\" { capabilities = [\"read\"] }").is_empty());
        // A shape it does not read, mentioning sudo: counted as granting it.
        assert_eq!(
            super::sudo_paths(r#"{"path": {"sys/*": {"capabilities": ["sudo"]}}}"#),
            ["*"]
        );
    }
}
