//! One instance shared by many tokio tasks, and `acquire(..).await`: the bucket rule holds for
//! the moments tasks return, a dropped future hands its slot back where FIFO allows, and an
//! open circuit is waited out. Real clock, real timers.

mod common;

use std::time::{Duration, Instant};

use common::{real_module, runtime};
use pacer_host::{Policy, SharedPolicy, SystemEnvironment};

fn shared(config: &str) -> SharedPolicy {
    let runtime = runtime();
    let module = real_module(&runtime);
    let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect())).expect("instance");
    policy.configure(config).expect("config");
    SharedPolicy::new(policy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_share_one_bucket() {
    // 100 a second, an empty bucket of 2: the i-th return (from 1) comes no sooner than
    // i intervals after the start, whichever task it is.
    let policy = shared(
        r#"{"limiters":[{"name":"a","tokens_per_hour":360000,"burst":2,"initial":0}],"jitter":{"strategy":"none"}}"#,
    );
    let start = policy.lock().now_ns();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                let mut returned = Vec::new();
                for _ in 0..2 {
                    policy.acquire(0, 1).await.expect("acquire");
                    returned.push(policy.lock().now_ns());
                }
                returned
            })
        })
        .collect();
    let mut returns = Vec::new();
    for task in tasks {
        returns.extend(task.await.expect("task"));
    }
    returns.sort_unstable();
    let interval = 10_000_000;
    for (i, at) in returns.iter().enumerate() {
        let earliest = start + (i as i64 + 1) * interval;
        assert!(
            *at >= earliest,
            "return {} at +{} ns, before +{} ns",
            i + 1,
            at - start,
            earliest - start
        );
    }
    // And not far behind: 32 slots 10 ms apart take about 0.32 s.
    assert!(returns[31] - start < 2_000_000_000, "{returns:?}");
}

#[tokio::test]
async fn a_dropped_acquire_hands_back_its_slot_when_it_is_the_newest() {
    // One a second, burst 1, full: the first acquire returns at once; the second sleeps ~1 s.
    let policy = shared(
        r#"{"limiters":[{"name":"a","tokens_per_hour":3600,"burst":1,"initial":1}],"jitter":{"strategy":"none"}}"#,
    );
    policy.acquire(0, 1).await.expect("first");
    let dropped = tokio::time::timeout(Duration::from_millis(50), policy.acquire(0, 1)).await;
    assert!(dropped.is_err(), "the second acquire was still waiting");
    // Its slot (due ~1 s after the first) was handed back: the next reservation gets it.
    let next = policy.lock().reserve(0, 1).expect("reserve");
    assert!(next <= 1_000_000_000, "the slot came back: {next} ns");

    // Two waiting; the older one is dropped: it is not the newest, so its tokens stay spent.
    let newer = policy.clone();
    let waiting = tokio::spawn(async move { newer.acquire(0, 1).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reserved = policy.lock().reserve(0, 1).expect("reserve");
    assert!(
        reserved > 2_000_000_000,
        "behind the spawned one: {reserved} ns"
    );
    waiting.abort();
    let _ = waiting.await;
    let after = policy.lock().reserve(0, 1).expect("reserve");
    assert!(
        after > 3_000_000_000,
        "the aborted slot stayed spent: {after} ns"
    );
}

#[tokio::test]
async fn acquire_waits_out_an_open_circuit() {
    // One failure opens the circuit for 300 ms; the failure's own backoff is 0.
    let policy = shared(
        r#"{"limiters":[{"name":"a","tokens_per_hour":3600000,"burst":10,"initial":1}],
            "jitter":{"strategy":"none"},
            "backoff":{"base_ms":0,"max_ms":0,"failure_threshold":1,"open_ms":300}}"#,
    );
    policy.acquire(0, 1).await.expect("first");
    policy.lock().on_response(0, 503, None).expect("feedback");
    let started = Instant::now();
    policy.acquire(0, 1).await.expect("the probe's slot");
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
