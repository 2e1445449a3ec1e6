//! Benchmark: the engine's makespan on random DAGs of operations with simulated durations (a
//! paused tokio clock), side by side on the same DAGs with an unlimited greedy walk (the
//! critical path: no walk can be faster) and a walk with a fixed parallelism of 10
//! (Terraform's default). The operations are a realistic mix, most of them EC2 in one region,
//! so that the engine's own limit (10 at once per service and region, its default) binds; the
//! lower bound under that limit (the critical path, or the busiest pool's work / 10 if longer)
//! is reported too. Several seeds.
//!
//!     cargo run --release --example bench_engine [-- OPERATIONS [FIRST-SEED [SEEDS]]]

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use vaultform::engine::walk::boxed;
use vaultform::engine::{Limits, Operation, Walk};

/// (share in percent, service, region): networks and security groups dominate a stack, and
/// most of a stack lives in its main region. IAM is global.
const MIX: [(u32, &str, Option<&str>); 8] = [
    (55, "ec2", Some("eu-west-1")),
    (10, "ec2", Some("eu-central-1")),
    (5, "ec2", Some("eu-north-1")),
    (10, "elasticloadbalancing", Some("eu-west-1")),
    (5, "eks", Some("eu-west-1")),
    (5, "kms", Some("eu-west-1")),
    (5, "s3", Some("eu-west-1")),
    (5, "iam", None),
];

struct Dag {
    deps: Vec<Vec<usize>>,
    secs: Vec<u64>,
    /// Index into `MIX`.
    pool: Vec<usize>,
}

/// Operations in topological order; each depends on up to 3 of the 100 before it.
fn random_dag(n: usize, seed: u64) -> Dag {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut deps = Vec::with_capacity(n);
    let mut secs = Vec::with_capacity(n);
    let mut pool = Vec::with_capacity(n);
    for i in 0..n {
        let mut draw = rng.random_range(0..100u32);
        let p = MIX
            .iter()
            .position(|(share, _, _)| {
                let hit = draw < *share;
                draw = draw.saturating_sub(*share);
                hit
            })
            .unwrap_or(0);
        pool.push(p);
        let k = if i == 0 {
            0
        } else {
            rng.random_range(0..=3usize)
        };
        let lo = i.saturating_sub(100);
        let mut d: Vec<usize> = (0..k).map(|_| rng.random_range(lo..i)).collect();
        d.sort();
        d.dedup();
        deps.push(d);
        // Seconds, like AWS operations: most short, some (clusters, node groups) long.
        let s = if rng.random_bool(0.05) {
            rng.random_range(300..=900)
        } else {
            rng.random_range(1..=60)
        };
        secs.push(s);
    }
    Dag { deps, secs, pool }
}

/// The busiest pool's total work divided by the engine's limit: with at most `limit` of a
/// pool's operations at once, no walk under that limit finishes sooner.
fn pool_bound(dag: &Dag, limit: u64) -> u64 {
    let mut work = vec![0u64; MIX.len()];
    for (i, p) in dag.pool.iter().enumerate() {
        work[*p] += dag.secs[i];
    }
    work.into_iter().max().unwrap_or(0).div_ceil(limit)
}

fn critical_path(dag: &Dag) -> u64 {
    let mut finish = vec![0u64; dag.secs.len()];
    for i in 0..dag.secs.len() {
        let start = dag.deps[i].iter().map(|d| finish[*d]).max().unwrap_or(0);
        finish[i] = start + dag.secs[i];
    }
    finish.into_iter().max().unwrap_or(0)
}

/// Simulated makespan of a walk, on a paused clock.
fn makespan(dag: &Dag, ops: Vec<Operation>, limits: Limits) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let secs = Arc::new(dag.secs.clone());
    rt.block_on(async move {
        let report = Walk::new(ops, limits)
            .run(move |i| {
                let secs = secs.clone();
                boxed(async move {
                    tokio::time::sleep(Duration::from_secs(secs[i])).await;
                    Ok(())
                })
            })
            .await;
        assert!(report.failures().next().is_none());
        report.elapsed
    })
}

fn walk(dag: &Dag, pooled: bool, limits: Limits) -> Duration {
    let ops: Vec<Operation> = (0..dag.secs.len())
        .map(|i| {
            let (_, service, region) = MIX[dag.pool[i]];
            Operation {
                address: format!("synthetic.{i}"),
                service: if pooled { service } else { "all" }.to_string(),
                region: if pooled {
                    region.map(str::to_owned)
                } else {
                    None
                },
                deps: dag.deps[i].clone(),
            }
        })
        .collect();
    makespan(dag, ops, limits)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let first: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let seeds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut out = format!(
        "{n} operations per DAG; engine: 10 at once per service and region (its default)\n\
         seed  edges  critical path  bound under the limit  engine             unlimited greedy  fixed 10\n"
    );
    for seed in first..first + seeds {
        let dag = random_dag(n, seed);
        let edges: usize = dag.deps.iter().map(Vec::len).sum();
        let cp = critical_path(&dag);
        let bound = cp.max(pool_bound(&dag, 10));
        let engine = walk(&dag, true, Limits::default());
        let greedy = walk(
            &dag,
            false,
            Limits {
                default: 1_000_000,
                ..Limits::default()
            },
        );
        let fixed = walk(
            &dag,
            false,
            Limits {
                default: 10,
                ..Limits::default()
            },
        );
        let pct = |d: Duration, of: u64| (d.as_secs_f64() / of as f64 - 1.0) * 100.0;
        out.push_str(&format!(
            "{seed:>4}  {edges:>5}  {cp:>11} s  {bound:>19} s  {:>6.0} s ({:+6.2}%)  {:>14.0} s  {:>6.0} s ({:+.2}% vs engine)\n",
            engine.as_secs_f64(),
            pct(engine, bound),
            greedy.as_secs_f64(),
            fixed.as_secs_f64(),
            (fixed.as_secs_f64() / engine.as_secs_f64() - 1.0) * 100.0,
        ));
    }
    out.push_str("engine: % above the bound under its limit; fixed 10: % slower than the engine\n");
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
