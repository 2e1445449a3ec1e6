//! One backoff policy for every retry and every wait: the delays between attempts, their
//! jitter, and when to stop; the poll loops, which also follow a [`Pace`] that knows what it
//! waits for (`lifecycle`).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// How a delay is spread so that many waiters do not wake in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Sleep exactly the delay.
    None,
    /// Sleep uniformly in `[0, delay]` ("full jitter").
    Full,
    /// Sleep uniformly in `[low, high] x delay`; build it with [`Jitter::between`].
    Between(f64, f64),
}

impl Jitter {
    /// Sleep uniformly in `[low, high] x delay`; needs `0 <= low <= high`.
    pub const fn between(low: f64, high: f64) -> Jitter {
        assert!(0.0 <= low && low <= high, "jitter needs 0 <= low <= high");
        Jitter::Between(low, high)
    }

    /// The sleep for a nominal `delay`.
    pub fn apply(self, delay: Duration, rng: &mut impl Rng) -> Duration {
        match self {
            Jitter::None => delay,
            Jitter::Full => rng.random_range(Duration::ZERO..=delay),
            Jitter::Between(low, high) => {
                let low = low.max(0.0);
                delay.mul_f64(rng.random_range(low..=high.max(low)))
            }
        }
    }
}

/// When to try again: delays growing from `initial` by `factor` up to `max`, with jitter, for at
/// most `attempts` tries and at most `deadline` since the first began. Without either limit it
/// goes on until success.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
    jitter: Jitter,
    attempts: Option<u32>,
    deadline: Option<Duration>,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl Backoff {
    /// An engine operation that failed retryably (after the SDK's own retries): 250 ms doubling
    /// to 10 s, full jitter; the caller sets the attempts.
    pub const OPERATION: Backoff = Backoff::exponential(ms(250), secs(10)).jitter(Jitter::Full);
    /// Waiting for AWS to reach a state: 1 s doubling to 30 s, each sleep 0.5 to 1 x the delay;
    /// the caller sets the deadline.
    pub const AWS_WAIT: Backoff =
        Backoff::exponential(secs(1), secs(30)).jitter(Jitter::between(0.5, 1.0));
    /// Looking again for what an interrupted run may have left in flight: 100 ms doubling to
    /// 1 s, for 3 s.
    pub const RESUME: Backoff = Backoff::exponential(ms(100), secs(1)).deadline(secs(3));
    /// Waiting for a Vault server during the bootstrap: 50 ms doubling to 500 ms; the caller
    /// sets the deadline.
    pub const VAULT_POLL: Backoff = Backoff::exponential(ms(50), ms(500));
    /// Waiting for a local process to serve: 20 ms doubling to 250 ms, for 60 s.
    pub const PROCESS_READY: Backoff = Backoff::exponential(ms(20), ms(250)).deadline(secs(60));
    /// A measurement: a probe every 20 ms, which is its resolution; the caller sets the deadline.
    pub const PROBE: Backoff = Backoff::fixed(ms(20));

    /// Delays doubling from `initial` up to `max`, no jitter, no limit.
    pub const fn exponential(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            factor: 2,
            jitter: Jitter::None,
            attempts: None,
            deadline: None,
        }
    }

    /// The same delay every time, no jitter, no limit.
    pub const fn fixed(delay: Duration) -> Backoff {
        Backoff::exponential(delay, delay).factor(1)
    }

    /// Each delay is the previous one times `factor` (1 keeps it fixed), up to the maximum.
    pub const fn factor(mut self, factor: u32) -> Backoff {
        self.factor = factor;
        self
    }

    pub const fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// At most `n` attempts in all (at least one is always made).
    pub const fn attempts(mut self, n: u32) -> Backoff {
        self.attempts = Some(n);
        self
    }

    /// Stop once `total` has passed since the first attempt began; the last sleep is cut short
    /// so that one more attempt happens at the deadline.
    pub const fn deadline(mut self, total: Duration) -> Backoff {
        self.deadline = Some(total);
        self
    }

    /// The nominal delays, before jitter and limits: endless.
    pub fn delays(&self) -> Delays {
        Delays {
            next: self.initial.min(self.max),
            max: self.max,
            factor: self.factor,
        }
    }

    /// A fresh schedule for one run of attempts.
    pub fn schedule(&self) -> Schedule {
        Schedule::with_rng(*self, SmallRng::from_rng(&mut rand::rng()))
    }
}

/// The nominal delays of a [`Backoff`]: `initial`, `initial x factor`, ... capped at `max`.
#[derive(Debug, Clone)]
pub struct Delays {
    next: Duration,
    max: Duration,
    factor: u32,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = d.saturating_mul(self.factor).min(self.max);
        Some(d)
    }
}

