//! The event loop: requests ask the policy, wait the answer out on the virtual clock, reach
//! the origin, and report its answer back; a 429 or 503 sends the request round again.
//!
//! It runs in batches ([`Simulation::step`]) so a page stays responsive between them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pacer::Rng;
use pacer::decimal::Decimal;

use crate::engine::{CIRCUIT_OPEN, Engine, Reading};
use crate::origin::{Answer, Origin};
use crate::report::{
    JitterDraws, Report, Series, Summary, linear_histograms, log2_histogram, percentile_ms,
};
use crate::scenario::{Scenario, ScenarioError};
use crate::trace::{Arrival, arrivals, next_in_backlog};

const NS_PER_S: u64 = 1_000_000_000;
/// The memory limit the policy reads; the scenario's curve is a fraction of it.
pub const MEMORY_LIMIT_BYTES: i64 = 1 << 30;
/// Most points a series gets; longer runs sample less often.
const MAX_SAMPLES: u64 = 1500;
/// Shortest wait before asking again after "circuit open" (guards against a module that
/// answers `retry_in = 0` forever).
const MIN_RETRY_NS: u64 = 1_000_000;
/// Jitter draws per utilization for the jitter chart.
const JITTER_DRAWS: usize = 2000;
const JITTER_UTILIZATIONS_PPM: [i32; 3] = [250_000, 500_000, 1_000_000];

/// What a pending event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Ask the policy for a slot.
    Ask,
    /// The wait is over: send to the origin.
    Act,
    /// The origin's answer arrives, `latency_ms` after the request was sent.
    Respond(Answer),
}

/// The policy facts the simulator needs from the config, read as the core reads it. A config
/// the core refuses (a user's module may accept more) gives one limiter of unknown quota.
#[derive(Debug, Clone, PartialEq)]
struct ConfigFacts {
    tokens_per_hour: Vec<f64>,
    max_buffers: i32,
}

impl ConfigFacts {
    fn read(json: &str) -> ConfigFacts {
        match pacer::Config::from_json(json) {
            Ok(config) => ConfigFacts {
                tokens_per_hour: config.limiters.iter().map(|l| l.tokens_per_hour).collect(),
                max_buffers: i32::try_from(config.pool.max_buffers).unwrap_or(i32::MAX),
            },
            Err(_) => ConfigFacts {
                tokens_per_hour: vec![0.0],
                max_buffers: 20,
            },
        }
    }
}

/// Totals over the whole run.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    admitted: u64,
    rejected: u64,
    failed: u64,
    refused: u64,
}

/// A simulation in progress over one policy engine.
#[derive(Debug)]
pub struct Simulation<E> {
    engine: E,
    scenario: Scenario,
    facts: ConfigFacts,
    trace: Vec<Arrival>,
    /// Arrivals in the trace from the start (a backlog's later ones are appended).
    first_arrivals: usize,
    next_arrival: usize,
    pending: BinaryHeap<Reverse<(u64, u32, Step)>>,
    origin: Origin,
    end_ns: u64,
    sample_ns: u64,
    next_sample_ns: u64,
    interval: Counts,
    total: Counts,
    decisions: u64,
    events: u64,
    max_events: u64,
    waits_ns: Vec<u64>,
    series: Series,
    report: Option<Report>,
    /// The engine's `pacer_features`.
    features: i32,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationError(pub String);

impl core::fmt::Display for SimulationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimulationError {}

impl From<ScenarioError> for SimulationError {
    fn from(e: ScenarioError) -> Self {
        SimulationError(e.to_string())
    }
}

impl<E: Engine> Simulation<E> {
    /// Validates the scenario, configures `engine` with its config and builds the trace.
    pub fn new(scenario: Scenario, mut engine: E) -> Result<Simulation<E>, SimulationError> {
        scenario.validate()?;
        let entropy = entropy_for(scenario.seed);
        engine
            .configure(&scenario.config, entropy)
            .map_err(|message| SimulationError(format!("config: {message}")))?;
        let facts = ConfigFacts::read(&scenario.config);
        let origin = Origin::new(&scenario)?;
        let trace = arrivals(&scenario);
        let end_ns = u64::from(scenario.duration_s) * NS_PER_S;
        let sample_ns = u64::from(scenario.duration_s).div_ceil(MAX_SAMPLES) * NS_PER_S;
        let max_events =
            64 * (trace.len() as u64).max(scenario.expected_requests() as u64) + 1_000_000;
        let features = engine.features();
        Ok(Simulation {
            features,
            engine,
            facts,
            first_arrivals: trace.len(),
            next_arrival: 0,
            pending: BinaryHeap::new(),
            origin,
            end_ns,
            sample_ns,
            next_sample_ns: sample_ns.min(end_ns),
            interval: Counts::default(),
            total: Counts::default(),
            decisions: 0,
            events: 0,
            max_events,
            waits_ns: Vec::with_capacity(trace.len()),
            series: Series {
                interval_s: (sample_ns / NS_PER_S) as f64,
                ..Series::default()
            },
            report: None,
            trace,
            scenario,
        })
    }

