//! The token bucket, kept as a GCRA "theoretical arrival time" in fixed-point ticks.
//!
//! The bucket holds `(now + capacity - tat) / interval` tokens, at most `burst`. Taking `n`
//! tokens moves `tat` forward by `n` intervals; `reserve` may move it past `now + capacity`,
//! which is debt. A caller arriving less than 1 ns after `tat` counts as on time, so a client
//! that sleeps the (rounded-up) wait it was given loses nothing to rounding.

use crate::clock::Nanos;
use crate::error::Error;
use crate::quota::{
    Quota, TICKS_PER_NS, Ticks, ceil_ns, ceil_ns_wide, div_ceil, div_floor, ticks, times,
};

/// The furthest the bucket's time may run ahead (about 1e11 years of debt), which keeps all
/// bucket arithmetic free of overflow without saturating on the hot path.
const MAX_TAT: Ticks = 1 << 125;

/// The answer to "may I go now?": a normal value, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Admitted: the tokens were taken.
    Admit,
    /// Not admitted, nothing taken: the same call succeeds after exactly this many ns.
    Wait(Nanos),
}

impl Decision {
    /// True when admitted.
    pub fn is_admitted(self) -> bool {
        self == Decision::Admit
    }

    /// The wait in nanoseconds, 0 when admitted.
    pub fn wait_ns(self) -> Nanos {
        match self {
            Decision::Admit => 0,
            Decision::Wait(ns) => ns,
        }
    }
}

/// One token bucket with an optional pause (from backoff or Retry-After).
#[derive(Debug, Clone, PartialEq)]
pub struct Limiter {
    quota: Quota,
    tat: Ticks,
    paused_until: Nanos,
}

impl Limiter {
    /// A bucket first touched at `now`, holding the quota's initial fill.
    pub fn new(quota: Quota, now: Nanos) -> Self {
        Limiter {
            quota,
            tat: ticks(now) + quota.initial_debt(),
            paused_until: 0,
        }
    }

    /// The quota this bucket enforces.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Admits `cost` tokens now, or says exactly how long until it would (taking nothing).
    #[inline(always)]
    pub fn try_acquire(&mut self, now: Nanos, cost: u32) -> Result<Decision, Error> {
        self.quota.check_cost(cost)?;
        let (owed, ceiling) = self.owed(now, cost);
        if owed > ceiling || self.paused_until > now {
            return Ok(Decision::Wait(self.wait(now, owed, ceiling)));
        }
        self.tat = self.start(ticks(now)) + times(self.quota.interval(), cost);
        Ok(Decision::Admit)
    }

    /// The exact wait until `cost` tokens could be taken, without taking them.
    #[inline]
    pub fn wait_time(&self, now: Nanos, cost: u32) -> Result<Nanos, Error> {
        self.quota.check_cost(cost)?;
        let (owed, ceiling) = self.owed(now, cost);
        Ok(self.wait(now, owed, ceiling))
    }

    /// Takes `cost` tokens, going into debt if needed, and returns the ns to wait before
    /// acting. A reservation made during a pause is placed at the pause's end, so reservations
    /// mature in the order they were made, at the configured rate, and never inside a pause.
    #[inline]
    pub fn reserve(&mut self, now: Nanos, cost: u32) -> Result<Nanos, Error> {
        self.quota.check_cost(cost)?;
        Ok(self.reserve_at(now, self.placement(now), cost))
    }

    /// Hands back a reservation of `cost` tokens (checked by the caller) that matures at
    /// `due_at`, if it is not yet due and is the newest: the bucket's time still matures
    /// exactly then, which every later reservation, admission or pause would have moved (each
    /// moves it by at least 1 ns). A reservation that waited on nothing but its placement
    /// (jitter, a pause) cannot be told from an older one, so it is kept. Returns whether it
    /// was handed back.
    pub fn cancel(&mut self, now: Nanos, cost: u32, due_at: Nanos) -> bool {
        let matures = ceil_ns_wide(self.tat.saturating_sub(self.quota.capacity()));
        if due_at <= now || matures != u128::from(due_at) {
            return false;
        }
        self.tat = self.tat.saturating_sub(times(self.quota.interval(), cost));
        true
    }

    /// Where a reservation made at `now` is placed: `now`, or the end of a pause in force.
    #[inline]
    pub fn placement(&self, now: Nanos) -> Nanos {
        now.max(self.paused_until)
    }

