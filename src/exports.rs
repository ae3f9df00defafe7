//! ABI v1 at the level of integers: every export of the wasm module as a safe method.
//!
//! `abi.rs` only decodes pointers and forwards here, so native tests that drive [`Exports`]
//! with a scripted [`Host`] exercise exactly the code the module runs. Each method validates
//! its arguments in the contract's order (not configured, unknown limiter, bad argument, cost
//! above burst), returns the contract's codes, and keeps the message of the last failure.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::clock::Nanos;
use crate::config::{Config, ms_to_ns};
use crate::error::Error;
use crate::interface::Status;
use crate::jitter::PPM;
use crate::limiter::Decision;
use crate::policy::{Policy, Schedule};
use crate::pressure::{MemoryReading, Pressure, Thresholds};

/// Severity of a message sent to the host's `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// Something failed.
    Error = 0,
    /// Something is suspicious.
    Warn = 1,
    /// Normal operation.
    Info = 2,
    /// Detail.
    Debug = 3,
}

/// What the module imports from its host (module `"pacer"`).
pub trait Host {
    /// Monotonic nanoseconds from any origin.
    fn now_ns(&mut self) -> i64;
    /// Bytes in use; `< 0` = unknown.
    fn memory_used(&mut self) -> i64;
    /// Bytes the host may use; `<= 0` = unknown.
    fn memory_limit(&mut self) -> i64;
    /// Fills `buf` with random bytes.
    fn random_fill(&mut self, buf: &mut [u8]);
    /// Receives a UTF-8 message.
    fn log(&mut self, level: LogLevel, message: &str);
}

/// The module's state behind the exports.
#[derive(Debug)]
pub struct Exports<H> {
    host: H,
    policy: Option<Policy>,
    unconfigured_pressure: Pressure,
    last_error: String,
    snapshot: Vec<u8>,
}

impl<H: Host> Exports<H> {
    /// A module instance, unconfigured, talking to `host`.
    pub const fn new(host: H) -> Self {
        Exports {
            host,
            policy: None,
            unconfigured_pressure: Pressure::new(Thresholds::DEFAULT),
            last_error: String::new(),
            snapshot: Vec::new(),
        }
    }

    /// The host behind the imports.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// `pacer_configure`: `0`, or an error code with nothing changed.
    pub fn configure(&mut self, json: &[u8]) -> i32 {
        let result = self.try_configure(json).map(|()| 0);
        self.finish(result)
    }

    fn try_configure(&mut self, json: &[u8]) -> Result<(), Error> {
        let text = core::str::from_utf8(json)
            .map_err(|_| Error::Config(crate::ConfigError::new("", "config is not UTF-8")))?;
        let config = Config::from_json(text)?;
        let count = config.limiters.len();
        let host = &mut self.host;
        let entropy = || {
            let mut bytes = [0u8; 32];
            host.random_fill(&mut bytes);
            Ok(bytes)
        };
        match &mut self.policy {
            Some(policy) => policy.reconfigure_with_entropy(config, entropy)?,
            None => self.policy = Some(Policy::with_entropy(config, entropy)?),
        }
        let message = alloc::format!("configured {count} limiter(s)");
        self.host.log(LogLevel::Info, &message);
        Ok(())
    }

    /// The message of the most recent failed call (empty before any failure).
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// `pacer_try_acquire`: `0` admitted, `> 0` the exact wait in ns.
    pub fn try_acquire(&mut self, limiter: i32, cost: i32) -> i64 {
        self.try_acquire_when(None, limiter, cost)
    }

    /// `pacer_try_acquire_at` (feature bit 4): `pacer_try_acquire` at `now_ns`, which goes
    /// through the same monotonic guard as the `now_ns` import (hosts may mix the two).
    pub fn try_acquire_at(&mut self, now_ns: i64, limiter: i32, cost: i32) -> i64 {
        self.try_acquire_when(Some(now_ns), limiter, cost)
    }

    /// The hosted decision's whole path, inlined into its export: no closure, no call but the
    /// error's (`cargo bench -p pacer-host --bench hosted`, `raw_fixed_time`).
    #[inline(always)]
    fn try_acquire_when(&mut self, now_ns: Option<i64>, limiter: i32, cost: i32) -> i64 {
        let result = self.try_acquire_checked(now_ns, limiter, cost);
        self.finish(result)
    }

    #[inline(always)]
    fn try_acquire_checked(
        &mut self,
        now_ns: Option<i64>,
        limiter: i32,
        cost: i32,
    ) -> Result<i64, Error> {
        let (policy, index, now) = self.with_limiter_at(now_ns, limiter)?;
        Ok(match policy.try_acquire(now, index, cost_arg(cost)?)? {
            Decision::Admit => 0,
            Decision::Wait(ns) => clamp(ns),
        })
    }

