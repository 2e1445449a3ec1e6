//! Waiting for AWS to reach a state, through the one poll loop (`retry`): never a fixed sleep,
//! polls paced by what is awaited (`lifecycle`), a deadline, and a clear error when it passes.

use std::time::Duration;

use crate::lifecycle::Lifecycle;
use crate::provider::OpError;
use crate::retry::{Backoff, TryPollError, try_poll, try_poll_paced};

/// Polls `check` until it returns `Some`, at the times of `lifecycle` (first at once, densest
/// around its typical completion); an error from `check` ends the wait.
pub async fn until<T, F, Fut>(
    lifecycle: Lifecycle,
    what: &str,
    timeout: Duration,
    check: F,
) -> Result<T, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, OpError>>,
{
    match try_poll_paced(lifecycle.pace(timeout), what, check).await {
        Ok(v) => Ok(v),
        Err(TryPollError::Failed(e)) => Err(e),
        Err(TryPollError::GaveUp(_)) => Err(OpError::fatal(format!(
            "timed out after {}s waiting for {what}",
            timeout.as_secs()
        ))),
    }
}

/// Looks for what an interrupted run may have created. A run killed mid-request can leave
/// that request in flight: it may land after the next run starts. So a resumed create that
/// finds nothing looks again (`Backoff::RESUME`: from 100 ms, for 3 s) before it creates.
pub async fn find_resumed<T, F, Fut>(resumed: bool, find: F) -> Result<Option<T>, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, OpError>>,
{
    let policy = if resumed {
        Backoff::RESUME
    } else {
        Backoff::RESUME.attempts(1)
    };
    match try_poll(policy, "what an interrupted run left", find).await {
        Ok(v) => Ok(Some(v)),
        Err(TryPollError::Failed(e)) => Err(e),
        Err(TryPollError::GaveUp(_)) => Ok(None),
    }
}
