//! Benchmark: planning a 10,000-resource topology against a state of the same size, refresh
//! off, as `vaultform plan` does it: read the state file, load the topology (parse, validate,
//! graph), desired attributes, diff, and render the plan and its cost; the median of each phase
//! and the peak memory (RSS) of the process.
//!
//!     cargo run --release --example bench_plan [-- RESOURCES [ITERATIONS]]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use vaultform::catalog::Catalog;
use vaultform::plan::{self, PlanOptions};
use vaultform::state::local::LocalBackend;
use vaultform::state::{Backend, ResourceState, State, Status};

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = LocalBackend::new(dir.path().join("bench.state.json"));
    rt.block_on(backend.save(&state)).expect("save the state");
    let state_size = std::fs::metadata(backend.path()).map_or(0, |m| m.len());
    drop(state);
    let prices = vaultform::cost::Prices::load(None).expect("the built-in prices");
    let mut times: Vec<Duration> = Vec::new();
    // read state, load, desired, diff, render
    let mut phases: [Vec<Duration>; 5] = Default::default();
    let mut changes = 0;
    let mut rendered = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        let mut lap = start;
        let mut mark = |i: usize| {
            let now = Instant::now();
            phases[i].push(now - lap);
            lap = now;
        };
        let state = rt
            .block_on(backend.load())
            .expect("read the state")
            .expect("a state");
        mark(0);
        let loaded = vaultform::load("bench.kdl", text.as_str());
        let (t, g) = loaded.valid().expect("valid");
        mark(1);
        let desired = catalog_of(t).desired(t, g);
        mark(2);
        let plan = plan::plan(
            &desired,
            &state,
            &HashMap::new(),
            &catalog,
            &PlanOptions::default(),
        )
        .expect("plan");
        mark(3);
        let text = vaultform::ui::plan::human(&plan, false)
            + &vaultform::ui::cost::human(&vaultform::cost::of(&plan, &prices));
        mark(4);
        times.push(start.elapsed());
        rendered = text.len();
        changes = plan
            .changes
            .iter()
            .filter(|c| c.action != plan::Action::NoOp)
            .count();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        ms(v[v.len() / 2])
    };
    let [read, load, desired, diff, render] = &mut phases;
    let out = format!(
        "plan (refresh off): {count} resources in topology and state ({} KiB state file), {changes} changes, {} KiB rendered, {iterations} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms; peak RSS {:.1} MiB\n\
         phase medians: read state {:.1} ms, load topology {:.1} ms, desired {:.1} ms, diff {:.1} ms, render {:.1} ms\n",
        state_size / 1024,
        rendered / 1024,
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        peak_rss_mib(),
        median(read),
        median(load),
        median(desired),
        median(diff),
        median(render),
    );
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
