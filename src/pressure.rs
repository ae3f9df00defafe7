//! Memory pressure: Low / Medium / High from a `{ used, limit }` reading, with hysteresis.

use serde::Serialize;

use crate::error::ConfigError;

/// How close the host is to its memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Below the medium threshold (or unknown).
    #[default]
    Low = 0,
    /// At or above the medium threshold.
    Medium = 1,
    /// At or above the high threshold: throttle.
    High = 2,
}

impl Level {
    /// The level for an ABI code (0, 1, 2).
    pub fn from_code(code: u8) -> Option<Level> {
        [Level::Low, Level::Medium, Level::High]
            .get(usize::from(code))
            .copied()
    }
}

/// One memory reading in bytes; `None` where the host does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryReading {
    /// Bytes in use by the host (process or cgroup).
    pub used: Option<u64>,
    /// Bytes the host may use.
    pub limit: Option<u64>,
}

impl MemoryReading {
    /// A known reading.
    pub fn new(used: u64, limit: u64) -> Self {
        MemoryReading {
            used: Some(used),
            limit: Some(limit),
        }
    }

    /// From the ABI's encoding: `used < 0` or `limit <= 0` means unknown.
    pub fn from_abi(used: i64, limit: i64) -> Self {
        MemoryReading {
            used: u64::try_from(used).ok(),
            limit: u64::try_from(limit).ok().filter(|&l| l > 0),
        }
    }

    /// `used / limit`, or `None` when either is unknown.
    pub fn ratio(&self) -> Option<f64> {
        match (self.used, self.limit) {
            (Some(used), Some(limit)) if limit > 0 => Some(used as f64 / limit as f64),
            _ => None,
        }
    }
}

/// Validated thresholds as fractions of the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    medium: f64,
    high: f64,
    hysteresis: f64,
}

impl Thresholds {
    /// The defaults: Medium at 70 %, High at 85 %, 5 % hysteresis.
    pub const DEFAULT: Thresholds = Thresholds {
        medium: 0.70,
        high: 0.85,
        hysteresis: 0.05,
    };
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::DEFAULT
    }
}

impl Thresholds {
    /// `0 < medium < high <= 1` and `0 <= hysteresis < medium`.
    pub fn new(medium: f64, high: f64, hysteresis: f64) -> Result<Self, ConfigError> {
        if !(medium > 0.0 && medium < 1.0) {
            return Err(ConfigError::new(
                "medium",
                "must be a fraction above 0 and below 1",
            ));
        }
        if !(high > medium && high <= 1.0) {
            return Err(ConfigError::new(
                "high",
                "must be above medium and at most 1",
            ));
        }
        if !(hysteresis >= 0.0 && hysteresis < medium) {
            return Err(ConfigError::new(
                "hysteresis",
                "must be at least 0 and below medium",
            ));
        }
        Ok(Thresholds {
            medium,
            high,
            hysteresis,
        })
    }

    /// The level a ratio reaches, with every threshold lowered by `slack`.
    fn level_at(&self, ratio: f64, slack: f64) -> Level {
        if ratio >= self.high - slack {
            Level::High
        } else if ratio >= self.medium - slack {
            Level::Medium
        } else {
            Level::Low
        }
    }
}

/// The pressure level, updated by readings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pressure {
    thresholds: Thresholds,
    level: Level,
    /// The reading that set `level`: observing the same reading again changes nothing (the
    /// update is idempotent), so it is answered without the arithmetic.
    last_reading: Option<MemoryReading>,
}

impl Pressure {
    /// Starts at Low.
    pub const fn new(thresholds: Thresholds) -> Self {
        Pressure {
            thresholds,
            level: Level::Low,
            last_reading: None,
        }
    }

    /// Updates the level from a reading and returns it. The level rises as soon as the ratio
    /// reaches a threshold and falls, as far as warranted, only once the ratio is below a
    /// level's threshold minus the hysteresis. An unknown reading resets it to Low.
    #[inline]
    pub fn observe(&mut self, reading: MemoryReading) -> Level {
        if self.last_reading == Some(reading) {
            return self.level;
        }
        self.observe_new(reading)
    }

    fn observe_new(&mut self, reading: MemoryReading) -> Level {
        self.last_reading = Some(reading);
        self.level = match reading.ratio() {
            None => Level::Low,
            Some(ratio) => {
                let rising = self.thresholds.level_at(ratio, 0.0);
                let falling = self.thresholds.level_at(ratio, self.thresholds.hysteresis);
                rising.max(self.level.min(falling))
            }
        };
        self.level
    }

    /// The level after the last reading.
    pub fn level(&self) -> Level {
        self.level
    }

    /// True while the level is High.
    pub fn should_throttle(&self) -> bool {
        self.level == Level::High
    }

    /// Idle buffers a pool should keep: all at Low, half (rounded up) at Medium, none at High.
    pub fn pool_target(&self, max_buffers: u32) -> u32 {
        match self.level {
            Level::Low => max_buffers,
            Level::Medium => max_buffers.div_ceil(2),
            Level::High => 0,
        }
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    pub(crate) fn set_level(&mut self, level: Level) {
        self.level = level;
        self.last_reading = None;
    }
}
