//! The simulated origin: its own token bucket (the core's [`Limiter`], as in the host's
//! embedded origin), 429 with Retry-After in whole seconds, 503 through an outage, and a
//! rate that may change on a schedule (its bucket starts empty at each change).

use pacer::{Decision, Limiter, Quota};

use crate::scenario::{Pattern, Scenario, ScenarioError};

/// What the origin answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Answer {
    /// 200: served.
    Served,
    /// 429 with `Retry-After` seconds.
    TooMany {
        /// The header's value, whole seconds, rounded up.
        retry_after_s: u64,
    },
    /// 503: down.
    Unavailable,
}

impl Answer {
    /// The HTTP status.
    pub fn status(self) -> i32 {
        match self {
            Answer::Served => 200,
            Answer::TooMany { .. } => 429,
            Answer::Unavailable => 503,
        }
    }

    /// `retry_after_ms` for `pacer_on_response` (`-1` = none).
    pub fn retry_after_ms(self) -> i64 {
        match self {
            Answer::TooMany { retry_after_s } => {
                i64::try_from(retry_after_s.saturating_mul(1000)).unwrap_or(i64::MAX)
            }
            _ => -1,
        }
    }
}

/// The origin every client talks to.
#[derive(Debug, Clone)]
pub struct Origin {
    limit: Option<Limiter>,
    outage_ns: core::ops::Range<u64>,
    /// Rate changes still to come, `(at_ns, quota)`, latest first.
    changes: Vec<(u64, Quota)>,
}

fn origin_quota(rate_per_s: f64, burst: u32, initial: f64) -> Result<Quota, ScenarioError> {
    Quota::per_hour(rate_per_s * 3600.0)
        .and_then(|q| q.with_burst(burst))
        .and_then(|q| q.with_initial(initial))
        .map_err(|e| ScenarioError {
            field: "origin_rate",
            message: e.to_string(),
        })
}

impl Origin {
    /// The scenario's origin, its bucket full at the start.
    pub fn new(scenario: &Scenario) -> Result<Origin, ScenarioError> {
        let limit = if scenario.origin_rate > 0.0 {
            let quota = origin_quota(scenario.origin_rate, scenario.origin_burst, 1.0)?;
            Some(Limiter::new(quota, 0))
        } else {
            None
        };
        // Latest first, so the next change is at the end.
        let mut changes = Vec::with_capacity(scenario.origin_schedule.len());
        for [t, rate] in scenario.origin_schedule.iter().rev() {
            let quota = origin_quota(*rate, scenario.origin_burst, 0.0)?;
            changes.push(((t * 1e9) as u64, quota));
        }
        let outage_ns = if scenario.pattern == Pattern::Herd {
            u64::from(scenario.outage_start_s) * 1_000_000_000
                ..u64::from(scenario.outage_end_s) * 1_000_000_000
        } else {
            0..0
        };
        Ok(Origin {
            limit,
            outage_ns,
            changes,
        })
    }

    /// What the origin announces at `now_ns` (just after answering), as `RateLimit` headers
    /// would: `(remaining, reset_ns)`, whole requests left and the time until as many more
    /// have come (until the next one, when none is left); `None` when unlimited.
    pub fn announcement(&self, now_ns: u64) -> Option<(u64, u64)> {
        let limit = self.limit.as_ref()?;
        let remaining = u64::from(limit.available(now_ns));
        let reset_ns = if remaining == 0 {
            limit.wait_time(now_ns, 1).ok()?
        } else {
            (remaining as f64 * 3.6e12 / limit.quota().tokens_per_hour()) as u64
        };
        Some((remaining, reset_ns.max(1)))
    }

    /// Answers a request at `now_ns`.
    pub fn handle(&mut self, now_ns: u64) -> Answer {
        while let Some(&(at_ns, quota)) = self.changes.last() {
            if at_ns > now_ns {
                break;
            }
            self.limit = Some(Limiter::new(quota, at_ns));
            self.changes.pop();
        }
        if self.outage_ns.contains(&now_ns) {
            return Answer::Unavailable;
        }
        let Some(limit) = &mut self.limit else {
            return Answer::Served;
        };
        match limit.try_acquire(now_ns, 1) {
            Ok(Decision::Admit) => Answer::Served,
            Ok(Decision::Wait(wait_ns)) => Answer::TooMany {
                retry_after_s: wait_ns.div_ceil(1_000_000_000),
            },
            // The origin's burst is at least 1, so a cost of 1 always fits.
            Err(_) => Answer::Unavailable,
        }
    }
}
