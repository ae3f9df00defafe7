//! The scorecard: pacer and the strategies users would otherwise pick, each driven through the
//! very same arrivals and origin, scored side by side.
//!
//! Each request is planned by the strategy, waits, may be re-checked at its slot, reaches the
//! origin, and its answer comes back `latency_ms` later; anything but a 2xx sends it round
//! again (a caller that must get its request served). Clients of group `g` (client `i` is in
//! group `i % limiters`) share strategy state; see [`crate::strategy`].

use serde::Serialize;

use crate::engine::{CoreEngine, Engine};
use crate::run::{Simulation, entropy_for};
use crate::scenario::{Pattern, Scenario};
use crate::strategy::{AwsAdaptive, Paced, PlainBucket, SreThrottle, StandardRetry, Strategy};

const NS_PER_S: u64 = 1_000_000_000;
/// The window over which recovery is judged, seconds.
pub const RECOVERY_WINDOW_S: u64 = 10;
/// The share of the achievable rate that counts as recovered.
pub const RECOVERED_SHARE: f64 = 0.95;

/// The strategies of a scorecard, in table order.
pub const STRATEGIES: [&str; 5] = [
    "pacer",
    "(a) AWS standard retry",
    "(b) AWS adaptive",
    "(c) SRE throttling",
    "(d) plain token bucket",
];

/// One strategy's scores on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// The strategy's name.
    pub strategy: String,
    /// 2xx answers per second over the run.
    pub goodput_per_s: f64,
    /// Answered requests per 2xx (`None` when nothing was served).
    pub sent_per_success: Option<f64>,
    /// Requests sent to the origin.
    pub sent: u64,
    /// 429 answers.
    pub rejected_429: u64,
    /// 5xx answers (and transport failures).
    pub failed_5xx: u64,
    /// Attempts held back by the strategy (open circuit, local rejection).
    pub held: u64,
    /// Median wait from arrival to served, seconds.
    pub wait_p50_s: f64,
    /// 99th percentile of the same.
    pub wait_p99_s: f64,
    /// Seconds from the outage's end (or the origin's last rate change) until a 10 s window
    /// serves at least 95 % of the achievable rate; `None` = never, or nothing to recover from.
    pub recovery_s: Option<f64>,
    /// Jain's fairness index of the share of each client's requests served (1 = fair).
    pub fairness: f64,
    /// The most requests sent in any 1 s window.
    pub max_sent_1s: u64,
    /// The origin's limit for a 1 s window at its highest rate: rate + burst.
    pub origin_limit_1s: f64,
    /// Requests not served by the end.
    pub waiting_at_end: u64,
    /// 2xx a second over the last [`LATE_WINDOW_S`] (the last third of shorter runs), as a
    /// share of the origin's rate then (`None` for an unlimited origin).
    pub late_share: Option<f64>,
    /// The share of answers that were 429, among requests sent after [`SETTLING_S`].
    pub late_429_share: f64,
    /// 429s answering requests sent after the first answer arrived.
    pub after_first_429: u64,
    /// Seconds from the start, and from each change of the origin's rate, until the 30 s
    /// average of 2xx is within 10 % of the rate then, the slowest counted; `None` = never,
    /// or an unlimited origin.
    pub settle_s: Option<f64>,
}

/// The span at the end of a run whose goodput is compared with the origin's rate, seconds.
pub const LATE_WINDOW_S: u64 = 300;
pub use crate::run::SETTLING_S;
/// The window of the average judged after a rate change, seconds.
pub const SETTLE_WINDOW_S: usize = 30;
/// How close that average must come to the new rate.
pub const SETTLE_WITHIN: f64 = 0.10;

/// The scorecard of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    /// The scenario's seed.
    pub seed: u64,
    /// One row per strategy, pacer first.
    pub rows: Vec<Scores>,
}

/// Runs [`scorecard`] on `seeds` consecutive seeds from the scenario's own.
pub fn over_seeds(scenario: &Scenario, seeds: u64) -> Result<Vec<Scorecard>, String> {
    (0..seeds)
        .map(|i| {
            scorecard(&Scenario {
                seed: scenario.seed + i,
                ..scenario.clone()
            })
        })
        .collect()
}

