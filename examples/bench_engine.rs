//! Benchmark: the engine's makespan on a random DAG of 1,000 operations with simulated
//! durations (a paused tokio clock), against the DAG's critical path, beside a walk of the
//! same DAG with a fixed parallelism of 10 (Terraform's default).
//!
//!     cargo run --release --example bench_engine [-- OPERATIONS [SEED]]

use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use vaultform::engine::walk::boxed;
use vaultform::engine::{Limits, Operation, Walk};

const SERVICES: [&str; 8] = [
    "ec2",
    "eks",
    "kms",
    "s3",
    "iam",
    "elasticloadbalancing",
    "sts",
    "vault",
];
const REGIONS: [&str; 4] = ["eu-central-1", "eu-west-1", "eu-north-1", "us-east-1"];

struct Dag {
    deps: Vec<Vec<usize>>,
    secs: Vec<u64>,
}

/// Operations in topological order; each depends on up to 3 of the 100 before it.
fn random_dag(n: usize, seed: u64) -> Dag {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut deps = Vec::with_capacity(n);
    let mut secs = Vec::with_capacity(n);
    for i in 0..n {
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
    Dag { deps, secs }
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(42);
    let dag = random_dag(n, seed);
    let edges: usize = dag.deps.iter().map(Vec::len).sum();
    let cp = critical_path(&dag);

    // The engine: a synthetic kind spread over services and regions, 10 at once per pool.
    let engine_ops: Vec<Operation> = (0..n)
        .map(|i| Operation {
            address: format!("synthetic.{i}"),
            service: SERVICES[i % SERVICES.len()].to_string(),
            region: Some(REGIONS[(i / SERVICES.len()) % REGIONS.len()].to_string()),
            deps: dag.deps[i].clone(),
        })
        .collect();
    let engine = makespan(&dag, engine_ops, Limits::default());

    // A fixed parallelism of 10 for the whole walk, as Terraform does.
    let fixed_ops: Vec<Operation> = (0..n)
        .map(|i| Operation {
            address: format!("synthetic.{i}"),
            service: "all".into(),
            region: None,
            deps: dag.deps[i].clone(),
        })
        .collect();
    let fixed = makespan(
        &dag,
        fixed_ops,
        Limits {
            default: 10,
            ..Limits::default()
        },
    );

    let pct = |d: Duration| (d.as_secs_f64() / cp as f64 - 1.0) * 100.0;
    let out = format!(
        "{n} operations, {edges} edges, seed {seed}\n\
         critical path:          {cp} s\n\
         engine makespan:        {:.0} s ({:+.2}% of the critical path)\n\
         fixed parallelism 10:   {:.0} s ({:+.2}%)\n",
        engine.as_secs_f64(),
        pct(engine),
        fixed.as_secs_f64(),
        pct(fixed),
    );
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
