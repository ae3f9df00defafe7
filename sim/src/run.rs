//! The event loop, one for the page's report and the scorecard alike: each request is planned
//! by a strategy (pacer, or a baseline), waits, may be re-checked at its slot, reaches the
//! origin, and its answer comes back `latency_ms` later; anything but a 2xx sends it round
//! again (a caller that must get its request served). Clients of group `g` (client `i` is in
//! group `i % limiters`) share strategy state; see [`crate::strategy`].
//!
//! It runs in batches ([`Simulation::step`]) so a page stays responsive between them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pacer::Rng;
use pacer::decimal::Decimal;

use crate::engine::Engine;
use crate::origin::{Answer, Origin};
use crate::report::{
    JitterDraws, Report, Series, Summary, linear_histograms, log2_histogram, percentile_ms,
};
use crate::scenario::{Pattern, Scenario, ScenarioError};
use crate::strategy::{Paced, Plan, Strategy};
use crate::trace::{Arrival, arrivals, next_in_backlog};

pub use crate::strategy::MEMORY_LIMIT_BYTES;

const NS_PER_S: u64 = 1_000_000_000;
/// Most points a series gets; longer runs sample less often.
const MAX_SAMPLES: u64 = 1500;
/// Shortest wait before asking again after a hold (guards against a strategy, or a module,
/// that answers 0 forever).
const MIN_RETRY_NS: u64 = 1_000_000;
/// Jitter draws per utilization for the jitter chart.
const JITTER_DRAWS: usize = 2000;
const JITTER_UTILIZATIONS_PPM: [i32; 3] = [250_000, 500_000, 1_000_000];
/// The start of a run not judged for 429s, seconds.
pub const SETTLING_S: u64 = 60;

/// What the origin announced with an answer: `remaining`, `reset_ns`, and the request's place
/// among all sends.
#[cfg(feature = "goals")]
type Announced = Option<(u64, u64, usize)>;
/// Nothing: this build has no announcing origin.
#[cfg(not(feature = "goals"))]
type Announced = ();

/// What a pending event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Ask the strategy for a slot.
    Ask,
    /// The wait is over: re-check, then send to the origin.
    Act,
    /// The origin's answer arrives, `latency_ms` after the request was sent, with what the
    /// origin announced.
    Respond(Answer, Announced),
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

/// Answers within one sample interval.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    admitted: u64,
    rejected: u64,
    failed: u64,
    refused: u64,
}

/// Everything counted along the way, for the report and the scorecard.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// 2xx per second of the run (one more slot for the end).
    pub served_per_s: Vec<u64>,
    /// Arrivals per second.
    pub arrived_per_s: Vec<u64>,
    /// 2xx per client.
    pub served_by_client: Vec<u64>,
    /// Arrivals per client.
    pub arrived_by_client: Vec<u64>,
    /// When each request was sent, in order.
    pub sends: Vec<u64>,
    /// Wait from arrival to served, per served request.
    pub waits_ns: Vec<u64>,
    /// 429 answers.
    pub rejected_429: u64,
    /// 5xx answers.
    pub failed_5xx: u64,
    /// Attempts held back by the strategy.
    pub held: u64,
    /// Answers to requests sent after [`SETTLING_S`], and how many were 429.
    pub late_answers: u64,
    /// See `late_answers`.
    pub late_429: u64,
    /// 429s answering requests sent after the first answer arrived.
    pub after_first_429: u64,
}

/// A simulation in progress over one strategy (behind one pointer, so the page's wasm holds one
/// copy of the loop for pacer and the baselines alike).
pub struct Simulation<'a> {
    strategy: Box<dyn Strategy + 'a>,
    scenario: Scenario,
    facts: ConfigFacts,
    trace: Vec<Arrival>,
    /// Arrivals in the trace from the start (a backlog's later ones are appended).
    first_arrivals: usize,
    next_arrival: usize,
    attempts: Vec<u32>,
    pending: BinaryHeap<Reverse<(u64, u32, Step)>>,
    origin: Origin,
    end_ns: u64,
    latency_ns: u64,
    /// The page's charts: series sampled every `sample_ns` (`None` for the scorecard).
    series: Option<Series>,
    sample_ns: u64,
    next_sample_ns: u64,
    interval: Counts,
    tally: Tally,
    #[cfg(feature = "goals")]
    first_answer_ns: Option<u64>,
    /// Slots handed out and not yet sent (or given up).
    slots_out: u64,
    decisions: u64,
    events: u64,
    max_events: u64,
    report: Option<Report>,
    done: bool,
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

