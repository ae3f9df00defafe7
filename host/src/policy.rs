//! A safe handle on one module instance: the core's API, with every call deadlined and every
//! trap recovered from. The rest of the host never sees a raw export.

use std::time::Duration;

use pacer::interface::Status;
use pacer::{Decision, Level, Nanos, Schedule};
use wasmtime::{Store, TypedFunc, WasmParams, WasmResults};

use crate::environment::Environment;
use crate::error::HostError;
use crate::sandbox::{
    Exports, Failed, HostState, MAX_LOG_BYTES, PolicyModule, instantiate, one_line, placeholder,
    printable,
};

/// Decisions between two automatic snapshots: a trap rolls back at most this many.
const CHECKPOINT_EVERY: u32 = 256;
/// Traps one public call may recover from. Recovery itself makes only plain calls, so it
/// cannot recurse; a further trap in the same call leaves the policy broken.
const RECOVERIES_PER_CALL: u32 = 1;
/// `pacer_next_delay_ns`'s answer while the circuit is open.
const CIRCUIT_OPEN: i64 = Status::CircuitOpen.code() as i64;

/// One running policy module.
pub struct Policy {
    module: PolicyModule,
    store: Store<HostState>,
    exports: Exports,
    config: Option<String>,
    /// Limiters in `config`: `available_milli` can be negative (debt), so the handle checks
    /// indices itself rather than read small negatives as error codes.
    limiters: usize,
    /// Their names, in order.
    limiter_names: Vec<String>,
    checkpoint: Option<Vec<u8>>,
    decisions_since_checkpoint: u32,
    /// Rates set since the last configure, `(limiter, micro-tokens an hour)`: a restore after
    /// a trap brings back the configured rates, so these are set again.
    rates_set: Vec<(u32, i64)>,
    /// Recoveries made by the public call in progress (reset by `enter`).
    recoveries_in_call: u32,
    /// Why the module could not be brought back after a trap: every later call says so.
    broken: Option<(&'static str, String)>,
}

/// A failed export call, seen before any recovery.
enum Fault {
    /// The export trapped or ran out of time: the instance must be replaced.
    Trap {
        /// The export.
        call: &'static str,
        /// Why, in one line.
        reason: String,
    },
    /// The call returned, but with an answer the host cannot use; the instance is intact.
    Refused {
        /// The export.
        call: &'static str,
        /// What is wrong with it.
        error: HostError,
    },
}

impl Fault {
    /// One line naming the export and what went wrong.
    fn describe(&self) -> String {
        match self {
            Fault::Trap { call, reason } => format!("{call} failed ({reason})"),
            Fault::Refused { call, error } => format!("{call}: {error}"),
        }
    }
}

impl Policy {
    /// A fresh, unconfigured instance of `module` whose imports read `environment`.
    pub fn new(
        module: &PolicyModule,
        environment: Box<dyn Environment>,
    ) -> Result<Policy, HostError> {
        Policy::try_new(module, environment).map_err(|(error, _)| error)
    }

    fn try_new(module: &PolicyModule, environment: Box<dyn Environment>) -> Result<Policy, Failed> {
        let (store, exports) = instantiate(module, environment)?;
        Ok(Policy {
            module: module.clone(),
            store,
            exports,
            config: None,
            limiters: 0,
            limiter_names: Vec::new(),
            checkpoint: None,
            decisions_since_checkpoint: 0,
            rates_set: Vec::new(),
            recoveries_in_call: 0,
            broken: None,
        })
    }

    /// The module this instance runs.
    pub fn module(&self) -> &PolicyModule {
        &self.module
    }

    /// Configures the policy (the JSON of ABI v1). On error nothing changes.
    pub fn configure(&mut self, json: &str) -> Result<(), HostError> {
        self.enter()?;
        let code = self.with_bytes("pacer_configure", json.as_bytes(), |e| &e.configure)?;
        self.check(i64::from(code))?;
        // A trap is recovered from by restoring a snapshot: a module that cannot take one of
        // this config and import it back is refused now, rather than found broken mid-job.
        match self.round_trip() {
            Ok(snapshot) => {
                self.remember_config(json);
                self.rates_set.clear();
                self.checkpoint = Some(snapshot);
                self.decisions_since_checkpoint = 0;
                Ok(())
            }
            Err(fault) => {
                let refusal = HostError::Incompatible(format!(
                    "{} right after pacer_configure accepted the config: the host recovers a \
                     module from a trap by restoring its snapshot, so it cannot run this one",
                    fault.describe()
                ));
                // Back to the config and state in force before this call.
                match self.reinstate() {
                    Ok(()) => Err(refusal),
                    Err(again) => Err(self.restore_failed(&fault, &again)),
                }
            }
        }
    }

