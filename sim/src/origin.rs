//! The simulated origin: its own token bucket (the core's [`Limiter`], as in the host's
//! embedded origin), 429 with Retry-After in whole seconds, and 503 through an outage.

use pacer::{Decision, Limiter, Quota};

use crate::scenario::{Pattern, Scenario, ScenarioError};

/// What the origin answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl Origin {
    /// The scenario's origin, its bucket full at the start.
    pub fn new(scenario: &Scenario) -> Result<Origin, ScenarioError> {
        let limit = if scenario.origin_rate > 0.0 {
            let quota = Quota::per_hour(scenario.origin_rate * 3600.0)
                .and_then(|q| q.with_burst(scenario.origin_burst))
                .and_then(|q| q.with_initial(1.0))
                .map_err(|e| ScenarioError {
                    field: "origin_rate",
                    message: e.to_string(),
                })?;
            Some(Limiter::new(quota, 0))
        } else {
            None
        };
        let outage_ns = if scenario.pattern == Pattern::Herd {
            u64::from(scenario.outage_start_s) * 1_000_000_000
                ..u64::from(scenario.outage_end_s) * 1_000_000_000
        } else {
            0..0
        };
        Ok(Origin { limit, outage_ns })
    }

    /// Answers a request at `now_ns`.
    pub fn handle(&mut self, now_ns: u64) -> Answer {
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