/// Runs pacer (the built-in core) and every baseline on `scenario`.
pub fn scorecard(scenario: &Scenario) -> Result<Scorecard, String> {
    let mut core = CoreEngine::new();
    core.configure(&scenario.config, entropy_for(scenario.seed))
        .map_err(|e| format!("config: {e}"))?;
    scorecard_with(scenario, core)
}

/// Runs `engine` (configured with the scenario's config) as pacer, and every baseline.
pub fn scorecard_with<E: Engine>(scenario: &Scenario, engine: E) -> Result<Scorecard, String> {
    scenario.validate().map_err(|e| e.to_string())?;
    let config = pacer::Config::from_json(&scenario.config).map_err(|e| format!("config: {e}"))?;
    let groups = config.limiters.len();
    let quota_per_s: f64 = config
        .limiters
        .iter()
        .take(scenario.clients as usize)
        .map(|l| l.tokens_per_hour / 3600.0)
        .sum();
    let mut rows = Vec::with_capacity(STRATEGIES.len());
    // Each in table order, run as soon as it is built.
    let mut next = |strategy: Box<dyn Strategy + '_>, quota| -> Result<(), String> {
        let name = STRATEGIES[rows.len()];
        let mut scores = run(scenario, strategy, quota).map_err(|e| format!("{name}: {e}"))?;
        scores.strategy = name.to_string();
        rows.push(scores);
        Ok(())
    };
    next(
        Box::new(Paced::new(engine, scenario.cost)),
        Some(quota_per_s),
    )?;
    next(Box::new(StandardRetry::new(scenario.seed)), None)?;
    next(Box::new(AwsAdaptive::new(groups, scenario.seed)), None)?;
    next(Box::new(SreThrottle::new(groups, scenario.seed)), None)?;
    next(Box::new(PlainBucket::new(&config)?), Some(quota_per_s))?;
    Ok(Scorecard {
        seed: scenario.seed,
        rows,
    })
}

/// One strategy through the scenario, in the shared event loop ([`Simulation`]).
fn run(
    scenario: &Scenario,
    strategy: Box<dyn Strategy + '_>,
    quota_per_s: Option<f64>,
) -> Result<Scores, String> {
    let mut simulation =
        Simulation::with_strategy(scenario.clone(), strategy, false).map_err(|e| e.0)?;
    simulation.run_to_end().map_err(|e| e.0)?;
    let waiting_at_end = simulation.waiting();
    let tally = simulation.into_tally();
    let mut waits = tally.waits_ns;
    let served = waits.len() as u64;
    let seconds = scenario.duration_s as usize;
    let rates: Vec<f64> = (0..=seconds)
        .map(|s| scenario.origin_rate_at(s as u64 * NS_PER_S))
        .collect();
    let origin_limit_1s =
        rates.iter().copied().fold(0.0, f64::max) + f64::from(scenario.origin_burst);
    let (rejected_429, failed_5xx) = (tally.rejected_429, tally.failed_5xx);
    Ok(Scores {
        strategy: String::new(),
        goodput_per_s: served as f64 / f64::from(scenario.duration_s),
        sent_per_success: (served > 0)
            .then(|| (served + rejected_429 + failed_5xx) as f64 / served as f64),
        sent: tally.sends.len() as u64,
        rejected_429,
        failed_5xx,
        held: tally.held,
        wait_p50_s: percentile_s(&mut waits, 0.50),
        wait_p99_s: percentile_s(&mut waits, 0.99),
        recovery_s: recovery_s(
            scenario,
            &tally.served_per_s,
            &tally.arrived_per_s,
            &rates,
            quota_per_s,
        ),
        fairness: jain(&tally.served_by_client, &tally.arrived_by_client),
        max_sent_1s: max_in_window(&tally.sends, NS_PER_S),
        origin_limit_1s,
        waiting_at_end,
        late_share: goals(|| late_share(&tally.served_per_s, &rates)),
        late_429_share: goals(|| Some(tally.late_429 as f64 / tally.late_answers.max(1) as f64))
            .unwrap_or(0.0),
        after_first_429: tally.after_first_429,
        settle_s: goals(|| settle_s(scenario, &tally.served_per_s, &rates)),
    })
}

