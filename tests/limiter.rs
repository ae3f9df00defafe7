//! The token bucket with a fake clock: exact waits, FIFO reservations, no drift, no overflow.

mod common;

use common::{assert_window_bound, interval_ns};
use pacer::{Clock, Decision, Error, FakeClock, Limiter, Quota};
use proptest::prelude::*;

const SECOND: u64 = 1_000_000_000;

fn quota(tokens_per_hour: f64, burst: u32) -> Quota {
    Quota::per_hour(tokens_per_hour)
        .and_then(|q| q.with_burst(burst))
        .expect("valid quota")
}

#[test]
fn starts_half_full_and_keeps_the_fraction() {
    // 90 per hour = one token per 40 s; burst 3 × 0.5 = 1.5 tokens.
    let clock = FakeClock::new(0);
    let mut limiter = Limiter::new(quota(90.0, 3), clock.now());
    assert_eq!(limiter.available_milli(clock.now()), 1500);
    assert_eq!(limiter.try_acquire(clock.now(), 1), Ok(Decision::Admit));
    assert_eq!(limiter.available_milli(clock.now()), 500);
    assert_eq!(
        limiter.try_acquire(clock.now(), 1),
        Ok(Decision::Wait(20 * SECOND))
    );
    assert_eq!(
        limiter.try_acquire(clock.now(), 2),
        Ok(Decision::Wait(60 * SECOND))
    );
    clock.advance(20 * SECOND - 1);
    assert!(
        !limiter
            .try_acquire(clock.now(), 1)
            .expect("valid")
            .is_admitted()
    );
    clock.advance(1);
    assert_eq!(limiter.try_acquire(clock.now(), 1), Ok(Decision::Admit));
}

#[test]
fn default_burst_is_one_minute_and_never_below_one() {
    assert_eq!(Quota::per_hour(90.0).expect("valid").burst(), 1);
    assert_eq!(Quota::per_hour(3600.0).expect("valid").burst(), 60);
    assert_eq!(Quota::per_hour(0.0001).expect("valid").burst(), 1);
    assert_eq!(
        Quota::per_hour(3.6e12).expect("valid").burst(),
        i32::MAX as u32
    );
}

#[test]
fn cost_above_burst_is_an_error_never_a_wait() {
    let mut limiter = Limiter::new(quota(60.0, 2), 0);
    let expected = Err(Error::CostExceedsBurst { cost: 3, burst: 2 });
    assert_eq!(limiter.try_acquire(0, 3), expected);
    assert_eq!(limiter.reserve(0, 3), expected.map(|_| 0));
    assert!(matches!(
        limiter.try_acquire(0, 0),
        Err(Error::BadArgument { name: "cost", .. })
    ));
    assert_eq!(
        limiter.available_milli(0),
        1000,
        "failed calls take nothing"
    );
}

#[test]
fn reserve_goes_into_debt_and_reports_it() {
    // One token a second, burst 2, starts with 1.
    let mut limiter = Limiter::new(quota(3600.0, 2), 0);
    assert_eq!(limiter.reserve(0, 1), Ok(0));
    assert_eq!(limiter.reserve(0, 2), Ok(2 * SECOND));
    assert_eq!(limiter.available_milli(0), -2000);
    assert_eq!(limiter.reserve(0, 1), Ok(3 * SECOND));
    assert_eq!(limiter.available_milli(SECOND / 2), -2500);
    assert_eq!(limiter.try_acquire(0, 1), Ok(Decision::Wait(4 * SECOND)));
}

#[test]
fn pauses_hold_back_every_kind_of_call() {
    let mut limiter = Limiter::new(quota(3600.0, 10), 0);
    limiter.pause_until(5 * SECOND);
    limiter.pause_until(3 * SECOND); // a shorter pause does not cut the longer one
    assert_eq!(
        limiter.try_acquire(SECOND, 1),
        Ok(Decision::Wait(4 * SECOND))
    );
    // The pause holds the bucket: at its end one token is there (the reservation's), and
    // the next comes one interval later, not the ten a free bucket would have gathered.
    assert_eq!(limiter.reserve(SECOND, 1), Ok(4 * SECOND));
    assert_eq!(
        limiter.try_acquire(5 * SECOND, 1),
        Ok(Decision::Wait(SECOND))
    );
    assert_eq!(limiter.try_acquire(6 * SECOND, 1), Ok(Decision::Admit));
}

#[test]
fn extreme_rates_neither_overflow_nor_stall() {
    // About one token a year, burst 1, starting empty: the wait is the whole interval.
    let slow = Quota::per_hour(0.0001)
        .and_then(|q| q.with_initial(0.0))
        .expect("valid");
    let mut limiter = Limiter::new(slow, u64::MAX / 2);
    assert_eq!(
        limiter.try_acquire(u64::MAX / 2, 1),
        Ok(Decision::Wait(36_000_000_000_000_000))
    );
    // One token per ns with the largest burst, at the end of time.
    let fast = Quota::per_hour(3.6e12).expect("valid");
    let mut limiter = Limiter::new(fast, u64::MAX - 10);
    assert_eq!(
        limiter.try_acquire(u64::MAX - 10, fast.burst() / 2),
        Ok(Decision::Admit)
    );
    for _ in 0..1000 {
        let _ = limiter.reserve(u64::MAX, fast.burst());
    }
    assert!(limiter.available_milli(u64::MAX) < 0);
    assert_eq!(limiter.reserve(u64::MAX, 1).map(|w| w > 0), Ok(true));
}

