//! Waiting for AWS to reach a state: poll with exponential backoff and jitter, never a fixed
//! sleep, with a deadline and a clear error when it passes.

use std::time::Duration;

use rand::Rng;

use crate::provider::OpError;

/// Polls `check` until it returns `Some`, first at once, then backing off from 1 s to 30 s.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, OpError>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if started.elapsed() >= timeout {
            return Err(OpError::fatal(format!(
                "timed out after {}s waiting for {what}",
                timeout.as_secs()
            )));
        }
        let jittered = delay.mul_f64(rand::rng().random_range(0.5..=1.0));
        tokio::time::sleep(jittered).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Looks for what an interrupted run may have created. A run killed mid-request can leave
/// that request in flight: it may land after the next run starts. So a resumed create that
/// finds nothing looks again, backing off from 100 ms, for up to 3 s before it creates.
pub async fn find_resumed<T, F, Fut>(resumed: bool, mut find: F) -> Result<Option<T>, OpError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, OpError>>,
{
    if let Some(v) = find().await? {
        return Ok(Some(v));
    }
    if !resumed {
        return Ok(None);
    }
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    while started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(delay).await;
        if let Some(v) = find().await? {
            return Ok(Some(v));
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    Ok(None)
}