impl core::fmt::Debug for Simulation<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Simulation")
            .field("scenario", &self.scenario)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl<'a> Simulation<'a> {
    /// The page's simulation: validates the scenario, configures `engine` with its config,
    /// builds the trace, and samples series for the charts.
    pub fn new<E: Engine + 'a>(
        mut scenario: Scenario,
        mut engine: E,
    ) -> Result<Self, SimulationError> {
        scenario.validate()?;
        engine
            .configure(&scenario.config, entropy_for(scenario.seed))
            .map_err(|message| SimulationError(format!("config: {message}")))?;
        // The memory curve is pacer's reading from here on (the probe reports it).
        let memory = core::mem::take(&mut scenario.memory);
        let paced = Paced::with(engine, scenario.cost, scenario.base_ms, memory);
        Simulation::with_strategy(scenario, Box::new(paced), true)
    }

    /// `strategy` through `scenario` (validated here); `charts` samples the page's series.
    pub fn with_strategy(
        scenario: Scenario,
        strategy: Box<dyn Strategy + 'a>,
        charts: bool,
    ) -> Result<Self, SimulationError> {
        scenario.validate()?;
        let facts = ConfigFacts::read(&scenario.config);
        let origin = Origin::new(&scenario)?;
        let trace = arrivals(&scenario);
        let end_ns = u64::from(scenario.duration_s) * NS_PER_S;
        let sample_ns = u64::from(scenario.duration_s).div_ceil(MAX_SAMPLES) * NS_PER_S;
        let expected = (trace.len() as u64).max(scenario.expected_requests() as u64);
        let seconds = scenario.duration_s as usize + 1;
        let clients = scenario.clients as usize;
        let mut tally = Tally {
            served_per_s: vec![0; seconds],
            arrived_per_s: vec![0; seconds],
            served_by_client: vec![0; clients],
            arrived_by_client: vec![0; clients],
            ..Tally::default()
        };
        for arrival in &trace {
            tally.arrived_per_s[(arrival.at_ns / NS_PER_S) as usize] += 1;
            tally.arrived_by_client[arrival.client as usize] += 1;
        }
        Ok(Simulation {
            strategy,
            facts,
            first_arrivals: trace.len(),
            next_arrival: 0,
            attempts: vec![0; trace.len()],
            pending: BinaryHeap::new(),
            origin,
            end_ns,
            latency_ns: u64::from(scenario.latency_ms) * 1_000_000,
            series: charts.then(|| Series {
                interval_s: (sample_ns / NS_PER_S) as f64,
                ..Series::default()
            }),
            sample_ns,
            next_sample_ns: if charts {
                sample_ns.min(end_ns)
            } else {
                u64::MAX
            },
            interval: Counts::default(),
            tally,
            #[cfg(feature = "goals")]
            first_answer_ns: None,
            slots_out: 0,
            decisions: 0,
            events: 0,
            max_events: 256 * expected + 1_000_000,
            report: None,
            done: false,
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
        if self.done {
            return 1.0;
        }
        let now = self.next_time().unwrap_or(self.end_ns).min(self.end_ns);
        now as f64 / self.end_ns as f64
    }

    /// Plans asked of the strategy so far (`next_delay` calls, for pacer).
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// What was counted so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// What was counted, taken when the run is over.
    pub fn into_tally(self) -> Tally {
        self.tally
    }

    /// Requests not served by the end (or by now).
    pub fn waiting(&self) -> u64 {
        (self.pending.len() + self.first_arrivals - self.next_arrival) as u64
    }

    /// Runs up to `budget` events; `Ok(true)` once the run is over.
    pub fn step(&mut self, budget: u32) -> Result<bool, SimulationError> {
        if self.done {
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
            self.advance(now).map_err(SimulationError)?;
        }
        Ok(false)
    }

    /// Runs to the end, for the report.
    pub fn run(mut self) -> Result<Report, SimulationError> {
        self.run_to_end()?;
        Ok(self
            .report
            .take()
            .unwrap_or_else(|| unreachable!("finished")))
    }

    /// Runs to the end.
    pub fn run_to_end(&mut self) -> Result<(), SimulationError> {
        while !self.step(1 << 20)? {}
        Ok(())
    }

    /// The report, once [`Simulation::step`] has said the run is over (charts only).
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

    fn advance(&mut self, now: u64) -> Result<(), String> {
        // New arrivals go before pending work of the same instant.
        let (request, step) = if self.first_arrival() == Some(now) {
            self.next_arrival += 1;
            ((self.next_arrival - 1) as u32, Step::Ask)
        } else {
            let Some(Reverse((_, request, step))) = self.pending.pop() else {
                unreachable!("next_time found an event")
            };
            (request, step)
        };
        let arrival = self.trace[request as usize];
        let group = arrival.client as usize % self.facts.tokens_per_hour.len().max(1);
        let plan = match step {
            Step::Ask => {
                self.decisions += 1;
                let attempt = self.attempts[request as usize];
                Some(self.strategy.plan(now, group, attempt)?)
            }
            Step::Act => match self.strategy.recheck(now, group)? {
                Plan::Send { delay_ns: 0 } => {
                    self.send(now, request, group)?;
                    None
                }
                other => Some(other),
            },
            Step::Respond(answer, announced) => {
                self.respond(now, request, group, answer, announced)?;
                None
            }
        };
        match plan {
            None => {}
            Some(Plan::Send { delay_ns }) => {
                if matches!(step, Step::Ask) {
                    self.slots_out += 1;
                }
                let at = now.saturating_add(delay_ns);
                self.pending.push(Reverse((at, request, Step::Act)));
            }
            Some(Plan::Hold { retry_in_ns }) => {
                if matches!(step, Step::Act) {
                    self.slots_out -= 1;
                }
                self.interval.refused += 1;
                self.tally.held += 1;
                self.attempts[request as usize] += 1;
                let at = now.saturating_add(retry_in_ns.max(MIN_RETRY_NS));
                self.pending.push(Reverse((at, request, Step::Ask)));
            }
        }
        Ok(())
    }

    /// The request reaches the origin; its answer comes back `latency_ms` later.
    fn send(&mut self, now: u64, request: u32, group: usize) -> Result<(), String> {
        let answer = self.origin.handle(now);
        #[cfg(feature = "goals")]
        let announced = {
            let place = self.tally.sends.len();
            let announcement = self
                .scenario
                .announce
                .then(|| self.origin.announcement(now));
            announcement
                .flatten()
                .map(|(left, reset)| (left, reset, place))
        };
        #[cfg(not(feature = "goals"))]
        let announced = ();
        self.tally.sends.push(now);
        self.slots_out -= 1;
        if self.latency_ns == 0 {
            return self.respond(now, request, group, answer, announced);
        }
        let step = Step::Respond(answer, announced);
        self.pending
            .push(Reverse((now + self.latency_ns, request, step)));
        Ok(())
    }

    /// The origin's answer reaches the client: the strategy hears it (and what the origin
    /// announced), and the request goes round again unless it was served.
    fn respond(
        &mut self,
        now: u64,
        request: u32,
        group: usize,
        answer: Answer,
        announced: Announced,
    ) -> Result<(), String> {
        let sent_at = now - self.latency_ns;
        #[cfg(feature = "goals")]
        let first = *self.first_answer_ns.get_or_insert(now);
        self.strategy.on_response(
            now,
            group,
            sent_at,
            answer.status(),
            answer.retry_after_ms(),
        )?;
        #[cfg(not(feature = "goals"))]
        let () = announced;
        #[cfg(feature = "goals")]
        if let Some((remaining, reset_ns, place)) = announced {
            // The origin counted this request, not those sent after it nor the slots handed
            // out and still waiting: the host says how many.
            let in_flight = (self.tally.sends.len() - place - 1) as u64 + self.slots_out;
            self.strategy
                .announced(now, group, remaining, reset_ns, in_flight)?;
        }
        let tally = &mut self.tally;
        #[cfg(feature = "goals")]
        {
            let too_many = matches!(answer, Answer::TooMany { .. });
            if sent_at >= SETTLING_S * NS_PER_S {
                tally.late_answers += 1;
                tally.late_429 += u64::from(too_many);
            }
            if too_many && sent_at > first {
                tally.after_first_429 += 1;
            }
        }
        let arrival = self.trace[request as usize];
        match answer {
            Answer::Served => {
                self.interval.admitted += 1;
                tally.served_per_s[(now / NS_PER_S) as usize] += 1;
                tally.served_by_client[arrival.client as usize] += 1;
                tally.waits_ns.push(now - arrival.at_ns);
                if self.scenario.pattern == Pattern::Backlog {
                    let next = next_in_backlog(&self.scenario, arrival.client, arrival.at_ns, now);
                    if next.at_ns < self.end_ns {
                        tally.arrived_per_s[(next.at_ns / NS_PER_S) as usize] += 1;
                        tally.arrived_by_client[next.client as usize] += 1;
                        // Behind the trace's first arrivals, asked through `pending`.
                        let id = self.trace.len() as u32;
                        self.trace.push(next);
                        self.attempts.push(0);
                        self.pending.push(Reverse((next.at_ns, id, Step::Ask)));
                    }
                }
                return Ok(());
            }
            Answer::TooMany { .. } => {
                self.interval.rejected += 1;
                tally.rejected_429 += 1;
            }
            Answer::Unavailable => {
                self.interval.failed += 1;
                tally.failed_5xx += 1;
            }
        }
        self.attempts[request as usize] += 1;
        self.pending.push(Reverse((now, request, Step::Ask)));
        Ok(())
    }

    fn sample(&mut self, at_ns: u64) {
        let probe = self.strategy.probe(at_ns, self.facts.max_buffers.max(0));
        let interval = core::mem::take(&mut self.interval);
        let waiting = self.pending.len() as u64;
        if let Some(series) = &mut self.series {
            series.t_s.push(at_ns as f64 / 1e9);
            series.tokens.push(probe.tokens);
            series.admitted.push(interval.admitted);
            series.rejected.push(interval.rejected);
            series.failed.push(interval.failed);
            series.refused.push(interval.refused);
            series.waiting.push(waiting);
            series.pressure.push(probe.pressure);
            series.pool_target.push(probe.pool_target);
            series.memory.push(probe.memory);
            series
                .rate_per_s
                .push(probe.rate_per_hour.map(|r| r / 3600.0));
        }
        self.next_sample_ns = if at_ns >= self.end_ns {
            u64::MAX
        } else {
            (at_ns + self.sample_ns).min(self.end_ns)
        };
    }

    fn finish(&mut self) -> Result<(), SimulationError> {
        self.done = true;
        if self.series.is_none() {
            return Ok(());
        }
        while self.next_sample_ns <= self.end_ns {
            self.sample(self.next_sample_ns);
        }
        let series = self.series.take().unwrap_or_default();
        let jitter = self.draw_jitter().map_err(SimulationError)?;
        let tally = &mut self.tally;
        let mut waits = core::mem::take(&mut tally.waits_ns);
        let hours = f64::from(self.scenario.duration_s) / 3600.0;
        let clients = self.scenario.clients as usize;
        let quota_per_hour: f64 = self.facts.tokens_per_hour.iter().take(clients).sum();
        let admitted = waits.len() as u64;
        let achieved_per_hour = admitted as f64 / hours;
        let summary = Summary {
            requests: self.trace.len() as u64,
            decisions: self.decisions,
            admitted,
            rejected_429: tally.rejected_429,
            failed_503: tally.failed_5xx,
            refused_circuit: tally.held,
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
            series,
            wait_histogram: log2_histogram(&waits),
            jitter,
        });
        self.tally.waits_ns = waits;
        Ok(())
    }

    /// Draws from the jitter strategy after the run, so they cannot change its decisions.
    fn draw_jitter(&mut self) -> Result<JitterDraws, String> {
        let base_ns = i64::from(self.scenario.base_ms) * 1_000_000;
        let mut samples = Vec::new();
        for utilization in JITTER_UTILIZATIONS_PPM {
            let mut draws = Vec::with_capacity(JITTER_DRAWS);
            for _ in 0..JITTER_DRAWS {
                draws.push(self.strategy.jitter_ns(base_ns, utilization)?);
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
