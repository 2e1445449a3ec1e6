//! The end of an apply or destroy as a typed report, for people (rendered by `ui`) and
//! pipelines (one JSON object).

use std::collections::BTreeMap;

use serde::Serialize;

use super::OpResult;
use super::apply::Outcome;
use crate::plan::Action;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_started: usize,
    pub interrupted: bool,
    pub elapsed_ms: u64,
    pub api_calls: BTreeMap<String, u64>,
    pub failures: Vec<(String, String)>,
}

impl Summary {
    pub fn of(o: &Outcome, elapsed: std::time::Duration, api_calls: BTreeMap<String, u64>) -> Self {
        let count =
            |f: &dyn Fn(&OpResult) -> bool| o.report.results.iter().filter(|r| f(r)).count();
        Summary {
            event: "summary",
            created: o.count(Action::Create),
            updated: o.count(Action::Update),
            replaced: o.count(Action::Replace),
            deleted: o.count(Action::Delete),
            failed: count(&|r| matches!(r, OpResult::Failed(_))),
            skipped: count(&|r| matches!(r, OpResult::Skipped { .. })),
            not_started: count(&|r| matches!(r, OpResult::NotStarted)),
            interrupted: o.report.interrupted,
            elapsed_ms: elapsed.as_millis() as u64,
            api_calls,
            failures: o
                .failed()
                .into_iter()
                .map(|(c, e)| (c.address.to_string(), e.to_string()))
                .collect(),
        }
    }
}
