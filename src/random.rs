//! The policy's one random sequence: xoshiro256++, seeded from the config or from entropy.

use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::Error;

/// A deterministic random generator with unbiased integer ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    /// The sequence for `seed`: the same seed gives the same draws on every engine.
    pub fn from_seed(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// A generator seeded from the platform's entropy source (`getrandom`).
    pub fn from_entropy() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| Error::Entropy)?;
        Ok(Rng::from_state(bytes))
    }

    /// A generator from 32 bytes of entropy or a saved [`Rng::state`].
    pub fn from_state(bytes: [u8; 32]) -> Self {
        Rng(Xoshiro256PlusPlus::from_seed(bytes))
    }

    /// The generator's state; [`Rng::from_state`] continues the same sequence.
    pub fn state(&self) -> [u8; 32] {
        self.0.state()
    }

    /// A uniform draw from `0..n`; 0 without drawing when `n <= 1`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        // Lemire's multiply-and-reject: unbiased, usually without a division.
        let mut product = u128::from(self.0.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.0.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// A uniform draw from `low..=high` (`low` when `high <= low`, without drawing).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.0.next_u64(),
        }
    }
}
