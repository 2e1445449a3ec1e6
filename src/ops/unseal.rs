//! `unseal`: every member of a cluster brought back as apply would (started again when it is
//! a stopped local process, unsealed from the store), then waited for until whole.

use std::time::{Duration, Instant};

use super::{Ops, OpsError};
use crate::vault::cluster::wait_until_whole;
use crate::vault::spec::VaultSpec;

/// What unsealing a cluster did.
#[derive(Debug)]
pub struct UnsealReport {
    /// Each member, and why it failed when it did.
    pub members: Vec<(String, Result<(), String>)>,
    /// Until one leader and every member a voter; `None` when a member failed.
    pub whole_after: Option<Duration>,
}

pub async fn unseal(ops: &Ops, v: &VaultSpec) -> Result<UnsealReport, OpsError> {
    let started = Instant::now();
    let results = futures::future::join_all(v.members.iter().map(|m| ops.revive(v, m))).await;
    let members: Vec<(String, Result<(), String>)> = v
        .members
        .iter()
        .zip(results)
        .map(|(m, r)| (m.name.clone(), r.map_err(|e| e.message)))
        .collect();
    if members.iter().any(|(_, r)| r.is_err()) {
        return Ok(UnsealReport {
            members,
            whole_after: None,
        });
    }
    // Unsealed is not yet serving: wait for the leader and every voter.
    let token = ops.root_token(v).await?;
    wait_until_whole(v, &token).await?;
    Ok(UnsealReport {
        members,
        whole_after: Some(started.elapsed()),
    })
}
