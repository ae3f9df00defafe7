//! Client strategies the scorecard compares: pacer through any ABI v1 engine, and the
//! strategies users would otherwise pick, each with its published constants.
//!
//! A strategy serves groups of clients: group `g` is limiter `g` of the policy's config, and
//! each baseline keeps one independent instance per group, so a config with one limiter per
//! client models clients that each run their own copy.

use pacer::decimal::Decimal;
use pacer::{Limiter, Quota, Rng};

use crate::engine::{CIRCUIT_OPEN, Engine, pacer_time};

const NS_PER_S: f64 = 1e9;

/// What a strategy says before a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Send after this many ns.
    Send {
        /// The wait before sending.
        delay_ns: u64,
    },
    /// Not sent (an open circuit, a local rejection): ask again after this many ns.
    Hold {
        /// The wait before asking again.
        retry_in_ns: u64,
    },
}

/// A client-side strategy: decides when each attempt goes and learns from the answers.
pub trait Strategy {
    /// Before attempt `attempt` (0 = first; each failed answer or hold adds one) of a request
    /// from `group`, at `now`.
    fn plan(&mut self, now: u64, group: usize, attempt: u32) -> Result<Plan, String>;
    /// At the moment a planned request would go: `Send { delay_ns: 0 }` to go now, or a new plan.
    fn recheck(&mut self, _now: u64, _group: usize) -> Result<Plan, String> {
        Ok(Plan::Send { delay_ns: 0 })
    }
    /// The answer to a request sent at `sent_at`: status (0 = transport failure) and
    /// Retry-After in ms (`< 0` = none).
    fn on_response(
        &mut self,
        now: u64,
        group: usize,
        sent_at: u64,
        status: i32,
        retry_after_ms: i64,
    ) -> Result<(), String>;
    /// The policy's gauges at `now`, for the page's charts; only pacer has them.
    fn probe(&mut self, _now: u64, _max_buffers: i32) -> Probe {
        Probe::default()
    }
    /// A draw of the policy's jitter at `utilization_ppm`, for the page's jitter chart; only
    /// pacer has one (others draw 0).
    fn jitter_ns(&mut self, _base_ns: i64, _utilization_ppm: i32) -> Result<u64, String> {
        Ok(0)
    }
    /// What the origin announced with that answer: `remaining` requests left until
    /// `reset_ns` from now, before `in_flight` granted since. Only pacer reads it.
    #[cfg(feature = "goals")]
    fn announced(
        &mut self,
        _now: u64,
        _group: usize,
        _remaining: u64,
        _reset_ns: u64,
        _in_flight: u64,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// The policy's gauges at a moment (see [`Strategy::probe`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Probe {
    /// Tokens in limiter 0's bucket (negative in debt).
    pub tokens: f64,
    /// The pressure level, 0 to 2.
    pub pressure: i32,
    /// Idle buffers the pool should keep.
    pub pool_target: i32,
    /// Limiter 0's rate, tokens an hour (`None`: the module cannot say).
    pub rate_per_hour: Option<f64>,
    /// Memory in use as a fraction of the limit, as the policy read it (`None`: unknown).
    pub memory: Option<f64>,
}

/// The memory limit the policy reads; a scenario's memory curve is a fraction of it.
pub const MEMORY_LIMIT_BYTES: i64 = 1 << 30;

/// The pacer policy behind any ABI v1 engine: `next_delay`, the slot re-placed at its time
/// (feature bit 1), and responses with their send time (feature bit 2).
#[derive(Debug)]
pub struct Paced<E> {
    engine: E,
    features: i32,
    cost: i32,
    base_ns: i64,
    /// Memory in use over time (fractions of [`MEMORY_LIMIT_BYTES`]); empty = unknown.
    memory: Vec<[f64; 2]>,
    /// The time of the engine's reading (one per instant, however many calls share it).
    read_at: Option<u64>,
}

impl<E: Engine> Paced<E> {
    /// `engine`, configured already; no jitter base, memory unknown (the scorecard's pacer).
    pub fn new(engine: E, cost: u32) -> Self {
        Paced::with(engine, cost, 0, Vec::new())
    }

    /// `engine`, configured already, asking with `base_ms` of jitter base and reading the
    /// `memory` curve (the page's simulation).
    pub fn with(mut engine: E, cost: u32, base_ms: u32, memory: Vec<[f64; 2]>) -> Self {
        let features = engine.features();
        Paced {
            engine,
            features,
            cost: i32::try_from(cost).unwrap_or(i32::MAX),
            base_ns: i64::from(base_ms) * 1_000_000,
            memory,
            read_at: None,
        }
    }

