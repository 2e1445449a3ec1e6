//! Benchmark: planning a 10,000-resource topology against a state of the same size, refresh
//! off: load + desired attributes + diff, and the peak memory (RSS) of the process.
//!
//!     cargo run --release --example bench_plan [-- RESOURCES [ITERATIONS]]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use vaultform::catalog::Catalog;
use vaultform::plan::{self, PlanOptions};
use vaultform::provider::Providers;
use vaultform::state::{ResourceState, State, Status};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keys and buckets (the kinds that plan today) spread over 20 regions.
fn generate(target: usize) -> String {
    let regions = [
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-north-1",
        "eu-south-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "ca-central-1",
        "sa-east-1",
        "ap-south-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "af-south-1",
        "me-south-1",
        "il-central-1",
    ];
    let per_region = target.div_ceil(regions.len() * 2);
    let mut s = String::from(
        "stack \"bench\"\n\ndefaults {\n    key deletion-window=7\n    bucket versioning=#true\n}\n",
    );
    for (ri, r) in regions.iter().enumerate() {
        let _ = writeln!(s, "\nregion \"{r}\" {{");
        for u in 0..per_region {
            let _ = writeln!(s, "    key \"k{u}\" alias=\"alias/k{u}\"");
            let _ = writeln!(s, "    bucket \"bench-{ri}-{u}\" key=\"k{u}\"");
        }
        s.push_str("}\n");
    }
    s
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The catalog of kinds with the topology's Vault clusters resolved, as a command builds it.
fn catalog_of(t: &vaultform::topology::Topology) -> Catalog {
    Catalog::new(std::sync::Arc::new(vaultform::vault::spec::specs(
        t,
        std::path::Path::new(""),
    )))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let target: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let iterations: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let text = generate(target);

    // A state recording every resource as created with the attributes it has now.
    let loaded = vaultform::load("bench.kdl", text.as_str());
    let (t, g) = loaded.valid().expect("generated topology is valid");
    let mut state = State::new("bench");
    let catalog = catalog_of(t);
    for d in catalog.desired(t, g) {
        state.resources.insert(
            d.address.clone(),
            ResourceState {
                address: d.address.clone(),
                kind: d.kind,
                region: d.region.clone(),
                status: Status::Ready,
                ids: BTreeMap::from([("name".into(), d.name.clone())]),
                attributes: d.attrs.clone(),
                outputs: BTreeMap::from([("arn".into(), format!("arn:aws:bench:::{}", d.name))]),
                dependencies: d.deps.clone(),
            },
        );
    }
    state.serial = 1;
    let count = state.resources.len();
    drop(loaded);

    let forces = |k| {
        catalog
            .provider(k)
            .map(|p| p.forces_replacement())
            .unwrap_or(&[])
    };
    let mut times: Vec<Duration> = Vec::new();
    let mut changes = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        let loaded = vaultform::load("bench.kdl", text.as_str());
        let (t, g) = loaded.valid().expect("valid");
        let desired = catalog_of(t).desired(t, g);
        let plan = plan::plan(
            &desired,
            &state,
            &HashMap::new(),
            &forces,
            &PlanOptions::default(),
        )
        .expect("plan");
        times.push(start.elapsed());
        changes = plan
            .changes
            .iter()
            .filter(|c| c.action != plan::Action::NoOp)
            .count();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let out = format!(
        "plan (refresh off): {count} resources in topology and state, {changes} changes, {iterations} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms; peak RSS {:.1} MiB\n",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        peak_rss_mib(),
    );
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
