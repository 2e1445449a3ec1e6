//! Benchmark: how a wait for an AWS lifecycle paces its describe calls, on a paused tokio clock
//! against a simulated lifecycle at AWS's real durations (`lifecycle::AWS_RANGES`), ending at
//! 201 points spread over each range. Per lifecycle: the polls (at the shortest and the
//! longest duration), and the lag from the end of the lifecycle to the poll that sees it (in
//! milliseconds of the clock the wait sees: mean, worst, and worst as a share of the target
//! max(5% of the duration, 10 s)), for the lifecycle's pace and for the 1 s -> 30 s backoff that
//! waited before (`Backoff::AWS_WAIT`, its jitter drawn from 20 seeds per point). Each poll
//! takes no time.
//!
//!     cargo run --example bench_waits

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;
use vaultform::lifecycle::{AWS_RANGES, Lifecycle, TimeScale};
use vaultform::retry::{Backoff, Pace, Schedule, TryPollError, try_poll_paced};

const SEEDS: u64 = 20;
const POINTS: usize = 200;

/// Polls and lag of one wait paced by `pace` for a lifecycle that ends `done` after it began.
fn wait(pace: impl Pace, done: Duration) -> (u32, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let polls = Cell::new(0);
        let r: Result<(), TryPollError<()>> = try_poll_paced(pace, "the lifecycle", || {
            polls.set(polls.get() + 1);
            let over = start.elapsed() >= done;
            async move { Ok(over.then_some(())) }
        })
        .await;
        r.expect("done within the deadline");
        (polls.get(), start.elapsed() - done)
    })
}

/// What the waits of one pace saw over a range: polls at its ends, mean and worst lag, and
/// the worst lag as a share of the target.
#[derive(Default)]
struct Seen {
    polls: (f64, f64),
    waits: u32,
    lag: Duration,
    worst: Duration,
    worst_share: f64,
}

impl Seen {
    fn add(&mut self, done: f64, point: usize, (polls, lag): (u32, Duration)) {
        let target = (0.05 * done).max(10.0);
        if point == 0 {
            self.polls.0 += f64::from(polls);
        }
        if point == POINTS {
            self.polls.1 += f64::from(polls);
        }
        self.waits += 1;
        self.lag += lag;
        self.worst = self.worst.max(lag);
        self.worst_share = self.worst_share.max(lag.as_secs_f64() / target);
    }

    fn row(&self, runs: f64) -> String {
        format!(
            "{:>4.1}-{:<4.1}  {:>12} {:>6} {:>7.0}%",
            self.polls.0 / runs,
            self.polls.1 / runs,
            (self.lag / self.waits).as_millis(),
            self.worst.as_millis(),
            self.worst_share * 100.0
        )
    }
}

fn main() {
    let began = std::time::Instant::now();
    let deadline = Duration::from_secs(3600);
    let columns = format!(
        "{:<9}  {:>12} {:>6} {:>8}",
        "polls", "lag ms mean", "worst", "%target"
    );
    let mut out = format!(
        "{:<33}{:<41}| old backoff (1 s -> 30 s)\n{:<22} {:<9} {columns}  | {columns}\n",
        "", "lifecycle pace", "lifecycle", "range s",
    );
    for &(kind, op, shortest, longest) in AWS_RANGES {
        let lifecycle = Lifecycle::new(kind, op, TimeScale::REAL);
        let (mut new, mut old) = (Seen::default(), Seen::default());
        for point in 0..=POINTS {
            let secs = shortest + (longest - shortest) * point as f64 / POINTS as f64;
            let done = Duration::from_secs_f64(secs);
            new.add(secs, point, wait(lifecycle.pace(deadline), done));
            for seed in 0..SEEDS {
                let pace = Schedule::seeded(Backoff::AWS_WAIT.deadline(deadline), seed);
                old.add(secs, point, wait(pace, done));
            }
        }
        out.push_str(&format!(
            "{:<22} {:>4.0}-{:<4.0} {}  | {}\n",
            format!("{kind}/{op}"),
            shortest,
            longest,
            new.row(1.0),
            old.row(SEEDS as f64),
        ));
    }
    out.push_str(&format!(
        "({} waits simulated in {} ms of real time)\n",
        AWS_RANGES.len() * (POINTS + 1) * (1 + SEEDS as usize),
        began.elapsed().as_millis()
    ));
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