    fn at(&mut self, now: u64) {
        if self.read_at == Some(now) {
            return;
        }
        self.read_at = Some(now);
        let memory_used = match crate::scenario::memory_at(&self.memory, now) {
            Some(fraction) => (fraction * MEMORY_LIMIT_BYTES as f64) as i64,
            None => -1,
        };
        self.engine.set_reading(crate::engine::Reading {
            now_ns: now,
            memory_used,
            memory_limit: MEMORY_LIMIT_BYTES,
        });
    }

    /// A failed call's message: the engine's trap, or its code and last error.
    fn failed(&mut self, export: &str, code: i64) -> String {
        if let Some(trap) = self.engine.trap() {
            return format!("pacer_{export} trapped: {trap}");
        }
        format!(
            "pacer_{export} returned {}: {}",
            Decimal::from(code),
            self.engine.last_error()
        )
    }

    fn schedule(&mut self, code: i64, group: i32, export: &str) -> Result<Plan, String> {
        match code {
            delay @ 0.. => Ok(Plan::Send {
                delay_ns: delay as u64,
            }),
            CIRCUIT_OPEN => Ok(Plan::Hold {
                retry_in_ns: self.engine.retry_in_ns(group).max(0) as u64,
            }),
            code => Err(self.failed(export, code)),
        }
    }
}

fn group_arg(group: usize) -> i32 {
    i32::try_from(group).unwrap_or(i32::MAX)
}

impl<E: Engine> Strategy for Paced<E> {
    fn plan(&mut self, now: u64, group: usize, _attempt: u32) -> Result<Plan, String> {
        self.at(now);
        let group = group_arg(group);
        let code = self.engine.next_delay_ns(group, self.cost, self.base_ns);
        self.schedule(code, group, "next_delay_ns")
    }

    fn recheck(&mut self, now: u64, group: usize) -> Result<Plan, String> {
        if self.features & pacer::interface::FEATURE_REPLACE == 0 {
            return Ok(Plan::Send { delay_ns: 0 });
        }
        self.at(now);
        let group = group_arg(group);
        let code = self.engine.replace_ns(group, self.cost, 0);
        self.schedule(code, group, "replace_ns")
    }

    fn on_response(
        &mut self,
        now: u64,
        group: usize,
        sent_at: u64,
        status: i32,
        retry_after_ms: i64,
    ) -> Result<(), String> {
        self.at(now);
        let group = group_arg(group);
        let code = if self.features & pacer::interface::FEATURE_RESPONSE_SENT != 0 {
            self.engine
                .on_response_sent(group, status, retry_after_ms, pacer_time(sent_at))
        } else {
            self.engine.on_response(group, status, retry_after_ms)
        };
        match code {
            0 => Ok(()),
            code => Err(self.failed("on_response", i64::from(code))),
        }
    }

    fn probe(&mut self, now: u64, max_buffers: i32) -> Probe {
        self.at(now);
        let rate = self.engine.rate_micro(0);
        Probe {
            memory: crate::scenario::memory_at(&self.memory, now),
            tokens: self.engine.available_milli(0) as f64 / 1000.0,
            pressure: self.engine.pressure(),
            pool_target: self.engine.pool_target(max_buffers),
            rate_per_hour: (rate >= 0).then(|| rate as f64 / 1e6),
        }
    }

    fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> Result<u64, String> {
        match self.engine.jitter_ns(base_ns, utilization_ppm) {
            draw @ 0.. => Ok(draw as u64),
            code => Err(self.failed("jitter_ns", code)),
        }
    }

