//! The root token, from one place. While the stored root token works, it is that one. Once
//! `revoke-root` has revoked it, a root token is generated from the stored key shares with
//! OpenBao's authenticated `sys/generate-root-token` (the unauthenticated `sys/generate-root`
//! is off by default since OpenBao 2.5.3), exchanged at once for an orphan root token that
//! expires by itself, and revoked at the end of the run (or expires, if the run is killed).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest;

use super::cluster::{cluster_urls, first_with_health, poll};
use super::spec::VaultSpec;
use super::store::Keys;
use super::{Client, Secret, TlsSettings, TokenRequest, VaultError};
use crate::address::{Address, VaultItem};
use crate::aws::Aws;
use crate::provider::OpError;
use crate::retry::{self, Backoff};
pub use crate::topology::REVOKE_ROOT_MOUNT as MOUNT;

/// The AppRole role whose tokens may only run a root token generation.
pub const ROLE: &str = "generate-root";
/// Its role ID (fixed: the secret is the secret ID).
pub const ROLE_ID: &str = "vaultform-generate-root";
/// The policy of its tokens.
pub const POLICY: &str = "vaultform-generate-root";
pub const POLICY_RULES: &str = "path \"sys/generate-root-token/*\" {\n  capabilities = [\"create\", \"read\", \"update\", \"delete\"]\n}\n";

/// How long a generated root token lives; one with less than [`MARGIN`] left is replaced.
const LIFETIME: Duration = Duration::from_secs(15 * 60);
const MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long a generation waits for an active node, when a member is unsealed already.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// A root token generated in this run, and where to revoke it.
#[derive(Clone)]
struct Generated {
    token: Secret,
    expires: Instant,
    urls: Vec<String>,
    /// How to reach `urls`: the cluster's CA.
    tls: TlsSettings,
}

/// This run's generated root tokens, by `stack/vault`. The lock also keeps two operations of
/// one run from starting generations at once (a server runs one at a time).
static GENERATED: LazyLock<tokio::sync::Mutex<BTreeMap<String, Generated>>> =
    LazyLock::new(Default::default);

fn client(v: &VaultSpec, url: &str) -> Result<Client, OpError> {
    v.client(url).map_err(|e| OpError::fatal(e.to_string()))
}