/// One run of attempts under a [`Backoff`]: pure, given its random source, so that it can be
/// tested without a clock.
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: Backoff,
    delays: Delays,
    attempts: u32,
    rng: SmallRng,
}

impl Schedule {
    /// A schedule whose jitter comes from `seed`: the same seed gives the same sleeps.
    pub fn seeded(policy: Backoff, seed: u64) -> Schedule {
        Schedule::with_rng(policy, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(policy: Backoff, rng: SmallRng) -> Schedule {
        Schedule {
            delays: policy.delays(),
            policy,
            attempts: 0,
            rng,
        }
    }

    /// Records a failed attempt that ended `elapsed` after the first began, and returns how
    /// long to sleep before the next, or `None` when the policy allows no more.
    pub fn next_wait(&mut self, elapsed: Duration) -> Option<Duration> {
        self.attempts += 1;
        if self.policy.attempts.is_some_and(|n| self.attempts >= n) {
            return None;
        }
        let wait = self.policy.jitter.apply(self.delays.next()?, &mut self.rng);
        match self.policy.deadline {
            Some(total) if elapsed >= total => None,
            Some(total) => Some(wait.min(total - elapsed)),
            None => Some(wait),
        }
    }

    /// Attempts recorded so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// When to poll again: a [`Schedule`] of a [`Backoff`], or a pace that knows what it waits for
/// (`lifecycle::Pace`). [`try_poll_paced`] follows any of them.
pub trait Pace {
    /// Records a poll that ended `elapsed` after the first began, and returns how long to
    /// sleep before the next, or `None` when no more are allowed.
    fn next_wait(&mut self, elapsed: Duration) -> Option<Duration>;
    /// Polls recorded so far.
    fn polls(&self) -> u32;
}

impl Pace for Schedule {
    fn next_wait(&mut self, elapsed: Duration) -> Option<Duration> {
        Schedule::next_wait(self, elapsed)
    }

    fn polls(&self) -> u32 {
        self.attempts
    }
}

/// Whether an error is worth another attempt.
pub trait Retryable {
    fn retryable(&self) -> bool;
}

/// Runs `op` until it succeeds, fails with an error that is not [`Retryable`], or `policy`
/// allows no more attempts; then returns the last error.
pub async fn retry<T, E, F, Fut>(policy: Backoff, mut op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut schedule = policy.schedule();
    loop {
        let e = match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.retryable() => return Err(e),
            Err(e) => e,
        };
        match schedule.next_wait(started.elapsed()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(e),
        }
    }
}

/// A wait that ended before what it waited for was ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "gave up waiting for {what} after {} ({polls} polls){}",
    seconds(.waited),
    because(.last_reason)
)]
pub struct PollError {
    /// What was awaited, e.g. `the load balancer to be active`.
    pub what: String,
    /// From the first poll until the last one ended.
    pub waited: Duration,
    pub polls: u32,
    /// Why the last poll was not ready, when the probe said.
    pub last_reason: Option<String>,
}

fn seconds(d: &Duration) -> String {
    let tenths = (d.as_millis() + 50) / 100;
    match tenths % 10 {
        0 => format!("{}s", tenths / 10),
        t => format!("{}.{t}s", tenths / 10),
    }
}

fn because(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// Polls `probe` at once and then after each delay of `policy` until it is ready (`Ok`); an
/// `Err` says why it is not ready yet. Gives up when the policy allows no more polls.
pub async fn poll<T, F, Fut>(policy: Backoff, what: &str, mut probe: F) -> Result<T, PollError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let outcome = poll_seen(policy.schedule(), what, || {
        let probed = probe();
        async move {
            match probed.await {
                Ok(v) => Seen::<T, Infallible>::Ready(v),
                Err(why) => Seen::NotYet(Some(why)),
            }
        }
    })
    .await;
    outcome.map_err(|e| match e {
        TryPollError::GaveUp(e) => e,
        TryPollError::Failed(never) => match never {},
    })
}

/// Why [`try_poll`] stopped without a value.
#[derive(Debug, thiserror::Error)]
pub enum TryPollError<E> {
    /// The probe failed for good.
    #[error(transparent)]
    Failed(E),
    #[error(transparent)]
    GaveUp(#[from] PollError),
}

/// Like [`poll`], for probes that can also fail for good: `Ok(Some)` is ready, `Ok(None)` not
/// yet, `Err` ends the wait at once.
pub async fn try_poll<T, E, F, Fut>(
    policy: Backoff,
    what: &str,
    probe: F,
) -> Result<T, TryPollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    try_poll_paced(policy.schedule(), what, probe).await
}

