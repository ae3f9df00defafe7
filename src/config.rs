//! The policy's configuration: the JSON document of ABI v1, parsed strictly.
//!
//! Unknown fields are errors, and every error names its field (`limiters[0].burst: ...`).
//! Integral JSON numbers (`3`, `3.0`, `1e3`) count as integers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::json::{self, Map, Value};
use serde::Serialize;

use crate::adaptive::AdaptiveConfig;
use crate::backoff::BackoffSettings;
use crate::clock::NANOS_PER_MS;
use crate::decimal::Decimal;
use crate::error::ConfigError;
use crate::jitter::{Jitter, Strategy};
use crate::pressure::Thresholds;
use crate::quota::{DEFAULT_INITIAL, MAX_BURST, Quota, RATE_RANGE, is_valid_rate};

/// The largest seed: every integer up to 2^53 survives a trip through a JSON double.
pub const MAX_SEED: u64 = 1 << 53;

/// The whole policy configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Makes every random choice a pure function of the seed and the call sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The limiters, addressed by index; at least one, with unique non-empty names.
    pub limiters: Vec<LimiterConfig>,
    /// The jitter strategy.
    pub jitter: JitterConfig,
    /// Memory pressure thresholds.
    pub pressure: PressureConfig,
    /// Backoff and circuit breaker.
    pub backoff: BackoffConfig,
    /// The host's buffer pool (validated here so that one file configures both).
    pub pool: PoolConfig,
}

/// One token bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimiterConfig {
    /// A unique, non-empty name.
    pub name: String,
    /// The rate, from 0.0001 to 3.6e12, fractional allowed.
    pub tokens_per_hour: f64,
    /// The capacity; `None` = one minute's worth, at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// The fraction of burst in the bucket when first touched.
    pub initial: f64,
    /// Learn the rate from 429s within these bounds; `None` = a fixed rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveConfig>,
}

/// The jitter section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JitterConfig {
    /// Which strategy.
    pub strategy: Strategy,
    /// The strategy's `max`, in milliseconds.
    pub max_ms: u64,
}

/// The pressure section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PressureConfig {
    /// Ratio of used to limit at which the level becomes Medium.
    pub medium: f64,
    /// Ratio at which the level becomes High.
    pub high: f64,
    /// How far below a threshold the ratio must fall before the level falls.
    pub hysteresis: f64,
    /// Extra delay added by `next_delay` while pressure is High, in milliseconds.
    pub high_delay_ms: u64,
}

/// The backoff section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackoffConfig {
    /// The first backoff's ceiling, in milliseconds.
    pub base_ms: u64,
    /// The largest backoff ceiling, in milliseconds.
    pub max_ms: u64,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open, in milliseconds.
    pub open_ms: u64,
}

/// The pool section, read by hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolConfig {
    /// Idle buffers kept at Low pressure.
    pub max_buffers: u32,
    /// Bytes per buffer.
    pub buffer_size: u64,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            strategy: Strategy::Adaptive,
            max_ms: 3000,
        }
    }
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            medium: 0.70,
            high: 0.85,
            hysteresis: 0.05,
            high_delay_ms: 1000,
        }
    }
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base_ms: 1000,
            max_ms: 300_000,
            failure_threshold: 5,
            open_ms: 30_000,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_buffers: 20,
            buffer_size: 81_920,
        }
    }
}

impl LimiterConfig {
    /// A limiter with the default burst and initial fill.
    pub fn new(name: impl Into<String>, tokens_per_hour: f64) -> Self {
        LimiterConfig {
            name: name.into(),
            tokens_per_hour,
            burst: None,
            initial: DEFAULT_INITIAL,
            adaptive: None,
        }
    }

    /// The validated quota (errors name the field relative to this limiter).
    pub fn quota(&self) -> Result<Quota, ConfigError> {
        let quota = Quota::per_hour(self.tokens_per_hour)?;
        let quota = match self.burst {
            Some(burst) => quota.with_burst(burst)?,
            None => quota,
        };
        quota.with_initial(self.initial)
    }
}

