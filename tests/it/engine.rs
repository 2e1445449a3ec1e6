//! The engine's DAG walker, checked by the order of events rather than by a clock: starts
//! follow dependencies, limits hold per service and region, failures skip only dependents,
//! interruption starts nothing new.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vaultform::engine::walk::boxed;
use vaultform::engine::{Limits, OpResult, Operation, Walk, WalkReport};

fn op(address: &str, service: &str, deps: &[usize]) -> Operation {
    Operation {
        address: address.into(),
        service: service.into(),
        region: Some("eu-west-1".into()),
        deps: deps.to_vec(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Start(usize),
    End(usize),
}

/// Runs `ops`; an operation whose index is in `fail` fails. Returns the report and the log.
async fn simulate(ops: Vec<Operation>, fail: &[usize], limits: Limits) -> (WalkReport, Vec<Ev>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let fail = Arc::new(fail.to_vec());
    let report = Walk::new(ops, limits)
        .run(move |i| {
            let log = l2.clone();
            let fail = fail.clone();
            boxed(async move {
                log.lock().unwrap().push(Ev::Start(i));
                tokio::task::yield_now().await;
                log.lock().unwrap().push(Ev::End(i));
                if fail.contains(&i) {
                    Err(format!("op {i} failed"))
                } else {
                    Ok(())
                }
            })
        })
        .await;
    let log = log.lock().unwrap().clone();
    (report, log)
}

fn pos(log: &[Ev], e: Ev) -> usize {
    log.iter()
        .position(|x| *x == e)
        .unwrap_or_else(|| panic!("{e:?} not in {log:?}"))
}

#[tokio::test]
async fn every_operation_starts_after_all_its_dependencies_end() {
    let ops = vec![
        op("a", "kms", &[]),
        op("b", "s3", &[]),
        op("c", "kms", &[0]),
        op("d", "s3", &[1]),
        op("e", "eks", &[2, 1]),
    ];
    let deps: Vec<Vec<usize>> = ops.iter().map(|o| o.deps.clone()).collect();
    let (report, log) = simulate(ops, &[], Limits::default()).await;
    assert!(report.results.iter().all(|r| *r == OpResult::Done));
    for (i, ds) in deps.iter().enumerate() {
        for d in ds {
            assert!(pos(&log, Ev::End(*d)) < pos(&log, Ev::Start(i)), "{log:?}");
        }
    }
    // Independent roots start before either finishes: nothing waits for an unrelated branch.
    assert!(pos(&log, Ev::Start(1)) < pos(&log, Ev::End(0)), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_per_service_and_region_not_globally() {
    let mut ops: Vec<Operation> = (0..6).map(|i| op(&format!("k{i}"), "kms", &[])).collect();
    ops.extend((0..6).map(|i| op(&format!("b{i}"), "s3", &[])));
    let running = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let peak = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let both = Arc::new(AtomicUsize::new(0));
    let both_peak = Arc::new(AtomicUsize::new(0));
    let (r2, p2, b2, bp2) = (
        running.clone(),
        peak.clone(),
        both.clone(),
        both_peak.clone(),
    );
    let limits = Limits {
        default: 2,
        ..Limits::default()
    };
    let report = Walk::new(ops, limits)
        .run(move |i| {
            let (running, peak, both, both_peak) =
                (r2.clone(), p2.clone(), b2.clone(), bp2.clone());
            boxed(async move {
                let pool = i / 6;
                let now = running[pool].fetch_add(1, Ordering::SeqCst) + 1;
                peak[pool].fetch_max(now, Ordering::SeqCst);
                let all = both.fetch_add(1, Ordering::SeqCst) + 1;
                both_peak.fetch_max(all, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                running[pool].fetch_sub(1, Ordering::SeqCst);
                both.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        })
        .await;
    assert!(report.results.iter().all(|r| *r == OpResult::Done));
    assert!(peak[0].load(Ordering::SeqCst) <= 2 && peak[1].load(Ordering::SeqCst) <= 2);
    assert!(
        both_peak.load(Ordering::SeqCst) > 2,
        "the two pools run side by side"
    );
}

#[tokio::test]
async fn a_failure_skips_its_dependents_and_independent_branches_finish() {
    let ops = vec![
        op("bad", "kms", &[]),
        op("after-bad", "s3", &[0]),
        op("after-after", "s3", &[1]),
        op("good", "eks", &[]),
        op("after-good", "eks", &[3]),
    ];
    let (report, log) = simulate(ops, &[0], Limits::default()).await;
    assert_eq!(report.results[0], OpResult::Failed("op 0 failed".into()));
    assert_eq!(
        report.results[1],
        OpResult::Skipped {
            failed_dependency: "bad".into()
        }
    );
    assert_eq!(
        report.results[2],
        OpResult::Skipped {
            failed_dependency: "bad".into()
        }
    );
    assert_eq!(report.results[3], OpResult::Done);
    assert_eq!(report.results[4], OpResult::Done);
    assert!(!log.contains(&Ev::Start(1)) && !log.contains(&Ev::Start(2)));
    assert_eq!(report.failures().count(), 1);
}

#[tokio::test]
async fn an_interruption_starts_nothing_new_and_lets_in_flight_work_finish() {
    // a and long start; a's body asks to stop; long (in flight) finishes; b never starts.
    let ops = vec![
        op("a", "kms", &[]),
        op("b", "kms", &[0]),
        op("long", "s3", &[]),
    ];
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = Arc::new(tx);
    let long_started = Arc::new(tokio::sync::Notify::new());
    let report = Walk::new(ops, Limits::default())
        .stop_on(rx)
        .run(move |i| {
            let tx = tx.clone();
            let long_started = long_started.clone();
            boxed(async move {
                if i == 0 {
                    // Interrupt once `long` is really running.
                    long_started.notified().await;
                    let _ = tx.send(true);
                } else {
                    long_started.notify_one();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Ok(())
            })
        })
        .await;
    assert!(report.interrupted);
    assert_eq!(
        report.results,
        vec![OpResult::Done, OpResult::NotStarted, OpResult::Done]
    );
}

#[tokio::test]
async fn a_panicking_operation_is_a_failure_of_that_operation() {
    let ops = vec![op("boom", "kms", &[]), op("fine", "s3", &[])];
    let report = Walk::new(ops, Limits::default())
        .run(|i| {
            boxed(async move {
                if i == 0 {
                    panic!("boom")
                }
                Ok(())
            })
        })
        .await;
    assert!(matches!(report.results[0], OpResult::Failed(_)));
    assert_eq!(report.results[1], OpResult::Done);
}
