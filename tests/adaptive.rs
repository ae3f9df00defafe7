//! Adaptive rates through the policy: growth only while successes come at the current rate.

use pacer::{AdaptiveConfig, Config, LimiterConfig, Policy};

const S: u64 = 1_000_000_000;

fn policy(burst: u32) -> Policy {
    let mut limiter = LimiterConfig::new("api", 36_000.0);
    limiter.burst = Some(burst);
    limiter.initial = 0.0;
    limiter.adaptive = Some(AdaptiveConfig {
        min_tokens_per_hour: 360.0,
        max_tokens_per_hour: 360_000.0,
        on_503: false,
    });
    let mut config = Config::new(vec![limiter]);
    config.seed = Some(1);
    Policy::new(config).expect("valid")
}

/// Successes every 0.1 s for a minute, each after taking the token that came: the rate grows.
#[test]
fn successes_at_the_ceiling_raise_the_rate() {
    let mut policy = policy(1);
    for i in 1..=600 {
        let now = i * S / 10;
        let _ = policy.try_acquire(now, 0, 1).expect("acquire");
        policy.on_response(now, 0, 200, None).expect("response");
    }
    let rate = policy.rate(0).expect("rate");
    assert!(rate > 36_000.0 * 1.5, "{rate}");
}

/// Slots reserved far ahead were granted at older rates: their successes say nothing of this
/// one, so the rate stays where it is however many come.
#[test]
fn successes_behind_a_deep_queue_do_not_raise_it() {
    let mut policy = policy(1);
    // 600 slots: 60 s of queue at 10/s; successes for the first 50 s, while it is deep.
    for _ in 0..600 {
        policy.reserve(0, 0, 1).expect("reserve");
    }
    for i in 1..=500 {
        policy
            .on_response(i * S / 10, 0, 200, None)
            .expect("response");
    }
    assert_eq!(policy.rate(0).expect("rate"), 36_000.0);
}

/// Nor do successes while the bucket has tokens to spare: the callers are not waiting on it.
#[test]
fn successes_with_tokens_to_spare_do_not_raise_it() {
    let mut policy = policy(10);
    for i in 1..=600 {
        policy
            .on_response(i * S / 10, 0, 200, None)
            .expect("response");
    }
    assert_eq!(policy.rate(0).expect("rate"), 36_000.0);
}

/// A 503 cuts only with `on_503`; a 429 always does, and never below the floor.
#[test]
fn a_503_cuts_only_when_configured_and_the_floor_holds() {
    let mut policy = policy(1);
    policy.on_response(S, 0, 503, Some(0)).expect("503");
    assert_eq!(policy.rate(0).expect("rate"), 36_000.0);
    let mut now = S;
    for _ in 0..100 {
        now += 10 * S;
        policy.on_response(now, 0, 429, Some(0)).expect("429");
    }
    assert_eq!(policy.rate(0).expect("rate"), 360.0);
}