    #[cfg(feature = "goals")]
    fn announced(
        &mut self,
        now: u64,
        group: usize,
        remaining: u64,
        reset_ns: u64,
        in_flight: u64,
    ) -> Result<(), String> {
        if self.features & pacer::interface::FEATURE_ANNOUNCE == 0 {
            return Ok(());
        }
        self.at(now);
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        match self.engine.announce(
            group_arg(group),
            [-1, clamp(remaining), clamp(reset_ns), clamp(in_flight)],
        ) {
            0 => Ok(()),
            code => Err(self.failed("announce", i64::from(code))),
        }
    }
}

/// botocore's standard retry backoff (`botocore/retries/standard.py`, `ExponentialBackoff`):
/// attempt `n >= 1` waits `random() · min(20 s, 2^(n-1) s)`.
fn standard_backoff_ns(rng: &mut Rng, attempt: u32) -> u64 {
    /// `_MAX_BACKOFF`: 20 seconds.
    const MAX_BACKOFF_NS: u64 = 20_000_000_000;
    if attempt == 0 {
        return 0;
    }
    let ceiling = 1u64
        .checked_shl(attempt - 1)
        .map_or(MAX_BACKOFF_NS, |factor| {
            factor.saturating_mul(1_000_000_000).min(MAX_BACKOFF_NS)
        });
    rng.between(0, ceiling)
}

/// (a) AWS "standard" retry: no limiter, every attempt goes at once, retries after capped
/// exponential backoff with full jitter. Retry-After is not read (the AWS SDKs do not).
#[derive(Debug)]
pub struct StandardRetry {
    rng: Rng,
}

impl StandardRetry {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        StandardRetry {
            rng: Rng::from_seed(seed ^ 0xA),
        }
    }
}

impl Strategy for StandardRetry {
    fn plan(&mut self, _now: u64, _group: usize, attempt: u32) -> Result<Plan, String> {
        Ok(Plan::Send {
            delay_ns: standard_backoff_ns(&mut self.rng, attempt),
        })
    }

    fn on_response(&mut self, _: u64, _: usize, _: u64, _: i32, _: i64) -> Result<(), String> {
        Ok(())
    }
}

/// botocore's `throttling.CubicCalculator`: `_SCALE_CONSTANT = 0.4`, `_BETA = 0.7`.
#[derive(Debug, Clone, Copy)]
struct Cubic {
    w_max: f64,
    k: f64,
    last_fail: f64,
}

impl Cubic {
    const SCALE: f64 = 0.4;
    const BETA: f64 = 0.7;

    fn new(start: f64) -> Self {
        Cubic {
            w_max: 0.0,
            k: 0.0,
            last_fail: start,
        }
    }

    /// `success_received`: `C · (t - last_fail - K)^3 + W_max`.
    fn success(&self, t: f64) -> f64 {
        let dt = t - self.last_fail - self.k;
        Cubic::SCALE * dt * dt * dt + self.w_max
    }

    /// `error_received`: `W_max` is the current rate, `K = cbrt(W_max · (1 - β) / C)`; the new
    /// rate is `β · rate`.
    fn error(&mut self, rate: f64, t: f64) -> f64 {
        self.w_max = rate;
        self.k = cbrt(self.w_max * (1.0 - Cubic::BETA) / Cubic::SCALE);
        self.last_fail = t;
        rate * Cubic::BETA
    }
}

/// The cube root of `x >= 0` by Newton's method from an estimate in the exponent: the same
/// bits natively and in wasm, and a few dozen bytes in the page where `libm::cbrt` (with the
/// `fma` it uses) is two KB.
fn cbrt(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return x;
    }
    // A third of the exponent: within a few percent of the root.
    let mut y = f64::from_bits(x.to_bits() / 3 + 0x2A9F_7893_782D_A1CE);
    for _ in 0..100 {
        let next = (2.0 * y + x / (y * y)) / 3.0;
        if next == y {
            break;
        }
        y = next;
    }
    y
}

/// botocore's `adaptive.RateClocker`: requests per second, measured in half-second buckets and
/// smoothed by 0.8.
#[derive(Debug, Clone, Copy)]
struct RateClocker {
    measured: f64,
    count: f64,
    last_bucket: f64,
}

impl RateClocker {
    const SMOOTHING: f64 = 0.8;
    const BUCKET_S: f64 = 0.5;

    fn new(start: f64) -> Self {
        RateClocker {
            measured: 0.0,
            count: 0.0,
            last_bucket: libm::floor(start / Self::BUCKET_S) * Self::BUCKET_S,
        }
    }

    fn record(&mut self, t: f64) -> f64 {
        let bucket = libm::floor(t / Self::BUCKET_S) * Self::BUCKET_S;
        self.count += 1.0;
        if bucket > self.last_bucket {
            let current = self.count / (bucket - self.last_bucket);
            self.measured = current * (1.0 - Self::SMOOTHING) + self.measured * Self::SMOOTHING;
            self.count = 0.0;
            self.last_bucket = bucket;
        }
        self.measured
    }
}