/// The validated parts a [`Policy`](crate::Policy) runs on.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub quotas: Vec<Quota>,
    pub jitter: Jitter,
    pub thresholds: Thresholds,
    pub high_delay_ns: u64,
    pub backoff: BackoffSettings,
}

impl Config {
    /// A config with these limiters and every other value at its default.
    pub fn new(limiters: Vec<LimiterConfig>) -> Self {
        Config {
            seed: None,
            limiters,
            jitter: JitterConfig::default(),
            pressure: PressureConfig::default(),
            backoff: BackoffConfig::default(),
            pool: PoolConfig::default(),
        }
    }

    /// Parses and validates the JSON document of ABI v1.
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let value =
            json::parse(json).map_err(|e| ConfigError::new("", format!("invalid JSON: {e}")))?;
        let config = parse_config(&value)?;
        config.validate()?;
        Ok(config)
    }

    /// The config as compact JSON (defaults written out).
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks every value; the error names the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.compile().map(|_| ())
    }

    pub(crate) fn compile(&self) -> Result<Compiled, ConfigError> {
        if let Some(seed) = self.seed
            && seed > MAX_SEED
        {
            return Err(ConfigError::new(
                "seed",
                "must be an integer from 0 to 2^53",
            ));
        }
        if self.limiters.is_empty() {
            return Err(ConfigError::new(
                "limiters",
                "must list at least one limiter",
            ));
        }
        let mut quotas = Vec::with_capacity(self.limiters.len());
        for (i, limiter) in self.limiters.iter().enumerate() {
            let at = |field: &str| format!("limiters[{i}].{field}");
            if limiter.name.is_empty() {
                return Err(ConfigError::new(at("name"), "must not be empty"));
            }
            if let Some(j) = self.limiters[..i]
                .iter()
                .position(|l| l.name == limiter.name)
            {
                return Err(ConfigError::new(
                    at("name"),
                    format!("\"{}\" is already the name of limiters[{j}]", limiter.name),
                ));
            }
            let quota = limiter
                .quota()
                .map_err(|e| ConfigError::new(at(&e.path), e.message))?;
            if let Some((field, message)) = limiter
                .adaptive
                .and_then(|adaptive| adaptive_error(&adaptive, limiter.tokens_per_hour))
            {
                return Err(ConfigError::new(at(field), message));
            }
            quotas.push(quota);
        }
        let p = &self.pressure;
        let thresholds = Thresholds::new(p.medium, p.high, p.hysteresis)
            .map_err(|e| ConfigError::new(format!("pressure.{}", e.path), e.message))?;
        let b = &self.backoff;
        if b.max_ms < b.base_ms {
            return Err(ConfigError::new(
                "backoff.max_ms",
                "must be at least backoff.base_ms",
            ));
        }
        if b.failure_threshold < 1 {
            return Err(ConfigError::new(
                "backoff.failure_threshold",
                "must be at least 1",
            ));
        }
        if self.pool.buffer_size < 1 {
            return Err(ConfigError::new("pool.buffer_size", "must be at least 1"));
        }
        Ok(Compiled {
            quotas,
            jitter: Jitter::new(self.jitter.strategy, ms_to_ns(self.jitter.max_ms)),
            thresholds,
            high_delay_ns: ms_to_ns(p.high_delay_ms),
            backoff: BackoffSettings {
                base_ns: ms_to_ns(b.base_ms),
                max_ns: ms_to_ns(b.max_ms),
                failure_threshold: b.failure_threshold,
                open_ns: ms_to_ns(b.open_ms),
            },
        })
    }
}

impl core::str::FromStr for Config {
    type Err = ConfigError;

    fn from_str(json: &str) -> Result<Self, Self::Err> {
        Config::from_json(json)
    }
}

/// Milliseconds to nanoseconds, saturating.
pub(crate) fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(NANOS_PER_MS)
}

/// A JSON object being read, with the path that names its fields in errors.
struct Section<'a> {
    path: String,
    fields: &'a Map,
}