    /// `pacer_reserve`: the ns to wait before acting, `0` = go now.
    pub fn reserve(&mut self, limiter: i32, cost: i32) -> i64 {
        self.reserve_when(None, limiter, cost)
    }

    /// `pacer_reserve_at` (feature bit 4): `pacer_reserve` at `now_ns`.
    pub fn reserve_at(&mut self, now_ns: i64, limiter: i32, cost: i32) -> i64 {
        self.reserve_when(Some(now_ns), limiter, cost)
    }

    fn reserve_when(&mut self, now_ns: Option<i64>, limiter: i32, cost: i32) -> i64 {
        let result = self
            .with_limiter_at(now_ns, limiter)
            .and_then(|(policy, index, now)| {
                policy.reserve(now, index, cost_arg(cost)?).map(clamp)
            });
        self.finish(result)
    }

    /// `pacer_available_milli`: tokens available × 1000, floored.
    pub fn available_milli(&mut self, limiter: i32) -> i64 {
        let result = self
            .with_limiter(limiter)
            .and_then(|(policy, index, now)| policy.available_milli(now, index));
        self.finish(result)
    }

    /// `pacer_rate_micro` (feature bit 128): the rate the limiter runs at now, in millionths of
    /// a token an hour (as `pacer_set_rate` takes it).
    pub fn rate_micro(&mut self, limiter: i32) -> i64 {
        let result = self
            .with_limiter(limiter)
            .and_then(|(policy, index, _)| policy.rate(index))
            .map(|rate| (rate * 1e6) as i64);
        self.finish(result)
    }

    /// `pacer_on_response`: `0` ok.
    pub fn on_response(&mut self, limiter: i32, status: i32, retry_after_ms: i64) -> i32 {
        self.respond(limiter, status, retry_after_ms, None)
    }

    /// `pacer_on_response_sent` (feature bit 2): `pacer_on_response` for a request sent when
    /// the host's `now_ns` read `sent_at_ns`; `0` ok.
    pub fn on_response_sent(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        sent_at_ns: i64,
    ) -> i32 {
        self.respond(limiter, status, retry_after_ms, Some(sent_at_ns))
    }