    /// Requests in the trace.
    pub fn requests(&self) -> usize {
        self.trace.len()
    }

    /// Share of the simulated span done, 0..=1.
    pub fn progress(&self) -> f64 {
        if self.report.is_some() {
            return 1.0;
        }
        let now = self.next_time().unwrap_or(self.end_ns).min(self.end_ns);
        now as f64 / self.end_ns as f64
    }

    /// `next_delay` calls so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// Runs up to `budget` events; `Ok(true)` once the run is over.
    pub fn step(&mut self, budget: u32) -> Result<bool, SimulationError> {
        if self.report.is_some() {
            return Ok(true);
        }
        for _ in 0..budget {
            let Some(now) = self.next_time().filter(|t| *t < self.end_ns) else {
                self.finish()?;
                return Ok(true);
            };
            while self.next_sample_ns <= now {
                self.sample(self.next_sample_ns);
            }
            self.events += 1;
            if self.events > self.max_events {
                return Err(SimulationError(format!(
                    "the policy let requests go round {} times without time reaching the end; \
                     does it answer 429s and 503s with a wait?",
                    Decimal::from(self.events)
                )));
            }
            self.advance(now)?;
        }
        Ok(false)
    }

    /// Runs to the end.
    pub fn run(mut self) -> Result<Report, SimulationError> {
        while !self.step(1 << 20)? {}
        Ok(self
            .report
            .take()
            .unwrap_or_else(|| unreachable!("finished")))
    }

    /// The report, once [`Simulation::step`] has said the run is over.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The next of the trace's first arrivals, if any is left.
    fn first_arrival(&self) -> Option<u64> {
        (self.next_arrival < self.first_arrivals).then(|| self.trace[self.next_arrival].at_ns)
    }

    fn next_time(&self) -> Option<u64> {
        let arrival = self.first_arrival();
        let pending = self.pending.peek().map(|Reverse((t, _, _))| *t);
        match (arrival, pending) {
            (Some(a), Some(p)) => Some(a.min(p)),
            (a, p) => a.or(p),
        }
    }

    fn advance(&mut self, now: u64) -> Result<(), SimulationError> {
        let arrival_due = self.first_arrival() == Some(now);
        // New arrivals go before pending work of the same instant.
        let (request, step) = if arrival_due {
            self.next_arrival += 1;
            ((self.next_arrival - 1) as u32, Step::Ask)
        } else {
            let Some(Reverse((_, request, step))) = self.pending.pop() else {
                unreachable!("next_time found an event")
            };
            (request, step)
        };
        self.set_reading(now);
        match step {
            Step::Ask => self.ask(now, request),
            Step::Act => self.act(now, request),
            Step::Respond(answer) => self.respond(now, request, answer),
        }
    }

    fn limiter_of(&self, request: u32) -> i32 {
        let limiters = self.facts.tokens_per_hour.len().max(1) as u32;
        (self.trace[request as usize].client % limiters) as i32
    }

    fn ask(&mut self, now: u64, request: u32) -> Result<(), SimulationError> {
        let limiter = self.limiter_of(request);
        let base_ns = i64::from(self.scenario.base_ms) * 1_000_000;
        let cost = i32::try_from(self.scenario.cost).unwrap_or(i32::MAX);
        self.decisions += 1;
        match self.engine.next_delay_ns(limiter, cost, base_ns) {
            delay @ 0.. => {
                let at = now.saturating_add(delay as u64);
                self.pending.push(Reverse((at, request, Step::Act)));
            }
            CIRCUIT_OPEN => self.refuse(now, request, limiter),
            code => return Err(self.failed_call("next_delay_ns", code)),
        }
        Ok(())
    }

