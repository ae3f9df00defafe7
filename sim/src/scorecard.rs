//! The scorecard: pacer and the strategies users would otherwise pick, each driven through the
//! very same arrivals and origin, scored side by side.
//!
//! Each request is planned by the strategy, waits, may be re-checked at its slot, reaches the
//! origin, and its answer comes back `latency_ms` later; anything but a 2xx sends it round
//! again (a caller that must get its request served). Clients of group `g` (client `i` is in
//! group `i % limiters`) share strategy state; see [`crate::strategy`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::engine::{CoreEngine, Engine};
use crate::origin::{Answer, Origin};
use crate::run::entropy_for;
use crate::scenario::{Pattern, Scenario};
use crate::strategy::{
    AwsAdaptive, Paced, PlainBucket, Plan, SreThrottle, StandardRetry, Strategy,
};
use crate::trace::{arrivals, next_in_backlog};

const NS_PER_S: u64 = 1_000_000_000;
/// The window over which recovery is judged, seconds.
pub const RECOVERY_WINDOW_S: u64 = 10;
/// The share of the achievable rate that counts as recovered.
pub const RECOVERED_SHARE: f64 = 0.95;
/// Shortest wait before asking again after a hold (guards against a strategy answering 0).
const MIN_RETRY_NS: u64 = 1_000_000;

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
/// The start of a run not judged for 429s, seconds.
pub const SETTLING_S: u64 = 60;
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
    let mut strategies: Vec<(Box<dyn Strategy + '_>, Option<f64>)> = vec![
        (
            Box::new(Paced::new(engine, scenario.cost)),
            Some(quota_per_s),
        ),
        (Box::new(StandardRetry::new(scenario.seed)), None),
        (Box::new(AwsAdaptive::new(groups, scenario.seed)), None),
        (Box::new(SreThrottle::new(groups, scenario.seed)), None),
        (Box::new(PlainBucket::new(&config)?), Some(quota_per_s)),
    ];
    for ((strategy, quota), name) in strategies.iter_mut().zip(STRATEGIES) {
        let mut scores =
            run(scenario, strategy.as_mut(), groups, *quota).map_err(|e| format!("{name}: {e}"))?;
        scores.strategy = name.to_string();
        rows.push(scores);
    }
    Ok(Scorecard {
        seed: scenario.seed,
        rows,
    })
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Plan,
    Send,
    /// The answer, and what the origin announced with it: `remaining`, `reset_ns`, and the
    /// request's place among all sends.
    Answer(Answer, Option<(u64, u64, usize)>),
}

