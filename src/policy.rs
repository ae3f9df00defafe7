//! The combined decision: limiters, backoff, circuit, jitter and pressure behind one config.

use alloc::vec::Vec;

use crate::adaptive::{self, Adaptive};
use crate::backoff::{BackoffSettings, Breaker, Circuit, Outcome, Sent};
use crate::clock::{HighWater, Nanos};
use crate::config::Config;
use crate::error::Error;
use crate::jitter::Jitter;
use crate::limiter::{Decision, Limiter};
use crate::pressure::{Level, MemoryReading, Pressure};
use crate::quota::{MIN_TOKENS_PER_HOUR, Quota};
use crate::random::Rng;

/// What to do before the next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Schedule {
    /// A slot is reserved: sleep `delay` ns, then act.
    Act {
        /// Nanoseconds to sleep first.
        delay: Nanos,
    },
    /// The circuit is open: nothing was reserved; ask again after `retry_in` ns.
    CircuitOpen {
        /// Nanoseconds until asking again can succeed.
        retry_in: Nanos,
    },
}

/// A quota a server announced, as `pacer_announce` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Units per window, where the server says (it bounds `remaining`).
    pub limit: Option<u64>,
    /// Units left until the reset, as the server counted when it answered.
    pub remaining: u64,
    /// Nanoseconds from now until the reset.
    pub reset: Nanos,
    /// Requests the host sent, or was granted slots for, after the one answered: the server
    /// had not counted them, so they come off `remaining`'s tokens (not its rate).
    pub in_flight: u64,
}

/// One limiter's state: its bucket (created when first touched), its breaker, and its
/// decorrelated jitter's previous delay.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The quota in force: the configured one, or a rate set since.
    pub quota: Quota,
    /// The configured quota (snapshots carry the bucket in its terms).
    pub configured: Quota,
    /// The quota in force before the first announcement, which announcements never exceed.
    pub announced_from: Option<Quota>,
    pub bucket: Option<Limiter>,
    pub breaker: Breaker,
    pub jitter_previous: Option<Nanos>,
    /// The rate's adaptation, for a limiter configured `adaptive`.
    pub adaptive: Option<Adaptive>,
}

impl Slot {
    fn new(quota: Quota, adaptive: Option<adaptive::AdaptiveConfig>) -> Self {
        Slot {
            quota,
            configured: quota,
            announced_from: None,
            adaptive: adaptive.map(|config| Adaptive::new(config, quota.tokens_per_hour())),
            bucket: None,
            breaker: Breaker::default(),
            jitter_previous: None,
        }
    }

    /// Runs the bucket at `rate` from `now` on, with the same burst.
    fn adapt(&mut self, now: Nanos, rate: f64) -> Result<(), Error> {
        let quota = self.quota.with_rate(rate)?;
        self.touch(now).set_quota(now, quota);
        self.quota = quota;
        Ok(())
    }

    /// After a response at `now`: a throttling answer starting a new round cuts the rate, a
    /// success while the bucket is saturated grows it (not while a server announces it).
    fn adapt_to(&mut self, now: Nanos, status: u16, new_round: bool) -> Result<(), Error> {
        let Some(adaptive) = &mut self.adaptive else {
            return Ok(());
        };
        let rate = self.quota.tokens_per_hour();
        let next = if adaptive.config.throttles(status) {
            adaptive.on_throttled(now, rate, new_round)
        } else if Outcome::of_status(status) == Outcome::Success {
            let saturated = self
                .bucket
                .as_ref()
                .is_some_and(|bucket| bucket.is_saturated(now));
            let next = adaptive.on_success(now, rate, saturated);
            next.filter(|_| self.announced_from.is_none())
        } else {
            None
        };
        match next {
            Some(rate) => self.adapt(now, rate),
            None => Ok(()),
        }
    }

    /// The bucket, created with the initial fill if this is the first touch.
    #[inline]
    fn touch(&mut self, now: Nanos) -> &mut Limiter {
        let quota = self.quota;
        self.bucket.get_or_insert_with(|| Limiter::new(quota, now))
    }
}

/// A complete pacing policy. Every method takes the current time from the caller; time that
/// goes backwards is raised to the highest reading seen.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) config: Config,
    pub(crate) slots: Vec<Slot>,
    pub(crate) jitter: Jitter,
    pub(crate) pressure: Pressure,
    pub(crate) rng: Rng,
    high_delay_ns: Nanos,
    backoff: BackoffSettings,
    clock: HighWater,
}

