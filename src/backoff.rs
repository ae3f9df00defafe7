//! Feedback after each operation: exponential backoff with full jitter, and a circuit breaker.

use crate::clock::Nanos;
use crate::random::Rng;

/// What a response says about the service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx and 3xx: resets the failure count and closes the circuit.
    Success,
    /// 0 (transport failure), 429 and 5xx: counts toward backoff and the circuit.
    Failure,
    /// Any other status: changes nothing.
    Neutral,
}

impl Outcome {
    /// Classifies an HTTP-like status (0 = transport failure).
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0 | 429 | 500..=599 => Outcome::Failure,
            200..=399 => Outcome::Success,
            _ => Outcome::Neutral,
        }
    }
}

/// Backoff and circuit settings, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    /// The first backoff's ceiling.
    pub base_ns: Nanos,
    /// The largest backoff ceiling.
    pub max_ns: Nanos,
    /// Consecutive failures that open the circuit (at least 1).
    pub failure_threshold: u32,
    /// How long the circuit stays open, and how long a probe may go unanswered.
    pub open_ns: Nanos,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        BackoffSettings {
            base_ns: 1_000_000_000,
            max_ns: 300_000_000_000,
            failure_threshold: 5,
            open_ns: 30_000_000_000,
        }
    }
}

impl BackoffSettings {
    /// The ceiling after `failures` consecutive failures: `min(max, base · 2^(failures-1))`.
    pub fn ceiling_ns(&self, failures: u32) -> Nanos {
        let doublings = failures.saturating_sub(1);
        let ceiling = match 1u64.checked_shl(doublings) {
            Some(factor) => self.base_ns.saturating_mul(factor),
            None => u64::MAX,
        };
        ceiling.min(self.max_ns)
    }
}

/// Whether the circuit lets an operation through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Circuit {
    /// Operations flow.
    #[default]
    Closed,
    /// Refusing until `until`; after that the next caller is the probe.
    Open {
        /// When the first probe may go.
        until: Nanos,
    },
    /// A probe is out; others are refused until its response or until `deadline`.
    Probing {
        /// When an unanswered probe is given up and the next caller probes again.
        deadline: Nanos,
    },
}

/// What a host knows of when the request behind a response was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Unknown (`pacer_on_response`): a response reported while the limiter is paused answers
    /// a request admitted before that pause.
    Unknown {
        /// Whether the limiter is paused at the response.
        paused: bool,
    },
    /// Sent at this time (`pacer_on_response_sent`): the request was in flight exactly when
    /// it was sent no later than the failure that began the current round was reported.
    At(Nanos),
}

/// Consecutive failed rounds and the circuit of one limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    failures: u32,
    circuit: Circuit,
    /// When the latest failure that counted was reported: the start of the current round.
    round_began: Option<Nanos>,
}

impl Breaker {
    /// Consecutive failed rounds so far (failures in flight do not count).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The circuit's state.
    pub fn circuit(&self) -> Circuit {
        self.circuit
    }

    /// When the latest counted failure was reported, if any.
    pub fn round_began(&self) -> Option<Nanos> {
        self.round_began
    }

    /// True while the circuit refuses operations at `now`.
    pub fn refuses(&self, now: Nanos) -> bool {
        match self.circuit {
            Circuit::Closed => false,
            Circuit::Open { until } => now < until,
            Circuit::Probing { deadline } => now < deadline,
        }
    }

    /// While the circuit refuses at `now`: the ns until asking again can succeed; else 0.
    /// Open: until it closes for the probe. Half-open: until the probe's deadline, but at most
    /// `base_ns` (1 ms at least), so refused callers learn of the probe's success quickly.
    pub fn retry_in(&self, now: Nanos, settings: &BackoffSettings) -> Nanos {
        match self.circuit {
            Circuit::Closed => 0,
            Circuit::Open { until } => until.saturating_sub(now),
            Circuit::Probing { deadline } => {
                let poll = settings.base_ns.max(crate::clock::NANOS_PER_MS);
                deadline.saturating_sub(now).min(poll)
            }
        }
    }

    /// True when an operation starting now would be the probe of an open circuit.
    pub fn would_probe(&self) -> bool {
        self.circuit != Circuit::Closed
    }

    /// Records that the probe acts at `acts_at`; it is given up `open_ns` after that.
    pub fn probe_started(&mut self, acts_at: Nanos, settings: &BackoffSettings) {
        self.circuit = Circuit::Probing {
            deadline: acts_at.saturating_add(settings.open_ns),
        };
    }

    /// Records a response at `now`. For a failure, returns when the limiter's pause should end
    /// (the limiter keeps a longer pause already in force).
    ///
    /// - A response to a request in flight (see [`Sent`]) changes neither the failure count
    ///   nor the circuit and draws nothing; a failure's Retry-After still pauses. Only while
    ///   half-open, when the send time is unknown, does it close or re-open the circuit,
    ///   since it may be the probe's.
    /// - A counted failure pauses until `retry_after_ns` when given, else for a full-jitter
    ///   draw from `U[0, ceiling]`, the ceiling capped at `open_ns` while the circuit is
    ///   open: the circuit, not the backoff, paces probes.
    pub fn on_response(
        &mut self,
        now: Nanos,
        outcome: Outcome,
        retry_after_ns: Option<Nanos>,
        sent: Sent,
        settings: &BackoffSettings,
        rng: &mut Rng,
    ) -> Option<Nanos> {
        let half_open = matches!(self.circuit, Circuit::Probing { .. });
        let (in_flight, may_be_probe) = match sent {
            Sent::Unknown { paused } => (paused, half_open),
            Sent::At(at) => (self.round_began.is_some_and(|began| at <= began), false),
        };
        let reopen = Circuit::Open {
            until: now.saturating_add(settings.open_ns),
        };
        match outcome {
            Outcome::Neutral => None,
            Outcome::Success => {
                if !in_flight || may_be_probe {
                    self.failures = 0;
                    self.circuit = Circuit::Closed;
                }
                None
            }
            Outcome::Failure if in_flight => {
                if may_be_probe {
                    self.circuit = reopen;
                }
                retry_after_ns.map(|pause| now.saturating_add(pause))
            }
            Outcome::Failure => {
                self.failures = self.failures.saturating_add(1);
                self.round_began = Some(now);
                self.circuit = match self.circuit {
                    Circuit::Closed if self.failures >= settings.failure_threshold => reopen,
                    Circuit::Probing { .. } => reopen,
                    unchanged => unchanged,
                };
                let pause = match retry_after_ns {
                    Some(retry_after) => retry_after,
                    None => {
                        let mut ceiling = settings.ceiling_ns(self.failures);
                        if self.circuit != Circuit::Closed {
                            ceiling = ceiling.min(settings.open_ns);
                        }
                        rng.between(0, ceiling)
                    }
                };
                Some(now.saturating_add(pause))
            }
        }
    }

    pub(crate) fn restore(failures: u32, circuit: Circuit, round_began: Option<Nanos>) -> Self {
        Breaker {
            failures,
            circuit,
            round_began,
        }
    }
}