    /// Takes `cost` tokens (checked by the caller) as if the call were made at `at >= now`,
    /// behind every earlier reservation, and returns the ns from `now` until it matures.
    #[inline]
    pub(crate) fn reserve_at(&mut self, now: Nanos, at: Nanos, cost: u32) -> Nanos {
        let (tat, ceiling) = self.advance(at, cost);
        self.tat = tat.min(MAX_TAT);
        let bucket_wait = if tat > ceiling {
            ceil_ns(tat - ceiling)
        } else {
            0
        };
        (at - now).saturating_add(bucket_wait)
    }

    /// The share of the burst in use at `now` (ppm) once `cost` tokens are reserved as
    /// [`Limiter::reserve`] would: a pause in force counts as use.
    #[inline]
    pub(crate) fn utilization_if_reserved(&self, now: Nanos, cost: u32) -> u32 {
        let (tat, _) = self.advance(self.placement(now), cost);
        self.share_in_use(now, tat)
    }

    /// Tokens available now × 1000, floored; negative while in debt.
    #[inline]
    pub fn available_milli(&self, now: Nanos) -> i64 {
        let now = ticks(now);
        let interval = self.quota.interval();
        let ceiling = now.saturating_add(self.quota.capacity());
        if self.tat <= ceiling {
            let credit = (ceiling - self.tat).min(self.quota.capacity());
            i64::try_from(mul_div_floor(credit, 1000, interval)).unwrap_or(i64::MAX)
        } else {
            let debt = self.tat - ceiling;
            -i64::try_from(mul_div_ceil(debt, 1000, interval)).unwrap_or(i64::MAX)
        }
    }

    /// True when callers wait on the rate at `now`: under one token is left, and the slots
    /// handed out reach no further than one burst ahead (a deeper queue was granted at older
    /// rates, so its successes say nothing of this one).
    pub fn is_saturated(&self, now: Nanos) -> bool {
        let ceiling = ticks(now) + self.quota.capacity();
        self.tat + self.quota.interval() > ceiling && self.tat <= ceiling + self.quota.capacity()
    }

    /// Whole tokens available now (0 while in debt).
    pub fn available(&self, now: Nanos) -> u32 {
        u32::try_from(self.available_milli(now).max(0) / 1000).unwrap_or(u32::MAX)
    }

    /// Share of the burst in use, in parts per million (0 = full bucket, 1e6 = empty or in debt).
    #[inline]
    pub fn utilization_ppm(&self, now: Nanos) -> u32 {
        self.share_in_use(now, self.tat)
    }

    /// The share of the burst (ppm) in use at `now` when the bucket's time is `tat`.
    #[inline]
    fn share_in_use(&self, now: Nanos, tat: Ticks) -> u32 {
        let in_use = tat.saturating_sub(ticks(now)).min(self.quota.capacity());
        self.quota.share_ppm(in_use)
    }

    /// Pauses the bucket until `until` (a longer pause already in force stays) and holds it
    /// meanwhile (see [`Limiter::hold_until`]).
    pub fn pause_until(&mut self, until: Nanos) {
        self.paused_until = self.paused_until.max(until);
        self.hold_until(until);
    }

    /// Holds the bucket until `until`: it gains no credit meanwhile beyond one token, so when
    /// a pause or an open circuit ends, callers leave at the configured rate, never as a burst.
    pub fn hold_until(&mut self, until: Nanos) {
        let one_token_left = ticks(until) + self.quota.capacity() - self.quota.interval();
        self.tat = self.tat.max(one_token_left.min(MAX_TAT));
    }

    /// Runs the bucket at `quota` from `now` on. A bucket with tokens keeps them (rounded
    /// towards fewer): a rate change lends nothing and takes nothing. A bucket in debt keeps
    /// the time its debt is paid, when the last slot handed out matures (or a pause's hold
    /// ends): those slots keep their times, the next one comes after them (FIFO), and the new
    /// rate applies from there. So grants stay within burst plus the integral of the rate in
    /// force when each was issued.
    pub fn set_quota(&mut self, now: Nanos, quota: Quota) {
        let now_ticks = ticks(now);
        // Ticks of the burst in use (or in debt): a bucket behind `now` is full.
        let in_use = self.tat.max(now_ticks) - now_ticks;
        // Keep the unused tokens: whole ones exactly, the fraction of one rounded down by a
        // relative 2^-50 (more than f64's error), so never more than the exact answer.
        let unused = self.quota.capacity().saturating_sub(in_use);
        let whole = div_floor(unused, self.quota.interval());
        let fraction = (unused - whole * self.quota.interval()) as f64;
        let scale = quota.interval() as f64 / self.quota.interval() as f64;
        let fraction_now = (fraction * scale * (1.0 - 1.0 / (1u64 << 50) as f64)) as Ticks;
        // `whole <= burst`, which fits a `u32`.
        let unused_now = times(quota.interval(), u32::try_from(whole).unwrap_or(u32::MAX))
            .saturating_add(fraction_now.min(quota.interval()));
        let rounded = quota.capacity() - unused_now.min(quota.capacity());
        // In debt, slots already handed out (or a pause's hold) run until `tat - capacity`:
        // that horizon is kept in time, so the next slot comes after them (FIFO) and then
        // at the new rate.
        let in_use_now = match in_use.checked_sub(self.quota.capacity()) {
            Some(horizon) if horizon > 0 => horizon.saturating_add(quota.capacity()),
            _ => rounded,
        };
        self.quota = quota;
        self.tat = (now_ticks + in_use_now.min(MAX_TAT)).min(MAX_TAT);
    }

