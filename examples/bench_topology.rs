//! Benchmark: parse + validate + graph of a generated topology with about 10,000 resources.
//!
//!     cargo run --release --example bench_topology [-- RESOURCES [ITERATIONS [PAUSE_MS]]]
//!     cargo run --release --example bench_topology -- --write FILE [RESOURCES]
//!
//! Prints the graph's node count and the min / median / max wall time over the iterations.
//! PAUSE_MS (default 0) sleeps between iterations, each then standing for one CLI invocation
//! on an otherwise idle process (caches and allocator no longer warm from the previous run).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

// The same allocator as the `vaultform` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A valid topology whose graph has roughly `target` nodes.
fn generate(target: usize) -> String {
    // Per region: 7 network nodes, then per unit a cluster + pool, a key + bucket and
    // a load balancer (5 nodes: LB, 2 target groups, 2 listeners) = 9 nodes.
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
    let per_region = target.div_ceil(regions.len());
    let units = per_region.saturating_sub(7) / 9;
    let mut s = String::from(
        "stack \"bench\"\n\ndefaults {\n    cluster version=\"1.31\"\n    node-pool instance-types=\"c5.large\" capacity=\"spot\" min=1 desired=1 max=3\n    key deletion-window=7\n}\n\n",
    );
    for (ri, r) in regions.iter().enumerate() {
        let _ = writeln!(
            s,
            "region \"{r}\" {{\n    network vpc-cidr=\"10.{ri}.0.0/16\" azs=3"
        );
        for u in 0..units {
            let _ = writeln!(
                s,
                "    cluster \"c{ri}-{u}\" {{\n        node-pool \"p\"\n    }}"
            );
            let _ = writeln!(s, "    key \"k{u}\" alias=\"alias/k{u}\"");
            let _ = writeln!(s, "    bucket \"bench-{ri}-{u}\" key=\"k{u}\"");
            let _ = writeln!(s, "    load-balancer \"lb{ri}-{u}\"");
        }
        s.push_str("}\n");
    }
    // Vault clusters spread over three regions each, referencing clusters, LBs and buckets.
    for v in 0..units.min(20) {
        let _ = writeln!(
            s,
            "vault \"v{v}\" {{\n    server \"bao\"\n    runtime \"kubernetes\""
        );
        for m in 0..3 {
            let ri = (v + m * 7) % regions.len();
            let _ = writeln!(
                s,
                "    member \"m{m}\" cluster=\"c{ri}-{v}\" load-balancer=\"lb{ri}-{v}\""
            );
        }
        let _ = writeln!(
            s,
            "    unseal-store {{\n        bucket \"bench-0-{v}\"\n        bucket \"bench-1-{v}\"\n    }}\n}}"
        );
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--write") {
        let path = args.get(1).expect("--write FILE");
        let target = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
        std::fs::write(path, generate(target)).expect("write");
        return;
    }
    let target: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let iterations: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let pause = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0));
    let text = generate(target);
    let mut times: Vec<Duration> = Vec::with_capacity(iterations);
    let mut nodes = 0;
    for _ in 0..iterations {
        std::thread::sleep(pause);
        let start = Instant::now();
        let loaded = vaultform::load("bench.kdl", text.as_str());
        let elapsed = start.elapsed();
        assert!(
            !loaded.has_errors(),
            "generated topology is valid: {:?}",
            loaded.problems.first()
        );
        nodes = loaded.graph.as_ref().map(|g| g.len()).unwrap_or(0);
        times.push(elapsed);
    }
    times.sort();
    let parse_start = Instant::now();
    let _ = kdl::KdlDocument::parse_v2(&text).expect("parses");
    let parse = parse_start.elapsed();
    let mut split: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            let _ = vaultform::topology::parse(&text, &mut Vec::new()).expect("parses");
            start.elapsed()
        })
        .collect();
    split.sort();
    let split = split[split.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let out = format!(
        "parse+validate+graph: {nodes} resources, {} KiB of KDL, {iterations} runs, {} ms pause: min {:.1} ms, median {:.1} ms, max {:.1} ms (KDL parsing: {:.1} ms on all cores, {:.1} ms on one)\n",
        text.len() / 1024,
        pause.as_millis(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        ms(split),
        ms(parse),
    );
    std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()).expect("stdout");
}
