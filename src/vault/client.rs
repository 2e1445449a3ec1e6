//! The Vault / OpenBao HTTP API used by a bootstrap: health, seal status, init, unseal, leader,
//! raft join / configuration / remove-peer, step-down, snapshots, and mounts, auth methods and
//! policies. Same API for both servers; HTTPS verified against the cluster's CA (plain HTTP
//! only where the topology says `tls #false`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::secret::Secret;

/// TLS settings for reaching a server: the CA that signed its certificate, and the name to
/// verify when the address is not that name.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub ca_pem: Option<Vec<u8>>,
    pub server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{addr} answered {status} to {what}: {errors}")]
    Api {
        addr: String,
        what: String,
        status: u16,
        errors: String,
    },
    #[error("{addr} sent an unexpected answer to {what}: {detail}")]
    Decode {
        addr: String,
        what: String,
        detail: String,
    },
    #[error("invalid client settings: {0}")]
    Settings(String),
}

/// An operation's failure: unreachable servers and 5xx answers are worth trying again.
impl From<VaultError> for crate::provider::OpError {
    fn from(e: VaultError) -> Self {
        match &e {
            VaultError::Unreachable { .. } => Self::retryable(e.to_string()),
            VaultError::Api { status, .. } if *status >= 500 => Self::retryable(e.to_string()),
            _ => Self::fatal(e.to_string()),
        }
    }
}

/// `GET /v1/sys/health`, with the status code that carries its meaning.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub standby: bool,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// 200 active, 429 unsealed standby, 501 not initialised, 503 sealed (and Vault's others).
    #[serde(skip)]
    pub status: u16,
}