impl Policy {
    /// A policy for `config`, seeded from `config.seed` or else from `getrandom`.
    pub fn new(config: Config) -> Result<Policy, Error> {
        Policy::with_entropy(config, || Rng::from_entropy().map(|rng| rng.state()))
    }

    /// A policy whose random sequence, when `config.seed` is absent, is seeded by `entropy`
    /// (which is not called when a seed is present).
    pub fn with_entropy(
        config: Config,
        entropy: impl FnOnce() -> Result<[u8; 32], Error>,
    ) -> Result<Policy, Error> {
        let mut policy = Policy::compiled(config)?;
        if policy.config.seed.is_none() {
            policy.rng = Rng::from_state(entropy()?);
        }
        Ok(policy)
    }

    /// A policy for a valid `config`, its random sequence from the seed (or seed 0, for the
    /// caller to replace). Not generic, so one copy serves every entropy source.
    fn compiled(config: Config) -> Result<Policy, Error> {
        let compiled = config.compile()?;
        Ok(Policy {
            slots: compiled
                .quotas
                .into_iter()
                .zip(&config.limiters)
                .map(|(quota, limiter)| Slot::new(quota, limiter.adaptive))
                .collect(),
            jitter: compiled.jitter,
            pressure: Pressure::new(compiled.thresholds),
            rng: Rng::from_seed(config.seed.unwrap_or(0)),
            high_delay_ns: compiled.high_delay_ns,
            backoff: compiled.backoff,
            clock: HighWater::default(),
            config,
        })
    }

    /// Replaces the config. Each limiter whose name, rate and burst are unchanged keeps all
    /// its state; the pressure level carries over; decorrelated jitter starts again at base;
    /// a seed restarts the random sequence. On error nothing changes.
    pub fn reconfigure(&mut self, config: Config) -> Result<(), Error> {
        self.reconfigure_with_entropy(config, || Rng::from_entropy().map(|rng| rng.state()))
    }

    /// [`Policy::reconfigure`], taking entropy from `entropy` if the new config drops its seed.
    pub fn reconfigure_with_entropy(
        &mut self,
        config: Config,
        entropy: impl FnOnce() -> Result<[u8; 32], Error>,
    ) -> Result<(), Error> {
        let had_seed = self.config.seed.is_some();
        let mut next = Policy::compiled(config)?;
        if next.config.seed.is_none() {
            next.rng = if had_seed {
                Rng::from_state(entropy()?)
            } else {
                self.rng.clone()
            };
        }
        for (slot, limiter) in next.slots.iter_mut().zip(&next.config.limiters) {
            let kept = self
                .config
                .limiters
                .iter()
                .zip(&self.slots)
                .find(|(old, old_slot)| {
                    old.name == limiter.name
                        && old.tokens_per_hour.to_bits() == limiter.tokens_per_hour.to_bits()
                        && old_slot.quota.burst() == slot.quota.burst()
                });
            if let Some((old, old_slot)) = kept {
                slot.breaker = old_slot.breaker;
                if old.adaptive.is_some() && old.adaptive == limiter.adaptive {
                    // The same adaptation: it goes on where it was.
                    slot.bucket = old_slot.bucket.clone();
                    slot.quota = old_slot.quota;
                    slot.adaptive = old_slot.adaptive;
                    continue;
                }
                // A rate set since the old config ends: the bucket keeps its tokens.
                slot.bucket = old_slot.bucket.clone().map(|mut bucket| {
                    if *bucket.quota() != slot.quota {
                        bucket.set_quota(self.clock.latest(), slot.quota);
                    }
                    bucket
                });
            }
        }
        next.pressure.set_level(self.pressure.level());
        next.clock = self.clock;
        *self = next;
        Ok(())
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The index of the limiter called `name`.
    pub fn limiter_index(&self, name: &str) -> Option<usize> {
        self.config
            .limiters
            .iter()
            .position(|limiter| limiter.name == name)
    }

    /// Admits `cost` tokens now or says exactly how long until it would, honouring pauses.
    #[inline(always)]
    pub fn try_acquire(
        &mut self,
        now: Nanos,
        limiter: usize,
        cost: u32,
    ) -> Result<Decision, Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        slot.quota.check_cost(cost)?;
        slot.touch(now).try_acquire(now, cost)
    }