/// `column()` where the build has the goals' columns (feature `goals`), else `None`.
fn goals(column: impl FnOnce() -> Option<f64>) -> Option<f64> {
    if cfg!(feature = "goals") {
        column()
    } else {
        None
    }
}

/// 2xx a second over the last [`LATE_WINDOW_S`] (or third of the run) over the origin's rate.
fn late_share(served: &[u64], rates: &[f64]) -> Option<f64> {
    let seconds = served.len().saturating_sub(1);
    let start = seconds - (LATE_WINDOW_S as usize).min(seconds / 3);
    let capacity: f64 = rates[start..seconds].iter().sum();
    let done: u64 = served[start..seconds].iter().sum();
    (capacity > 0.0).then(|| done as f64 / capacity)
}

/// From the start and each change in the origin's schedule: seconds until the 30 s average
/// of 2xx ending then is within [`SETTLE_WITHIN`] of the rate in force; the slowest, or
/// `None` if one never is.
fn settle_s(scenario: &Scenario, served: &[u64], rates: &[f64]) -> Option<f64> {
    if scenario.origin_rate <= 0.0 {
        return None;
    }
    let mut slowest: Option<f64> = None;
    let start = [0.0, scenario.origin_rate];
    for [at, rate] in core::iter::once(&start).chain(&scenario.origin_schedule) {
        let change = *at as usize;
        let settled = (change + SETTLE_WINDOW_S..served.len()).find(|end| {
            let window = &served[end - SETTLE_WINDOW_S..*end];
            let average = window.iter().sum::<u64>() as f64 / SETTLE_WINDOW_S as f64;
            (average - rate).abs() <= SETTLE_WITHIN * rate && rates[end - 1] == *rate
        })?;
        let took = (settled - change) as f64;
        slowest = Some(slowest.map_or(took, |s: f64| s.max(took)));
    }
    slowest
}

/// The `q` quantile of `waits` in seconds (0 when empty).
fn percentile_s(waits: &mut [u64], q: f64) -> f64 {
    if waits.is_empty() {
        return 0.0;
    }
    let k = ((waits.len() - 1) as f64 * q) as usize;
    crate::select::nth_smallest(waits, k).map_or(0.0, |v| v as f64 / 1e9)
}

