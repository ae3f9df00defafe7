//! A rate and a burst, validated once and turned into fixed-point time.
//!
//! Bucket time is kept in *ticks* of 2^-32 ns, so a fractional interval such as 1.5 ns or
//! 3.6e12 / 7 ns costs no drift: at one token per ns the interval error is below 2.4e-10.

use crate::error::{ConfigError, Error};

/// Bucket time: nanoseconds × 2^32.
pub(crate) type Ticks = u128;

/// How many bits of a tick are below one nanosecond.
const TICK_SHIFT: u32 = 32;
/// One nanosecond in ticks.
pub(crate) const TICKS_PER_NS: Ticks = 1 << TICK_SHIFT;

/// Converts whole nanoseconds to ticks.
#[inline]
pub(crate) fn ticks(ns: u64) -> Ticks {
    Ticks::from(ns) << TICK_SHIFT
}

/// Converts ticks (below 2^127) to whole nanoseconds, rounding up (a wait is never shortened).
#[inline]
pub(crate) fn ceil_ns(t: Ticks) -> u64 {
    let ns = (t + (TICKS_PER_NS - 1)) >> TICK_SHIFT;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Converts ticks to whole nanoseconds, rounding up, without limiting the result to 64 bits.
#[inline]
pub(crate) fn ceil_ns_wide(t: Ticks) -> u128 {
    t.div_ceil(TICKS_PER_NS)
}

/// `floor(x / d)` for `d > 0` and `x < 2^126`, without a 128-bit division (which costs a
/// wasm module a kilobyte of `__udivti3`): a double's estimate, made exact by a correction of
/// at most a few steps, or, for a quotient of 2^50 or more, long division.
pub(crate) fn div_floor(x: Ticks, d: Ticks) -> Ticks {
    let estimate = x as f64 / d as f64;
    if estimate < (1u64 << 50) as f64 {
        // Relative error below 2^-50, so the estimate is within 2 of the quotient; and
        // q * d <= x + 2d < 2^127 cannot overflow.
        let mut q = estimate as Ticks;
        while q * d > x {
            q -= 1;
        }
        while (q + 1) * d <= x {
            q += 1;
        }
        return q;
    }
    // Long division over the quotient's bits: d << shift <= x < 2^126, so nothing overflows.
    let shift = d.leading_zeros() - x.leading_zeros();
    let (mut q, mut r) = (0, x);
    for bit in (0..=shift).rev() {
        if r >= d << bit {
            r -= d << bit;
            q |= 1 << bit;
        }
    }
    q
}

/// `ceil(x / d)` under the same conditions as [`div_floor`].
pub(crate) fn div_ceil(x: Ticks, d: Ticks) -> Ticks {
    let q = div_floor(x, d);
    q + Ticks::from(q * d != x)
}

/// `cost` intervals in ticks: `interval < 2^88` and `cost < 2^32`, so this cannot overflow.
#[inline]
pub(crate) fn times(interval: Ticks, cost: u32) -> Ticks {
    if cfg!(target_arch = "wasm32") {
        times_by_limbs(interval, cost)
    } else {
        interval * Ticks::from(cost)
    }
}

/// [`times`] by 32-bit limbs, each partial product within 64 bits: in wasm a 128-bit product
/// is a call to `__multi3`, and this is on every decision's path.
#[inline]
fn times_by_limbs(interval: Ticks, cost: u32) -> Ticks {
    let cost = u64::from(cost);
    let low = interval as u64;
    let high = (interval >> 64) as u64;
    (Ticks::from(high * cost) << 64)
        + (Ticks::from((low >> 32) * cost) << 32)
        + Ticks::from((low & 0xffff_ffff) * cost)
}

/// Nanoseconds in an hour.
const NANOS_PER_HOUR: f64 = 3.6e12;
/// The slowest rate accepted: about one token a year.
pub const MIN_TOKENS_PER_HOUR: f64 = 0.0001;
/// The fastest rate accepted: one token per nanosecond.
pub const MAX_TOKENS_PER_HOUR: f64 = NANOS_PER_HOUR;
/// The largest burst accepted (it must fit the ABI's `i32`).
pub const MAX_BURST: u32 = i32::MAX as u32;
/// The bucket's fill when first touched, as a fraction of burst, unless configured.
pub const DEFAULT_INITIAL: f64 = 0.5;

/// What is wrong with a rate outside the accepted range.
pub(crate) const RATE_RANGE: &str =
    "must be a number from 0.0001 (about one a year) to 3.6e12 (one per ns)";

/// Refuses a rate outside 0.0001 to 3.6e12 tokens an hour.
fn check_rate(tokens_per_hour: f64) -> Result<(), ConfigError> {
    if is_valid_rate(tokens_per_hour) {
        return Ok(());
    }
    Err(ConfigError::new("tokens_per_hour", RATE_RANGE))
}

/// Whether `tokens_per_hour` is in 0.0001 to 3.6e12 (not NaN).
pub(crate) fn is_valid_rate(tokens_per_hour: f64) -> bool {
    (MIN_TOKENS_PER_HOUR..=MAX_TOKENS_PER_HOUR).contains(&tokens_per_hour)
}

/// A validated rate limit: tokens per hour, bucket capacity, initial fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    tokens_per_hour: f64,
    burst: u32,
    initial: f64,
    interval: Ticks,
    /// `interval` in whole ns, rounded up (the adaptive jitter's cap in `next_delay`).
    interval_ns: u64,
    capacity: Ticks,
    initial_debt: Ticks,
    /// Utilization in ppm is `((in_use >> ppm_shift) * ppm_per_unit) >> 64`: one integer
    /// multiply instead of a division on every `next_delay`.
    ppm_shift: u32,
    ppm_per_unit: u64,
}

