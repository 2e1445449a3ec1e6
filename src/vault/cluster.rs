//! Questions about a whole cluster rather than one step of its bootstrap: where to ask (the
//! front endpoint, then every member), the raft configuration, the first member with a given
//! health, and waiting until every member is a voter under one active leader. Every wait polls
//! with the Vault backoff.

use std::time::Duration;

use super::spec::VaultSpec;
use super::{Client, RaftServer, Secret, TlsSettings};
use crate::provider::OpError;
use crate::retry::{self, Backoff};

/// How long the cluster may take to promote every member to voter (autopilot).
const VOTERS_TIMEOUT: Duration = Duration::from_secs(180);

/// Polls `probe` with the Vault backoff (50 ms to 500 ms) until it yields a value, or fails
/// with the last reason after `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> Result<T, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    retry::poll(Backoff::VAULT_POLL.deadline(timeout), what, probe)
        .await
        .map_err(|e| {
            OpError::fatal(format!(
                "{what}: gave up after {}s: {}",
                timeout.as_secs(),
                e.last_reason.unwrap_or_default()
            ))
        })
}

/// The raft configuration as seen from the first of `urls` that answers: voters (sorted) and
/// the number of leaders.
pub async fn raft_view(
    tls: &TlsSettings,
    urls: &[String],
    token: &Secret,
) -> Result<(Vec<String>, usize), String> {
    let servers = raft_servers(tls, urls, token).await?;
    let mut voters: Vec<String> = servers
        .iter()
        .filter(|s| s.voter)
        .map(|s| s.node_id.clone())
        .collect();
    voters.sort();
    let leaders = servers.iter().filter(|s| s.leader).count();
    Ok((voters, leaders))
}

/// The raft configuration from the first of `urls` that answers.
pub async fn raft_servers(
    tls: &TlsSettings,
    urls: &[String],
    token: &Secret,
) -> Result<Vec<RaftServer>, String> {
    let mut why = String::from("no address to ask");
    for url in urls {
        let Ok(c) = Client::new(url, tls) else {
            continue;
        };
        match c.raft_configuration(token).await {
            Ok(servers) => return Ok(servers),
            Err(e) => why = e.to_string(),
        }
    }
    Err(why)
}

/// The first of `urls` whose health code `accept` takes (200 active, 429 standby, ...).
pub async fn first_with_health(
    tls: &TlsSettings,
    urls: &[String],
    accept: impl Fn(u16) -> bool,
) -> Option<Client> {
    for url in urls {
        let Ok(c) = Client::new(url, tls) else {
            continue;
        };
        if c.health().await.is_ok_and(|h| accept(h.status)) {
            return Some(c);
        }
    }
    None
}

/// Where to ask about the whole cluster: the front endpoint, then every member.
pub fn cluster_urls(v: &VaultSpec) -> Vec<String> {
    v.front_url()
        .into_iter()
        .chain(v.members.iter().map(|m| v.member_url(m)))
        .collect()
}

/// Waits (polling with backoff) until every member is a voter under one leader, and the leader
/// serves as the active node.
pub async fn wait_until_whole(v: &VaultSpec, token: &Secret) -> Result<(), OpError> {
    let urls = cluster_urls(v);
    let tls = v.client_tls();
    let member_urls: Vec<String> = v.members.iter().map(|m| v.member_url(m)).collect();
    let mut want: Vec<String> = v.members.iter().map(|m| m.name.clone()).collect();
    want.sort();
    poll(
        "waiting until every member is a voter under one active leader",
        VOTERS_TIMEOUT,
        || async {
            match raft_view(&tls, &urls, token).await {
                Ok((voters, 1)) if voters == want => {
                    first_with_health(&tls, &member_urls, |s| s == 200)
                        .await
                        .map(|_| ())
                        .ok_or_else(|| "no member is active yet".to_string())
                }
                Ok((voters, leaders)) => Err(format!(
                    "voters [{}], {leaders} leader(s)",
                    voters.join(", ")
                )),
                Err(e) => Err(e),
            }
        },
    )
    .await
}