/// Whether the state records that `revoke-root` revoked the stored root token.
pub fn recorded_revoked(
    v: &VaultSpec,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> bool {
    let at = Address::vault(&v.name, VaultItem::RevokeRoot);
    outputs
        .get(at.as_str())
        .and_then(|o| o.get("stored_root"))
        .is_some_and(|s| s == "revoked")
}

/// Whether the server refuses `token` (403), asking the first member or endpoint that gives
/// an answer; `None` when none can tell (down, sealed, no leader).
pub async fn refused(v: &VaultSpec, token: &Secret) -> Option<bool> {
    for url in cluster_urls(v) {
        let Ok(c) = client(v, &url) else { continue };
        match c.lookup_self(token).await {
            Ok(_) => return Some(false),
            Err(VaultError::Api { status: 403, .. }) => return Some(true),
            Err(_) => continue,
        }
    }
    None
}

/// A root token for `v`: the stored one, unless the state records it revoked or the server
/// refuses it; then one generated from the stored keys (reused for the rest of the run).
pub async fn token(
    aws: &Aws,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
    v: &VaultSpec,
) -> Result<Secret, OpError> {
    let store = v.unseal_store(outputs)?;
    let key = format!("{}/{}", v.stack, v.name);
    let mut generated = GENERATED.lock().await;
    if let Some(g) = generated.get(&key)
        && g.expires > Instant::now() + MARGIN
    {
        return Ok(g.token.clone());
    }
    let stored = store
        .load_root(aws)
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?;
    if !recorded_revoked(v, outputs) && refused(v, &stored).await != Some(true) {
        return Ok(stored);
    }
    drop(stored);
    let (keys, _) = store
        .load(aws)
        .await
        .map_err(|e| OpError::fatal(e.to_string()))?;
    // A leader elected a moment ago may answer 5xx: the whole generation is tried again
    // (the next attempt cancels what this one left).
    let fresh = retry::retry(Backoff::OPERATION.attempts(5), || generate(v, &keys)).await?;
    if let Some(old) = generated.insert(key, fresh.clone()) {
        revoke(&old).await;
    }
    Ok(fresh.token)
}

/// Revokes every root token this run generated. Called once the command is done; a token a
/// killed run leaves behind expires by itself.
pub async fn revoke_generated() {
    let all = std::mem::take(&mut *GENERATED.lock().await);
    for g in all.values() {
        revoke(g).await;
    }
}

async fn revoke(g: &Generated) {
    for url in &g.urls {
        let Ok(c) = Client::new(url, &g.tls) else {
            continue;
        };
        match c.revoke_self(&g.token).await {
            Ok(()) | Err(VaultError::Api { status: 403, .. }) => return,
            Err(e) => tracing::debug!("revoking a generated root token through {url}: {e}"),
        }
    }
    tracing::warn!("a generated root token could not be revoked; it expires by itself");
}

/// The secret ID of the generate-root role, derived from the first `threshold` key shares:
/// only a holder of the keys can start a generation, and nothing more needs storing.
pub fn secret_id(keys: &Keys, threshold: usize) -> Secret {
    let mut h = sha2::Sha256::new();
    h.update(b"vaultform generate-root-token approle secret-id v1\0");
    for share in keys.shares.iter().take(threshold.max(1)) {
        h.update(share.expose().as_bytes());
        h.update(b"\0");
    }
    let digest = h.finalize();
    let hex = zeroize::Zeroizing::new(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );
    Secret::new(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A member that serves (active, or a standby that forwards), waiting for an active node
/// while at least one member is unsealed.
async fn serving(v: &VaultSpec) -> Result<Client, OpError> {
    let urls = cluster_urls(v);
    if first_with_health(&v.client_tls(), &urls, |s| s == 200 || s == 429)
        .await
        .is_none()
    {
        return Err(OpError::fatal(format!(
            "no member of {} is unsealed: a root token cannot be generated",
            v.name
        )));
    }
    poll(
        &format!("waiting for an active node of {}", v.name),
        ACTIVE_TIMEOUT,
        || async {
            first_with_health(&v.client_tls(), &urls, |s| s == 200)
                .await
                .ok_or_else(|| "no active node yet".to_string())
        },
    )
    .await
}

/// The token the server returns encoded: base64 (with or without padding) of the token's
/// bytes XOR the one-time password's.
pub fn decode_token(encoded: &str, otp: &str) -> Result<Secret, String> {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|e| format!("the encoded token is not base64: {e}"))?;
    if raw.len() != otp.len() {
        return Err(format!(
            "the encoded token has {} bytes, the one-time password {}",
            raw.len(),
            otp.len()
        ));
    }
    let bytes: Vec<u8> = raw.iter().zip(otp.as_bytes()).map(|(a, b)| a ^ b).collect();
    let text = String::from_utf8(bytes).map_err(|_| "the decoded token is not text".to_string())?;
    Ok(Secret::new(text))
}

/// Generates a root token: an AppRole login whose token may only run the generation, a new
/// attempt (cancelling one a killed run left), the threshold of shares, the token decoded;
/// then exchanged for an orphan root token with a TTL, the generated one and the login
/// token revoked.
async fn generate(v: &VaultSpec, keys: &Keys) -> Result<Generated, OpError> {
    // Unreachable servers and 5xx answers are worth another try; the rest is not.
    let fatal = |what: &str, e: VaultError| {
        let mut err = OpError::from(e);
        err.message = format!("{what}: {}", err.message);
        err
    };
    let c = serving(v).await?;
    let threshold = v.threshold as usize;
    let login = c
        .approle_login(MOUNT, ROLE_ID, &secret_id(keys, threshold))
        .await
        .map_err(|e| {
            fatal(
                "logging in to generate a root token (has `revoke-root` run?)",
                e,
            )
        })?
        .client_token;
    let result = async {
        let status = c
            .generate_root_status(&login)
            .await
            .map_err(|e| fatal("reading the root token generation", e))?;
        if status.started {
            tracing::warn!(
                "{}: cancelling a root token generation left in progress",
                v.name
            );
            c.generate_root_cancel(&login)
                .await
                .map_err(|e| fatal("cancelling a root token generation", e))?;
        }
        let started = c
            .generate_root_start(&login)
            .await
            .map_err(|e| fatal("starting a root token generation", e))?;
        let otp = started
            .otp
            .ok_or_else(|| OpError::fatal("the generation started without a one-time password"))?;
        let mut encoded = None;
        for share in &keys.shares {
            let s = c
                .generate_root_update(&login, share, &started.nonce)
                .await
                .map_err(|e| fatal("submitting a key share", e))?;
            if s.complete {
                encoded = s.encoded_token;
                break;
            }
        }
        let encoded = encoded.ok_or_else(|| {
            OpError::fatal(format!(
                "the generation did not complete with the {} shares in the store",
                keys.shares.len()
            ))
        })?;
        let generated = decode_token(encoded.expose(), otp.expose()).map_err(OpError::fatal)?;
        // Exchanged for one that expires by itself, then revoked: no root token without an
        // end outlives this run.
        let ttl = format!("{}s", LIFETIME.as_secs());
        let request = TokenRequest {
            policies: vec!["root".to_string()],
            ttl: ttl.clone(),
            explicit_max_ttl: ttl,
            renewable: false,
            no_parent: true,
            display_name: "vaultform-root".to_string(),
            meta: BTreeMap::from([("issued-by".to_string(), "vaultform".to_string())]),
        };
        let issued = Instant::now();
        let token = c
            .create_token(&generated, &request)
            .await
            .map_err(|e| fatal("making a root token with a TTL", e))?
            .client_token;
        if let Err(e) = c.revoke_self(&generated).await {
            tracing::warn!("{}: revoking the generated root token: {e}", v.name);
        }
        Ok(Generated {
            token,
            tls: v.client_tls(),
            expires: issued + LIFETIME,
            urls: std::iter::once(c.addr().to_string())
                .chain(cluster_urls(v))
                .collect(),
        })
    }
    .await;
    let _ = c.revoke_self(&login).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_token_decodes_with_its_one_time_password() {
        // An OTP of the shape OpenBao 2.7.2 returns (26 base62 characters, a token's length);
        // the real exchange is in tests/it/revoke_root.rs.
        let otp = "x2OT1rU8Ro7TlW8q05jcWk1dyv";
        let token = "s.yS0123456789abcdefghijkl";
        let encoded: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&encoded);
        assert_eq!(decode_token(&b64, otp).unwrap().expose(), token);
        let padded = base64::engine::general_purpose::STANDARD.encode(&encoded);
        assert_eq!(decode_token(&padded, otp).unwrap().expose(), token);
        assert!(decode_token(&b64, "short").is_err());
        assert!(decode_token("not base64!", otp).is_err());
    }

    #[test]
    fn the_secret_id_depends_on_the_threshold_of_shares_only() {
        let keys = |shares: &[&str]| Keys {
            shares: shares.iter().map(|s| Secret::new(s.to_string())).collect(),
            root_token: Secret::new("r".into()),
        };
        let a = secret_id(&keys(&["one", "two", "three"]), 2);
        assert_eq!(a, secret_id(&keys(&["one", "two", "other"]), 2));
        assert_ne!(a, secret_id(&keys(&["one", "other", "three"]), 2));
        assert_eq!(a.expose().len(), 36);
    }
}