/// [`try_poll`] at the times `pace` gives.
pub async fn try_poll_paced<T, E, F, Fut>(
    pace: impl Pace,
    what: &str,
    mut probe: F,
) -> Result<T, TryPollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    poll_seen(pace, what, || {
        let probed = probe();
        async move {
            match probed.await {
                Ok(Some(v)) => Seen::Ready(v),
                Ok(None) => Seen::NotYet(None),
                Err(e) => Seen::Failed(e),
            }
        }
    })
    .await
}

/// What one poll saw.
enum Seen<T, E> {
    Ready(T),
    NotYet(Option<String>),
    Failed(E),
}

async fn poll_seen<T, E, F, Fut>(
    mut schedule: impl Pace,
    what: &str,
    mut probe: F,
) -> Result<T, TryPollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Seen<T, E>>,
{
    let started = Instant::now();
    loop {
        let last_reason = match probe().await {
            Seen::Ready(v) => return Ok(v),
            Seen::Failed(e) => return Err(TryPollError::Failed(e)),
            Seen::NotYet(why) => why,
        };
        match schedule.next_wait(started.elapsed()) {
            Some(wait) => tokio::time::sleep(wait).await,
            None => {
                return Err(TryPollError::GaveUp(PollError {
                    what: what.to_string(),
                    waited: started.elapsed(),
                    polls: schedule.polls(),
                    last_reason,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn nominal(policy: Backoff, n: usize) -> Vec<u64> {
        policy
            .delays()
            .take(n)
            .map(|d| d.as_millis() as u64)
            .collect()
    }

    /// The sleeps a schedule gives when every attempt takes no time.
    fn waits(policy: Backoff, seed: u64) -> Vec<Duration> {
        let mut s = Schedule::seeded(policy, seed);
        let mut elapsed = Duration::ZERO;
        let mut out = Vec::new();
        while let Some(w) = s.next_wait(elapsed) {
            elapsed += w;
            out.push(w);
            assert!(out.len() < 10_000, "{policy:?} never stops");
        }
        out
    }

    #[test]
    fn presets_have_todays_numbers() {
        assert_eq!(
            nominal(Backoff::OPERATION, 9),
            [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        assert_eq!(Backoff::OPERATION.jitter, Jitter::Full);
        assert_eq!(
            (Backoff::OPERATION.attempts, Backoff::OPERATION.deadline),
            (None, None)
        );

        assert_eq!(
            nominal(Backoff::AWS_WAIT, 7),
            [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
        );
        assert_eq!(Backoff::AWS_WAIT.jitter, Jitter::Between(0.5, 1.0));
        assert_eq!(Backoff::AWS_WAIT.deadline, None);

        assert_eq!(
            nominal(Backoff::RESUME, 6),
            [100, 200, 400, 800, 1000, 1000]
        );
        assert_eq!(Backoff::RESUME.deadline, Some(secs(3)));
        assert_eq!(Backoff::RESUME.jitter, Jitter::None);

        assert_eq!(
            nominal(Backoff::VAULT_POLL, 6),
            [50, 100, 200, 400, 500, 500]
        );
        assert_eq!(Backoff::VAULT_POLL.jitter, Jitter::None);
        assert_eq!(Backoff::VAULT_POLL.deadline, None);

        assert_eq!(
            nominal(Backoff::PROCESS_READY, 6),
            [20, 40, 80, 160, 250, 250]
        );
        assert_eq!(Backoff::PROCESS_READY.deadline, Some(secs(60)));
        assert_eq!(Backoff::PROCESS_READY.jitter, Jitter::None);

        assert_eq!(nominal(Backoff::PROBE, 4), [20, 20, 20, 20]);
        assert_eq!(Backoff::PROBE.jitter, Jitter::None);
    }

    #[test]
    fn builders_set_the_limits_and_keep_the_rest() {
        let p = Backoff::OPERATION.attempts(5).deadline(secs(7));
        assert_eq!((p.attempts, p.deadline), (Some(5), Some(secs(7))));
        assert_eq!(nominal(p, 3), nominal(Backoff::OPERATION, 3));
        assert_eq!(p.jitter, Jitter::Full);
    }

    #[test]
    fn resume_waits_until_its_deadline_and_the_last_sleep_is_cut_short() {
        // Polls at 0, 0.1, 0.3, 0.7, 1.5, 2.5 and, cut short, 3.0 s.
        assert_eq!(
            waits(Backoff::RESUME, 0),
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(500)]
        );
        assert_eq!(
            waits(Backoff::PROCESS_READY, 0).iter().sum::<Duration>(),
            secs(60)
        );
    }

    #[test]
    fn attempts_bound_the_schedule_and_at_least_one_is_made() {
        assert_eq!(
            waits(Backoff::VAULT_POLL.attempts(4), 0),
            [ms(50), ms(100), ms(200)]
        );
        assert!(waits(Backoff::VAULT_POLL.attempts(1), 0).is_empty());
        assert!(waits(Backoff::VAULT_POLL.attempts(0), 0).is_empty());
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_delay() {
        let policy = Backoff::OPERATION.attempts(9);
        let mut spread = false;
        for seed in 0..200 {
            let w = waits(policy, seed);
            assert_eq!(w.len(), 8);
            for (sleep, delay) in w.iter().zip(policy.delays()) {
                assert!(*sleep <= delay, "{sleep:?} > {delay:?}");
            }
            spread |= w[7] < ms(5000);
        }
        assert!(spread, "full jitter never slept below half the delay");
    }

    #[test]
    fn fractional_jitter_stays_within_half_and_the_whole_delay() {
        let policy = Backoff::AWS_WAIT.attempts(8);
        let (mut lowest, mut highest) = (f64::MAX, 0.0f64);
        for seed in 0..200 {
            for (sleep, delay) in waits(policy, seed).iter().zip(policy.delays()) {
                let f = sleep.as_secs_f64() / delay.as_secs_f64();
                assert!((0.5..=1.0).contains(&f), "{sleep:?} of {delay:?}");
                lowest = lowest.min(f);
                highest = highest.max(f);
            }
        }
        assert!(lowest < 0.55 && highest > 0.95, "{lowest}..{highest}");
    }

    #[test]
    fn the_same_seed_gives_the_same_sleeps() {
        let policy = Backoff::AWS_WAIT.attempts(6);
        assert_eq!(waits(policy, 7), waits(policy, 7));
        assert_ne!(waits(policy, 7), waits(policy, 8));
    }

    #[derive(Debug, PartialEq)]
    struct Failure {
        attempt: u32,
        retryable: bool,
    }

    impl Retryable for Failure {
        fn retryable(&self) -> bool {
            self.retryable
        }
    }

    /// An operation that fails retryably until attempt `ok_at` (never when 0).
    fn flaky(calls: &Cell<u32>, ok_at: u32) -> impl Future<Output = Result<u32, Failure>> {
        calls.set(calls.get() + 1);
        let attempt = calls.get();
        async move {
            if attempt == ok_at {
                Ok(attempt)
            } else {
                Err(Failure {
                    attempt,
                    retryable: true,
                })
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_the_attempt_limit_with_the_last_error() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let policy = Backoff::exponential(ms(100), secs(1)).attempts(4);
        let r = retry(policy, || flaky(&calls, 0)).await;
        assert_eq!(r.unwrap_err().attempt, 4);
        // Attempts at 0, 100, 300 and 700 ms.
        assert_eq!(start.elapsed(), ms(700));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_with_full_jitter_sleeps_at_most_the_delays() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let r = retry(Backoff::OPERATION.attempts(5), || flaky(&calls, 0)).await;
        assert_eq!(r.unwrap_err().attempt, 5);
        assert!(start.elapsed() <= ms(250 + 500 + 1000 + 2000));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_the_deadline_after_one_last_attempt_there() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let policy = Backoff::exponential(secs(1), secs(30)).deadline(secs(5));
        let r = retry(policy, || flaky(&calls, 0)).await;
        // Attempts at 0, 1, 3 and 5 s (the 4 s sleep cut to 2 s).
        assert_eq!(r.unwrap_err().attempt, 4);
        assert_eq!(start.elapsed(), secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_at_once_on_an_error_that_is_not_retryable() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let r: Result<(), Failure> = retry(Backoff::OPERATION.attempts(10), || {
            calls.set(calls.get() + 1);
            async {
                Err(Failure {
                    attempt: 1,
                    retryable: false,
                })
            }
        })
        .await;
        assert_eq!(
            r.unwrap_err(),
            Failure {
                attempt: 1,
                retryable: false
            }
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_the_first_success() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let policy = Backoff::exponential(ms(100), secs(1)).attempts(10);
        assert_eq!(retry(policy, || flaky(&calls, 3)).await, Ok(3));
        assert_eq!(start.elapsed(), ms(300));
    }

    /// A probe that is ready at poll `ready_at` (never when 0) and says why not before.
    fn probe(polls: &Cell<u32>, ready_at: u32) -> impl Future<Output = Result<u32, String>> {
        polls.set(polls.get() + 1);
        let n = polls.get();
        async move {
            if n == ready_at {
                Ok(n)
            } else {
                Err(format!("not yet at poll {n}"))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn poll_returns_as_soon_as_the_probe_is_ready() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let policy = Backoff::VAULT_POLL.deadline(secs(90));
        assert_eq!(poll(policy, "x", || probe(&polls, 3)).await, Ok(3));
        assert_eq!(start.elapsed(), ms(50 + 100));

        let start = Instant::now();
        let polls = Cell::new(0);
        assert_eq!(poll(policy, "x", || probe(&polls, 1)).await, Ok(1));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_gives_up_at_the_deadline_with_the_last_reason_and_the_polls() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let policy = Backoff::VAULT_POLL.deadline(secs(1));
        let e = poll(policy, "the server to answer", || probe(&polls, 0))
            .await
            .unwrap_err();
        // Polls at 0, 50, 150, 350, 750 and 1000 ms.
        assert_eq!(
            e,
            PollError {
                what: "the server to answer".into(),
                waited: secs(1),
                polls: 6,
                last_reason: Some("not yet at poll 6".into()),
            }
        );
        assert_eq!(start.elapsed(), secs(1));
        assert_eq!(
            e.to_string(),
            "gave up waiting for the server to answer after 1s (6 polls): not yet at poll 6"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_shorter_than_one_delay_still_polls_at_start_and_at_the_deadline() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let policy = Backoff::fixed(secs(10)).deadline(ms(300));
        let e = poll(policy, "x", || probe(&polls, 0)).await.unwrap_err();
        assert_eq!((e.polls, e.waited), (2, ms(300)));
        assert_eq!(start.elapsed(), ms(300));
        assert_eq!(
            e.to_string(),
            "gave up waiting for x after 0.3s (2 polls): not yet at poll 2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_polls_every_20_ms() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let policy = Backoff::PROBE.deadline(secs(120));
        assert_eq!(poll(policy, "x", || probe(&polls, 5)).await, Ok(5));
        assert_eq!(start.elapsed(), ms(80));

        let polls = Cell::new(0);
        let start = Instant::now();
        let e = poll(policy, "x", || probe(&polls, 0)).await.unwrap_err();
        assert_eq!((e.polls, e.waited), (6001, secs(120)));
        assert_eq!(start.elapsed(), secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn try_poll_ends_at_once_when_the_probe_fails_for_good() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let r: Result<(), _> = try_poll(Backoff::AWS_WAIT.deadline(secs(600)), "x", || {
            polls.set(polls.get() + 1);
            let n = polls.get();
            async move { if n < 3 { Ok(None) } else { Err("gone") } }
        })
        .await;
        assert!(matches!(r, Err(TryPollError::Failed("gone"))));
        // Two sleeps, each 0.5 to 1 x its delay (1 s, then 2 s).
        assert!((ms(500 + 1000)..=secs(1 + 2)).contains(&start.elapsed()));
    }

    #[tokio::test(start_paused = true)]
    async fn try_poll_gives_up_without_a_reason_and_returns_a_ready_value() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let r: Result<(), TryPollError<String>> = try_poll(Backoff::RESUME, "the copy", || {
            polls.set(polls.get() + 1);
            async { Ok(None) }
        })
        .await;
        let Err(TryPollError::GaveUp(e)) = r else {
            panic!("{r:?}")
        };
        // 0, 0.1, 0.3, 0.7, 1.5, 2.5 and 3 s.
        assert_eq!((e.polls, e.waited, &e.last_reason), (7, secs(3), &None));
        assert_eq!(start.elapsed(), secs(3));
        assert_eq!(
            e.to_string(),
            "gave up waiting for the copy after 3s (7 polls)"
        );

        let start = Instant::now();
        let r: Result<_, TryPollError<String>> =
            try_poll(Backoff::RESUME.attempts(1), "x", || async { Ok(Some(7)) }).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn one_attempt_polls_once_and_does_not_wait() {
        let start = Instant::now();
        let polls = Cell::new(0);
        let e = poll(Backoff::RESUME.attempts(1), "x", || probe(&polls, 0))
            .await
            .unwrap_err();
        assert_eq!((e.polls, e.waited), (1, Duration::ZERO));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn waits_read_in_seconds() {
        assert_eq!(seconds(&secs(90)), "90s");
        assert_eq!(seconds(&ms(300)), "0.3s");
        assert_eq!(seconds(&ms(120_340)), "120.3s");
        assert_eq!(seconds(&ms(2_960)), "3s");
    }
}