impl Quota {
    /// `tokens_per_hour` (0.0001 to 3.6e12, fractional allowed) with the default burst of one
    /// minute's worth, `max(1, floor(tokens_per_hour / 60))`, starting half full.
    pub fn per_hour(tokens_per_hour: f64) -> Result<Quota, ConfigError> {
        check_rate(tokens_per_hour)?;
        Quota::build(
            tokens_per_hour,
            default_burst(tokens_per_hour),
            DEFAULT_INITIAL,
        )
    }

    /// The same rate with a bucket of `burst` tokens (1 to 2^31-1).
    pub fn with_burst(self, burst: u32) -> Result<Quota, ConfigError> {
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(ConfigError::new(
                "burst",
                "must be an integer from 1 to 2147483647",
            ));
        }
        Quota::build(self.tokens_per_hour, burst, self.initial)
    }

    /// The same burst and initial fill at `tokens_per_hour` (0.0001 to 3.6e12).
    pub fn with_rate(self, tokens_per_hour: f64) -> Result<Quota, ConfigError> {
        check_rate(tokens_per_hour)?;
        Quota::build(tokens_per_hour, self.burst, self.initial)
    }

    /// The same rate with `initial` (0 to 1) of the burst in the bucket when first touched.
    pub fn with_initial(self, initial: f64) -> Result<Quota, ConfigError> {
        if !(0.0..=1.0).contains(&initial) {
            return Err(ConfigError::new(
                "initial",
                "must be a fraction from 0 to 1",
            ));
        }
        Quota::build(self.tokens_per_hour, self.burst, initial)
    }

    fn build(tokens_per_hour: f64, burst: u32, initial: f64) -> Result<Quota, ConfigError> {
        // Rounded to the nearest tick; the relative error is below 1e-16 for any valid rate.
        let interval = (NANOS_PER_HOUR * TICKS_PER_NS as f64 / tokens_per_hour + 0.5) as Ticks;
        let capacity = interval * Ticks::from(burst);
        let initial_tokens = initial * f64::from(burst);
        let whole = initial_tokens as Ticks;
        let fraction = initial_tokens - whole as f64;
        let initial_credit = whole * interval + (fraction * interval as f64 + 0.5) as Ticks;
        let ppm_shift = (Ticks::BITS - capacity.leading_zeros()).saturating_sub(52);
        Ok(Quota {
            tokens_per_hour,
            burst,
            initial,
            interval,
            interval_ns: ceil_ns(interval),
            capacity,
            initial_debt: capacity - initial_credit.min(capacity),
            ppm_shift,
            ppm_per_unit: ppm_per_unit(capacity >> ppm_shift),
        })
    }

    /// The configured rate.
    pub fn tokens_per_hour(&self) -> f64 {
        self.tokens_per_hour
    }

    /// The bucket's capacity in tokens.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The fraction of burst in the bucket when first touched.
    pub fn initial(&self) -> f64 {
        self.initial
    }

    /// Nanoseconds between two tokens, rounded up to a whole nanosecond.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Rejects a cost of 0 (bad argument) and one above burst (never admissible).
    #[inline]
    pub fn check_cost(&self, cost: u32) -> Result<(), Error> {
        if cost == 0 {
            return Err(Error::bad_argument("cost", "must be at least 1"));
        }
        if cost > self.burst {
            return Err(Error::CostExceedsBurst {
                cost: cost.into(),
                burst: self.burst,
            });
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn interval(&self) -> Ticks {
        self.interval
    }

    /// Parts per million of the capacity that `in_use` ticks (at most the capacity) are,
    /// rounded down, or up when within 2^-12 ppm below a whole ppm.
    #[inline]
    pub(crate) fn share_ppm(&self, in_use: Ticks) -> u32 {
        // in_use >> ppm_shift < 2^52 and ppm_per_unit <= 1e6 * 2^32, so the product fits.
        let scaled = (in_use >> self.ppm_shift) as u64;
        let ppm = (u128::from(scaled) * u128::from(self.ppm_per_unit)) >> 64;
        (ppm as u32).min(1_000_000)
    }

    #[inline]
    pub(crate) fn capacity(&self) -> Ticks {
        self.capacity
    }

    pub(crate) fn initial_debt(&self) -> Ticks {
        self.initial_debt
    }
}

/// `ceil(1e6 * 2^64 / capacity)` for a shifted capacity from 2^32 (one 1 ns interval) to
/// 2^52: below 2^52, so a share computed with it is exact for whole ppm and never short.
fn ppm_per_unit(capacity: Ticks) -> u64 {
    let per_unit = div_ceil(1_000_000u128 << 64, capacity);
    u64::try_from(per_unit).unwrap_or(u64::MAX)
}

/// One minute's worth of tokens, at least 1 and at most [`MAX_BURST`].
pub fn default_burst(tokens_per_hour: f64) -> u32 {
    let per_minute = tokens_per_hour / 60.0;
    if per_minute >= f64::from(MAX_BURST) {
        MAX_BURST
    } else {
        (per_minute as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{div_ceil, div_floor, times_by_limbs};
    use proptest::prelude::*;

    proptest! {
        // At least 256 cases: PROPTEST_CASES may raise the count, never lower it.
        #![proptest_config(ProptestConfig {
            cases: ProptestConfig::default().cases.max(256),
            ..ProptestConfig::default()
        })]

        /// Exact against 128-bit division, across quotients from 0 past the double's 2^50.
        #[test]
        fn div_floor_is_exact(x in 0u128..(1 << 126), d_bits in 1u32..126, d_low: u128) {
            let d = (d_low >> (128 - d_bits)).max(1);
            prop_assert_eq!(div_floor(x, d), x / d);
        }

        /// Near multiples, where an estimate one off shows: small divisors with quotients just
        /// below 2^50 round `x` as a double either way.
        #[test]
        fn div_floor_at_multiples(
            q in prop_oneof![0u128..(1 << 60), (1u128 << 44)..(1u128 << 50)],
            d in prop_oneof![1u128..(1 << 64), 1u128..(1 << 12)],
            offset in 0u128..3,
        ) {
            let x = (q * d + offset).saturating_sub(1);
            prop_assert_eq!(div_floor(x, d), x / d);
            prop_assert_eq!(div_ceil(x, d), x.div_ceil(d));
        }

        /// Exact against the 128-bit product over the whole domain: intervals below 2^88,
        /// any 32-bit cost.
        #[test]
        fn times_by_limbs_is_exact(interval in 0u128..(1 << 88), cost: u32) {
            prop_assert_eq!(times_by_limbs(interval, cost), interval * u128::from(cost));
        }
    }
}