    /// Runs `limiter` at `tokens_per_hour` (0.0001 to 3.6e12) from now on, with the same burst,
    /// keeping its bucket's tokens, or the time its debt is paid; slots handed out keep their
    /// times. In force until the next [`Policy::configure`] or [`Policy::restore`].
    /// An [`HostError::Incompatible`] error for a module without `pacer_set_rate` (bit 16).
    pub fn set_rate(&mut self, limiter: u32, tokens_per_hour: f64) -> Result<(), HostError> {
        self.enter()?;
        let micro = (tokens_per_hour * 1e6).round();
        // Out of range (or NaN) goes to the module as -1, which it refuses by name.
        let micro = if micro.is_finite() && (0.0..9.2e18).contains(&micro) {
            micro as i64
        } else {
            -1
        };
        self.set_rate_micro(limiter, micro)?;
        self.rates_set.retain(|(l, _)| *l != limiter);
        self.rates_set.push((limiter, micro));
        Ok(())
    }

    /// The rate `limiter` runs at now, tokens an hour: the configured one, or where a set
    /// rate, an announcement or adaptation (ABI.md, Adaptive rates) moved it. `Ok(None)`: the
    /// module has no `pacer_rate_micro` (bit 128).
    pub fn rate(&mut self, limiter: u32) -> Result<Option<f64>, HostError> {
        self.enter()?;
        if self.exports.rate_micro.is_none() {
            return Ok(None);
        }
        let micro = self.decide(
            "pacer_rate_micro",
            |e| e.rate_micro.as_ref().expect("bound: checked above"),
            arg(limiter),
        )?;
        Ok(Some(micro as f64 / 1e6))
    }

    fn set_rate_micro(&mut self, limiter: u32, micro: i64) -> Result<(), HostError> {
        if self.exports.set_rate.is_none() {
            return Err(unsupported("pacer_set_rate", "16"));
        }
        self.decide(
            "pacer_set_rate",
            |e| e.set_rate.as_ref().expect("bound: checked above"),
            (arg(limiter), micro),
        )
        .map(drop)
    }

    /// A quota the server announced (its `RateLimit` or `X-RateLimit-*` headers, parsed):
    /// `limit` per window where known, `remaining` left until `reset` from now, counted before
    /// `in_flight` requests this host sent or granted after the one answered. The limiter
    /// spreads what is left evenly until the reset, never faster than before the first
    /// announcement (see ABI.md, `pacer_announce`). `Ok(false)`: the module has no
    /// `pacer_announce` (bit 64), and nothing changed.
    pub fn announce(
        &mut self,
        limiter: u32,
        limit: Option<u64>,
        remaining: u64,
        reset: Duration,
        in_flight: u64,
    ) -> Result<bool, HostError> {
        self.enter()?;
        if self.exports.announce.is_none() {
            return Ok(false);
        }
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let remaining = i64::try_from(remaining).unwrap_or(i64::MAX);
        let reset = i64::try_from(reset.as_nanos()).unwrap_or(i64::MAX);
        let in_flight = i64::try_from(in_flight).unwrap_or(i64::MAX);
        self.decide(
            "pacer_announce",
            |e| e.announce.as_ref().expect("bound: checked above"),
            (arg(limiter), limit, remaining, reset, in_flight),
        )
        .map(|_| true)
    }

    /// Pauses `limiter` for `duration` from now, as a Retry-After would, without counting a
    /// failure: for a pause another host saw. A longer pause in force stays.
    /// An [`HostError::Incompatible`] error for a module without `pacer_pause` (bit 32).
    pub fn pause(&mut self, limiter: u32, duration: Duration) -> Result<(), HostError> {
        self.enter()?;
        if self.exports.pause.is_none() {
            return Err(unsupported("pacer_pause", "32"));
        }
        let ns = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        self.decide(
            "pacer_pause",
            |e| e.pause.as_ref().expect("bound: checked above"),
            (arg(limiter), ns),
        )
        .map(drop)
    }

