//! How long AWS takes to take a resource through an operation, and when to look: each kind's
//! typical durations (the one table, which the plan's estimate uses too) and a poll schedule
//! built on them, sparse early, dense around the typical completion, backing off past it.
//! Pure; the time scale lets an emulator that runs AWS's lifecycles faster be polled alike.

use std::time::Duration;

use crate::graph::Kind;
use crate::retry;

/// Typical seconds of an operation on real AWS (and on the local runtime for its kinds).
pub fn typical(kind: Kind, operation: &str) -> f64 {
    let (create, update, delete) = match kind {
        Kind::Vpc => (3.0, 2.0, 3.0),
        Kind::Subnet | Kind::RouteTable | Kind::SecurityGroup => (2.0, 2.0, 3.0),
        Kind::InternetGateway => (3.0, 2.0, 5.0),
        Kind::ExistingNetwork => (1.0, 1.0, 0.0),
        Kind::IamRole => (3.0, 2.0, 3.0),
        // EKS: a control plane in 10-15 minutes, a version upgrade in about 25, node groups in
        // 3-5 (deletes of both take minutes too).
        Kind::EksCluster => (660.0, 1500.0, 360.0),
        Kind::EksNodeGroup => (240.0, 600.0, 300.0),
        Kind::KmsKey => (2.0, 1.0, 1.0),
        Kind::S3Bucket => (3.0, 2.0, 3.0),
        // A network load balancer provisions in 2-3 minutes.
        Kind::LoadBalancer => (180.0, 5.0, 60.0),
        Kind::TargetGroup | Kind::Listener => (2.0, 2.0, 2.0),
        Kind::OidcProvider | Kind::TargetAttachment => (2.0, 2.0, 2.0),
        Kind::AccessEntry => (3.0, 3.0, 3.0),
        // Nothing to create; a delete finds the volumes, deletes them and may wait for
        // detachments.
        Kind::KubeVolumes => (0.0, 0.0, 10.0),
        Kind::VaultCa | Kind::VaultCert => (1.0, 1.0, 1.0),
        Kind::LocalProxy | Kind::VaultMember => (2.0, 2.0, 1.0),
        Kind::VaultInit => (3.0, 3.0, 0.0),
        Kind::UnsealKeys => (1.0, 1.0, 1.0),
        Kind::VaultUnseal => (2.0, 2.0, 0.0),
        // Autopilot promotes a joined member after its stabilization time.
        Kind::RaftJoin | Kind::RaftVerify => (12.0, 12.0, 1.0),
        Kind::SecretsEngine
        | Kind::PkiRootCa
        | Kind::PkiRole
        | Kind::AuthMethod
        | Kind::AuthRole
        | Kind::VaultPolicy => (1.0, 1.0, 1.0),
        // The generate-root AppRole, one generation to prove it, the revoke.
        Kind::RevokeRoot => (2.0, 2.0, 0.0),
        // A server started, initialised, unsealed and given its transit key and token.
        Kind::SealTransit => (4.0, 4.0, 1.0),
        // A write to the Kubernetes API; deleting a namespace waits for what is in it.
        Kind::KubeObject => (1.0, 1.0, 5.0),
        // An add-on's pods scheduled and ready; its removal.
        Kind::EksAddon => (60.0, 30.0, 30.0),
    };
    match operation {
        "update" => update,
        "delete" => delete,
        _ => create,
    }
}

/// The usual range of each waited-for operation on AWS, in seconds: the durations the
/// schedule's targets are checked against (unit tests and `examples/bench_waits.rs`).
pub const AWS_RANGES: &[(Kind, &str, f64, f64)] = &[
    (Kind::EksCluster, "create", 600.0, 900.0),
    (Kind::EksCluster, "delete", 300.0, 600.0),
    (Kind::EksNodeGroup, "create", 180.0, 300.0),
    (Kind::EksNodeGroup, "delete", 180.0, 300.0),
    (Kind::LoadBalancer, "create", 120.0, 180.0),
    (Kind::LoadBalancer, "delete", 0.0, 60.0),
];

/// The environment variable that sets the [`TimeScale`].
pub const TIME_SCALE_ENV: &str = "VAULTFORM_AWS_TIME_SCALE";

/// How long the AWS endpoint takes over a lifecycle, as a share of AWS's own durations: 1 for
/// AWS, 0.05 for an emulator that runs them 20 times faster (tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(f64);

/// A time scale that is not a number in (0, 1].
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
#[error("{TIME_SCALE_ENV}={value:?} is not a time scale")]
#[diagnostic(
    code(vaultform::time_scale),
    help(
        "a number above 0 and at most 1: the share of AWS's durations the AWS endpoint takes \
         (0.05 for an emulator running AWS's lifecycles 20 times faster); unset it for AWS"
    )
)]
pub struct TimeScaleError {
    pub value: String,
}

impl TimeScale {
    /// AWS itself.
    pub const REAL: TimeScale = TimeScale(1.0);

