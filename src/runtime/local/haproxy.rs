//! HAProxy standing in for a load balancer on the local runtime: TCP frontends on the load
//! balancer's local address for the API and cluster ports, health-checking every member's
//! `/v1/sys/health` as the topology's health mode says (`unsealed`: 200 or 429; `active`:
//! 200 only, so that only the active node gets traffic). With TLS the checks speak HTTPS and
//! verify each member's certificate against the cluster's CA; traffic passes through as TCP,
//! so clients see the members' own certificates.

use std::fmt::Write as _;

use crate::topology::HealthMode;
use crate::vault::spec::ProxyConfig;

/// The HAProxy configuration file for `c`. Checks every 200 ms and switches on one result
/// (`fall 1 rise 1`): the fastest failover, as measured in REFERENCE.md.
pub fn render(c: &ProxyConfig) -> String {
    let expect = match c.health {
        HealthMode::Active => "http-check expect status 200",
        HealthMode::Unsealed => "http-check expect rstatus ^(200|429)$",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# vaultform: load balancer {} (health mode {:?})",
        c.name, c.health
    );
    out.push_str("global\n    log stderr format short local0 notice\n    maxconn 4096\n\n");
    out.push_str("defaults\n    mode tcp\n    log global\n    timeout connect 2s\n    timeout client 5m\n    timeout server 5m\n    timeout check 1s\n\n");
    for (port_name, port) in [("api", c.api_port), ("cluster", c.cluster_port)] {
        let _ = writeln!(
            out,
            "frontend {port_name}\n    bind {}:{port}\n    default_backend {port_name}\n",
            c.address
        );
        let _ = writeln!(
            out,
            "backend {port_name}\n    option httpchk GET /v1/sys/health\n    {expect}"
        );
        for b in &c.backends {
            let target = if port_name == "api" {
                b.api_port
            } else {
                b.cluster_port
            };
            // With TLS, the check speaks HTTPS and trusts only the cluster's CA, for the
            // member's own name.
            let tls = c
                .ca_file
                .as_ref()
                .map(|ca| {
                    format!(
                        " check-ssl verify required ca-file {} verifyhost {}",
                        ca.display(),
                        b.name
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    server {} {}:{target} check port {}{tls} inter 200ms fall 1 rise 1",
                b.name, b.address, b.api_port
            );
        }
        out.push('\n');
    }
    out
}

/// Which servers of the `api` backend HAProxy considers up, from its stats socket
/// (`show stat`, CSV): the load balancer's own view.
pub async fn api_servers_up(
    socket: &std::path::Path,
) -> std::io::Result<std::collections::BTreeMap<String, bool>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await?;
    s.write_all(b"show stat\n").await?;
    let mut text = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        s.read_to_string(&mut text),
    )
    .await
    .map_err(|_| std::io::Error::other("HAProxy stats socket timed out"))??;
    Ok(parse_stat(&text))
}

/// The `api` backend's servers and whether each is up, from `show stat` CSV.
pub fn parse_stat(csv: &str) -> std::collections::BTreeMap<String, bool> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(st)) = (col("pxname"), col("svname"), col("status")) else {
        return Default::default();
    };
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > st && f[px] == "api" && f[sv] != "FRONTEND" && f[sv] != "BACKEND")
        .map(|f| (f[sv].to_string(), f[st].starts_with("UP")))
        .collect()
}
