//! `Policy::set_rate` and `Policy::pause` through the real module: a new rate keeps the
//! bucket's tokens and holds until the next configure; a pause counts no failure; bad values
//! are refused by name.

mod common;

use std::time::Duration;

use common::{real_module, runtime};
use pacer::Decision;
use pacer_host::{HostError, Policy, ScriptedEnvironment};

const CONFIG: &str = r#"{"limiters":[{"name":"a","tokens_per_hour":3600,"burst":4,"initial":1}],"jitter":{"strategy":"none"},"backoff":{"failure_threshold":1}}"#;

fn policy() -> (Policy, ScriptedEnvironment) {
    let runtime = runtime();
    let module = real_module(&runtime);
    let environment = ScriptedEnvironment::new();
    environment.update(|s| s.now_ns = 1_000_000_000_000);
    let mut policy = Policy::new(&module, Box::new(environment.clone())).expect("instance");
    policy.configure(CONFIG).expect("config");
    (policy, environment)
}

#[test]
fn a_new_rate_keeps_the_tokens_and_paces_at_the_new_rate() {
    let (mut policy, environment) = policy();
    assert_eq!(policy.try_acquire(0, 1).expect("ok"), Decision::Admit);
    policy.set_rate(0, 7200.0).expect("2 a second");
    assert_eq!(
        policy.available_milli(0).expect("ok"),
        3000,
        "3 tokens kept"
    );
    for _ in 0..3 {
        assert_eq!(policy.try_acquire(0, 1).expect("ok"), Decision::Admit);
    }
    assert_eq!(
        policy.try_acquire(0, 1).expect("ok"),
        Decision::Wait(500_000_000)
    );
    // A configure ends it: one configured interval again.
    policy.configure(CONFIG).expect("config");
    assert_eq!(
        policy.try_acquire(0, 1).expect("ok"),
        Decision::Wait(1_000_000_000)
    );
    environment.update(|s| s.now_ns += 1_000_000_000);
    assert_eq!(policy.try_acquire(0, 1).expect("ok"), Decision::Admit);
}

#[test]
fn bad_rates_are_refused_by_name_and_change_nothing() {
    let (mut policy, _) = policy();
    for rate in [0.0, -1.0, f64::NAN, 3.7e12] {
        match policy.set_rate(0, rate) {
            Err(HostError::Policy { message, .. }) => {
                assert!(
                    message.contains("micro_tokens_per_hour"),
                    "{rate}: {message}"
                )
            }
            other => panic!("{rate}: {other:?}"),
        }
    }
    assert!(matches!(
        policy.set_rate(3, 60.0),
        Err(HostError::Policy { code: -3, .. })
    ));
    assert_eq!(policy.available_milli(0).expect("ok"), 4000);
}

#[test]
fn a_shared_pause_waits_without_counting_a_failure() {
    let (mut policy, environment) = policy();
    policy.pause(0, Duration::from_secs(5)).expect("pause");
    assert_eq!(
        policy.try_acquire(0, 1).expect("ok"),
        Decision::Wait(5_000_000_000)
    );
    // A failure threshold of 1 would have opened the circuit on one failure.
    assert_eq!(policy.retry_in(0).expect("ok"), 0);
    environment.update(|s| s.now_ns += 5_000_000_000);
    assert_eq!(policy.try_acquire(0, 1).expect("ok"), Decision::Admit);
}

#[test]
fn a_set_rate_survives_a_reload() {
    let (mut policy, _) = policy();
    policy.set_rate(0, 7200.0).expect("2 a second");
    let module = policy.module().clone();
    policy.reload(&module).expect("reload");
    for _ in 0..4 {
        assert_eq!(policy.try_acquire(0, 1).expect("ok"), Decision::Admit);
    }
    assert_eq!(
        policy.try_acquire(0, 1).expect("ok"),
        Decision::Wait(500_000_000)
    );
}