impl Health {
    pub fn active(&self) -> bool {
        self.status == 200
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SealStatus {
    pub sealed: bool,
    #[serde(default)]
    pub initialized: bool,
    /// Threshold.
    #[serde(default)]
    pub t: u32,
    /// Shares.
    #[serde(default)]
    pub n: u32,
    #[serde(default)]
    pub progress: u32,
    /// The seal type: `shamir`, `transit`, `awskms`, ...
    #[serde(default, rename = "type")]
    pub seal_type: String,
}

/// What `PUT /v1/sys/init` returns: secrets, to be encrypted and stored at once.
#[derive(Deserialize)]
pub struct InitResponse {
    /// Unseal shares (a `shamir` seal); empty with an auto-unseal seal.
    #[serde(default)]
    pub keys_base64: Vec<Secret>,
    /// Recovery keys (an auto-unseal seal); empty with `shamir`.
    #[serde(default)]
    pub recovery_keys_base64: Vec<Secret>,
    pub root_token: Secret,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Leader {
    #[serde(default)]
    pub ha_enabled: bool,
    #[serde(default)]
    pub is_self: bool,
    #[serde(default)]
    pub leader_address: String,
    #[serde(default)]
    pub raft_applied_index: Option<u64>,
    #[serde(default)]
    pub raft_committed_index: Option<u64>,
}

/// What `auth/token/create` is asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRequest {
    pub policies: Vec<String>,
    /// Seconds, as `"3600s"`.
    pub ttl: String,
    /// The token cannot be renewed past this (seconds, as `"3600s"`).
    pub explicit_max_ttl: String,
    pub renewable: bool,
    /// An orphan: it outlives the token that created it.
    pub no_parent: bool,
    pub display_name: String,
    pub meta: std::collections::BTreeMap<String, String>,
}

/// The `auth` part of `auth/token/create`'s answer.
#[derive(Debug, Deserialize)]
pub struct CreatedToken {
    pub client_token: Secret,
    #[serde(default)]
    pub accessor: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
}

/// A root token generation (`sys/generate-root-token/*`): progress, and once complete the
/// token encoded with the one-time password.
#[derive(Debug, Deserialize)]
pub struct GenerateRoot {
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub nonce: String,
    #[serde(default)]
    pub progress: u32,
    #[serde(default)]
    pub required: u32,
    #[serde(default)]
    pub complete: bool,
    /// Only in the answer that starts the attempt.
    #[serde(default)]
    pub otp: Option<Secret>,
    /// Only in the answer to the last share: base64 of the token XOR the OTP.
    #[serde(default)]
    pub encoded_token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RaftServer {
    pub node_id: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
}

/// One server's API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    addr: String,
}

impl Client {
    /// A client for `addr` (`http://127.0.10.11:8200` or `https://...`).
    pub fn new(addr: &str, tls: &TlsSettings) -> Result<Self, VaultError> {
        Self::build(addr, tls, true)
    }

    /// A client that opens a new connection for every request. Through a TCP load balancer a
    /// kept-alive connection stays with the server it was opened to: a watcher of "who is
    /// active behind this endpoint" must not reuse one (after a step-down it would keep
    /// asking the old leader).
    pub fn unpooled(addr: &str, tls: &TlsSettings) -> Result<Self, VaultError> {
        Self::build(addr, tls, false)
    }

    fn build(addr: &str, tls: &TlsSettings, pooled: bool) -> Result<Self, VaultError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60));
        if !pooled {
            b = b.pool_max_idle_per_host(0);
        }
        if let Some(pem) = &tls.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| VaultError::Settings(e.to_string()))?;
            b = b.add_root_certificate(ca);
        }
        // Unseal shares, the init response and tokens must never pass through an HTTP proxy
        // in clear: plain HTTP and loopback go direct; over HTTPS a proxy only sees a tunnel.
        if !proxy_allowed(addr) {
            b = b.no_proxy();
        }
        let mut base = addr.trim_end_matches('/').to_string();
        if let Some(name) = &tls.server_name {
            // Verify the certificate for `name` while connecting to the address given.
            let url = reqwest::Url::parse(addr).map_err(|e| VaultError::Settings(e.to_string()))?;
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(8200);
            let ip: std::net::IpAddr = host.parse().map_err(|_| {
                VaultError::Settings(format!("server_name needs an IP address, not {host}"))
            })?;
            b = b.resolve(name, std::net::SocketAddr::new(ip, port));
            base = format!("{}://{name}:{port}", url.scheme());
        }
        Ok(Client {
            http: b.build().map_err(|e| VaultError::Settings(e.to_string()))?,
            addr: base,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The certificate (DER) the server at `addr` presents now, on a new connection, after
    /// verifying it against `tls`'s CA.
    pub async fn served_certificate(addr: &str, tls: &TlsSettings) -> Result<Vec<u8>, VaultError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .no_proxy();
        if let Some(pem) = &tls.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|e| VaultError::Settings(e.to_string()))?;
            b = b.add_root_certificate(ca);
        }
        let http = b.build().map_err(|e| VaultError::Settings(e.to_string()))?;
        let url = format!("{}/v1/sys/health", addr.trim_end_matches('/'));
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|source| VaultError::Unreachable {
                addr: addr.to_string(),
                source,
            })?;
        resp.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| VaultError::Decode {
                addr: addr.to_string(),
                what: "TLS handshake".into(),
                detail: "no server certificate (is TLS on?)".into(),
            })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr)
    }

    /// A request to `path` carrying `token`.
    fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-Vault-Token", token.expose())
    }

    /// Sends one request and logs it: method, API path, status, duration. Never a body, a
    /// header or a query string: tokens travel in headers, unseal keys in bodies.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, VaultError> {
        let unreachable = |source| VaultError::Unreachable {
            addr: self.addr.clone(),
            source,
        };
        let (http, req) = req.build_split();
        let req = req.map_err(unreachable)?;
        let (method, path) = (req.method().clone(), req.url().path().to_string());
        let sent = std::time::Instant::now();
        let result = http.execute(req).await;
        let ms = sent.elapsed().as_millis() as u64;
        let addr = self.addr.as_str();
        match &result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                tracing::debug!(addr, %method, path, status, ms, "vault call");
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connection"
                } else {
                    "request"
                };
                tracing::debug!(addr, %method, path, ms, error, "vault call failed");
            }
        }
        result.map_err(unreachable)
    }

    /// Sends and expects a 2xx; decodes the body as `T` (unit for empty bodies).
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, VaultError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| VaultError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        if !(200..300).contains(&status) {
            return Err(self.api_error(what, status, &bytes));
        }
        let body: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(body).map_err(|e| VaultError::Decode {
            addr: self.addr.clone(),
            what: what.to_string(),
            detail: e.to_string(),
        })
    }

    /// A non-2xx answer: the server's `errors`, or the start of the body when it has none.
    fn api_error(&self, what: &str, status: u16, bytes: &[u8]) -> VaultError {
        let errors = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .map(|e| e.to_string())
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(200).collect());
        VaultError::Api {
            addr: self.addr.clone(),
            what: what.to_string(),
            status,
            errors,
        }
    }

    /// Sends and expects a 2xx, whatever the body (some answer with warnings).
    async fn call_unit(&self, what: &str, req: reqwest::RequestBuilder) -> Result<(), VaultError> {
        let _: Value = self.call(what, req).await?;
        Ok(())
    }

    /// Health, whatever the code: 200, 429, 472-474, 501, 503 and 530 all carry a body.
    pub async fn health(&self) -> Result<Health, VaultError> {
        // Polled while servers start and fail over: a short timeout of its own.
        let req = self
            .http
            .get(self.url("sys/health"))
            .timeout(Duration::from_secs(2));
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let mut h: Health = resp.json().await.map_err(|e| VaultError::Decode {
            addr: self.addr.clone(),
            what: "health".into(),
            detail: e.to_string(),
        })?;
        h.status = status;
        Ok(h)
    }

    pub async fn seal_status(&self) -> Result<SealStatus, VaultError> {
        let req = self
            .http
            .get(self.url("sys/seal-status"))
            .timeout(Duration::from_secs(5));
        self.call("seal-status", req).await
    }

    pub async fn initialized(&self) -> Result<bool, VaultError> {
        let v: Value = self
            .call("init status", self.http.get(self.url("sys/init")))
            .await?;
        Ok(v.get("initialized")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// Initialises the server. The response body, which holds every share and the root token,
    /// is zeroed once the secrets are taken out of it.
    pub async fn init(&self, shares: u32, threshold: u32) -> Result<InitResponse, VaultError> {
        self.init_with(json!({"secret_shares": shares, "secret_threshold": threshold}))
            .await
    }

    /// Initialises a server whose seal unseals it by itself: the answer holds recovery keys
    /// (`recovery_keys_base64`) instead of unseal shares.
    pub async fn init_recovery(
        &self,
        shares: u32,
        threshold: u32,
    ) -> Result<InitResponse, VaultError> {
        self.init_with(json!({"recovery_shares": shares, "recovery_threshold": threshold}))
            .await
    }

    async fn init_with(&self, body: Value) -> Result<InitResponse, VaultError> {
        let req = self.http.put(self.url("sys/init")).json(&body);
        self.call_secret("init", req).await
    }

    /// Submits one unseal share; the request body holding it is zeroed when sent.
    pub async fn unseal(&self, key: &Secret) -> Result<SealStatus, VaultError> {
        #[derive(serde::Serialize)]
        struct Share<'a> {
            key: &'a str,
        }
        let mut body = Zeroing(Vec::new());
        serde_json::to_writer(&mut body.0, &Share { key: key.expose() })
            .map_err(|e| VaultError::Settings(format!("encoding the unseal request: {e}")))?;
        let req = self
            .http
            .put(self.url("sys/unseal"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(reqwest::Body::from(bytes::Bytes::from_owner(body)));
        self.call("unseal", req).await
    }

    /// Discards the shares submitted so far.
    pub async fn unseal_reset(&self) -> Result<SealStatus, VaultError> {
        let body = json!({"reset": true});
        self.call(
            "unseal reset",
            self.http.put(self.url("sys/unseal")).json(&body),
        )
        .await
    }

    pub async fn leader(&self) -> Result<Leader, VaultError> {
        let req = self
            .http
            .get(self.url("sys/leader"))
            .timeout(Duration::from_secs(5));
        self.call("leader", req).await
    }

    /// Joins this server to the raft cluster led at `leader_api_addr`, verifying the leader's
    /// certificate against `leader_ca` (PEM) when TLS is on.
    pub async fn raft_join(
        &self,
        leader_api_addr: &str,
        leader_ca: Option<&str>,
    ) -> Result<bool, VaultError> {
        let mut body = json!({"leader_api_addr": leader_api_addr});
        if let Some(ca) = leader_ca {
            body["leader_ca_cert"] = json!(ca);
        }
        let v: Value = self
            .call(
                "raft join",
                self.http
                    .post(self.url("sys/storage/raft/join"))
                    .json(&body),
            )
            .await?;
        Ok(v.get("joined").and_then(Value::as_bool).unwrap_or(false))
    }

    pub async fn raft_configuration(&self, token: &Secret) -> Result<Vec<RaftServer>, VaultError> {
        let v: Value = self
            .call(
                "raft configuration",
                self.authed(
                    reqwest::Method::GET,
                    "sys/storage/raft/configuration",
                    token,
                ),
            )
            .await?;
        let servers = v
            .pointer("/data/config/servers")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(servers).map_err(|e| VaultError::Decode {
            addr: self.addr.clone(),
            what: "raft configuration".into(),
            detail: e.to_string(),
        })
    }

    pub async fn remove_peer(&self, token: &Secret, server_id: &str) -> Result<(), VaultError> {
        let body = json!({"server_id": server_id});
        self.call_unit(
            "remove peer",
            self.authed(reqwest::Method::POST, "sys/storage/raft/remove-peer", token)
                .json(&body),
        )
        .await
    }

    pub async fn step_down(&self, token: &Secret) -> Result<(), VaultError> {
        self.call_unit(
            "step-down",
            self.authed(reqwest::Method::PUT, "sys/step-down", token),
        )
        .await
    }

    /// Sets autopilot's server stabilization time (joined members become voters sooner).
    pub async fn autopilot_stabilization(
        &self,
        token: &Secret,
        seconds: u32,
    ) -> Result<(), VaultError> {
        let body = json!({"server_stabilization_time": format!("{seconds}s")});
        self.call_unit(
            "autopilot configuration",
            self.authed(
                reqwest::Method::POST,
                "sys/storage/raft/autopilot/configuration",
                token,
            )
            .json(&body),
        )
        .await
    }

    pub async fn snapshot_save(&self, token: &Secret) -> Result<Vec<u8>, VaultError> {
        let resp = self
            .send(self.authed(reqwest::Method::GET, "sys/storage/raft/snapshot", token))
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| VaultError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        if status != 200 {
            return Err(VaultError::Api {
                addr: self.addr.clone(),
                what: "snapshot".into(),
                status,
                errors: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
        }
        Ok(bytes.to_vec())
    }

    /// Restores a snapshot; `force` for one taken from another cluster.
    pub async fn snapshot_restore(
        &self,
        token: &Secret,
        snapshot: Vec<u8>,
        force: bool,
    ) -> Result<(), VaultError> {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        self.call_unit(
            "snapshot restore",
            self.authed(reqwest::Method::POST, path, token)
                .body(snapshot),
        )
        .await
    }

    /// Mounted secrets engines, by path (`kv/` -> `kv`).
    pub async fn mounts(&self, token: &Secret) -> Result<Value, VaultError> {
        self.call(
            "mounts",
            self.authed(reqwest::Method::GET, "sys/mounts", token),
        )
        .await
    }

    pub async fn enable_secrets_engine(
        &self,
        token: &Secret,
        path: &str,
        kind: &str,
        options: Value,
        config: Value,
    ) -> Result<(), VaultError> {
        let body = json!({"type": kind, "options": options, "config": config});
        self.call_unit(
            "enable secrets engine",
            self.authed(reqwest::Method::POST, &format!("sys/mounts/{path}"), token)
                .json(&body),
        )
        .await
    }

    pub async fn enable_auth(
        &self,
        token: &Secret,
        path: &str,
        kind: &str,
    ) -> Result<(), VaultError> {
        let body = json!({"type": kind});
        self.call_unit(
            "enable auth method",
            self.authed(reqwest::Method::POST, &format!("sys/auth/{path}"), token)
                .json(&body),
        )
        .await
    }

    pub async fn put_policy(
        &self,
        token: &Secret,
        name: &str,
        policy: &str,
    ) -> Result<(), VaultError> {
        let body = json!({"policy": policy});
        self.call_unit(
            "write policy",
            self.authed(
                reqwest::Method::PUT,
                &format!("sys/policies/acl/{name}"),
                token,
            )
            .json(&body),
        )
        .await
    }

    /// A generic authenticated write (`kv/data/x`, roles, ...).
    pub async fn write(
        &self,
        token: &Secret,
        path: &str,
        body: Value,
    ) -> Result<Value, VaultError> {
        self.call(
            &format!("write {path}"),
            self.authed(reqwest::Method::POST, path, token).json(&body),
        )
        .await
    }

    /// A generic authenticated delete.
    pub async fn delete(&self, token: &Secret, path: &str) -> Result<(), VaultError> {
        // Some deletes answer with warnings: any body is fine.
        let _: Value = self
            .call(
                &format!("delete {path}"),
                self.authed(reqwest::Method::DELETE, path, token),
            )
            .await?;
        Ok(())
    }

    pub async fn read(&self, token: &Secret, path: &str) -> Result<Value, VaultError> {
        self.call(
            &format!("read {path}"),
            self.authed(reqwest::Method::GET, path, token),
        )
        .await
    }

    /// `auth/token/create` with `token`: a new token, whose answer (it holds the new token)
    /// is zeroed once the token is taken out of it.
    pub async fn create_token(
        &self,
        token: &Secret,
        request: &TokenRequest,
    ) -> Result<CreatedToken, VaultError> {
        let req = self
            .authed(reqwest::Method::POST, "auth/token/create", token)
            .json(request);
        self.call_auth("token create", req).await
    }

    /// `auth/token/create-orphan`: a periodic token with `policies` that outlives `token`
    /// and lives as long as it is renewed within `period` (for a seal to hold).
    pub async fn create_periodic_orphan(
        &self,
        token: &Secret,
        policies: &[&str],
        period: &str,
        display_name: &str,
    ) -> Result<CreatedToken, VaultError> {
        let body = json!({
            "policies": policies,
            "period": period,
            "renewable": true,
            "display_name": display_name,
        });
        let req = self
            .authed(reqwest::Method::POST, "auth/token/create-orphan", token)
            .json(&body);
        self.call_auth("token create-orphan", req).await
    }

    /// An AppRole login at `auth/<mount>/login`; the secret ID goes in a body zeroed when sent.
    pub async fn approle_login(
        &self,
        mount: &str,
        role_id: &str,
        secret_id: &Secret,
    ) -> Result<CreatedToken, VaultError> {
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let body = zeroing_json(&Login {
            role_id,
            secret_id: secret_id.expose(),
        })?;
        let req = self
            .http
            .post(self.url(&format!("auth/{mount}/login")))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.call_auth("approle login", req).await
    }

    /// Sends a request whose answer carries a secret, decodes it as `T`, and zeroes the
    /// answer's bytes.
    async fn call_secret<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, VaultError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| VaultError::Unreachable {
                addr: self.addr.clone(),
                source,
            })?;
        let parsed = if (200..300).contains(&status) {
            serde_json::from_slice::<T>(&bytes).map_err(|e| VaultError::Decode {
                addr: self.addr.clone(),
                what: what.into(),
                detail: e.to_string(),
            })
        } else {
            Err(self.api_error(what, status, &bytes))
        };
        zero(bytes);
        parsed
    }

    /// Sends a request whose answer carries a new token in `auth`, zeroing the answer once
    /// the token is taken out of it.
    async fn call_auth(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<CreatedToken, VaultError> {
        #[derive(Deserialize)]
        struct Answer {
            auth: CreatedToken,
        }
        self.call_secret::<Answer>(what, req).await.map(|a| a.auth)
    }

    /// `sys/generate-root-token/attempt` (OpenBao 2.6+, authenticated): the attempt in progress.
    pub async fn generate_root_status(&self, token: &Secret) -> Result<GenerateRoot, VaultError> {
        let req = self.authed(
            reqwest::Method::GET,
            "sys/generate-root-token/attempt",
            token,
        );
        self.call_generate_root("generate-root status", req).await
    }

    /// Starts a root token generation; the answer holds the one-time password that encodes
    /// the result.
    pub async fn generate_root_start(&self, token: &Secret) -> Result<GenerateRoot, VaultError> {
        let req = self
            .authed(
                reqwest::Method::PUT,
                "sys/generate-root-token/attempt",
                token,
            )
            .json(&json!({}));
        self.call_generate_root("generate-root start", req).await
    }

    /// Cancels the root token generation in progress.
    pub async fn generate_root_cancel(&self, token: &Secret) -> Result<(), VaultError> {
        self.call_unit(
            "generate-root cancel",
            self.authed(
                reqwest::Method::DELETE,
                "sys/generate-root-token/attempt",
                token,
            ),
        )
        .await
    }

    /// Submits one key share to the generation `nonce`; the body holding it is zeroed when
    /// sent. The last share's answer holds the encoded token.
    pub async fn generate_root_update(
        &self,
        token: &Secret,
        key: &Secret,
        nonce: &str,
    ) -> Result<GenerateRoot, VaultError> {
        #[derive(serde::Serialize)]
        struct Update<'a> {
            key: &'a str,
            nonce: &'a str,
        }
        let body = zeroing_json(&Update {
            key: key.expose(),
            nonce,
        })?;
        let req = self
            .authed(
                reqwest::Method::PUT,
                "sys/generate-root-token/update",
                token,
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.call_generate_root("generate-root update", req).await
    }

    async fn call_generate_root(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<GenerateRoot, VaultError> {
        #[derive(Deserialize)]
        struct Answer {
            data: GenerateRoot,
        }
        self.call_secret::<Answer>(what, req).await.map(|a| a.data)
    }

    /// `auth/token/lookup-self`: what the server knows of `token` (a 403 when it is invalid).
    pub async fn lookup_self(&self, token: &Secret) -> Result<Value, VaultError> {
        self.read(token, "auth/token/lookup-self").await
    }

    /// `auth/token/revoke-self`: `token` (and its children) stop working.
    pub async fn revoke_self(&self, token: &Secret) -> Result<(), VaultError> {
        self.call_unit(
            "token revoke-self",
            self.authed(reqwest::Method::POST, "auth/token/revoke-self", token),
        )
        .await
    }
}

/// Whether requests to `addr` may use the system's HTTP proxy (`HTTPS_PROXY`, ...): only over
/// HTTPS to a host that is not loopback. Anything else would hand secrets to the proxy in clear.
pub fn proxy_allowed(addr: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(addr) else {
        return false;
    };
    let host = url.host_str().unwrap_or("localhost");
    let loopback = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost" || host.ends_with(".localhost"),
    };
    url.scheme() == "https" && !loopback
}

/// `value` as a JSON request body that is zeroed once sent (it carries a secret).
fn zeroing_json(value: &impl serde::Serialize) -> Result<reqwest::Body, VaultError> {
    let mut body = Zeroing(Vec::new());
    serde_json::to_writer(&mut body.0, value)
        .map_err(|e| VaultError::Settings(format!("encoding a request: {e}")))?;
    Ok(reqwest::Body::from(bytes::Bytes::from_owner(body)))
}

/// Bytes that are zeroed when dropped: the body of a request that carries a secret, owned by
/// the request until it is sent.
struct Zeroing(Vec<u8>);

impl AsRef<[u8]> for Zeroing {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Zeroing {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Zeroes a response body that held secrets, when nothing else shares its buffer.
fn zero(bytes: bytes::Bytes) {
    if let Ok(mut owned) = bytes.try_into_mut() {
        zeroize::Zeroize::zeroize(owned.as_mut());
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::proxy_allowed;

    #[test]
    fn secrets_never_go_through_a_proxy_in_clear() {
        assert!(!proxy_allowed("http://127.0.10.1:8200"));
        assert!(!proxy_allowed("http://vault.example.com:8200"));
        assert!(!proxy_allowed("https://127.0.0.1:8200"));
        assert!(!proxy_allowed("https://localhost:8200"));
        assert!(proxy_allowed("https://vault.example.com:8200"));
        assert!(!proxy_allowed("not a url"));
    }
}