    /// Holds at most `tokens` in the bucket at `now` (a server said only that many are left):
    /// any more are taken away; a bucket already at or below it is left as it is.
    pub fn cap_tokens(&mut self, now: Nanos, tokens: u32) {
        let floor = (ticks(now) + self.quota.capacity())
            .saturating_sub(times(self.quota.interval(), tokens.min(self.quota.burst())));
        self.tat = self.tat.max(floor);
    }

    /// When the current pause ends (in the past when there is none).
    pub fn paused_until(&self) -> Nanos {
        self.paused_until
    }

    /// True when the bucket is full and unpaused: a fresh bucket would grant no more.
    pub fn is_idle(&self, now: Nanos) -> bool {
        self.tat <= ticks(now) && self.paused_until <= now
    }

    /// Where taking `cost` tokens at `now` would put `tat`, and the highest `tat` that is
    /// admissible at `now` (both in ticks).
    #[inline]
    fn advance(&self, now: Nanos, cost: u32) -> (Ticks, Ticks) {
        // No overflow: tat <= MAX_TAT < 2^125, now < 2^96, cost x interval < 2^120.
        let now_ticks = ticks(now);
        (
            self.start(now_ticks) + times(self.quota.interval(), cost),
            now_ticks + self.quota.capacity(),
        )
    }

    /// `tat` plus `cost` tokens, and the highest `tat` admissible at `now`. The tokens are
    /// admissible exactly when the first is at most the second: a bucket whose time is behind
    /// `now` is full, and `cost <= burst`. Where they are not, the first is where taking them
    /// would put `tat` (as [`Limiter::advance`] says), so the wait follows from it alone.
    #[inline]
    fn owed(&self, now: Nanos, cost: u32) -> (Ticks, Ticks) {
        (
            self.tat + times(self.quota.interval(), cost),
            ticks(now) + self.quota.capacity(),
        )
    }

    /// Where a call at `now_ticks` starts taking tokens: at `tat`, or at `now` once `tat` has
    /// passed (a caller less than 1 ns after `tat` counts as on time).
    #[inline]
    fn start(&self, now_ticks: Ticks) -> Ticks {
        if now_ticks < self.tat + TICKS_PER_NS {
            self.tat
        } else {
            now_ticks
        }
    }

    /// Whole ns until a bucket at `tat` is admissible and any pause is over (0 if both are).
    #[inline]
    fn wait(&self, now: Nanos, tat: Ticks, ceiling: Ticks) -> Nanos {
        let bucket_wait = if tat > ceiling {
            ceil_ns(tat - ceiling)
        } else {
            0
        };
        bucket_wait.max(self.paused_until.saturating_sub(now))
    }

    pub(crate) fn tat(&self) -> Ticks {
        self.tat
    }

    pub(crate) fn restore(quota: Quota, tat: Ticks, paused_until: Nanos) -> Self {
        Limiter {
            quota,
            tat,
            paused_until,
        }
    }
}

/// `floor(x * m / d)` without overflow while `x < 2^126` and `d * m < 2^126`.
fn mul_div_floor(x: u128, m: u128, d: u128) -> u128 {
    let q = div_floor(x, d);
    q.saturating_mul(m) + div_floor((x - q * d) * m, d)
}

/// `ceil(x * m / d)` under the same conditions as [`mul_div_floor`].
fn mul_div_ceil(x: u128, m: u128, d: u128) -> u128 {
    let q = div_floor(x, d);
    q.saturating_mul(m) + div_ceil((x - q * d) * m, d)
}
