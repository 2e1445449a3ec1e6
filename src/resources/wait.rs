//! Waiting for AWS to reach a state: poll with exponential backoff and jitter, never a fixed
//! sleep, with a deadline and a clear error when it passes.

use std::time::Duration;

use rand::Rng;

use super::OpError;

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