/// botocore's `bucket.TokenBucket`: `_MIN_RATE = 0.5` tokens a second, capacity `max(rate, 1)`,
/// starting empty; acquiring blocks until a token is there, re-checking at the rate in force.
#[derive(Debug, Clone, Copy)]
struct SdkBucket {
    fill_rate: f64,
    capacity: f64,
    tokens: f64,
    last: f64,
}

impl SdkBucket {
    const MIN_RATE: f64 = 0.5;

    fn new(max_rate: f64, t: f64) -> Self {
        let mut bucket = SdkBucket {
            fill_rate: 0.0,
            capacity: 0.0,
            tokens: 0.0,
            last: t,
        };
        bucket.set_max_rate(max_rate, t);
        bucket
    }

    fn refill(&mut self, t: f64) {
        if t > self.last {
            self.tokens = (self.tokens + (t - self.last) * self.fill_rate).min(self.capacity);
            self.last = t;
        }
    }

    fn set_max_rate(&mut self, rate: f64, t: f64) {
        self.refill(t);
        self.fill_rate = rate.max(Self::MIN_RATE);
        self.capacity = rate.max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Takes a token if one is there (`0`); else the seconds until one will be, at the
    /// current rate (a blocked caller asks again then).
    fn acquire(&mut self, t: f64) -> f64 {
        self.refill(t);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            0.0
        } else {
            (1.0 - self.tokens) / self.fill_rate
        }
    }
}

/// One client of the AWS SDK's adaptive retry mode.
#[derive(Debug, Clone, Copy)]
struct AdaptiveClient {
    bucket: SdkBucket,
    enabled: bool,
    cubic: Cubic,
    clocker: RateClocker,
}

/// (b) The AWS SDK's adaptive retry mode (`botocore/retries/adaptive.py`): a client-side token
/// bucket, off until the first throttling error, whose rate follows CUBIC on throttling
/// (429) and is capped at twice the measured sending rate; retries back off as in
/// standard mode.
#[derive(Debug)]
pub struct AwsAdaptive {
    clients: Vec<AdaptiveClient>,
    rng: Rng,
}

impl AwsAdaptive {
    /// One client per group, seeded.
    pub fn new(groups: usize, seed: u64) -> Self {
        let client = AdaptiveClient {
            bucket: SdkBucket::new(1.0, 0.0),
            enabled: false,
            cubic: Cubic::new(0.0),
            clocker: RateClocker::new(0.0),
        };
        AwsAdaptive {
            clients: vec![client; groups.max(1)],
            rng: Rng::from_seed(seed ^ 0xB),
        }
    }
}

impl Strategy for AwsAdaptive {
    fn plan(&mut self, _now: u64, _group: usize, attempt: u32) -> Result<Plan, String> {
        Ok(Plan::Send {
            delay_ns: standard_backoff_ns(&mut self.rng, attempt),
        })
    }

    /// After the backoff, the bucket (once enabled) must hand over a token.
    fn recheck(&mut self, now: u64, group: usize) -> Result<Plan, String> {
        let n = self.clients.len();
        let client = &mut self.clients[group % n];
        if !client.enabled {
            return Ok(Plan::Send { delay_ns: 0 });
        }
        let wait_s = client.bucket.acquire(now as f64 / NS_PER_S);
        Ok(Plan::Send {
            delay_ns: (wait_s * NS_PER_S).ceil() as u64,
        })
    }

    fn on_response(
        &mut self,
        now: u64,
        group: usize,
        _sent_at: u64,
        status: i32,
        _retry_after_ms: i64,
    ) -> Result<(), String> {
        let n = self.clients.len();
        let client = &mut self.clients[group % n];
        let t = now as f64 / NS_PER_S;
        let measured = client.clocker.record(t);
        let new_rate = if status == 429 {
            let rate = if client.enabled {
                measured.min(client.bucket.fill_rate)
            } else {
                measured
            };
            client.enabled = true;
            client.cubic.error(rate, t)
        } else {
            client.cubic.success(t)
        };
        // `_MAX_RATE_ADJUST_SCALE = 2`: never more than twice the measured rate.
        let new_rate = new_rate.min(2.0 * measured);
        client.bucket.set_max_rate(new_rate, t);
        Ok(())
    }
}