impl<'a> Section<'a> {
    fn new(value: &'a Value, path: String, allowed: &[&str]) -> Result<Self, ConfigError> {
        let fields = value
            .as_object()
            .ok_or_else(|| ConfigError::new(&path, "must be an object"))?;
        let section = Section { path, fields };
        if let Some(unknown) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
            let expected = json::comma_list(allowed);
            return Err(ConfigError::new(
                section.at(unknown),
                format!("unknown field (expected one of {expected})"),
            ));
        }
        Ok(section)
    }

    fn at(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field)
    }

    fn number(&self, field: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(value) => value
                .as_f64()
                .ok_or_else(|| ConfigError::new(self.at(field), "must be a number")),
        }
    }

    fn integer(&self, field: &str, default: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(value) => self.integer_value(field, value, 0, max),
        }
    }

    fn integer_value(
        &self,
        field: &str,
        value: &Value,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let integer = match value {
            Value::Number(_) => value.as_u64().or_else(|| value.as_f64().and_then(integral)),
            _ => None,
        };
        integer.filter(|i| (min..=max).contains(i)).ok_or_else(|| {
            let (min, largest) = (Decimal::from(min), Decimal::from(max));
            let note = if max == u64::MAX { " (2^64 - 1)" } else { "" };
            ConfigError::new(
                self.at(field),
                format!("must be an integer from {min} to {largest}{note}"),
            )
        })
    }

    fn section(&self, field: &str, allowed: &[&str]) -> Result<Option<Section<'a>>, ConfigError> {
        self.get(field)
            .map(|value| Section::new(value, self.at(field), allowed))
            .transpose()
    }
}

/// The integer a double holds exactly, if it holds one in `u64` range.
fn integral(x: f64) -> Option<u64> {
    let in_range = (0.0..18_446_744_073_709_551_616.0).contains(&x);
    (in_range && (x as u64) as f64 == x).then_some(x as u64)
}

fn parse_config(value: &Value) -> Result<Config, ConfigError> {
    let root = Section::new(
        value,
        String::new(),
        &["seed", "limiters", "jitter", "pressure", "backoff", "pool"],
    )?;
    let seed = match root.get("seed") {
        None => None,
        Some(seed) => Some(root.integer_value("seed", seed, 0, MAX_SEED)?),
    };
    let listed = root
        .get("limiters")
        .ok_or_else(|| ConfigError::new("limiters", "is required"))?
        .as_array()
        .ok_or_else(|| ConfigError::new("limiters", "must be an array"))?;
    // A loop, not a `Result`-collecting iterator: the same work in less of the page's wasm.
    let mut limiters = Vec::with_capacity(listed.len());
    for (i, limiter) in listed.iter().enumerate() {
        limiters.push(parse_limiter(limiter, format!("limiters[{i}]"))?);
    }
    let mut config = Config::new(limiters);
    config.seed = seed;

    if let Some(jitter) = root.section("jitter", &["strategy", "max_ms"])? {
        if let Some(strategy) = jitter.get("strategy") {
            config.jitter.strategy = strategy
                .as_str()
                .ok_or("must be a string")
                .and_then(str::parse)
                .map_err(|reason| ConfigError::new(jitter.at("strategy"), reason))?;
        }
        config.jitter.max_ms = jitter.integer("max_ms", config.jitter.max_ms, u64::MAX)?;
    }
    if let Some(pressure) = root.section(
        "pressure",
        &["medium", "high", "hysteresis", "high_delay_ms"],
    )? {
        let p = &mut config.pressure;
        p.medium = pressure.number("medium", p.medium)?;
        p.high = pressure.number("high", p.high)?;
        p.hysteresis = pressure.number("hysteresis", p.hysteresis)?;
        p.high_delay_ms = pressure.integer("high_delay_ms", p.high_delay_ms, u64::MAX)?;
    }
    if let Some(backoff) = root.section(
        "backoff",
        &["base_ms", "max_ms", "failure_threshold", "open_ms"],
    )? {
        let b = &mut config.backoff;
        b.base_ms = backoff.integer("base_ms", b.base_ms, u64::MAX)?;
        b.max_ms = backoff.integer("max_ms", b.max_ms, u64::MAX)?;
        let threshold = backoff.integer(
            "failure_threshold",
            b.failure_threshold.into(),
            u32::MAX.into(),
        )?;
        b.failure_threshold = u32::try_from(threshold).unwrap_or(u32::MAX);
        b.open_ms = backoff.integer("open_ms", b.open_ms, u64::MAX)?;
    }
    if let Some(pool) = root.section("pool", &["max_buffers", "buffer_size"])? {
        let max_buffers = pool.integer(
            "max_buffers",
            config.pool.max_buffers.into(),
            MAX_BURST.into(),
        )?;
        config.pool.max_buffers = u32::try_from(max_buffers).unwrap_or(MAX_BURST);
        config.pool.buffer_size = pool.integer("buffer_size", config.pool.buffer_size, u64::MAX)?;
    }
    Ok(config)
}

