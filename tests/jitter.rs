//! Jitter strategies: each stays in its bounds, and a seed makes them reproducible.

mod common;

use pacer::jitter::PPM;
use pacer::{Jitter, Rng, Strategy};
use proptest::prelude::*;

#[test]
fn adaptive_spreads_with_utilization_and_none_is_exact() {
    let mut rng = Rng::from_seed(7);
    let mut jitter = Jitter::new(Strategy::Adaptive, 3_000_000_000);
    assert_eq!(
        jitter.delay(&mut rng, 500, 0),
        500,
        "idle limiter: no spread"
    );
    let busy: Vec<u64> = (0..1000)
        .map(|_| jitter.delay(&mut rng, 500, PPM))
        .collect();
    assert!(busy.iter().all(|d| (500..3_000_000_500).contains(d)));
    let mean = busy.iter().sum::<u64>() as f64 / busy.len() as f64;
    assert!(
        (mean - 1.5e9).abs() < 1.5e8,
        "mean {mean} should be near max / 2"
    );
    let mut none = Jitter::new(Strategy::None, 3_000_000_000);
    assert_eq!(none.delay(&mut rng, 123, PPM), 123);
}

#[test]
fn a_seed_reproduces_the_sequence() {
    let draw = |seed| {
        let mut rng = Rng::from_seed(seed);
        let mut jitter = Jitter::new(Strategy::Full, 0);
        (0..5)
            .map(|_| jitter.delay(&mut rng, 1_000_000, 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn decorrelated_grows_from_base_and_restarts() {
    let mut rng = Rng::from_seed(1);
    let mut jitter = Jitter::new(Strategy::Decorrelated, 1_000_000);
    let delays: Vec<u64> = (0..50).map(|_| jitter.delay(&mut rng, 100, 0)).collect();
    assert!(
        delays.iter().any(|&d| d > 300),
        "grows past 3 × base: {delays:?}"
    );
    jitter.restart();
    assert!(jitter.delay(&mut rng, 100, 0) <= 300, "restarts at base");
}

fn any_strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop::sample::select(Strategy::ALL.to_vec())
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    #[test]
    fn jitter_stays_in_its_bounds_for_each_strategy(
        strategy in any_strategy(),
        seed in any::<u64>(),
        max_ns in 0u64..10_000_000_000,
        calls in prop::collection::vec((0u64..20_000_000_000, 0u32..=PPM), 1..50),
    ) {
        let mut rng = Rng::from_seed(seed);
        let mut jitter = Jitter::new(strategy, max_ns);
        let mut previous: Option<u64> = None;
        for (base, utilization) in calls {
            let delay = jitter.delay(&mut rng, base, utilization);
            let (low, high) = match strategy {
                Strategy::Adaptive => {
                    let spread = (u128::from(max_ns) * u128::from(utilization) / 1_000_000) as u64;
                    (base, base + spread.saturating_sub(1))
                }
                Strategy::Full => (0, base),
                Strategy::Equal => (base.div_ceil(2), base.div_ceil(2) + base / 2),
                Strategy::Decorrelated => {
                    let high = base.max(3 * previous.unwrap_or(base));
                    (base.min(max_ns), high.min(max_ns))
                }
                Strategy::None => (base, base),
            };
            prop_assert!((low..=high).contains(&delay), "{strategy}: {delay} not in {low}..={high}");
            previous = Some(delay);
        }
    }
}