    /// Admits `cost` tokens now, or the exact wait.
    pub fn try_acquire(&mut self, limiter: u32, cost: u32) -> Result<Decision, HostError> {
        self.enter()?;
        let wait = if self.exports.try_acquire_at.is_some() {
            let now = self.now_ns();
            self.decide(
                "pacer_try_acquire_at",
                |e| e.try_acquire_at.as_ref().expect("bound: checked above"),
                (now, arg(limiter), arg(cost)),
            )?
        } else {
            self.decide(
                "pacer_try_acquire",
                |e| &e.try_acquire,
                (arg(limiter), arg(cost)),
            )?
        };
        Ok(if wait == 0 {
            Decision::Admit
        } else {
            Decision::Wait(wait)
        })
    }

    /// Takes `cost` tokens now; the ns to wait before acting.
    pub fn reserve(&mut self, limiter: u32, cost: u32) -> Result<Nanos, HostError> {
        self.enter()?;
        if self.exports.reserve_at.is_some() {
            let now = self.now_ns();
            return self.decide(
                "pacer_reserve_at",
                |e| e.reserve_at.as_ref().expect("bound: checked above"),
                (now, arg(limiter), arg(cost)),
            );
        }
        self.decide("pacer_reserve", |e| &e.reserve, (arg(limiter), arg(cost)))
    }

    /// Hands back a reservation of `cost` tokens that matures at `due_at_ns` (on the
    /// environment's clock, [`Policy::now_ns`]), if it is not yet due and still the
    /// limiter's newest (then FIFO holds for everyone behind it). Returns whether it was
    /// handed back; a module without `pacer_cancel` keeps every reservation.
    pub fn cancel(&mut self, limiter: u32, cost: u32, due_at_ns: i64) -> Result<bool, HostError> {
        self.enter()?;
        if self.exports.cancel.is_none() {
            return Ok(false);
        }
        let handed_back = self.decide(
            "pacer_cancel",
            |e| e.cancel.as_ref().expect("bound: checked above"),
            (arg(limiter), arg(cost), due_at_ns),
        )?;
        Ok(handed_back == 1)
    }

    /// The environment's clock, as the module's `now_ns` import reads it.
    pub fn now_ns(&mut self) -> i64 {
        self.store.data_mut().environment.now_ns()
    }

    /// The one call before an operation: sleep `delay` then act, or the circuit is open.
    pub fn next_delay(
        &mut self,
        limiter: u32,
        cost: u32,
        base: Duration,
    ) -> Result<Schedule, HostError> {
        self.enter()?;
        let now = self.now_ns();
        self.next_delay_at(now, limiter, cost, base)
    }

    /// [`Policy::next_delay`] at `now_ns`, a reading of the environment's clock the caller
    /// already has (a slot then matures at `now_ns + delay` exactly, on that clock). A module
    /// without `pacer_next_delay_at` reads the clock itself.
    pub fn next_delay_at(
        &mut self,
        now_ns: i64,
        limiter: u32,
        cost: u32,
        base: Duration,
    ) -> Result<Schedule, HostError> {
        self.enter()?;
        let base_ns = i64::try_from(base.as_nanos()).unwrap_or(i64::MAX);
        self.maybe_checkpoint()?;
        let delay = if self.exports.next_delay_at.is_some() {
            self.call(
                "pacer_next_delay_at",
                |e| e.next_delay_at.as_ref().expect("bound: checked above"),
                (now_ns, arg(limiter), arg(cost), base_ns),
            )?
        } else {
            self.call(
                "pacer_next_delay_ns",
                |e| &e.next_delay,
                (arg(limiter), arg(cost), base_ns),
            )?
        };
        self.schedule(limiter, delay)
    }