/// One client's request history for SRE throttling: `(time, accepted)` per attempt.
#[derive(Debug, Default)]
struct History {
    attempts: std::collections::VecDeque<u64>,
    accepts: std::collections::VecDeque<u64>,
}

/// (c) Google SRE client-side throttling ("Handling Overload", *Site Reliability Engineering*,
/// ch. 21): reject locally with probability `max(0, (requests − K·accepts) / (requests + 1))`,
/// `K = 2`, over the last 2 minutes; retries (after an error or a local rejection) back off
/// as in AWS standard mode.
#[derive(Debug)]
pub struct SreThrottle {
    clients: Vec<History>,
    rng: Rng,
}

impl SreThrottle {
    /// `K`: the multiplier of accepts.
    pub const K: f64 = 2.0;
    /// The history window: two minutes.
    pub const WINDOW_NS: u64 = 120_000_000_000;

    /// One client per group, seeded.
    pub fn new(groups: usize, seed: u64) -> Self {
        SreThrottle {
            // Built, not cloned: a clone of the queues is code the page would carry.
            clients: (0..groups.max(1)).map(|_| History::default()).collect(),
            rng: Rng::from_seed(seed ^ 0xC),
        }
    }
}

impl Strategy for SreThrottle {
    fn plan(&mut self, now: u64, group: usize, attempt: u32) -> Result<Plan, String> {
        let n = self.clients.len();
        let history = &mut self.clients[group % n];
        let horizon = now.saturating_sub(Self::WINDOW_NS);
        while history.attempts.front().is_some_and(|t| *t < horizon) {
            history.attempts.pop_front();
        }
        while history.accepts.front().is_some_and(|t| *t < horizon) {
            history.accepts.pop_front();
        }
        let requests = history.attempts.len() as f64;
        let accepts = history.accepts.len() as f64;
        history.attempts.push_back(now);
        let reject = ((requests - Self::K * accepts) / (requests + 1.0)).max(0.0);
        let draw = self.rng.below(1 << 53) as f64 / (1u64 << 53) as f64;
        if draw < reject {
            return Ok(Plan::Hold {
                retry_in_ns: standard_backoff_ns(&mut self.rng, attempt + 1),
            });
        }
        Ok(Plan::Send {
            delay_ns: standard_backoff_ns(&mut self.rng, attempt),
        })
    }

    fn on_response(
        &mut self,
        now: u64,
        group: usize,
        _sent_at: u64,
        status: i32,
        _retry_after_ms: i64,
    ) -> Result<(), String> {
        if (200..400).contains(&status) {
            let n = self.clients.len();
            self.clients[group % n].accepts.push_back(now);
        }
        Ok(())
    }
}

/// (d) A plain token bucket at the configured quota, with no backoff and no pauses: what
/// governor's `until_ready` alone gives. Retries queue through the bucket like new requests.
#[derive(Debug)]
pub struct PlainBucket {
    buckets: Vec<Limiter>,
}

impl PlainBucket {
    /// One bucket per limiter of `config` (rate, burst and initial fill as configured).
    pub fn new(config: &pacer::Config) -> Result<Self, String> {
        let mut buckets = Vec::with_capacity(config.limiters.len());
        for limiter in &config.limiters {
            let quota: Quota = limiter.quota().map_err(|e| e.to_string())?;
            buckets.push(Limiter::new(quota, 0));
        }
        Ok(PlainBucket { buckets })
    }
}

impl Strategy for PlainBucket {
    fn plan(&mut self, now: u64, group: usize, _attempt: u32) -> Result<Plan, String> {
        let n = self.buckets.len();
        let delay_ns = self.buckets[group % n]
            .reserve(now, 1)
            .map_err(|e| e.to_string())?;
        Ok(Plan::Send { delay_ns })
    }

    fn on_response(&mut self, _: u64, _: usize, _: u64, _: i32, _: i64) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cbrt_matches_libm_within_an_ulp() {
        let mut x = 1e-300_f64;
        while x < 1e300 {
            for v in [x, x * 1.37, x * 2.9] {
                let ours = super::cbrt(v);
                let theirs = libm::cbrt(v);
                let ulps = (ours.to_bits() as i64 - theirs.to_bits() as i64).unsigned_abs();
                assert!(ulps <= 1, "cbrt({v}) = {ours}, libm {theirs}");
            }
            x *= 7.0;
        }
        assert_eq!(super::cbrt(0.0), 0.0);
        assert_eq!(super::cbrt(27.0), 3.0);
    }
}