    /// At the slot's time: re-place it if a pause or an open circuit began since it was
    /// handed out (feature bit 1), else send it to the origin.
    fn act(&mut self, now: u64, request: u32) -> Result<(), SimulationError> {
        let limiter = self.limiter_of(request);
        if self.features & pacer::interface::FEATURE_REPLACE != 0 {
            let cost = i32::try_from(self.scenario.cost).unwrap_or(i32::MAX);
            match self.engine.replace_ns(limiter, cost, 0) {
                0 => {}
                delay @ 1.. => {
                    let at = now.saturating_add(delay as u64);
                    self.pending.push(Reverse((at, request, Step::Act)));
                    return Ok(());
                }
                CIRCUIT_OPEN => {
                    self.refuse(now, request, limiter);
                    return Ok(());
                }
                code => return Err(self.failed_call("replace_ns", code)),
            }
        }
        let answer = self.origin.handle(now);
        let latency_ns = u64::from(self.scenario.latency_ms) * 1_000_000;
        if latency_ns == 0 {
            return self.respond(now, request, answer);
        }
        let at = now.saturating_add(latency_ns);
        self.pending
            .push(Reverse((at, request, Step::Respond(answer))));
        Ok(())
    }

    /// "Circuit open": nothing sent; ask again once it may let the request through.
    fn refuse(&mut self, now: u64, request: u32, limiter: i32) {
        self.interval.refused += 1;
        let retry = self.engine.retry_in_ns(limiter).max(0) as u64;
        let at = now.saturating_add(retry.max(MIN_RETRY_NS));
        self.pending.push(Reverse((at, request, Step::Ask)));
    }

    /// The origin's answer reaches the client: report it (with the send time where the
    /// engine takes it), and send the request round again unless it was served.
    fn respond(&mut self, now: u64, request: u32, answer: Answer) -> Result<(), SimulationError> {
        let limiter = self.limiter_of(request);
        let sent_at = now - u64::from(self.scenario.latency_ms) * 1_000_000;
        let (status, retry_after_ms) = (answer.status(), answer.retry_after_ms());
        let code = if self.features & pacer::interface::FEATURE_RESPONSE_SENT != 0 {
            let sent_at = crate::engine::pacer_time(sent_at);
            self.engine
                .on_response_sent(limiter, status, retry_after_ms, sent_at)
        } else {
            self.engine.on_response(limiter, status, retry_after_ms)
        };
        if code != 0 {
            return Err(self.failed_call("on_response", i64::from(code)));
        }
        match answer {
            Answer::Served => {
                self.interval.admitted += 1;
                self.waits_ns.push(now - self.trace[request as usize].at_ns);
            }
            Answer::TooMany { .. } => self.interval.rejected += 1,
            Answer::Unavailable => self.interval.failed += 1,
        }
        if answer != Answer::Served {
            self.pending.push(Reverse((now, request, Step::Ask)));
        } else if self.scenario.pattern == crate::Pattern::Backlog && now < self.end_ns {
            let served = self.trace[request as usize];
            let next = next_in_backlog(&self.scenario, served.client, served.at_ns, now);
            // Behind the trace's first arrivals, asked through `pending` in time order.
            if next.at_ns < self.end_ns {
                let id = self.trace.len() as u32;
                self.trace.push(next);
                self.pending.push(Reverse((next.at_ns, id, Step::Ask)));
            }
        }
        Ok(())
    }

    fn failed_call(&mut self, export: &str, code: i64) -> SimulationError {
        if let Some(trap) = self.engine.trap() {
            return SimulationError(format!("pacer_{export} trapped: {trap}"));
        }
        SimulationError(format!(
            "pacer_{export} returned {}: {}",
            Decimal::from(code),
            self.engine.last_error()
        ))
    }

    fn set_reading(&mut self, now_ns: u64) {
        let memory_used = match self.scenario.memory_at(now_ns) {
            Some(fraction) => (fraction * MEMORY_LIMIT_BYTES as f64) as i64,
            None => -1,
        };
        self.engine.set_reading(Reading {
            now_ns,
            memory_used,
            memory_limit: MEMORY_LIMIT_BYTES,
        });
    }

