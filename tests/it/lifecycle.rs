//! Waits paced by AWS's lifecycles, end to end: `scripts/faultproxy --lifecycles` gives moto's
//! EKS clusters, node groups and load balancers their CREATING / DELETING / provisioning time
//! (at 1/100 of AWS's), and vaultform, told the same scale, waits each one out.

use crate::support::testbed::{FaultProxy, Moto};
use crate::support::{aws_command, root, stderr};

const SCALE: &str = "0.01";

fn count(counts: &serde_json::Value, group: &str, key: &str) -> u64 {
    counts[group][key].as_u64().unwrap_or(0)
}

fn lags(counts: &serde_json::Value, key: &str) -> usize {
    counts["lags"][key].as_array().map_or(0, Vec::len)
}

#[test]
fn apply_and_destroy_wait_out_aws_lifecycles_at_the_time_scale() {
    let moto = Moto::start();
    let proxy = FaultProxy::start_with(
        &moto.endpoint(),
        &["--fail-rate", "0", "--lifecycles", "--time-scale", SCALE],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(root().join("topologies/local.kdl"), d.join("local.kdl")).unwrap();
    let run = |args: &[&str]| {
        aws_command(d, &proxy.endpoint(), args)
            .env("VAULTFORM_AWS_TIME_SCALE", SCALE)
            .output()
            .expect("run vaultform")
    };
    // One region's cluster, node group and load balancer (and what they stand on).
    let out = run(&[
        "apply",
        "local.kdl",
        "--auto-approve",
        "--target",
        "region.eu-west-1.cluster.bv-eu-west-1.node-pool.pool1",
        "--target",
        "region.eu-west-1.load-balancer.bv-eu-west-1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts: serde_json::Value = serde_json::from_str(&proxy.counts()).unwrap();
    for lifecycle in [
        "eks-cluster/create",
        "eks-nodegroup/create",
        "load-balancer/create",
    ] {
        assert_eq!(count(&counts, "lifecycles", lifecycle), 1, "{counts}");
        // A describe came after the lifecycle's end: the wait lasted until it was over.
        assert_eq!(lags(&counts, lifecycle), 1, "{counts}");
    }
    // A 6-second create polled at 1/100 of the pace of a 10-minute one: about 26 describes
    // (at AWS's pace, unscaled, it would have been 2 or 3), and never more than 40.
    let clusters = count(&counts, "describes", "eks-cluster");
    assert!((15..=40).contains(&clusters), "{counts}");

    let out = run(&["destroy", "local.kdl", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let counts: serde_json::Value = serde_json::from_str(&proxy.counts()).unwrap();
    for lifecycle in ["eks-cluster/delete", "eks-nodegroup/delete"] {
        assert_eq!(count(&counts, "lifecycles", lifecycle), 1, "{counts}");
        assert_eq!(lags(&counts, lifecycle), 1, "{counts}");
    }
}

#[test]
fn a_time_scale_that_is_not_a_share_of_aws_time_stops_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(root().join("topologies/local.kdl"), d.join("local.kdl")).unwrap();
    for bad in ["fast", "0", "20"] {
        let out = aws_command(d, "http://127.0.0.1:9", &["plan", "local.kdl"])
            .env("VAULTFORM_AWS_TIME_SCALE", bad)
            .output()
            .expect("run vaultform");
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "VAULTFORM_AWS_TIME_SCALE=\"{bad}\" is not a time scale"
            )),
            "{err}"
        );
        assert!(err.contains("vaultform::time_scale"), "{err}");
    }
}
