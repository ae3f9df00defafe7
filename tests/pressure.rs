//! Memory pressure: thresholds on used / limit, hysteresis, pool targets.

mod common;

use pacer::{Level, MemoryReading, Pressure, Thresholds};
use proptest::prelude::*;

const GIB: u64 = 1 << 30;

fn reading(ratio: f64) -> MemoryReading {
    MemoryReading::new((ratio * 1e9) as u64, 1_000_000_000)
}

#[test]
fn levels_follow_the_ratio_of_used_to_limit() {
    let mut pressure = Pressure::default();
    assert_eq!(
        pressure.observe(MemoryReading::new(GIB, 4 * GIB)),
        Level::Low
    );
    assert_eq!(pressure.observe(reading(0.70)), Level::Medium);
    assert_eq!(pressure.observe(reading(0.85)), Level::High);
    assert!(pressure.should_throttle());
    assert_eq!(pressure.pool_target(20), 0);
    // Falls only below threshold - hysteresis, and as far as warranted in one reading.
    assert_eq!(pressure.observe(reading(0.81)), Level::High);
    assert_eq!(pressure.observe(reading(0.79)), Level::Medium);
    assert_eq!(pressure.pool_target(21), 11);
    assert_eq!(pressure.observe(reading(0.66)), Level::Medium);
    assert_eq!(pressure.observe(reading(0.90)), Level::High);
    assert_eq!(pressure.observe(reading(0.10)), Level::Low);
    assert_eq!(pressure.pool_target(20), 20);
}

#[test]
fn an_unknown_reading_is_low() {
    let mut pressure = Pressure::default();
    assert_eq!(pressure.observe(reading(0.95)), Level::High);
    assert_eq!(
        pressure.observe(MemoryReading::from_abi(-1, 100)),
        Level::Low
    );
    assert_eq!(pressure.observe(reading(0.95)), Level::High);
    assert_eq!(pressure.observe(MemoryReading::from_abi(50, 0)), Level::Low);
    // Free bytes are not the metric: 85 GiB free of 100 GiB is Low.
    assert_eq!(
        pressure.observe(MemoryReading::new(15 * GIB, 100 * GIB)),
        Level::Low
    );
}

#[test]
fn thresholds_are_validated() {
    assert!(Thresholds::new(0.7, 0.85, 0.05).is_ok());
    assert_eq!(
        Thresholds::new(0.9, 0.85, 0.05).map_err(|e| e.path),
        Err("high".into())
    );
    assert_eq!(
        Thresholds::new(0.0, 0.85, 0.05).map_err(|e| e.path),
        Err("medium".into())
    );
    assert_eq!(
        Thresholds::new(0.7, 0.85, 0.7).map_err(|e| e.path),
        Err("hysteresis".into())
    );
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    #[test]
    fn pressure_never_flaps_for_a_ratio_oscillating_inside_the_hysteresis_band(
        boundary in prop::sample::select(vec![0.70, 0.85]),
        from_above in any::<bool>(),
        ratios in prop::collection::vec(0.0001f64..0.9999, 1..100),
    ) {
        let mut pressure = Pressure::default();
        // Enter the level at the boundary from above or stay below it, then oscillate in
        // [boundary - hysteresis, boundary): the level must not move.
        let start = if from_above { boundary } else { boundary - 0.06 };
        let level = pressure.observe(reading(start));
        for fraction in ratios {
            let ratio = boundary - 0.05 + 0.05 * fraction;
            prop_assert_eq!(pressure.observe(reading(ratio)), level, "at ratio {}", ratio);
        }
    }
}