/// The most times in any window `[t, t + width)`; `times` in order.
fn max_in_window(times: &[u64], width: u64) -> u64 {
    let mut most = 0;
    let mut start = 0;
    for (end, t) in times.iter().enumerate() {
        while times[start] + width <= *t {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most as u64
}

/// Jain's index over each client's served share: `(Σx)² / (n · Σx²)`.
fn jain(served: &[u64], arrived: &[u64]) -> f64 {
    let (mut n, mut sum, mut squares) = (0.0, 0.0, 0.0);
    for (s, a) in served.iter().zip(arrived).filter(|(_, a)| **a > 0) {
        let share = *s as f64 / *a as f64;
        n += 1.0;
        sum += share;
        squares += share * share;
    }
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (n * squares)
}

/// When the origin last changed: the outage's end or its last scheduled rate change.
fn last_event_s(scenario: &Scenario) -> Option<u64> {
    let outage = (scenario.pattern == Pattern::Herd).then_some(u64::from(scenario.outage_end_s));
    let change = scenario.origin_schedule.last().map(|[t, _]| *t as u64);
    outage.max(change)
}

/// Seconds after the last event until the 10 s window ending then serves at least 95 % of
/// what could be served: the origin's rate (and the quota, where the strategy has one) over
/// the window, or the requests waiting at its start plus those arriving in it, if fewer.
fn recovery_s(
    scenario: &Scenario,
    served: &[u64],
    arrived: &[u64],
    rates: &[f64],
    quota_per_s: Option<f64>,
) -> Option<f64> {
    let event = last_event_s(scenario)? as usize;
    let w = RECOVERY_WINDOW_S as usize;
    let mut waiting_before = vec![0u64; served.len() + 1];
    for s in 0..served.len() {
        waiting_before[s + 1] = (waiting_before[s] + arrived[s]).saturating_sub(served[s]);
    }
    for end in (event + 1)..served.len() {
        let start = end.saturating_sub(w);
        let window_served: u64 = served[start..end].iter().sum();
        let offered = waiting_before[start] + arrived[start..end].iter().sum::<u64>();
        let capacity: f64 = rates[start..end]
            .iter()
            .map(|r| quota_per_s.map_or(*r, |q| r.min(q)))
            .sum();
        let achievable = capacity.min(offered as f64);
        if window_served as f64 >= RECOVERED_SHARE * achievable {
            return Some((end - event) as f64);
        }
    }
    None
}

/// One row per strategy over several seeds' scorecards of one scenario: means, except the
/// worst recovery, the worst 1 s window and the worst fairness.
pub fn combine(cards: &[Scorecard]) -> Vec<Scores> {
    let Some(first) = cards.first() else {
        return Vec::new();
    };
    let n = cards.len() as f64;
    (0..first.rows.len())
        .map(|i| {
            let rows: Vec<&Scores> = cards.iter().map(|card| &card.rows[i]).collect();
            let mean = |f: &dyn Fn(&Scores) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / n;
            let count = |f: &dyn Fn(&Scores) -> u64| mean(&|r| f(r) as f64).round() as u64;
            let all_some = |f: &dyn Fn(&Scores) -> Option<f64>| {
                rows.iter().map(|r| f(r)).collect::<Option<Vec<f64>>>()
            };
            Scores {
                strategy: rows[0].strategy.clone(),
                goodput_per_s: mean(&|r| r.goodput_per_s),
                sent_per_success: all_some(&|r| r.sent_per_success)
                    .map(|v| v.iter().sum::<f64>() / n),
                sent: count(&|r| r.sent),
                rejected_429: count(&|r| r.rejected_429),
                failed_5xx: count(&|r| r.failed_5xx),
                held: count(&|r| r.held),
                wait_p50_s: mean(&|r| r.wait_p50_s),
                wait_p99_s: mean(&|r| r.wait_p99_s),
                recovery_s: all_some(&|r| r.recovery_s).map(|v| v.into_iter().fold(0.0, f64::max)),
                fairness: rows.iter().map(|r| r.fairness).fold(1.0, f64::min),
                max_sent_1s: rows.iter().map(|r| r.max_sent_1s).max().unwrap_or(0),
                origin_limit_1s: rows[0].origin_limit_1s,
                waiting_at_end: count(&|r| r.waiting_at_end),
                late_share: all_some(&|r| r.late_share).map(|v| v.iter().sum::<f64>() / n),
                late_429_share: mean(&|r| r.late_429_share),
                after_first_429: rows.iter().map(|r| r.after_first_429).max().unwrap_or(0),
                settle_s: all_some(&|r| r.settle_s).map(|v| v.into_iter().fold(0.0, f64::max)),
            }
        })
        .collect()
}

/// A Markdown table of `rows`.
pub fn table(rows: &[Scores]) -> String {
    let mut out = String::from(
        "| strategy | goodput /s | sent per 2xx | sent | 429s | 5xx | held | p50 wait s | p99 wait s | recovery s | Jain | most sent in 1 s (origin allows) | waiting at end | late share of origin | 429 share after 60 s | 429s after 1st answer | settle s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let per_2xx = r
            .sent_per_success
            .map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
        let recovery = r
            .recovery_s
            .map_or_else(|| "–".to_string(), |v| format!("{v:.0}"));
        let late = r
            .late_share
            .map_or_else(|| "–".to_string(), |v| format!("{:.1} %", 100.0 * v));
        let settle = r
            .settle_s
            .map_or_else(|| "–".to_string(), |v| format!("{v:.0}"));
        out.push_str(&format!(
            "| {} | {:.3} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {:.3} | {} ({}) | {} | {} | {:.2} % | {} | {} |\n",
            r.strategy,
            r.goodput_per_s,
            per_2xx,
            r.sent,
            r.rejected_429,
            r.failed_5xx,
            r.held,
            r.wait_p50_s,
            r.wait_p99_s,
            recovery,
            r.fairness,
            r.max_sent_1s,
            r.origin_limit_1s,
            r.waiting_at_end,
            late,
            100.0 * r.late_429_share,
            r.after_first_429,
            settle
        ));
    }
    out
}