    pub fn parse(text: &str) -> Result<TimeScale, TimeScaleError> {
        match text.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(TimeScale(f)),
            _ => Err(TimeScaleError {
                value: text.to_string(),
            }),
        }
    }

    /// From [`TIME_SCALE_ENV`]; unset or empty is AWS's own time.
    pub fn from_env() -> Result<TimeScale, TimeScaleError> {
        match std::env::var(TIME_SCALE_ENV) {
            Ok(v) if !v.trim().is_empty() => TimeScale::parse(&v),
            _ => Ok(TimeScale::REAL),
        }
    }

    pub fn factor(self) -> f64 {
        self.0
    }
}

/// The lag allowed anywhere, in seconds of AWS's time: a poll at least this often. 9 s, not
/// the target's 10 s, leaves a second for the describe call itself.
const FLOOR: f64 = 9.0;
/// The dense window, as shares of the typical duration: completion is expected inside it.
const DENSE_FROM: f64 = 0.5;
const DENSE_UNTIL: f64 = 2.0;
/// The gap inside the window, as a share of the time waited: 4.5%, not the target's 5%, for
/// the same reason as [`FLOOR`].
const DENSE_SHARE: f64 = 0.045;
/// Before the window: half the time waited, at most a minute.
const EARLY_SHARE: f64 = 0.5;
const EARLY_MAX: f64 = 60.0;
/// Past the window: a tenth of the time waited, at most two minutes (or the window's gap).
const LATE_SHARE: f64 = 0.1;
const LATE_MAX: f64 = 120.0;

/// When to look at a resource that one operation takes through its lifecycle: the first poll
/// at once (an adopted resource may be done already), then sparse polls until half the
/// typical duration, a poll every 4.5% of the time waited (at least every 9 s) until twice
/// it, then backing off. At AWS's durations a completion inside the window is noticed within
/// max(5% of its duration, 10 s), and a 15-minute EKS create costs 35 polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifecycle {
    /// The typical duration on AWS, in seconds.
    typical: f64,
    scale: f64,
}

impl Lifecycle {
    pub fn new(kind: Kind, operation: &str, scale: TimeScale) -> Lifecycle {
        Lifecycle::expecting(typical(kind, operation), scale)
    }

    /// A lifecycle that typically takes `seconds` on AWS.
    pub fn expecting(seconds: f64, scale: TimeScale) -> Lifecycle {
        Lifecycle {
            typical: seconds.max(0.0),
            scale: scale.factor(),
        }
    }

    /// The typical duration at this scale.
    pub fn typical(&self) -> Duration {
        Duration::from_secs_f64(self.typical * self.scale)
    }

    /// The poll after one `at` after the wait began (both at this scale).
    pub fn next_poll(&self, at: Duration) -> Duration {
        let t = at.as_secs_f64() / self.scale;
        let next = next_poll_real(self.typical, t);
        Duration::from_secs_f64(next * self.scale).max(at + Duration::from_nanos(1))
    }

    /// Every poll, as the time since the wait began: 0 first; endless.
    pub fn polls(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(Duration::ZERO), move |at| Some(self.next_poll(*at)))
    }

    /// The pace of one wait that gives up `deadline` after it began.
    pub fn pace(self, deadline: Duration) -> Pace {
        Pace {
            lifecycle: self,
            deadline,
            at: Duration::ZERO,
            polls: 0,
        }
    }
}

/// The poll after one at `t` seconds into a lifecycle typically `typical` seconds long, in
/// AWS's time.
fn next_poll_real(typical: f64, t: f64) -> f64 {
    let (from, until) = (DENSE_FROM * typical, DENSE_UNTIL * typical);
    let dense = (DENSE_SHARE * t).max(FLOOR);
    if t < from {
        (t + (EARLY_SHARE * t).clamp(FLOOR, EARLY_MAX)).min(from)
    } else if t < until {
        t + dense
    } else {
        t + dense.max((LATE_SHARE * t).min(LATE_MAX))
    }
}

/// One wait on a [`Lifecycle`]: polls at its times, skipping those a slow poll overran, and
/// one last poll at the deadline.
#[derive(Debug, Clone)]
pub struct Pace {
    lifecycle: Lifecycle,
    deadline: Duration,
    /// The time of the last poll scheduled.
    at: Duration,
    polls: u32,
}

impl retry::Pace for Pace {
    fn next_wait(&mut self, elapsed: Duration) -> Option<Duration> {
        self.polls += 1;
        if elapsed >= self.deadline {
            return None;
        }
        while self.at <= elapsed {
            self.at = self.lifecycle.next_poll(self.at);
        }
        Some((self.at - elapsed).min(self.deadline - elapsed))
    }