    /// A `next_delay`-style answer: the delay, or `-7` and then how long the circuit refuses.
    fn schedule(&mut self, limiter: u32, delay: i64) -> Result<Schedule, HostError> {
        if delay == CIRCUIT_OPEN {
            let retry_in = self.retry_in_ns(limiter)?;
            return Ok(Schedule::CircuitOpen { retry_in });
        }
        Ok(Schedule::Act {
            delay: self.check(delay)?,
        })
    }

    /// While the circuit refuses: ns until asking again can succeed; else 0.
    pub fn retry_in(&mut self, limiter: u32) -> Result<Nanos, HostError> {
        self.enter()?;
        self.retry_in_ns(limiter)
    }

    fn retry_in_ns(&mut self, limiter: u32) -> Result<Nanos, HostError> {
        let ns = self.call("pacer_retry_in_ns", |e| &e.retry_in, arg(limiter))?;
        self.check(ns)
    }

    /// Feedback after an operation: HTTP-like status (0 = transport failure), Retry-After.
    pub fn on_response(
        &mut self,
        limiter: u32,
        status: u16,
        retry_after: Option<Duration>,
    ) -> Result<(), HostError> {
        self.enter()?;
        let retry_ms = retry_after.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let code = self.call(
            "pacer_on_response",
            |e| &e.on_response,
            (arg(limiter), i32::from(status), retry_ms),
        )?;
        self.check(i64::from(code))?;
        self.rates_set.clear();
        self.take_checkpoint()
    }

    /// Feedback for a request sent when the environment's clock read `sent_at_ns`: "in
    /// flight" is then decided exactly. A module without `pacer_on_response_sent` gets
    /// [`Policy::on_response`].
    pub fn on_response_sent(
        &mut self,
        limiter: u32,
        status: u16,
        retry_after: Option<Duration>,
        sent_at_ns: i64,
    ) -> Result<(), HostError> {
        self.enter()?;
        if self.exports.on_response_sent.is_none() {
            return self.on_response(limiter, status, retry_after);
        }
        let retry_ms = retry_after.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let code = self.call(
            "pacer_on_response_sent",
            |e| e.on_response_sent.as_ref().expect("bound: checked above"),
            (arg(limiter), i32::from(status), retry_ms, sent_at_ns),
        )?;
        self.check(i64::from(code))?;
        self.take_checkpoint()
    }

    /// Re-places a slot of `cost` tokens due in `due_in` ns, handed out before a pause or an
    /// open circuit that began since: the wait to use now, or the circuit is open. A module
    /// without `pacer_replace_ns` keeps the slot's time.
    pub fn replace(
        &mut self,
        limiter: u32,
        cost: u32,
        due_in: Nanos,
    ) -> Result<Schedule, HostError> {
        self.enter()?;
        if self.exports.replace.is_none() {
            return Ok(Schedule::Act { delay: due_in });
        }
        let due_in = i64::try_from(due_in).unwrap_or(i64::MAX);
        self.maybe_checkpoint()?;
        let delay = self.call(
            "pacer_replace_ns",
            |e| e.replace.as_ref().expect("bound: checked above"),
            (arg(limiter), arg(cost), due_in),
        )?;
        self.schedule(limiter, delay)
    }

    /// Tokens available now × 1000 (negative while in debt).
    pub fn available_milli(&mut self, limiter: u32) -> Result<i64, HostError> {
        self.enter()?;
        if self.config.is_none() {
            return Err(HostError::from(pacer::Error::NotConfigured));
        }
        if usize::try_from(limiter).map_or(true, |l| l >= self.limiters) {
            return Err(HostError::from(pacer::Error::UnknownLimiter {
                index: i64::from(limiter),
                count: self.limiters,
            }));
        }
        self.call(
            "pacer_available_milli",
            |e| &e.available_milli,
            arg(limiter),
        )
    }

    /// A delay by the configured jitter strategy.
    pub fn jitter(&mut self, base: Duration, utilization_ppm: u32) -> Result<Nanos, HostError> {
        self.enter()?;
        let base_ns = i64::try_from(base.as_nanos()).unwrap_or(i64::MAX);
        let ns = self.call(
            "pacer_jitter_ns",
            |e| &e.jitter,
            (base_ns, arg(utilization_ppm)),
        )?;
        self.check(ns)
    }

