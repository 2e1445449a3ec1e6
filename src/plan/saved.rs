//! A plan saved by `plan --out`, with the topology it was made from: `apply PLANFILE` applies
//! exactly it, or refuses it when the state moved on.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Plan;

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub plan: Plan,
    pub topology_path: String,
    pub topology: String,
}

impl SavedPlan {
    /// Reads `file` as a saved plan; `None` when it is not one (a topology file).
    pub fn read(file: &Path) -> Option<SavedPlan> {
        let text = std::fs::read_to_string(file).ok()?;
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(&text).ok()
    }

    /// The addresses the plan touches: only their kinds need to be supported.
    pub fn targets(&self) -> Vec<String> {
        self.plan
            .changes
            .iter()
            .map(|c| c.address.to_string())
            .collect()
    }
}
