//! Delays that spread clients apart: the adaptive strategy and the standard ones.

use core::fmt;
use core::str::FromStr;

use serde::Serialize;

use crate::clock::Nanos;
use crate::random::Rng;

/// One million: utilization is given in parts per million.
pub const PPM: u32 = 1_000_000;

/// How a delay is spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// `base + U[0, max · min(1, utilization))`: more spread the busier the limiter.
    #[default]
    Adaptive,
    /// `U[0, base]`.
    Full,
    /// `ceil(base/2) + U[0, floor(base/2)]`.
    Equal,
    /// `min(max, U[base, max(base, 3 · previous)])`, previous starting at base.
    Decorrelated,
    /// `base`, unchanged.
    None,
}

impl Strategy {
    /// Every strategy, in documentation order.
    pub const ALL: [Strategy; 5] = [
        Strategy::Adaptive,
        Strategy::Full,
        Strategy::Equal,
        Strategy::Decorrelated,
        Strategy::None,
    ];

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Adaptive => "adaptive",
            Strategy::Full => "full",
            Strategy::Equal => "equal",
            Strategy::Decorrelated => "decorrelated",
            Strategy::None => "none",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == s)
            .ok_or("must be one of adaptive, full, equal, decorrelated, none")
    }
}

/// `floor(value * ppm / 1e6)` for `ppm <= 1e6`, in 64-bit arithmetic: whole millions of
/// `value` scale exactly, and the rest times `ppm` stays below 1e12.
#[inline]
fn scale_ppm(value: Nanos, ppm: u32) -> Nanos {
    let (ppm, per) = (u64::from(ppm), u64::from(PPM));
    match value.checked_mul(ppm) {
        Some(product) => product / per,
        None => value / per * ppm + value % per * ppm / per,
    }
}

/// A jitter strategy with its cap and the decorrelated strategy's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jitter {
    strategy: Strategy,
    max_ns: Nanos,
    previous_ns: Option<Nanos>,
}

impl Jitter {
    /// A jitter of `strategy` whose spread is capped at `max_ns`.
    pub fn new(strategy: Strategy, max_ns: Nanos) -> Self {
        Jitter {
            strategy,
            max_ns,
            previous_ns: None,
        }
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// A delay around `base_ns` for a limiter `utilization_ppm` busy (clamped to 1e6), with
    /// the module-wide decorrelated memory. Ranges of a single value draw nothing from `rng`.
    pub fn delay(&mut self, rng: &mut Rng, base_ns: Nanos, utilization_ppm: u32) -> Nanos {
        let mut previous = self.previous_ns;
        let delay = self.draw(rng, base_ns, utilization_ppm, self.max_ns, &mut previous);
        self.previous_ns = previous;
        delay
    }

    /// A delay as [`Jitter::delay`], with the adaptive spread capped at `spread_cap_ns` as well
    /// as `max`, and the decorrelated strategy's memory in `previous` (one per limiter).
    #[inline]
    pub fn draw(
        &self,
        rng: &mut Rng,
        base_ns: Nanos,
        utilization_ppm: u32,
        spread_cap_ns: Nanos,
        previous: &mut Option<Nanos>,
    ) -> Nanos {
        match self.strategy {
            Strategy::Adaptive => {
                let cap = self.max_ns.min(spread_cap_ns);
                let spread = scale_ppm(cap, utilization_ppm.min(PPM));
                base_ns.saturating_add(rng.below(spread))
            }
            Strategy::Full => rng.between(0, base_ns),
            Strategy::Equal => base_ns.div_ceil(2) + rng.between(0, base_ns / 2),
            Strategy::Decorrelated => {
                let last = previous.unwrap_or(base_ns);
                let high = base_ns.max(last.saturating_mul(3));
                let delay = rng.between(base_ns, high).min(self.max_ns);
                *previous = Some(delay);
                delay
            }
            Strategy::None => base_ns,
        }
    }

    /// Forgets the decorrelated strategy's previous delay (it starts again at base).
    pub fn restart(&mut self) {
        self.previous_ns = None;
    }

    pub(crate) fn previous_ns(&self) -> Option<Nanos> {
        self.previous_ns
    }

    pub(crate) fn set_previous_ns(&mut self, previous: Option<Nanos>) {
        self.previous_ns = previous;
    }
}