    /// Reads memory now and returns the pressure level.
    pub fn pressure(&mut self) -> Result<Level, HostError> {
        self.enter()?;
        let level = self.call("pacer_pressure", |e| &e.pressure, ())?;
        Level::from_code(u8::try_from(level).unwrap_or(u8::MAX))
            .ok_or_else(|| HostError::Incompatible(format!("pacer_pressure() returned {level}")))
    }

    /// Reads memory now: true while pressure is High (start nothing new).
    pub fn should_throttle(&mut self) -> Result<bool, HostError> {
        self.enter()?;
        Ok(self.call("pacer_should_throttle", |e| &e.should_throttle, ())? == 1)
    }

    /// Idle buffers a pool of at most `max_buffers` should keep now.
    pub fn pool_target(&mut self, max_buffers: u32) -> Result<u32, HostError> {
        self.enter()?;
        let target = self.call("pacer_pool_target", |e| &e.pool_target, arg(max_buffers))?;
        let target = self.check(i64::from(target))?;
        Ok(u32::try_from(target).unwrap_or(u32::MAX))
    }

    /// A snapshot of all state (see `Policy::restore`).
    pub fn snapshot(&mut self) -> Result<Vec<u8>, HostError> {
        self.enter()?;
        self.export_state()
    }

    fn export_state(&mut self) -> Result<Vec<u8>, HostError> {
        let len = self.call("pacer_state_export", |e| &e.state_export, ())?;
        let len = usize::try_from(self.check(i64::from(len))?).unwrap_or(0);
        let ptr = self.call("pacer_state_ptr", |e| &e.state_ptr, ())?;
        self.read_guest(ptr, len)
    }

    /// Restores a snapshot from a module configured with the same limiters.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<(), HostError> {
        self.enter()?;
        let code = self.with_bytes("pacer_state_import", snapshot, |e| &e.state_import)?;
        self.check(i64::from(code))?;
        self.take_checkpoint()
    }

    /// Moves to `module`, carrying config, state and rates set across. If the new module fails its checks,
    /// its configure or its import, the old one stays in service and the error is returned.
    pub fn reload(&mut self, module: &PolicyModule) -> Result<(), HostError> {
        self.enter()?;
        let snapshot = self.export_state()?;
        let environment = self.take_environment();
        let mut next = match Policy::try_new(module, environment) {
            Ok(next) => next,
            Err((error, environment)) => {
                self.store.data_mut().environment = environment;
                return Err(error);
            }
        };
        let rates = self.rates_set.clone();
        let moved = match &self.config {
            Some(config) => next
                .configure(config)
                .and_then(|()| next.restore(&snapshot))
                .and_then(|()| {
                    // Rates set on the old module stay in force on the new one.
                    for &(limiter, micro) in &rates {
                        next.set_rate_micro(limiter, micro)?;
                    }
                    next.rates_set = rates;
                    Ok(())
                }),
            None => Ok(()),
        };
        if let Err(error) = moved {
            self.store.data_mut().environment = next.take_environment();
            return Err(error);
        }
        *self = next;
        Ok(())
    }

    /// Calls any export by name with integer arguments (feature `raw`: conformance tools).
    #[cfg(feature = "raw")]
    pub fn call_raw(&mut self, name: &str, args: &[i64]) -> Result<i64, HostError> {
        self.enter()?;
        let func = self
            .exports
            .instance
            .get_func(&mut self.store, name)
            .ok_or_else(|| HostError::Incompatible(format!("no export `{name}`")))?;
        let ty = func.ty(&self.store);
        use wasmtime::Val;
        let params: Vec<Val> = ty
            .params()
            .zip(args.iter().chain(std::iter::repeat(&0)))
            .map(|(ty, &a)| {
                if ty.is_i64() {
                    Val::I64(a)
                } else {
                    Val::I32(a as i32)
                }
            })
            .collect();
        let mut results = vec![Val::I32(0); ty.results().len()];
        self.store.data_mut().start_call();
        if let Err(error) = func.call(&mut self.store, &params, &mut results) {
            let reason = self.describe(&error);
            return Err(self.recover(Fault::Trap {
                call: "call_raw",
                reason,
            }));
        }
        Ok(match results.first() {
            Some(Val::I64(v)) => *v,
            Some(Val::I32(v)) => i64::from(*v),
            _ => 0,
        })
    }

