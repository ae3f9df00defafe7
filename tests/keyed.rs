//! Keyed limiters: one bucket per key, memory bounded, eviction never grants extra.

mod common;

use common::{assert_window_bound, interval_ns};
use pacer::{Decision, Error, KeyedLimiter, Quota};
use proptest::prelude::*;
use std::collections::HashMap;

const SECOND: u64 = 1_000_000_000;

fn per_second(burst: u32) -> Quota {
    Quota::per_hour(3600.0)
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota")
}

#[test]
fn keys_have_independent_buckets() {
    let mut keyed = KeyedLimiter::new(per_second(2), 10);
    assert_eq!(keyed.try_acquire(&"a", 0, 1), Ok(Decision::Admit));
    assert_eq!(keyed.try_acquire(&"a", 0, 1), Ok(Decision::Wait(SECOND)));
    assert_eq!(keyed.try_acquire(&"b", 0, 1), Ok(Decision::Admit));
    assert_eq!(keyed.len(), 2);
}

#[test]
fn idle_buckets_are_evicted_and_busy_ones_kept() {
    let mut keyed = KeyedLimiter::new(per_second(2), 10);
    let _ = keyed.try_acquire(&"busy", 0, 1);
    let _ = keyed.try_acquire(&"idle", 0, 1);
    let _ = keyed.reserve(&"busy", 0, 2);
    assert_eq!(keyed.evict_idle(SECOND), 0, "both still refilling at 1 s");
    assert_eq!(keyed.evict_idle(2 * SECOND), 1, "idle is full again at 2 s");
    assert!(keyed.get(&"busy").is_some());
    assert!(keyed.get(&"idle").is_none());
}

#[test]
fn a_new_key_at_the_bound_evicts_idle_buckets_or_is_refused() {
    // Burst 2, so a fresh bucket starts with one token.
    let mut keyed = KeyedLimiter::new(per_second(2), 2);
    let _ = keyed.try_acquire(&1, 0, 1);
    let _ = keyed.try_acquire(&2, 0, 1);
    assert_eq!(
        keyed.try_acquire(&3, 0, 1),
        Err(Error::KeyLimit { max_keys: 2 })
    );
    assert_eq!(keyed.len(), 2, "a refused key leaves no bucket behind");
    // After a second both buckets are full: the new key evicts them.
    assert_eq!(keyed.try_acquire(&3, 2 * SECOND, 1), Ok(Decision::Admit));
    assert_eq!(keyed.len(), 1);
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    #[test]
    fn keyed_eviction_grants_nothing_extra(
        burst in 1u32..8,
        max_keys in 1usize..4,
        steps in prop::collection::vec((0u8..5, 0.0f64..2.0, 1u32..8, any::<bool>()), 1..200),
    ) {
        let quota = per_second(burst);
        let interval = interval_ns(quota.tokens_per_hour());
        let mut keyed = KeyedLimiter::new(quota, max_keys);
        let mut now = 0u64;
        let mut grants: HashMap<u8, Vec<(u64, u32)>> = HashMap::new();
        for (key, advance, cost, evict) in steps {
            let cost = cost.min(burst);
            if let Ok(Decision::Admit) = keyed.try_acquire(&key, now, cost) {
                grants.entry(key).or_default().push((now, cost));
            }
            if evict {
                keyed.evict_idle(now);
            }
            prop_assert!(keyed.len() <= max_keys);
            now += (advance * interval) as u64;
        }
        for history in grants.values() {
            assert_window_bound(history, burst, interval);
        }
    }
}
