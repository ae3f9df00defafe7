//! The policy under simulation, seen through ABI v1: the built-in core, or any module a host
//! can call (the page drives a user's `.wasm` through the browser's `WebAssembly`).

use pacer::exports::{Exports, Host, LogLevel};

/// `pacer_next_delay_ns`'s and `pacer_replace_ns`'s answer while the circuit is open.
pub const CIRCUIT_OPEN: i64 = pacer::interface::Status::CircuitOpen.code() as i64;

/// What the policy's imports read at the moment of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// `now_ns`: the virtual clock.
    pub now_ns: u64,
    /// `memory_used` (`< 0` = unknown).
    pub memory_used: i64,
    /// `memory_limit` (`<= 0` = unknown).
    pub memory_limit: i64,
}

/// A policy with ABI v1's exports; every call sees the last [`Engine::set_reading`].
///
/// Methods return exactly what the export returns, error codes included.
pub trait Engine {
    /// `pacer_configure`, with `entropy` served by `random_fill` (used only by configs
    /// without a seed); `Err` holds the module's message.
    fn configure(&mut self, json: &str, entropy: [u8; 32]) -> Result<(), String>;
    /// Sets the clock and memory the next calls read.
    fn set_reading(&mut self, reading: Reading);
    /// `pacer_try_acquire`.
    fn try_acquire(&mut self, limiter: i32, cost: i32) -> i64;
    /// `pacer_next_delay_ns`.
    fn next_delay_ns(&mut self, limiter: i32, cost: i32, base_ns: i64) -> i64;
    /// `pacer_features` (0: no optional exports).
    fn features(&mut self) -> i32 {
        0
    }
    /// `pacer_replace_ns` (feature bit 1); without it a slot keeps its time.
    fn replace_ns(&mut self, _limiter: i32, _cost: i32, due_in_ns: i64) -> i64 {
        due_in_ns
    }
    /// `pacer_on_response_sent` (feature bit 2); without it, `pacer_on_response`.
    fn on_response_sent(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        _sent_at_ns: i64,
    ) -> i32 {
        self.on_response(limiter, status, retry_after_ms)
    }
    /// `pacer_on_response`.
    fn on_response(&mut self, limiter: i32, status: i32, retry_after_ms: i64) -> i32;
    /// `pacer_announce` (feature bit 64): `[limit, remaining, reset_ns, in_flight]`; without
    /// it an announcement is not heard (`0`).
    #[cfg(feature = "goals")]
    fn announce(&mut self, _limiter: i32, _announced: [i64; 4]) -> i32 {
        0
    }
    /// `pacer_rate_micro` (feature bit 128); without it `-1`: unknown.
    fn rate_micro(&mut self, _limiter: i32) -> i64 {
        -1
    }
    /// `pacer_retry_in_ns`.
    fn retry_in_ns(&mut self, limiter: i32) -> i64;
    /// `pacer_available_milli`.
    fn available_milli(&mut self, limiter: i32) -> i64;
    /// `pacer_jitter_ns`.
    fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> i64;
    /// `pacer_pressure`.
    fn pressure(&mut self) -> i32;
    /// `pacer_pool_target`.
    fn pool_target(&mut self, max_buffers: i32) -> i32;
    /// The message of the last failed call.
    fn last_error(&mut self) -> String;
    /// Why the engine stopped answering, if it trapped (hosts that can trap say so).
    fn trap(&self) -> Option<String> {
        None
    }
}

/// The imports the built-in core sees: the virtual clock and memory, entropy from the scenario.
#[derive(Debug, Default)]
pub struct VirtualHost {
    reading: Reading,
    entropy: [u8; 32],
}

impl Host for VirtualHost {
    fn now_ns(&mut self) -> i64 {
        pacer_time(self.reading.now_ns)
    }
    fn memory_used(&mut self) -> i64 {
        self.reading.memory_used
    }
    fn memory_limit(&mut self) -> i64 {
        self.reading.memory_limit
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        for (byte, source) in buf.iter_mut().zip(self.entropy.iter().cycle()) {
            *byte = *source;
        }
    }
    fn log(&mut self, _level: LogLevel, _message: &str) {}
}

/// Virtual ns as the `now_ns` import's `i64`.
pub fn pacer_time(now_ns: u64) -> i64 {
    i64::try_from(now_ns).unwrap_or(i64::MAX)
}

/// The policy core itself, compiled into the simulator.
#[derive(Debug)]
pub struct CoreEngine(Exports<VirtualHost>);

impl CoreEngine {
    /// An unconfigured core.
    pub fn new() -> Self {
        CoreEngine(Exports::new(VirtualHost::default()))
    }
}

impl Default for CoreEngine {
    fn default() -> Self {
        CoreEngine::new()
    }
}