    /// Copies `bytes` into the guest, calls `name(ptr, len)`, frees them (feature `raw`).
    #[cfg(feature = "raw")]
    pub fn call_with_bytes(&mut self, name: &'static str, bytes: &[u8]) -> Result<i64, HostError> {
        self.enter()?;
        let func: fn(&Exports) -> &TypedFunc<(i32, i32), i32> = match name {
            "pacer_configure" => |e| &e.configure,
            "pacer_state_import" => |e| &e.state_import,
            _ => return Err(HostError::Incompatible(format!("`{name}` takes no bytes"))),
        };
        let code = self.with_bytes(name, bytes, func)?;
        if name == "pacer_configure" && code == 0 {
            self.remember_config(&String::from_utf8_lossy(bytes));
        }
        Ok(i64::from(code))
    }

    /// The module's message for its last failed call.
    pub fn last_error(&mut self) -> Result<String, HostError> {
        self.enter()?;
        self.error_message()
    }

    fn error_message(&mut self) -> Result<String, HostError> {
        let ptr = self.call("pacer_last_error_ptr", |e| &e.last_error_ptr, ())?;
        let len = self.call("pacer_last_error_len", |e| &e.last_error_len, ())?;
        let len = usize::try_from(len).unwrap_or(0).min(MAX_LOG_BYTES);
        let bytes = self.read_guest(ptr, len)?;
        Ok(printable(&bytes))
    }

    fn remember_config(&mut self, json: &str) {
        // The module accepted it, so the core parses it too.
        self.limiter_names = pacer::Config::from_json(json)
            .map(|config| config.limiters.into_iter().map(|l| l.name).collect())
            .unwrap_or_default();
        self.limiters = self.limiter_names.len();
        self.config = Some(json.to_string());
    }

    /// The index of the limiter called `name` in the config in force: limiters are addressed
    /// by index, and this is an embedder's lookup by name.
    pub fn limiter_index(&self, name: &str) -> Option<u32> {
        let index = self.limiter_names.iter().position(|n| n == name)?;
        u32::try_from(index).ok()
    }

    fn decide<P: WasmParams, R: WasmResults + Into<i64>>(
        &mut self,
        name: &'static str,
        func: fn(&Exports) -> &TypedFunc<P, R>,
        args: P,
    ) -> Result<Nanos, HostError> {
        self.maybe_checkpoint()?;
        let value = self.call(name, func, args)?.into();
        self.check(value)
    }

