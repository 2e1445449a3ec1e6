//! Raft snapshots of a running cluster: saved to a file readable by its owner only, restored
//! through the active member.

use std::path::Path;

use super::{Ops, OpsError, active_client, fail};
use crate::vault::spec::VaultSpec;

/// Saves a snapshot of `v` to `path` (mode 0600); returns its size in bytes.
pub async fn save(ops: &Ops, v: &VaultSpec, path: &Path) -> Result<usize, OpsError> {
    let token = ops.root_token(v).await?;
    let bytes = active_client(v)
        .await?
        .snapshot_save(&token)
        .await
        .map_err(|e| fail(e.to_string(), ""))?;
    crate::private::write(path, &bytes)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display()), ""))?;
    Ok(bytes.len())
}

/// Restores `v` from the snapshot `bytes` (`force`: one taken from another cluster).
pub async fn restore(
    ops: &Ops,
    v: &VaultSpec,
    bytes: Vec<u8>,
    force: bool,
) -> Result<(), OpsError> {
    let token = ops.root_token(v).await?;
    active_client(v)
        .await?
        .snapshot_restore(&token, bytes, force)
        .await
        .map_err(|e| {
            fail(
                e.to_string(),
                "a snapshot of another cluster needs --force (and that cluster's unseal keys)",
            )
        })
}