fn parse_limiter(value: &Value, path: String) -> Result<LimiterConfig, ConfigError> {
    let section = Section::new(
        value,
        path,
        &["name", "tokens_per_hour", "burst", "initial", "adaptive"],
    )?;
    let name = section
        .get("name")
        .ok_or_else(|| ConfigError::new(section.at("name"), "is required"))?
        .as_str()
        .ok_or_else(|| ConfigError::new(section.at("name"), "must be a string"))?;
    let tokens_per_hour = match section.get("tokens_per_hour") {
        None => {
            return Err(ConfigError::new(
                section.at("tokens_per_hour"),
                "is required",
            ));
        }
        Some(_) => section.number("tokens_per_hour", 0.0)?,
    };
    let burst = match section.get("burst") {
        None => None,
        Some(burst) => {
            let burst = section.integer_value("burst", burst, 1, MAX_BURST.into())?;
            Some(u32::try_from(burst).unwrap_or(MAX_BURST))
        }
    };
    let mut limiter = LimiterConfig::new(name, tokens_per_hour);
    limiter.burst = burst;
    limiter.initial = section.number("initial", DEFAULT_INITIAL)?;
    if let Some(adaptive) = section.section(
        "adaptive",
        &["min_tokens_per_hour", "max_tokens_per_hour", "on_503"],
    )? {
        let on_503 = match adaptive.get("on_503") {
            None => false,
            Some(Value::Bool(on)) => *on,
            Some(_) => {
                return Err(ConfigError::new(
                    adaptive.at("on_503"),
                    "must be true or false",
                ));
            }
        };
        // A bound left out reads as NaN, which `compile` reports as required.
        limiter.adaptive = Some(AdaptiveConfig {
            min_tokens_per_hour: adaptive.number("min_tokens_per_hour", f64::NAN)?,
            max_tokens_per_hour: adaptive.number("max_tokens_per_hour", f64::NAN)?,
            on_503,
        });
    }
    Ok(limiter)
}

/// What is wrong with an adaptive section, if anything (its field under the limiter, and
/// why): each bound a valid rate, and `min <= tokens_per_hour <= max`.
fn adaptive_error(
    adaptive: &AdaptiveConfig,
    tokens_per_hour: f64,
) -> Option<(&'static str, &'static str)> {
    const MIN: &str = "adaptive.min_tokens_per_hour";
    const MAX: &str = "adaptive.max_tokens_per_hour";
    let (min, max) = (adaptive.min_tokens_per_hour, adaptive.max_tokens_per_hour);
    if min.is_nan() {
        return Some((MIN, "is required"));
    }
    if max.is_nan() {
        return Some((MAX, "is required"));
    }
    if !is_valid_rate(min) {
        return Some((MIN, RATE_RANGE));
    }
    if !is_valid_rate(max) {
        return Some((MAX, RATE_RANGE));
    }
    if min > tokens_per_hour {
        return Some((MIN, "must not be above the limiter's tokens_per_hour"));
    }
    if max < tokens_per_hour {
        return Some((MAX, "must not be below the limiter's tokens_per_hour"));
    }
    None
}