    /// An export call; a trap or timeout is recovered from before the error comes back.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        func: fn(&Exports) -> &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, HostError> {
        if self.broken.is_some() {
            return Err(self.broken_error());
        }
        self.invoke(name, func, args)
            .map_err(|fault| self.recover(fault))
    }

    /// An export call and nothing else: the plain call recovery is made of.
    fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        func: fn(&Exports) -> &TypedFunc<P, R>,
        args: P,
    ) -> Result<R, Fault> {
        self.store.data_mut().start_call();
        match func(&self.exports).call(&mut self.store, args) {
            Ok(result) => Ok(result),
            Err(error) => Err(Fault::Trap {
                call: name,
                reason: self.describe(&error),
            }),
        }
    }

    /// A negative return is the module's error code; its message says why.
    fn check(&mut self, value: i64) -> Result<Nanos, HostError> {
        match u64::try_from(value) {
            Ok(ok) => Ok(ok),
            Err(_) => {
                let message = self.error_message().unwrap_or_default();
                Err(HostError::Policy {
                    code: i32::try_from(value).unwrap_or(i32::MIN),
                    message,
                })
            }
        }
    }

    fn with_bytes(
        &mut self,
        name: &'static str,
        bytes: &[u8],
        func: fn(&Exports) -> &TypedFunc<(i32, i32), i32>,
    ) -> Result<i32, HostError> {
        if self.broken.is_some() {
            return Err(self.broken_error());
        }
        match self.put_bytes(name, bytes, func) {
            Ok(code) => Ok(code),
            Err(Fault::Refused { error, .. }) => Err(error),
            Err(trap) => Err(self.recover(trap)),
        }
    }

    /// Copies `bytes` into the guest, calls `name(ptr, len)`, frees them: plain calls only.
    fn put_bytes(
        &mut self,
        name: &'static str,
        bytes: &[u8],
        func: fn(&Exports) -> &TypedFunc<(i32, i32), i32>,
    ) -> Result<i32, Fault> {
        let refused = |error| Fault::Refused { call: name, error };
        let len = i32::try_from(bytes.len()).map_err(|_| {
            refused(HostError::Policy {
                code: Status::BadArgument.code(),
                message: format!("{name}: input of {} bytes is too large", bytes.len()),
            })
        })?;
        let ptr = if len == 0 {
            0
        } else {
            self.invoke("pacer_alloc", |e| &e.alloc, len)?
        };
        if len > 0 && ptr == 0 {
            return Err(refused(HostError::Policy {
                code: Status::BadArgument.code(),
                message: format!("{name}: the module could not allocate {len} bytes"),
            }));
        }
        let memory = self.exports.memory;
        if memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .is_err()
        {
            return Err(refused(HostError::Incompatible(format!(
                "pacer_alloc returned {ptr}, outside its memory"
            ))));
        }
        let result = self.invoke(name, func, (ptr, len))?;
        if len > 0 {
            self.invoke("pacer_dealloc", |e| &e.dealloc, (ptr, len))?;
        }
        Ok(result)
    }

    /// `len` bytes at `ptr`, checked against the module's memory before anything is copied.
    fn read_guest(&mut self, ptr: i32, len: usize) -> Result<Vec<u8>, HostError> {
        let start = ptr as u32 as usize;
        self.exports
            .memory
            .data(&self.store)
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                HostError::Incompatible(format!(
                    "the module pointed outside its memory ({ptr}, {len})"
                ))
            })
    }

    fn maybe_checkpoint(&mut self) -> Result<(), HostError> {
        self.decisions_since_checkpoint += 1;
        if self.decisions_since_checkpoint >= CHECKPOINT_EVERY {
            self.take_checkpoint()?;
        }
        Ok(())
    }

    fn take_checkpoint(&mut self) -> Result<(), HostError> {
        self.decisions_since_checkpoint = 0;
        if self.config.is_some() {
            self.checkpoint = Some(self.export_state()?);
        }
        Ok(())
    }

    /// Starts a public call: a broken policy answers at once, and the call gets its own
    /// recovery budget.
    fn enter(&mut self) -> Result<(), HostError> {
        self.recoveries_in_call = 0;
        match self.broken {
            Some(_) => Err(self.broken_error()),
            None => Ok(()),
        }
    }

    fn broken_error(&self) -> HostError {
        let (call, reason) = self.broken.clone().unwrap_or(("", String::new()));
        HostError::Broken { call, reason }
    }

    /// After a trap or timeout: a new instance, the last config, the last good snapshot, at
    /// most [`RECOVERIES_PER_CALL`] times in one call. If that fails the policy is broken.
    fn recover(&mut self, fault: Fault) -> HostError {
        let (call, reason) = match fault {
            // Not a trap: the instance is intact and nothing needs restoring.
            Fault::Refused { error, .. } => return error,
            Fault::Trap { call, reason } => (call, reason),
        };
        tracing::warn!(call, %reason, "policy module trapped; restarting it from its last snapshot");
        if self.recoveries_in_call >= RECOVERIES_PER_CALL {
            let story = format!("{call} failed ({reason}) again, in the call it was restarted for");
            return self.break_down(call, story);
        }
        self.recoveries_in_call += 1;
        match self.reinstate() {
            Ok(()) => HostError::Trapped { call, reason },
            Err(again) => {
                let first = Fault::Trap { call, reason };
                self.restore_failed(&first, &again)
            }
        }
    }

    /// A new instance brought to the last config, the last checkpoint and the rates set since,
    /// with plain calls: nothing here recovers or takes a checkpoint, so nothing recurses.
    fn reinstate(&mut self) -> Result<(), Fault> {
        let environment = self.take_environment();
        match instantiate(&self.module, environment) {
            Ok((store, exports)) => {
                self.store = store;
                self.exports = exports;
            }
            Err((error, environment)) => {
                self.store.data_mut().environment = environment;
                return Err(Fault::Refused {
                    call: "the module's start",
                    error,
                });
            }
        }
        self.decisions_since_checkpoint = 0;
        let Some(config) = self.config.clone() else {
            return Ok(());
        };
        let code = self.put_bytes("pacer_configure", config.as_bytes(), |e| &e.configure)?;
        self.expect_ok("pacer_configure", i64::from(code))?;
        if let Some(snapshot) = self.checkpoint.clone() {
            let code = self.put_bytes("pacer_state_import", &snapshot, |e| &e.state_import)?;
            self.expect_ok("pacer_state_import", i64::from(code))?;
        }
        for (limiter, micro) in self.rates_set.clone() {
            if self.exports.set_rate.is_some() {
                let code = self.invoke(
                    "pacer_set_rate",
                    |e| e.set_rate.as_ref().expect("bound: checked above"),
                    (arg(limiter), micro),
                )?;
                self.expect_ok("pacer_set_rate", i64::from(code))?;
            }
        }
        Ok(())
    }

    /// A snapshot of the state now, imported straight back: plain calls only.
    fn round_trip(&mut self) -> Result<Vec<u8>, Fault> {
        let len = self.invoke("pacer_state_export", |e| &e.state_export, ())?;
        let len = self.expect_ok("pacer_state_export", i64::from(len))?;
        let ptr = self.invoke("pacer_state_ptr", |e| &e.state_ptr, ())?;
        let snapshot = self
            .read_guest(ptr, usize::try_from(len).unwrap_or(usize::MAX))
            .map_err(|error| Fault::Refused {
                call: "pacer_state_ptr",
                error,
            })?;
        let code = self.put_bytes("pacer_state_import", &snapshot, |e| &e.state_import)?;
        self.expect_ok("pacer_state_import", i64::from(code))?;
        Ok(snapshot)
    }

    /// A plain call's answer, where a negative one is a refusal (with the module's message if
    /// it can give one without trapping).
    fn expect_ok(&mut self, call: &'static str, value: i64) -> Result<u64, Fault> {
        if let Ok(ok) = u64::try_from(value) {
            return Ok(ok);
        }
        let message = self
            .invoke("pacer_last_error_ptr", |e| &e.last_error_ptr, ())
            .and_then(|ptr| {
                let len = self.invoke("pacer_last_error_len", |e| &e.last_error_len, ())?;
                Ok((ptr, len))
            })
            .ok()
            .and_then(|(ptr, len)| {
                let len = usize::try_from(len).unwrap_or(0).min(MAX_LOG_BYTES);
                self.read_guest(ptr, len).ok()
            })
            .map(|bytes| printable(&bytes))
            .unwrap_or_default();
        Err(Fault::Refused {
            call,
            error: HostError::Policy {
                code: i32::try_from(value).unwrap_or(i32::MIN),
                message,
            },
        })
    }

    /// Takes the policy out of service: `first` was being recovered from when `then` failed.
    fn restore_failed(&mut self, first: &Fault, then: &Fault) -> HostError {
        let call = match then {
            Fault::Trap { call, .. } | Fault::Refused { call, .. } => *call,
        };
        let story = format!(
            "{} while the host restored it after {}",
            then.describe(),
            first.describe()
        );
        self.break_down(call, story)
    }

    /// Takes the policy out of service for good: every later call returns this error at once.
    fn break_down(&mut self, call: &'static str, story: String) -> HostError {
        tracing::error!(call, %story, "policy module broken");
        self.broken = Some((call, story));
        self.broken_error()
    }

    /// Why an export call stopped, in one line.
    fn describe(&self, error: &wasmtime::Error) -> String {
        one_line(error, self.module.runtime.options().call_timeout)
    }

    fn take_environment(&mut self) -> Box<dyn Environment> {
        std::mem::replace(&mut self.store.data_mut().environment, placeholder())
    }
}

/// The error for an optional export the module does not have.
fn unsupported(export: &str, bit: &str) -> HostError {
    HostError::Incompatible(format!(
        "it lacks the optional export {export} (pacer_features bit {bit}), which this call needs"
    ))
}

fn arg(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
