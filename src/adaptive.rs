//! Adaptive rate: a limiter that learns the origin's real limit from its 429s.
//!
//! The rate follows CUBIC (RFC 9438), read as tokens an hour instead of a congestion window:
//! - a throttling answer to a request sent after the last cut starts a new round: the rate
//!   falls to `β = 0.8` of itself (never below `min_tokens_per_hour`), and the rate it fell from
//!   becomes `W_max` (lowered to `(1 + β) / 2` of it when it was below the previous `W_max`:
//!   RFC 9438's fast convergence). Answers to requests already in flight at the cut, and
//!   answers while the pause that cut began is in force, lower nothing more;
//! - while successes flow and the bucket is saturated (under one token left, so callers wait on
//!   the rate, and no more than one burst of slots handed out ahead, so the successes come at
//!   this rate, not an older one), the rate grows along CUBIC's curve, `t` the saturated time
//!   since the cut and `u = t / K`: concave from the rate after the cut `W₀` back to `W_max`,
//!   `W = W_max − (W_max − W₀)(1 − u)³` for `u ≤ 1`, then convex probing beyond,
//!   `W = W_max (1 + (1 − β)(u − 1)³)`. After a full cut (`W₀ = β W_max`) this is RFC 9438's
//!   `W_max (1 + C' (t − K)³)` exactly; a cut floored at `min` reaches `W_max` at `K` too. A
//!   limiter that starts, or is set, with nothing learnt yet probes from `u = 1`. Never above
//!   `max_tokens_per_hour` (or a rate the host set);
//! - unlike RFC 9438's fixed `C`, the curve's constant scales with `W_max`, so `K` (the time
//!   back to `W_max`) is the same at 60 an hour and 10,000 a second: [`epoch_ns`].
//!
//! The burst stays as configured: costs checked against it stay valid whatever the rate.

use crate::clock::Nanos;

/// The multiplicative decrease. RFC 9438's `β_cubic` is 0.7; a token-bucket origin builds no
/// queue when a client overshoots a little (it answers 429 at once), so pacer cuts gentler:
/// 98.0 % of the origin's rate against 96.4 % at 0.7, with as many 429s (the scorecard's
/// `adaptive_4x_high`, BENCHMARKS.md).
pub const BETA: f64 = 0.8;
/// The shortest time the rate takes back to `W_max` after a cut, ns: 10 s.
pub const MIN_EPOCH_NS: f64 = 10e9;
/// `K` in intervals of `W_max` where that is longer than [`MIN_EPOCH_NS`]: about 60 requests.
pub const EPOCH_INTERVALS: f64 = 60.0;

/// The `adaptive` section of a limiter's config.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AdaptiveConfig {
    /// The lowest rate the limiter may fall to.
    pub min_tokens_per_hour: f64,
    /// The highest rate it may grow to.
    pub max_tokens_per_hour: f64,
    /// Whether a 503 lowers the rate as a 429 does.
    pub on_503: bool,
}

impl AdaptiveConfig {
    /// Whether `status` is a throttling answer for this config.
    pub fn throttles(&self, status: u16) -> bool {
        status == 429 || (self.on_503 && status == 503)
    }
}

/// One limiter's adaptation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Adaptive {
    pub config: AdaptiveConfig,
    /// The highest rate it may grow to: `max_tokens_per_hour`, or a rate the host set.
    ceiling: f64,
    /// The rate at the last cut (at the start, the configured rate).
    w_max: f64,
    /// The rate the curve starts from, `W₀`.
    from: f64,
    /// Saturated ns since the last cut.
    elapsed: Nanos,
    /// The last success, where growth is counted from.
    last_success: Option<Nanos>,
    /// When the last cut was made.
    cut_at: Option<Nanos>,
}

impl Adaptive {
    /// A limiter starting at `rate`: growth from there is the convex probe alone.
    pub fn new(config: AdaptiveConfig, rate: f64) -> Self {
        Adaptive {
            config,
            ceiling: config.max_tokens_per_hour,
            w_max: rate,
            from: rate,
            elapsed: epoch_ns(rate) as Nanos,
            last_success: None,
            cut_at: None,
        }
    }

    /// A throttling answer at `now`; `new_round` when it answers a request sent after the
    /// last cut (see [`crate::backoff::Sent`]). Returns the rate to run at, if it changes.
    pub fn on_throttled(&mut self, now: Nanos, rate: f64, new_round: bool) -> Option<f64> {
        if !new_round {
            return None;
        }
        let fell_from = if rate < self.w_max {
            rate * (1.0 + BETA) / 2.0
        } else {
            rate
        };
        // Never below min, and never up (a rate the host set may be below min already).
        let next = (rate * BETA).max(self.config.min_tokens_per_hour).min(rate);
        self.restart(now, fell_from, next);
        self.cut_at = Some(now);
        (next != rate).then_some(next)
    }