    fn respond(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        sent_at_ns: Option<i64>,
    ) -> i32 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let status = u16::try_from(status)
                .ok()
                .filter(|s| *s <= 999)
                .ok_or_else(|| Error::bad_argument("status", "must be from 0 to 999"))?;
            let retry_after = u64::try_from(retry_after_ms).ok().map(ms_to_ns);
            match sent_at_ns {
                None => policy.on_response(now, index, status, retry_after),
                Some(sent) => {
                    policy.on_response_sent(now, index, status, retry_after, host_time(sent))
                }
            }
            .map(|()| 0)
        });
        self.finish(result)
    }

    /// `pacer_replace_ns` (feature bit 1): re-places a slot of `cost` tokens that matures in
    /// `due_in_ns`: the same `due_in_ns` if nothing since forbids it, a new wait behind a
    /// pause that covers it, or `-7` while the circuit is open then.
    pub fn replace_ns(&mut self, limiter: i32, cost: i32, due_in_ns: i64) -> i64 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let cost = cost_arg(cost)?;
            let due_in = non_negative(due_in_ns, "due_in_ns")?;
            Ok(schedule_code(policy.replace(now, index, cost, due_in)?))
        });
        self.finish(result)
    }

    /// `pacer_next_delay_ns`: `>= 0` sleep then act, `-7` circuit open.
    pub fn next_delay_ns(&mut self, limiter: i32, cost: i32, base_ns: i64) -> i64 {
        self.next_delay_when(None, limiter, cost, base_ns)
    }

    /// `pacer_next_delay_at` (feature bit 4): `pacer_next_delay_ns` at `now_ns`.
    pub fn next_delay_at(&mut self, now_ns: i64, limiter: i32, cost: i32, base_ns: i64) -> i64 {
        self.next_delay_when(Some(now_ns), limiter, cost, base_ns)
    }

    fn next_delay_when(
        &mut self,
        now_ns: Option<i64>,
        limiter: i32,
        cost: i32,
        base_ns: i64,
    ) -> i64 {
        let args = self
            .with_limiter_at(now_ns, limiter)
            .and_then(|(_, index, now)| {
                Ok((
                    index,
                    cost_arg(cost)?,
                    non_negative(base_ns, "base_ns")?,
                    now,
                ))
            });
        let result = args.and_then(|(index, cost, base, now)| {
            // Read only once the arguments are valid: a failing call changes nothing.
            let memory = self.read_memory();
            let policy = self.policy.as_mut().ok_or(Error::NotConfigured)?;
            Ok(schedule_code(
                policy.next_delay(now, memory, index, cost, base)?,
            ))
        });
        self.finish(result)
    }

    /// `pacer_cancel` (feature bit 8): hands back a reservation of `cost` tokens that
    /// matures at `due_at_ns` (on the `now_ns` clock), if it is still the limiter's newest
    /// (nothing taken since) and not yet due: `1` handed back, `0` kept (its tokens stay spent).
    pub fn cancel(&mut self, limiter: i32, cost: i32, due_at_ns: i64) -> i32 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let cost = cost_arg(cost)?;
            Ok(i32::from(policy.cancel(
                now,
                index,
                cost,
                host_time(due_at_ns),
            )?))
        });
        self.finish(result)
    }

    /// `pacer_set_rate` (feature bit 16): runs the limiter at `micro_tokens_per_hour` / 10^6
    /// tokens an hour (100 to 3.6e18, i.e. 0.0001 to 3.6e12) from now on, keeping its bucket's
    /// tokens: `0`.
    pub fn set_rate(&mut self, limiter: i32, micro_tokens_per_hour: i64) -> i32 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let micro = u64::try_from(micro_tokens_per_hour)
                .ok()
                .filter(|m| (MIN_MICRO_RATE..=MAX_MICRO_RATE).contains(m))
                .ok_or_else(|| {
                    Error::bad_argument(
                        "micro_tokens_per_hour",
                        "must be from 100 (0.0001 an hour) to 3.6e18 (one per ns)",
                    )
                })?;
            policy.set_rate(now, index, micro as f64 / 1e6).map(|()| 0)
        });
        self.finish(result)
    }

    /// `pacer_pause` (feature bit 32): pauses the limiter for `for_ns` from now, as a
    /// Retry-After would but counting no failure: `0`.
    pub fn pause(&mut self, limiter: i32, for_ns: i64) -> i32 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let duration = non_negative(for_ns, "for_ns")?;
            policy.pause(now, index, duration).map(|()| 0)
        });
        self.finish(result)
    }

    /// `pacer_announce` (feature bit 64): a quota the server announced: `limit` units per
    /// window (`< 0` = not announced), `remaining` of them left until `reset_ns` from now, as
    /// counted before `in_flight` requests the host sent or granted since: `0`.
    pub fn announce(
        &mut self,
        limiter: i32,
        limit: i64,
        remaining: i64,
        reset_ns: i64,
        in_flight: i64,
    ) -> i32 {
        let result = self.with_limiter(limiter).and_then(|(policy, index, now)| {
            let limit = u64::try_from(limit).ok();
            let remaining = non_negative(remaining, "remaining")?;
            let reset = non_negative(reset_ns, "reset_ns")?;
            let in_flight = non_negative(in_flight, "in_flight")?;
            let announced = crate::policy::Announced {
                limit,
                remaining,
                reset,
                in_flight,
            };
            policy.announce(now, index, announced).map(|()| 0)
        });
        self.finish(result)
    }

    /// `pacer_retry_in_ns`: while the circuit refuses, ns until asking again; else `0`.
    pub fn retry_in_ns(&mut self, limiter: i32) -> i64 {
        let result = self
            .with_limiter(limiter)
            .and_then(|(policy, index, now)| policy.retry_in(now, index).map(clamp));
        self.finish(result)
    }

    /// `pacer_jitter_ns`: a delay by the configured strategy.
    pub fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> i64 {
        let result = self
            .policy
            .as_mut()
            .ok_or(Error::NotConfigured)
            .and_then(|policy| {
                let base = non_negative(base_ns, "base_ns")?;
                let utilization = u32::try_from(utilization_ppm)
                    .ok()
                    .filter(|u| *u <= PPM)
                    .ok_or_else(|| {
                        Error::bad_argument("utilization_ppm", "must be from 0 to 1000000")
                    })?;
                Ok(clamp(policy.jitter(base, utilization)))
            });
        self.finish(result)
    }

    /// `pacer_pressure`: reads memory now; `0` Low, `1` Medium, `2` High.
    pub fn pressure(&mut self) -> i32 {
        let memory = self.read_memory();
        self.pressure_mut().observe(memory) as i32
    }

    /// `pacer_should_throttle`: `1` while pressure is High.
    pub fn should_throttle(&mut self) -> i32 {
        self.pressure();
        i32::from(self.pressure_mut().should_throttle())
    }

    /// `pacer_pool_target`: idle buffers a host pool should keep now.
    pub fn pool_target(&mut self, max_buffers: i32) -> i32 {
        let result = u32::try_from(max_buffers)
            .map_err(|_| Error::bad_argument("max_buffers", "must be at least 0"))
            .map(|max| {
                self.pressure();
                self.pressure_mut().pool_target(max) as i32
            });
        self.finish(result)
    }

    /// `pacer_state_export`: writes a snapshot (see [`Exports::snapshot`]) and returns its length.
    pub fn state_export(&mut self) -> i32 {
        let now = self.now();
        let result = self
            .policy
            .as_mut()
            .ok_or(Error::NotConfigured)
            .map(|policy| {
                self.snapshot = policy.export_state(now);
                i32::try_from(self.snapshot.len()).unwrap_or(i32::MAX)
            });
        self.finish(result)
    }

    /// The snapshot written by the last [`Exports::state_export`].
    pub fn snapshot(&self) -> &[u8] {
        &self.snapshot
    }

    /// `pacer_state_import`: `0`, or `-6` with nothing changed.
    pub fn state_import(&mut self, snapshot: &[u8]) -> i32 {
        let now = self.now();
        let result = self
            .policy
            .as_mut()
            .ok_or(Error::NotConfigured)
            .and_then(|policy| policy.import_state(now, snapshot).map(|()| 0));
        self.finish(result)
    }

    /// Records a failure for `pacer_last_error_*` and turns a result into its return value.
    #[inline]
    pub fn finish<T: From<i32>>(&mut self, result: Result<T, Error>) -> T {
        match result {
            Ok(value) => value,
            Err(error) => self.fail(error),
        }
    }

    /// Records `error` as the last error and returns its code. It takes the error by value, so
    /// dropping it happens here, off the decisions' path.
    #[cold]
    #[inline(never)]
    pub fn fail<T: From<i32>>(&mut self, error: Error) -> T {
        self.last_error = error.to_string();
        T::from(error.code())
    }

    fn now(&mut self) -> Nanos {
        host_time(self.host.now_ns())
    }

    fn read_memory(&mut self) -> MemoryReading {
        MemoryReading::from_abi(self.host.memory_used(), self.host.memory_limit())
    }

    fn pressure_mut(&mut self) -> &mut Pressure {
        match &mut self.policy {
            Some(policy) => &mut policy.pressure,
            None => &mut self.unconfigured_pressure,
        }
    }

    /// The policy, the limiter's index and the time, after the first two checks. One copy for
    /// the many exports that use it; the decisions inline [`Exports::with_limiter_at`] instead.
    #[inline(never)]
    fn with_limiter(&mut self, limiter: i32) -> Result<(&mut Policy, usize, Nanos), Error> {
        self.with_limiter_at(None, limiter)
    }

    /// [`Exports::with_limiter`] at `now_ns` when the host passed it, else at the import's.
    #[inline(always)]
    fn with_limiter_at(
        &mut self,
        now_ns: Option<i64>,
        limiter: i32,
    ) -> Result<(&mut Policy, usize, Nanos), Error> {
        let now = match now_ns {
            Some(now_ns) => host_time(now_ns),
            None => self.now(),
        };
        // Errors built only on their own paths (not `ok_or`): an eagerly built error is
        // dropped by a call on the decisions' path (tests/decision_path.rs in the host).
        let Some(policy) = self.policy.as_mut() else {
            return Err(Error::NotConfigured);
        };
        let count = policy.config().limiters.len();
        let index = usize::try_from(limiter)
            .ok()
            .filter(|i| *i < count)
            .ok_or_else(|| Error::UnknownLimiter {
                index: i64::from(limiter),
                count,
            })?;
        Ok((policy, index, now))
    }
}

/// `pacer_set_rate`'s bounds: [`crate::quota::MIN_TOKENS_PER_HOUR`] and
/// [`crate::quota::MAX_TOKENS_PER_HOUR`] in millionths.
const MIN_MICRO_RATE: u64 = 100;
const MAX_MICRO_RATE: u64 = 3_600_000_000_000_000_000;

/// Maps the host's signed clock onto `u64` preserving order, so any origin works.
pub fn host_time(now_ns: i64) -> Nanos {
    (now_ns as u64) ^ (1 << 63)
}

fn cost_arg(cost: i32) -> Result<u32, Error> {
    u32::try_from(cost)
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(|| Error::bad_argument("cost", "must be at least 1"))
}

fn non_negative(value: i64, name: &'static str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::bad_argument(name, "must not be negative"))
}

/// A schedule as the ABI returns it: the delay, or `-7` while the circuit is open.
fn schedule_code(schedule: Schedule) -> i64 {
    match schedule {
        Schedule::Act { delay } => clamp(delay),
        Schedule::CircuitOpen { .. } => Status::CircuitOpen.code().into(),
    }
}

fn clamp(ns: Nanos) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}