    /// Takes `cost` tokens (possibly into debt); returns the ns to wait before acting.
    #[inline]
    pub fn reserve(&mut self, now: Nanos, limiter: usize, cost: u32) -> Result<Nanos, Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        slot.quota.check_cost(cost)?;
        slot.touch(now).reserve(now, cost)
    }

    /// Tokens available now × 1000, floored; negative while in debt.
    pub fn available_milli(&mut self, now: Nanos, limiter: usize) -> Result<i64, Error> {
        let now = self.clock.observe(now);
        Ok(self.slot(limiter)?.touch(now).available_milli(now))
    }

    /// Feedback after an operation: `status` 0..=999 (0 = transport failure) and the
    /// server's Retry-After, if any. A failure reported while the limiter is paused answers a
    /// request admitted before the pause: it is in flight (see [`Sent`]).
    pub fn on_response(
        &mut self,
        now: Nanos,
        limiter: usize,
        status: u16,
        retry_after: Option<Nanos>,
    ) -> Result<(), Error> {
        self.respond(now, limiter, status, retry_after, None)
    }

    /// [`Policy::on_response`] for a request sent at `sent_at` (the same clock as `now`, not
    /// later): "in flight" is then decided exactly, even where no pause is in force.
    pub fn on_response_sent(
        &mut self,
        now: Nanos,
        limiter: usize,
        status: u16,
        retry_after: Option<Nanos>,
        sent_at: Nanos,
    ) -> Result<(), Error> {
        self.respond(now, limiter, status, retry_after, Some(sent_at))
    }

    fn respond(
        &mut self,
        now: Nanos,
        limiter: usize,
        status: u16,
        retry_after: Option<Nanos>,
        sent_at: Option<Nanos>,
    ) -> Result<(), Error> {
        let now = self.clock.observe(now);
        self.slot_ref(limiter)?;
        if status > 999 {
            return Err(Error::bad_argument("status", "must be from 0 to 999"));
        }
        if sent_at.is_some_and(|sent| sent > now) {
            return Err(Error::bad_argument(
                "sent_at_ns",
                "must not be later than now_ns",
            ));
        }
        let Policy {
            slots,
            backoff,
            rng,
            ..
        } = self;
        let slot = &mut slots[limiter];
        let bucket = slot.touch(now);
        let sent = match sent_at {
            Some(at) => Sent::At(at),
            None => Sent::Unknown {
                paused: now < bucket.paused_until(),
            },
        };
        let new_round = match sent {
            Sent::At(at) => slot.adaptive.is_none_or(|a| a.is_new_round(at)),
            Sent::Unknown { paused } => !paused,
        };
        let outcome = Outcome::of_status(status);
        let before = slot.breaker.circuit();
        let pause = slot
            .breaker
            .on_response(now, outcome, retry_after, sent, backoff, rng);
        let circuit = slot.breaker.circuit();
        let bucket = slot.touch(now);
        if let Some(until) = pause {
            bucket.pause_until(until);
        }
        // The circuit holds the bucket from the moment it opens or re-opens.
        if let (true, Circuit::Open { until }) = (circuit != before, circuit) {
            bucket.hold_until(until);
        }
        slot.adapt_to(now, status, new_round)
    }

    /// The one call before an operation. The extra delay (jitter on `base_ns` at the
    /// limiter's utilization, plus the High-pressure delay) places the reservation: `cost`
    /// tokens are reserved as if asked at `max(now, end of any pause) + extra`, behind every
    /// earlier reservation, and the wait until it matures is returned. So the moments callers
    /// act obey the bucket rule, jitter included. `CircuitOpen` reserves nothing.
    ///
    /// Adaptive jitter's spread is capped at one interval of the limiter as well as at
    /// `jitter.max_ms`, so it never holds a few workers below the quota.
    #[inline]
    pub fn next_delay(
        &mut self,
        now: Nanos,
        memory: MemoryReading,
        limiter: usize,
        cost: u32,
        base_ns: Nanos,
    ) -> Result<Schedule, Error> {
        let now = self.clock.observe(now);
        self.slot_ref(limiter)?.quota.check_cost(cost)?;
        let level = self.pressure.observe(memory);
        let Policy {
            slots,
            jitter,
            rng,
            backoff,
            high_delay_ns,
            ..
        } = self;
        let slot = &mut slots[limiter];
        if slot.breaker.refuses(now) {
            let retry_in = slot.breaker.retry_in(now, backoff);
            return Ok(Schedule::CircuitOpen { retry_in });
        }
        let interval_ns = slot.quota.interval_ns();
        let Slot {
            bucket,
            breaker,
            jitter_previous,
            quota,
            ..
        } = slot;
        let bucket = bucket.get_or_insert_with(|| Limiter::new(*quota, now));
        let utilization = bucket.utilization_if_reserved(now, cost);
        let spread = jitter.draw(rng, base_ns, utilization, interval_ns, jitter_previous);
        let pressure_delay = if level == Level::High {
            *high_delay_ns
        } else {
            0
        };
        let at = bucket
            .placement(now)
            .saturating_add(spread)
            .saturating_add(pressure_delay);
        let delay = bucket.reserve_at(now, at, cost);
        if breaker.would_probe() {
            breaker.probe_started(now.saturating_add(delay), backoff);
        }
        Ok(Schedule::Act { delay })
    }

    /// Re-places a slot of `cost` tokens handed out earlier that matures `due_in` ns from now,
    /// for a host that must not act through a pause or an open circuit that began since.
    /// - If the circuit is open at the slot's time: `CircuitOpen`, nothing reserved.
    /// - If a pause in force covers the slot's time: a new reservation, as
    ///   [`Policy::reserve`] makes it (at the pause's end, behind every earlier one).
    /// - Otherwise the slot keeps its time: `Act { delay: due_in }`.
    ///
    /// A re-placed slot's old tokens stay spent: giving them back could let a later caller
    /// act early and break the bucket rule.
    pub fn replace(
        &mut self,
        now: Nanos,
        limiter: usize,
        cost: u32,
        due_in: Nanos,
    ) -> Result<Schedule, Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        slot.quota.check_cost(cost)?;
        let due = now.saturating_add(due_in);
        if let Circuit::Open { until } = slot.breaker.circuit() {
            if due < until {
                return Ok(Schedule::CircuitOpen {
                    retry_in: until - now,
                });
            }
        }
        let bucket = slot.touch(now);
        if due < bucket.paused_until() {
            let delay = bucket.reserve(now, cost)?;
            return Ok(Schedule::Act { delay });
        }
        Ok(Schedule::Act { delay: due_in })
    }

    /// Hands back a reservation of `cost` tokens that matures at `due_at`, if it is not yet
    /// due and still the limiter's newest: nothing was taken or reserved since, and no pause
    /// began. Then the bucket is as if it had never been made, and FIFO holds for everyone
    /// behind. Returns whether it was handed back; otherwise its tokens stay spent.
    pub fn cancel(
        &mut self,
        now: Nanos,
        limiter: usize,
        cost: u32,
        due_at: Nanos,
    ) -> Result<bool, Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        slot.quota.check_cost(cost)?;
        Ok(slot.touch(now).cancel(now, cost, due_at))
    }

    /// Runs `limiter` at `tokens_per_hour` from `now` on, with the same burst, keeping its
    /// bucket's tokens or debt (see [`Limiter::set_quota`]): no burst comes from the change,
    /// and slots already handed out keep their times. In force until the next configure.
    pub fn set_rate(
        &mut self,
        now: Nanos,
        limiter: usize,
        tokens_per_hour: f64,
    ) -> Result<(), Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        let quota = slot.quota.with_rate(tokens_per_hour)?;
        slot.touch(now).set_quota(now, quota);
        slot.quota = quota;
        // A rate the host sets is the new ceiling for announcements and adaptation.
        slot.announced_from = None;
        if let Some(adaptive) = &mut slot.adaptive {
            adaptive.on_set(now, tokens_per_hour);
        }
        Ok(())
    }

    /// A quota the server announced for `limiter` (see [`Announced`]). The limiter then
    /// spreads what is left evenly: it runs at `remaining / reset`, never above the rate in
    /// force before the first announcement (an announcement can slow a limiter, never open
    /// it wide; an adaptive one follows it up to its ceiling), and holds at most
    /// `remaining - in_flight` tokens. With nothing left it keeps its rate and is paused until
    /// the reset, at most the backoff's longest pause. In force until the next announcement,
    /// configure or restore. A `reset` of 0 announces nothing.
    pub fn announce(
        &mut self,
        now: Nanos,
        limiter: usize,
        announced: Announced,
    ) -> Result<(), Error> {
        let now = self.clock.observe(now);
        let longest = self.backoff.max_ns;
        let slot = self.slot(limiter)?;
        let Announced {
            limit,
            remaining,
            reset,
            in_flight,
        } = announced;
        if reset == 0 {
            return Ok(());
        }
        let remaining = limit.map_or(remaining, |limit| remaining.min(limit));
        if remaining == 0 {
            // Nothing left: a pause until the reset, at the rate in force (not a crawl that
            // would outlast it).
            slot.touch(now)
                .pause_until(now.saturating_add(reset.min(longest)));
            return Ok(());
        }
        let ceiling = slot.announced_from.unwrap_or(slot.quota);
        slot.announced_from = Some(ceiling);
        let spread = remaining as f64 * 3.6e12 / reset as f64;
        // An adaptive limiter follows announcements up to its ceiling, a fixed one up to the
        // rate it had. Not `clamp`, which may panic (and brings in the formatting machinery).
        let highest = slot
            .adaptive
            .map_or(ceiling.tokens_per_hour(), |a| a.ceiling());
        let rate = spread.min(highest).max(MIN_TOKENS_PER_HOUR);
        if let Some(adaptive) = &mut slot.adaptive {
            adaptive.on_announced(now, rate);
        }
        let quota = slot.quota.with_rate(rate)?;
        let bucket = slot.touch(now);
        bucket.set_quota(now, quota);
        let left = remaining.saturating_sub(in_flight);
        bucket.cap_tokens(now, u32::try_from(left).unwrap_or(u32::MAX));
        slot.quota = quota;
        Ok(())
    }

    /// Pauses `limiter` for `duration` ns from `now`, as a Retry-After would, but without
    /// counting a failure: for a pause another host saw (a longer pause in force stays).
    pub fn pause(&mut self, now: Nanos, limiter: usize, duration: Nanos) -> Result<(), Error> {
        let now = self.clock.observe(now);
        let slot = self.slot(limiter)?;
        slot.touch(now).pause_until(now.saturating_add(duration));
        Ok(())
    }

    /// The rate `limiter` runs at now, tokens an hour: the configured one, or where a set
    /// rate, an announcement or adaptation moved it.
    pub fn rate(&self, limiter: usize) -> Result<f64, Error> {
        Ok(self.slot_ref(limiter)?.quota.tokens_per_hour())
    }

    /// While the circuit refuses: ns until asking again can succeed; else 0.
    pub fn retry_in(&mut self, now: Nanos, limiter: usize) -> Result<Nanos, Error> {
        let now = self.clock.observe(now);
        let backoff = self.backoff;
        let slot = self.slot(limiter)?;
        slot.touch(now);
        Ok(slot.breaker.retry_in(now, &backoff))
    }

    /// A delay by the configured jitter strategy; utilization in parts per million.
    pub fn jitter(&mut self, base_ns: Nanos, utilization_ppm: u32) -> Nanos {
        self.jitter.delay(&mut self.rng, base_ns, utilization_ppm)
    }

    /// The pressure tracker (level, thresholds, pool target).
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// A limiter's bucket, if it has been touched.
    pub fn bucket(&self, limiter: usize) -> Option<&Limiter> {
        self.slots
            .get(limiter)
            .and_then(|slot| slot.bucket.as_ref())
    }

    /// A limiter's breaker (failure count and circuit).
    pub fn breaker(&self, limiter: usize) -> Option<&Breaker> {
        self.slots.get(limiter).map(|slot| &slot.breaker)
    }

    pub(crate) fn observe_clock(&mut self, now: Nanos) -> Nanos {
        self.clock.observe(now)
    }

    #[inline]
    fn slot(&mut self, limiter: usize) -> Result<&mut Slot, Error> {
        let count = self.slots.len();
        self.slots
            .get_mut(limiter)
            .ok_or_else(|| Error::UnknownLimiter {
                index: i64::try_from(limiter).unwrap_or(i64::MAX),
                count,
            })
    }

    #[inline]
    fn slot_ref(&self, limiter: usize) -> Result<&Slot, Error> {
        let count = self.slots.len();
        self.slots
            .get(limiter)
            .ok_or_else(|| Error::UnknownLimiter {
                index: i64::try_from(limiter).unwrap_or(i64::MAX),
                count,
            })
    }
}