    fn polls(&self) -> u32 {
        self.polls
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use tokio::time::Instant;

    use super::*;
    use crate::retry::{Pace as _, TryPollError, try_poll_paced};

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Polls and lag of a wait on `lifecycle` for something done `done` after it began, on a
    /// paused clock, each poll taking no time.
    async fn wait_for(lifecycle: Lifecycle, done: Duration) -> (u32, Duration) {
        let start = Instant::now();
        let polls = Cell::new(0);
        let r: Result<(), TryPollError<()>> =
            try_poll_paced(lifecycle.pace(secs(3600.0)), "x", || {
                polls.set(polls.get() + 1);
                let ready = start.elapsed() >= done;
                async move { Ok(ready.then_some(())) }
            })
            .await;
        r.unwrap();
        (polls.get(), start.elapsed() - done)
    }

    #[tokio::test(start_paused = true)]
    async fn at_aws_durations_each_wait_notices_completion_within_5_percent_or_10_s() {
        for &(kind, op, shortest, longest) in AWS_RANGES {
            let lifecycle = Lifecycle::new(kind, op, TimeScale::REAL);
            for i in 0..=200 {
                let done = secs(shortest + (longest - shortest) * i as f64 / 200.0);
                let (polls, lag) = wait_for(lifecycle, done).await;
                let allowed = secs((0.05 * done.as_secs_f64()).max(10.0));
                assert!(lag <= allowed, "{kind}/{op} done at {done:?}: {lag:?} late");
                assert!(polls <= 40, "{kind}/{op} done at {done:?}: {polls} polls");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_15_minute_eks_create_costs_at_most_40_describe_calls() {
        let lifecycle = Lifecycle::new(Kind::EksCluster, "create", TimeScale::REAL);
        let (polls, lag) = wait_for(lifecycle, secs(900.0)).await;
        assert_eq!(polls, 35);
        assert!(lag <= secs(45.0), "{lag:?}");
    }

    #[test]
    fn polls_are_sparse_early_dense_around_the_typical_time_and_back_off_past_it() {
        let lifecycle = Lifecycle::new(Kind::EksCluster, "create", TimeScale::REAL);
        let polls: Vec<f64> = lifecycle
            .polls()
            .take_while(|p| *p < secs(2400.0))
            .map(|p| p.as_secs_f64())
            .collect();
        assert_eq!(&polls[..5], [0.0, 9.0, 18.0, 27.0, 40.5]);
        let gaps: Vec<(f64, f64)> = polls.windows(2).map(|w| (w[0], w[1] - w[0])).collect();
        let (early, rest): (Vec<_>, Vec<_>) = gaps.iter().partition(|(t, _)| *t < 330.0);
        let (dense, late): (Vec<_>, Vec<_>) = rest.iter().partition(|(t, _)| *t < 1320.0);
        // Early: 11 polls in the first 5.5 minutes, none more than a minute apart.
        assert_eq!(early.len(), 11);
        assert!(early.iter().all(|(_, g)| *g <= 60.0));
        // Around 11 minutes: every 4.5% of the time waited, at least every 9 s.
        assert!(dense.iter().all(|(t, g)| *g <= (0.045 * t).max(9.0) + 1e-9));
        // Past 22 minutes, until the 40-minute timeout: two minutes apart.
        assert!(
            late.iter().all(|(_, g)| (*g - 120.0).abs() < 1e-9),
            "{late:?}"
        );
        assert!(polls.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn a_time_scale_scales_every_poll() {
        let real = Lifecycle::new(Kind::EksNodeGroup, "create", TimeScale::REAL);
        let fast = Lifecycle::new(
            Kind::EksNodeGroup,
            "create",
            TimeScale::parse("0.05").unwrap(),
        );
        assert_eq!(fast.typical(), secs(12.0));
        for (r, f) in real.polls().zip(fast.polls()).take(60) {
            assert!(
                (r.as_secs_f64() * 0.05 - f.as_secs_f64()).abs() < 1e-6,
                "{r:?} {f:?}"
            );
        }
    }

    #[test]
    fn a_time_scale_is_a_share_of_aws_time() {
        assert_eq!(TimeScale::parse("0.05").map(TimeScale::factor), Ok(0.05));
        assert_eq!(TimeScale::parse(" 1 ").map(TimeScale::factor), Ok(1.0));
        for bad in ["0", "-0.5", "1.5", "fast", "NaN", "inf", ""] {
            let e = TimeScale::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("VAULTFORM_AWS_TIME_SCALE={bad:?} is not a time scale")
            );
        }
    }

    #[test]
    fn a_slow_poll_skips_the_times_it_overran_and_the_last_poll_is_at_the_deadline() {
        let lifecycle = Lifecycle::new(Kind::LoadBalancer, "create", TimeScale::REAL);
        let mut pace = lifecycle.pace(secs(100.0));
        // Polls due at 0, 9, 18, 27, 40.5, ...: the first took 20 s, so 27 is next.
        assert_eq!(pace.next_wait(secs(20.0)), Some(secs(7.0)));
        assert_eq!(pace.next_wait(secs(27.0)), Some(secs(13.5)));
        // ..., 60.75, 90, 99, 108: the last one is cut to the deadline.
        assert_eq!(pace.next_wait(secs(95.0)), Some(secs(4.0)));
        assert_eq!(pace.next_wait(secs(99.0)), Some(secs(1.0)));
        assert_eq!(pace.next_wait(secs(100.0)), None);
        assert_eq!(pace.polls(), 5);
    }
}