/// A quota from 1 per hour to one per ns, log-uniform, with a burst up to 1000.
fn any_quota() -> impl Strategy<Value = Quota> {
    (0.0f64..12.56, 1u32..1000, 0.0f64..=1.0).prop_map(|(exp, burst, initial)| {
        let tokens_per_hour = 10f64.powf(exp).min(3.6e12);
        Quota::per_hour(tokens_per_hour)
            .and_then(|q| q.with_burst(burst))
            .and_then(|q| q.with_initial(initial))
            .expect("valid quota")
    })
}

/// Steps of (time advance as a fraction of the interval, cost as a fraction of burst).
fn steps() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec((0.0f64..3.0, 0.0f64..=1.0), 1..120)
}

fn cost_of(fraction: f64, burst: u32) -> u32 {
    ((fraction * f64::from(burst)) as u32).clamp(1, burst)
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    #[test]
    fn no_window_grants_more_than_burst_plus_elapsed_over_interval(
        quota in any_quota(), steps in steps(), greedy in any::<bool>()
    ) {
        let interval = interval_ns(quota.tokens_per_hour());
        let clock = FakeClock::new(1 << 40);
        let mut limiter = Limiter::new(quota, clock.now());
        let mut grants = Vec::new();
        for (advance, cost) in steps {
            let cost = cost_of(cost, quota.burst());
            match limiter.try_acquire(clock.now(), cost).expect("cost within burst") {
                Decision::Admit => grants.push((clock.now(), cost)),
                // A greedy client comes back exactly when told to.
                Decision::Wait(wait) if greedy => clock.advance(wait),
                Decision::Wait(_) => {}
            }
            clock.advance((advance * interval) as u64);
        }
        assert_window_bound(&grants, quota.burst(), interval);
    }

    #[test]
    fn returned_wait_is_exact(quota in any_quota(), steps in steps(), cost in 0.0f64..=1.0) {
        let interval = interval_ns(quota.tokens_per_hour());
        let clock = FakeClock::new(1 << 40);
        let mut limiter = Limiter::new(quota, clock.now());
        for (advance, step_cost) in steps {
            let _ = limiter.reserve(clock.now(), cost_of(step_cost, quota.burst()) / 2 + 1);
            clock.advance((advance * interval) as u64);
        }
        let cost = cost_of(cost, quota.burst());
        let now = clock.now();
        // Asked before acquiring, so an admitted case checks something too: no wait.
        let asked = limiter.wait_time(now, cost);
        match limiter.try_acquire(now, cost).expect("valid") {
            Decision::Admit => prop_assert_eq!(asked, Ok(0)),
            Decision::Wait(wait) => {
                prop_assert_eq!(asked, Ok(wait));
                prop_assert_eq!(limiter.wait_time(now, cost), Ok(wait));
                let mut early = limiter.clone();
                prop_assert!(!early.try_acquire(now + wait - 1, cost).expect("valid").is_admitted());
                prop_assert_eq!(limiter.try_acquire(now + wait, cost), Ok(Decision::Admit));
            }
        }
    }

    #[test]
    fn try_acquire_n_agrees_with_n_single_acquires(
        quota in any_quota(), steps in steps(), cost in 0.0f64..=1.0
    ) {
        let interval = interval_ns(quota.tokens_per_hour());
        let clock = FakeClock::new(1 << 40);
        let mut limiter = Limiter::new(quota, clock.now());
        for (advance, step_cost) in steps {
            let _ = limiter.try_acquire(clock.now(), cost_of(step_cost, quota.burst()));
            clock.advance((advance * interval) as u64);
            let cost = cost_of(cost, quota.burst());
            let mut singles = limiter.clone();
            let all_single = (0..cost)
                .all(|_| singles.try_acquire(clock.now(), 1).expect("valid").is_admitted());
            let mut batch = limiter.clone();
            let at_once = batch.try_acquire(clock.now(), cost).expect("valid").is_admitted();
            prop_assert_eq!(at_once, all_single);
        }
    }

    #[test]
    fn long_run_rate_is_exact_to_1e9_from_one_per_hour_to_one_per_ns(
        exp in 0.0f64..12.56, burst_exp in 0.0f64..6.0
    ) {
        let burst = 10f64.powf(burst_exp) as u32;
        let tokens_per_hour = 10f64.powf(exp).min(3.6e12);
        let interval = interval_ns(tokens_per_hour);
        let grants = 2000u32;
        // As many tokens per grant as keep the run inside u64 nanoseconds.
        let cost = ((1e18 / (f64::from(grants) * interval)) as u32).clamp(1, burst);
        let quota = Quota::per_hour(tokens_per_hour)
            .and_then(|q| q.with_burst(burst))
            .and_then(|q| q.with_initial(0.0))
            .expect("valid quota");
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(quota, clock.now());
        let mut times = Vec::with_capacity(grants as usize);
        while times.len() < grants as usize {
            match limiter.try_acquire(clock.now(), cost).expect("valid") {
                Decision::Admit => times.push(clock.now()),
                Decision::Wait(wait) => clock.advance(wait),
            }
        }
        // The bucket starts empty, so from the first grant on the client runs at the rate.
        let first = 0;
        let tokens = f64::from(cost) * (times.len() - 1 - first) as f64;
        let elapsed = (times[times.len() - 1] - times[first]) as f64;
        let expected = tokens * interval;
        prop_assert!(
            (elapsed - expected).abs() <= expected * 1e-9 + 1.0,
            "{} tokens took {} ns, expected {} ns", tokens, elapsed, expected
        );
    }

    #[test]
    fn backwards_clock_grants_nothing_extra(
        quota in any_quota(),
        steps in prop::collection::vec((-3.0f64..3.0, 0.0f64..=1.0), 1..120),
    ) {
        let interval = interval_ns(quota.tokens_per_hour());
        let start = 1u64 << 60;
        let mut now = start;
        let mut highest = start;
        let mut limiter = Limiter::new(quota, now);
        let mut grants = Vec::new();
        for (advance, cost) in steps {
            let cost = cost_of(cost, quota.burst());
            if limiter.try_acquire(now, cost).expect("valid").is_admitted() {
                // Judged on real (highest-seen) time: going back must not buy tokens.
                grants.push((highest, cost));
            }
            now = now.saturating_add_signed((advance * interval) as i64);
            highest = highest.max(now);
        }
        assert_window_bound(&grants, quota.burst(), interval);
    }

    #[test]
    fn reservations_mature_in_fifo_order(
        quota in any_quota(),
        steps in prop::collection::vec((0.0f64..2.0, 0.0f64..=1.0, 0u8..4), 1..100),
    ) {
        let interval = interval_ns(quota.tokens_per_hour());
        let clock = FakeClock::new(1 << 40);
        let mut limiter = Limiter::new(quota, clock.now());
        let mut last_maturity = 0u64;
        for (advance, cost, kind) in steps {
            let cost = cost_of(cost, quota.burst());
            match kind {
                0 => { let _ = limiter.try_acquire(clock.now(), cost); }
                1 => limiter.pause_until(clock.now() + (advance * interval * 3.0) as u64),
                _ => {
                    let maturity = clock.now() + limiter.reserve(clock.now(), cost).expect("valid");
                    prop_assert!(maturity >= last_maturity, "{maturity} before {last_maturity}");
                    prop_assert!(maturity >= limiter.paused_until());
                    last_maturity = maturity;
                }
            }
            clock.advance((advance * interval) as u64);
        }
    }
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    /// The share of the burst in use is the exact share to within 1 ppm, and exact at empty
    /// and full, from one token a year to one per ns and bursts up to 2^31 - 1.
    #[test]
    fn utilization_is_the_share_in_use_to_within_one_ppm(
        exp in -4.0f64..12.56,
        burst in prop_oneof![1u32..100, 1u32..=i32::MAX as u32],
        taken in prop_oneof![Just(1.0), 0.0f64..=1.0],
    ) {
        let tokens_per_hour = 10f64.powf(exp).clamp(0.0001, 3.6e12);
        let quota = quota(tokens_per_hour, burst).with_initial(1.0).expect("valid");
        let mut limiter = Limiter::new(quota, 0);
        prop_assert_eq!(limiter.utilization_ppm(0), 0);
        let taken = ((taken * f64::from(burst)) as u32).min(burst);
        if taken > 0 {
            prop_assert_eq!(limiter.try_acquire(0, taken), Ok(Decision::Admit));
        }
        let exact = u64::from(taken) * 1_000_000 / u64::from(burst);
        let ppm = u64::from(limiter.utilization_ppm(0));
        prop_assert!(ppm.abs_diff(exact) <= 1, "{ppm} ppm for {taken} of {burst} ({exact})");
        if taken == burst {
            prop_assert_eq!(ppm, 1_000_000);
        }
    }
}

#[test]
fn the_fake_clock_adds_advances_and_stops_at_the_end_of_time() {
    let clock = FakeClock::new(5);
    clock.advance(10);
    clock.advance(0);
    assert_eq!(clock.now(), 15);
    clock.advance(u64::MAX - 20);
    assert_eq!(clock.now(), u64::MAX - 5);
    clock.advance(10);
    assert_eq!(clock.now(), u64::MAX);
    clock.advance(1);
    assert_eq!(clock.now(), u64::MAX);
}
