//! Responses, backoff and the circuit breaker, through the policy, with pinned edge cases.

use pacer::{Circuit, Config, Decision, LimiterConfig, MemoryReading, Policy, Schedule};

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
const T0: u64 = 1_000 * SECOND;

/// One limiter at 3600/h (burst 60), no jitter, threshold 3, open 10 s, backoff 1 s .. 8 s.
fn policy() -> Policy {
    let mut config = Config::new(vec![LimiterConfig::new("api", 3600.0)]);
    config.seed = Some(1);
    config.jitter.strategy = pacer::Strategy::None;
    config.backoff.failure_threshold = 3;
    config.backoff.open_ms = 10_000;
    config.backoff.max_ms = 8_000;
    Policy::new(config).expect("valid")
}

fn next_delay(policy: &mut Policy, now: u64) -> Schedule {
    policy
        .next_delay(now, MemoryReading::default(), 0, 1, 0)
        .expect("valid")
}

#[test]
fn retry_after_pauses_the_limiter_and_a_longer_pause_stays() {
    let mut policy = policy();
    policy
        .on_response(T0, 0, 429, Some(5 * SECOND))
        .expect("valid");
    assert_eq!(policy.try_acquire(T0, 0, 1), Ok(Decision::Wait(5 * SECOND)));
    policy.on_response(T0, 0, 503, Some(SECOND)).expect("valid");
    assert_eq!(
        policy.try_acquire(T0 + SECOND, 0, 1),
        Ok(Decision::Wait(4 * SECOND))
    );
    // A success does not end a pause in force.
    policy
        .on_response(T0 + SECOND, 0, 200, None)
        .expect("valid");
    assert_eq!(policy.reserve(T0 + SECOND, 0, 1), Ok(4 * SECOND));
}

#[test]
fn statuses_are_classified() {
    let mut policy = policy();
    for neutral in [100, 404, 418, 600, 999] {
        policy.on_response(T0, 0, neutral, None).expect("valid");
    }
    assert_eq!(policy.breaker(0).map(|b| b.failures()), Some(0));
    for failure in [0, 429, 500, 599] {
        policy.on_response(T0, 0, failure, Some(0)).expect("valid");
    }
    assert_eq!(policy.breaker(0).map(|b| b.failures()), Some(4));
    policy.on_response(T0, 0, 304, None).expect("valid");
    assert_eq!(policy.breaker(0).map(|b| b.failures()), Some(0));
    assert!(policy.on_response(T0, 0, 1000, None).is_err());
}

#[test]
fn backoff_grows_exponentially_with_full_jitter_and_is_capped() {
    for seed in 0..20 {
        let mut policy = policy();
        let mut config = policy.config().clone();
        config.seed = Some(seed);
        config.backoff.failure_threshold = 100;
        policy.reconfigure(config).expect("valid");
        let mut now = T0;
        for failures in 1..=8u32 {
            policy.on_response(now, 0, 503, None).expect("valid");
            let ceiling = (SECOND << (failures - 1)).min(8 * SECOND);
            let pause = policy.bucket(0).map(|b| b.paused_until()).unwrap_or(0) - now;
            assert!(
                pause <= ceiling,
                "pause {pause} above {ceiling} after {failures}"
            );
            now += 9 * SECOND; // past any pause, so each draw is seen alone
        }
    }
}

#[test]
fn the_circuit_opens_probes_and_closes() {
    let mut policy = policy();
    for _ in 0..3 {
        policy.on_response(T0, 0, 0, Some(0)).expect("valid");
    }
    assert_eq!(
        policy.breaker(0).map(|b| b.circuit()),
        Some(Circuit::Open {
            until: T0 + 10 * SECOND
        })
    );
    assert_eq!(
        next_delay(&mut policy, T0 + SECOND),
        Schedule::CircuitOpen {
            retry_in: 9 * SECOND
        }
    );
    assert_eq!(policy.retry_in(T0 + SECOND, 0), Ok(9 * SECOND));
    // Failures while open do not extend it.
    policy
        .on_response(T0 + 5 * SECOND, 0, 503, Some(0))
        .expect("valid");
    assert_eq!(policy.retry_in(T0 + 5 * SECOND, 0), Ok(5 * SECOND));

    // The first caller after open_ms is the probe; the rest wait for its answer, polling
    // every base_ms (1 s) rather than until its deadline (10 s).
    let probe_at = T0 + 10 * SECOND;
    assert_eq!(
        next_delay(&mut policy, probe_at),
        Schedule::Act { delay: 0 }
    );
    assert_eq!(
        next_delay(&mut policy, probe_at),
        Schedule::CircuitOpen { retry_in: SECOND }
    );
    assert_eq!(policy.retry_in(probe_at + 9_500 * MS, 0), Ok(500 * MS));
    // A success closes the circuit and resets the count.
    policy.on_response(probe_at, 0, 200, None).expect("valid");
    assert_eq!(policy.retry_in(probe_at, 0), Ok(0));
    assert!(matches!(
        next_delay(&mut policy, probe_at),
        Schedule::Act { .. }
    ));
    assert_eq!(policy.breaker(0).map(|b| b.failures()), Some(0));
}

#[test]
fn a_failed_probe_reopens_and_an_unanswered_one_is_replaced() {
    let mut policy = policy();
    for _ in 0..3 {
        policy.on_response(T0, 0, 503, Some(0)).expect("valid");
    }
    let probe_at = T0 + 10 * SECOND;
    assert_eq!(
        next_delay(&mut policy, probe_at),
        Schedule::Act { delay: 0 }
    );
    policy
        .on_response(probe_at + SECOND, 0, 503, Some(0))
        .expect("valid");
    assert_eq!(
        policy.retry_in(probe_at + SECOND, 0),
        Ok(10 * SECOND),
        "re-opened from the failure"
    );

    // The next probe gets a delay (a reserved slot in debt); its timeout counts from when it acts.
    let second_probe = probe_at + 11 * SECOND;
    for _ in 0..59 {
        let _ = policy.reserve(second_probe, 0, 1);
    }
    let Schedule::Act { delay } = next_delay(&mut policy, second_probe) else {
        panic!("the probe gets a slot")
    };
    assert!(delay > 0);
    let deadline = second_probe + delay + 10 * SECOND;
    assert_eq!(
        next_delay(&mut policy, deadline - 1),
        Schedule::CircuitOpen { retry_in: 1 }
    );
    assert!(
        matches!(next_delay(&mut policy, deadline), Schedule::Act { .. }),
        "a new probe"
    );
}