/// One strategy through the scenario.
fn run(
    scenario: &Scenario,
    strategy: &mut dyn Strategy,
    groups: usize,
    quota_per_s: Option<f64>,
) -> Result<Scores, String> {
    let mut trace = arrivals(scenario);
    let backlog = scenario.pattern == Pattern::Backlog;
    let mut origin = Origin::new(scenario).map_err(|e| e.to_string())?;
    let end_ns = u64::from(scenario.duration_s) * NS_PER_S;
    let latency_ns = u64::from(scenario.latency_ms) * 1_000_000;
    let seconds = scenario.duration_s as usize;
    let mut attempts = vec![0u32; trace.len()];
    let mut served_per_s = vec![0u64; seconds + 1];
    let mut arrived_per_s = vec![0u64; seconds + 1];
    let mut served_by_client = vec![0u64; scenario.clients as usize];
    let mut arrived_by_client = vec![0u64; scenario.clients as usize];
    let mut waits = Vec::with_capacity(trace.len());
    let mut sends = Vec::with_capacity(trace.len());
    let (mut rejected_429, mut failed_5xx, mut held) = (0, 0, 0);
    let settling_ns = SETTLING_S * NS_PER_S;
    let (mut late_answers, mut late_429, mut after_first_429) = (0u64, 0u64, 0u64);
    let mut first_answer_ns = None;
    // Slots handed out and not yet sent (or given up).
    let mut slots_out = 0u64;
    let mut pending: BinaryHeap<Reverse<(u64, u32, Step)>> = trace
        .iter()
        .enumerate()
        .map(|(i, a)| Reverse((a.at_ns, i as u32, Step::Plan)))
        .collect();
    for arrival in &trace {
        arrived_per_s[(arrival.at_ns / NS_PER_S) as usize] += 1;
        arrived_by_client[arrival.client as usize] += 1;
    }
    let max_events =
        256 * (trace.len() as u64).max(scenario.expected_requests() as u64) + 1_000_000;
    let mut events = 0u64;
    while let Some(Reverse((now, request, step))) = pending.pop() {
        if now >= end_ns {
            pending.push(Reverse((now, request, step)));
            break;
        }
        events += 1;
        if events > max_events {
            return Err("requests went round without time reaching the end".into());
        }
        let arrival = trace[request as usize];
        let group = arrival.client as usize % groups.max(1);
        if let Step::Answer(..) = step {
            first_answer_ns.get_or_insert(now);
        }
        let plan = match step {
            Step::Plan => Some(strategy.plan(now, group, attempts[request as usize])?),
            Step::Send => match strategy.recheck(now, group)? {
                Plan::Send { delay_ns: 0 } => {
                    let answer = origin.handle(now);
                    let place = sends.len();
                    let announced = if scenario.announce {
                        origin
                            .announcement(now)
                            .map(|(left, reset)| (left, reset, place))
                    } else {
                        None
                    };
                    sends.push(now);
                    slots_out -= 1;
                    let step = Step::Answer(answer, announced);
                    pending.push(Reverse((now + latency_ns, request, step)));
                    None
                }
                other => Some(other),
            },
            Step::Answer(answer, announced) => {
                let sent_at = now - latency_ns;
                strategy.on_response(
                    now,
                    group,
                    sent_at,
                    answer.status(),
                    answer.retry_after_ms(),
                )?;
                if let Some((remaining, reset_ns, place)) = announced {
                    // The origin counted this request, not those sent after it nor the slots
                    // handed out and still waiting: the host says how many.
                    let in_flight = (sends.len() - place - 1) as u64 + slots_out;
                    strategy.announced(now, group, remaining, reset_ns, in_flight)?;
                }
                let too_many = matches!(answer, Answer::TooMany { .. });
                if sent_at >= settling_ns {
                    late_answers += 1;
                    late_429 += u64::from(too_many);
                }
                if too_many && first_answer_ns.is_some_and(|first| sent_at > first) {
                    after_first_429 += 1;
                }
                match answer {
                    Answer::Served => {
                        served_per_s[(now / NS_PER_S) as usize] += 1;
                        served_by_client[arrival.client as usize] += 1;
                        waits.push(now - arrival.at_ns);
                        if backlog {
                            let next =
                                next_in_backlog(scenario, arrival.client, arrival.at_ns, now);
                            if next.at_ns < end_ns {
                                arrived_per_s[(next.at_ns / NS_PER_S) as usize] += 1;
                                arrived_by_client[next.client as usize] += 1;
                                let id = trace.len() as u32;
                                trace.push(next);
                                attempts.push(0);
                                pending.push(Reverse((next.at_ns, id, Step::Plan)));
                            }
                        }
                    }
                    Answer::TooMany { .. } => rejected_429 += 1,
                    Answer::Unavailable => failed_5xx += 1,
                }
                if answer != Answer::Served {
                    attempts[request as usize] += 1;
                    pending.push(Reverse((now, request, Step::Plan)));
                }
                None
            }
        };
        match plan {
            None => {}
            Some(Plan::Send { delay_ns }) => {
                if step == Step::Plan {
                    slots_out += 1;
                }
                pending.push(Reverse((now.saturating_add(delay_ns), request, Step::Send)));
            }
            Some(Plan::Hold { retry_in_ns }) => {
                if step == Step::Send {
                    slots_out -= 1;
                }
                held += 1;
                attempts[request as usize] += 1;
                let at = now.saturating_add(retry_in_ns.max(MIN_RETRY_NS));
                pending.push(Reverse((at, request, Step::Plan)));
            }
        }
    }
    let served = waits.len() as u64;
    let waiting_at_end = trace.len() as u64 - served;
    let rates: Vec<f64> = (0..=seconds)
        .map(|s| scenario.origin_rate_at(s as u64 * NS_PER_S))
        .collect();
    let origin_limit_1s =
        rates.iter().copied().fold(0.0, f64::max) + f64::from(scenario.origin_burst);
    Ok(Scores {
        strategy: String::new(),
        goodput_per_s: served as f64 / f64::from(scenario.duration_s),
        sent_per_success: (served > 0)
            .then(|| (served + rejected_429 + failed_5xx) as f64 / served as f64),
        sent: sends.len() as u64,
        rejected_429,
        failed_5xx,
        held,
        wait_p50_s: percentile_s(&mut waits, 0.50),
        wait_p99_s: percentile_s(&mut waits, 0.99),
        recovery_s: recovery_s(scenario, &served_per_s, &arrived_per_s, &rates, quota_per_s),
        fairness: jain(&served_by_client, &arrived_by_client),
        max_sent_1s: max_in_window(&sends, NS_PER_S),
        origin_limit_1s,
        waiting_at_end,
        late_share: late_share(&served_per_s, &rates),
        late_429_share: late_429 as f64 / late_answers.max(1) as f64,
        after_first_429,
        settle_s: settle_s(scenario, &served_per_s, &rates),
    })
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