    /// Whether a throttling answer to a request sent at `sent_at` starts a new round.
    pub fn is_new_round(&self, sent_at: Nanos) -> bool {
        self.cut_at.is_none_or(|cut| sent_at > cut)
    }

    /// A success at `now` while the limiter runs at `rate`; `saturated` when its bucket holds
    /// under one token. Returns the rate to run at, if it grows.
    pub fn on_success(&mut self, now: Nanos, rate: f64, saturated: bool) -> Option<f64> {
        let since = self.last_success.map_or(0, |last| now.saturating_sub(last));
        self.last_success = Some(now);
        if !saturated {
            return None;
        }
        // A long gap between successes is not time spent saturated: count one step at most.
        let interval_ns = 3.6e12 / rate;
        let step = since.min((2.0 * interval_ns).max(1e9) as Nanos);
        self.elapsed = self.elapsed.saturating_add(step);
        let epoch = epoch_ns(self.w_max);
        let u = self.elapsed as f64 / epoch - 1.0;
        let target = if u < 0.0 {
            self.w_max + (self.w_max - self.from) * u * u * u
        } else {
            self.w_max * (1.0 + (1.0 - BETA) * u * u * u)
        };
        let next = target.min(self.ceiling);
        (next > rate).then_some(next)
    }

    /// The host set `rate`: it is the new ceiling, and the curve starts again from it.
    pub fn on_set(&mut self, now: Nanos, rate: f64) {
        self.ceiling = rate;
        self.restart(now, rate, rate);
    }

    /// A server announced `rate`: the curve starts again from it (growth resumes from there
    /// only once announcements stop).
    pub fn on_announced(&mut self, now: Nanos, rate: f64) {
        self.restart(now, rate, rate);
    }

    /// The highest rate announcements and growth may reach.
    pub fn ceiling(&self) -> f64 {
        self.ceiling
    }

    fn restart(&mut self, now: Nanos, w_max: f64, from: f64) {
        self.w_max = w_max;
        self.from = from;
        // Nothing below W_max to climb back to: probe at once.
        self.elapsed = if from < w_max {
            0
        } else {
            epoch_ns(w_max) as Nanos
        };
        self.last_success = Some(now);
    }
}

/// `K`, the time the rate takes back to `W_max` after a full cut: the longer of
/// [`MIN_EPOCH_NS`] and [`EPOCH_INTERVALS`] intervals at `W_max`.
pub fn epoch_ns(w_max: f64) -> f64 {
    (EPOCH_INTERVALS * 3.6e12 / w_max).max(MIN_EPOCH_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: AdaptiveConfig = AdaptiveConfig {
        min_tokens_per_hour: 360.0,
        max_tokens_per_hour: 360_000.0,
        on_503: false,
    };

    #[test]
    fn a_cut_lowers_by_beta_once_per_round_and_never_below_min() {
        let mut a = Adaptive::new(CONFIG, 36_000.0);
        assert_eq!(a.on_throttled(1, 36_000.0, true), Some(36_000.0 * BETA));
        assert!(!a.is_new_round(1), "sent at the cut: in flight");
        assert!(a.is_new_round(2));
        let mut rate = 36_000.0 * BETA;
        for t in 2..40 {
            if let Some(next) = a.on_throttled(t, rate, true) {
                rate = next;
            }
        }
        assert_eq!(rate, CONFIG.min_tokens_per_hour);
    }

    #[test]
    fn growth_is_back_at_w_max_after_k_of_saturated_time_and_only_then_probes() {
        let rate = 36_000.0; // 10/s: K is 10 s.
        let mut a = Adaptive::new(CONFIG, rate);
        let mut now = 0;
        let mut r = a.on_throttled(now, rate, true).expect("cut");
        let mut at_k = None;
        while now < 30_000_000_000 {
            now += 100_000_000;
            if let Some(next) = a.on_success(now, r, true) {
                r = next;
            }
            if now == 10_000_000_000 {
                at_k = Some(r);
            }
        }
        let at_k = at_k.expect("sampled");
        assert!((at_k - rate).abs() < 1.0, "back at W_max after K: {at_k}");
        assert!(r > rate * 1.05, "probing beyond W_max after 3K: {r}");
    }

    #[test]
    fn no_growth_while_not_saturated_nor_above_the_ceiling() {
        let mut a = Adaptive::new(CONFIG, 36_000.0);
        for t in 1..1000 {
            assert_eq!(a.on_success(t * 100_000_000, 36_000.0, false), None);
        }
        a.on_set(0, 40_000.0);
        let mut r = 40_000.0;
        for t in 1..10_000 {
            if let Some(next) = a.on_success(t * 100_000_000, r, true) {
                r = next;
            }
        }
        assert_eq!(r, 40_000.0);
    }
}
