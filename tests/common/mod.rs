//! Helpers shared by the test files.
#![allow(dead_code)]

pub mod floors;

/// Exact nanoseconds between two tokens (as a double) for a rate in tokens per hour.
pub fn interval_ns(tokens_per_hour: f64) -> f64 {
    3.6e12 / tokens_per_hour
}

/// Checks that no window between two grants holds more than `burst + W / interval + 1`
/// tokens. `grants` are `(time, cost)` in time order.
pub fn assert_window_bound(grants: &[(u64, u32)], burst: u32, interval: f64) {
    for i in 0..grants.len() {
        let mut tokens = 0u64;
        for j in i..grants.len() {
            tokens += u64::from(grants[j].1);
            let window = (grants[j].0 - grants[i].0) as f64;
            let allowed = f64::from(burst) + window / interval + 1.0;
            assert!(
                tokens as f64 <= allowed,
                "{tokens} tokens granted in a window of {window} ns; at most {allowed} allowed"
            );
        }
    }
}