impl Engine for CoreEngine {
    fn configure(&mut self, json: &str, entropy: [u8; 32]) -> Result<(), String> {
        self.0.host_mut().entropy = entropy;
        match self.0.configure(json.as_bytes()) {
            0 => Ok(()),
            _ => Err(self.0.last_error().to_string()),
        }
    }
    #[inline]
    fn set_reading(&mut self, reading: Reading) {
        self.0.host_mut().reading = reading;
    }
    #[inline]
    fn try_acquire(&mut self, limiter: i32, cost: i32) -> i64 {
        self.0.try_acquire(limiter, cost)
    }
    #[inline]
    fn next_delay_ns(&mut self, limiter: i32, cost: i32, base_ns: i64) -> i64 {
        self.0.next_delay_ns(limiter, cost, base_ns)
    }
    fn on_response(&mut self, limiter: i32, status: i32, retry_after_ms: i64) -> i32 {
        self.0.on_response(limiter, status, retry_after_ms)
    }
    fn features(&mut self) -> i32 {
        pacer::interface::FEATURES
    }
    fn replace_ns(&mut self, limiter: i32, cost: i32, due_in_ns: i64) -> i64 {
        self.0.replace_ns(limiter, cost, due_in_ns)
    }
    fn on_response_sent(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        sent_at_ns: i64,
    ) -> i32 {
        self.0
            .on_response_sent(limiter, status, retry_after_ms, sent_at_ns)
    }
    #[cfg(feature = "goals")]
    fn announce(&mut self, limiter: i32, [limit, remaining, reset_ns, in_flight]: [i64; 4]) -> i32 {
        self.0
            .announce(limiter, limit, remaining, reset_ns, in_flight)
    }
    fn rate_micro(&mut self, limiter: i32) -> i64 {
        self.0.rate_micro(limiter)
    }
    fn retry_in_ns(&mut self, limiter: i32) -> i64 {
        self.0.retry_in_ns(limiter)
    }
    fn available_milli(&mut self, limiter: i32) -> i64 {
        self.0.available_milli(limiter)
    }
    fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> i64 {
        self.0.jitter_ns(base_ns, utilization_ppm)
    }
    fn pressure(&mut self) -> i32 {
        self.0.pressure()
    }
    fn pool_target(&mut self, max_buffers: i32) -> i32 {
        self.0.pool_target(max_buffers)
    }
    fn last_error(&mut self) -> String {
        self.0.last_error().to_string()
    }
}

impl<E: Engine + ?Sized> Engine for Box<E> {
    fn configure(&mut self, json: &str, entropy: [u8; 32]) -> Result<(), String> {
        (**self).configure(json, entropy)
    }
    fn set_reading(&mut self, reading: Reading) {
        (**self).set_reading(reading)
    }
    fn try_acquire(&mut self, limiter: i32, cost: i32) -> i64 {
        (**self).try_acquire(limiter, cost)
    }
    fn next_delay_ns(&mut self, limiter: i32, cost: i32, base_ns: i64) -> i64 {
        (**self).next_delay_ns(limiter, cost, base_ns)
    }
    fn on_response(&mut self, limiter: i32, status: i32, retry_after_ms: i64) -> i32 {
        (**self).on_response(limiter, status, retry_after_ms)
    }
    fn features(&mut self) -> i32 {
        (**self).features()
    }
    fn replace_ns(&mut self, limiter: i32, cost: i32, due_in_ns: i64) -> i64 {
        (**self).replace_ns(limiter, cost, due_in_ns)
    }
    fn on_response_sent(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        sent_at_ns: i64,
    ) -> i32 {
        (**self).on_response_sent(limiter, status, retry_after_ms, sent_at_ns)
    }
    #[cfg(feature = "goals")]
    fn announce(&mut self, limiter: i32, announced: [i64; 4]) -> i32 {
        (**self).announce(limiter, announced)
    }
    fn rate_micro(&mut self, limiter: i32) -> i64 {
        (**self).rate_micro(limiter)
    }
    fn retry_in_ns(&mut self, limiter: i32) -> i64 {
        (**self).retry_in_ns(limiter)
    }
    fn available_milli(&mut self, limiter: i32) -> i64 {
        (**self).available_milli(limiter)
    }
    fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> i64 {
        (**self).jitter_ns(base_ns, utilization_ppm)
    }
    fn pressure(&mut self) -> i32 {
        (**self).pressure()
    }
    fn pool_target(&mut self, max_buffers: i32) -> i32 {
        (**self).pool_target(max_buffers)
    }
    fn last_error(&mut self) -> String {
        (**self).last_error()
    }
    fn trap(&self) -> Option<String> {
        (**self).trap()
    }
}