    fn sample(&mut self, at_ns: u64) {
        self.set_reading(at_ns);
        let series = &mut self.series;
        series.t_s.push(at_ns as f64 / 1e9);
        series
            .tokens
            .push(self.engine.available_milli(0) as f64 / 1000.0);
        series.admitted.push(self.interval.admitted);
        series.rejected.push(self.interval.rejected);
        series.failed.push(self.interval.failed);
        series.refused.push(self.interval.refused);
        series.waiting.push(self.pending.len() as u64);
        series.pressure.push(self.engine.pressure());
        series
            .pool_target
            .push(self.engine.pool_target(self.facts.max_buffers.max(0)));
        series.memory.push(self.scenario.memory_at(at_ns));
        let interval = core::mem::take(&mut self.interval);
        self.total.admitted += interval.admitted;
        self.total.rejected += interval.rejected;
        self.total.failed += interval.failed;
        self.total.refused += interval.refused;
        self.next_sample_ns = if at_ns >= self.end_ns {
            u64::MAX
        } else {
            (at_ns + self.sample_ns).min(self.end_ns)
        };
    }

    fn finish(&mut self) -> Result<(), SimulationError> {
        while self.next_sample_ns <= self.end_ns {
            self.sample(self.next_sample_ns);
        }
        let jitter = self.draw_jitter()?;
        let mut waits = core::mem::take(&mut self.waits_ns);
        let hours = f64::from(self.scenario.duration_s) / 3600.0;
        let clients = self.scenario.clients as usize;
        let quota_per_hour: f64 = self.facts.tokens_per_hour.iter().take(clients).sum();
        let achieved_per_hour = self.total.admitted as f64 / hours;
        let summary = Summary {
            requests: self.trace.len() as u64,
            decisions: self.decisions,
            admitted: self.total.admitted,
            rejected_429: self.total.rejected,
            failed_503: self.total.failed,
            refused_circuit: self.total.refused,
            waiting_at_end: (self.pending.len() + self.first_arrivals - self.next_arrival) as u64,
            wait_p50_ms: percentile_ms(&mut waits, 0.50),
            wait_p99_ms: percentile_ms(&mut waits, 0.99),
            wait_max_ms: waits.iter().max().map_or(0.0, |w| *w as f64 / 1e6),
            offered_per_hour: self.trace.len() as f64 / hours,
            achieved_per_hour,
            quota_per_hour,
            achieved_vs_quota: if quota_per_hour > 0.0 {
                achieved_per_hour / quota_per_hour
            } else {
                0.0
            },
        };
        self.report = Some(Report {
            summary,
            series: core::mem::take(&mut self.series),
            wait_histogram: log2_histogram(&waits),
            jitter,
        });
        Ok(())
    }

    /// Draws from the jitter strategy after the run, so they cannot change its decisions.
    fn draw_jitter(&mut self) -> Result<JitterDraws, SimulationError> {
        let base_ns = i64::from(self.scenario.base_ms) * 1_000_000;
        let mut samples = Vec::new();
        for utilization in JITTER_UTILIZATIONS_PPM {
            let mut draws = Vec::with_capacity(JITTER_DRAWS);
            for _ in 0..JITTER_DRAWS {
                match self.engine.jitter_ns(base_ns, utilization) {
                    draw @ 0.. => draws.push(draw as u64),
                    code => return Err(self.failed_call("jitter_ns", code)),
                }
            }
            samples.push(draws);
        }
        let (edges_ms, counts) = linear_histograms(&samples, 40);
        Ok(JitterDraws {
            base_ms: f64::from(self.scenario.base_ms),
            utilization: JITTER_UTILIZATIONS_PPM
                .iter()
                .map(|u| f64::from(*u) / 1e6)
                .collect(),
            edges_ms,
            counts,
        })
    }
}

/// The 32 bytes `random_fill` serves a config without a seed: fixed by the scenario's seed.
pub fn entropy_for(seed: u64) -> [u8; 32] {
    let mut rng = Rng::from_seed(seed ^ 0x5EED_F00D_u64);
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.below(u64::MAX).to_le_bytes());
    }
    bytes
}
