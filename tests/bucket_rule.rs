//! The bucket rule across everything: random mixes of every decision, responses, pauses,
//! re-configures, snapshots and clock jumps, with every grant recorded and every window checked.
//!
//! `make test` runs the time-budgeted test on its own, uncaptured, so the count it prints shows:
//! `cargo test --test bucket_rule -- --ignored --nocapture`, as many sequences as fit in
//! `PACER_BUCKET_SECONDS` (default 60; set it higher for a longer run) and never fewer than
//! 100,000: short of that it runs on, and fails if the floor is still out of reach 120 s past
//! the budget. A budget below 60 s is refused when `CI` is set. A failing sequence is shrunk
//! and printed.

mod common;

use std::time::{Duration, Instant};

use common::interval_ns;
use pacer::{
    Config, Decision, LimiterConfig, MemoryReading, Policy, Schedule, Strategy as JitterStrategy,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

/// One limiter of the generated config.
#[derive(Debug, Clone)]
struct LimiterSpec {
    tokens_per_hour: f64,
    burst: u32,
    initial: f64,
    /// `adaptive`: `(min, max, on_503)`, around `tokens_per_hour`.
    adaptive: Option<(f64, f64, bool)>,
}

/// Something a host may do.
#[derive(Debug, Clone)]
enum Op {
    TryAcquire {
        limiter: usize,
        cost: u32,
    },
    Reserve {
        limiter: usize,
        cost: u32,
    },
    NextDelay {
        limiter: usize,
        cost: u32,
        base_ns: u64,
    },
    Respond {
        limiter: usize,
        status: u16,
        retry_after_ms: Option<u64>,
        sent_ago: Option<u64>,
    },
    Replace {
        limiter: usize,
        pick: usize,
    },
    /// Re-configure: a new jitter strategy, and maybe a new rate for one limiter.
    Reconfigure {
        strategy: JitterStrategy,
        max_ms: u64,
        rerate: Option<(usize, f64)>,
    },
    /// `set_rate`: a new rate for one limiter, its tokens kept.
    SetRate {
        limiter: usize,
        rate: f64,
    },
    /// `announce`: a quota the server announced.
    Announce {
        limiter: usize,
        limit: Option<u64>,
        remaining: u64,
        reset_ns: u64,
        in_flight: u64,
    },
    /// `pause`: a pause another host saw.
    Pause {
        limiter: usize,
        for_ns: u64,
    },
    Export,
    Import,
    Clock(Step),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Frozen,
    Small(u64),
    Intervals(u64),
    Large(u64),
    Back(u64),
}

#[derive(Debug, Clone)]
struct Case {
    limiters: Vec<LimiterSpec>,
    strategy: JitterStrategy,
    max_ms: u64,
    failure_threshold: u32,
    ops: Vec<Op>,
}

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0001),
        Just(3.6e12),
        (-4.0f64..12.556).prop_map(|exp| 10f64.powf(exp).clamp(0.0001, 3.6e12)),
        (1u32..100_000).prop_map(f64::from),
    ]
}

fn limiter() -> impl Strategy<Value = LimiterSpec> {
    (
        rate(),
        prop_oneof![1u32..4, 1u32..100, Just(i32::MAX as u32)],
        prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0f64..=1.0],
        proptest::option::weighted(0.5, (0.0f64..3.0, 0.0f64..3.0, any::<bool>())),
    )
        .prop_map(|(tokens_per_hour, burst, initial, adaptive)| LimiterSpec {
            tokens_per_hour,
            burst,
            initial,
            adaptive: adaptive.map(|(down, up, on_503)| around(tokens_per_hour, down, up, on_503)),
        })
}

/// Adaptive bounds `10^down` below and `10^up` above `rate`, within the valid rates.
fn around(rate: f64, down: f64, up: f64, on_503: bool) -> (f64, f64, bool) {
    (
        (rate / 10f64.powf(down)).max(0.0001),
        (rate * 10f64.powf(up)).min(3.6e12),
        on_503,
    )
}

fn jitter_strategy() -> impl Strategy<Value = JitterStrategy> {
    proptest::sample::select(JitterStrategy::ALL.to_vec())
}

fn op(limiters: usize) -> impl Strategy<Value = Op> {
    let l = 0..limiters;
    let cost = prop_oneof![Just(1u32), 1u32..4];
    let base = prop_oneof![Just(0u64), 0u64..1_000_000_000, 0u64..(1 << 40)];
    prop_oneof![
        4 => (l.clone(), cost.clone()).prop_map(|(limiter, cost)| Op::TryAcquire { limiter, cost }),
        4 => (l.clone(), cost.clone()).prop_map(|(limiter, cost)| Op::Reserve { limiter, cost }),
        4 => (l.clone(), cost, base)
            .prop_map(|(limiter, cost, base_ns)| Op::NextDelay { limiter, cost, base_ns }),
        3 => (
            l.clone(),
            proptest::sample::select(vec![200u16, 204, 304, 404, 429, 500, 503, 0]),
            proptest::option::of(prop_oneof![Just(0u64), 0u64..5_000, 0u64..400_000]),
            proptest::option::weighted(0.3, 0u64..10_000_000_000),
        )
            .prop_map(|(limiter, status, retry_after_ms, sent_ago)| Op::Respond {
                limiter,
                status,
                retry_after_ms,
                sent_ago,
            }),
        2 => (l.clone(), any::<usize>()).prop_map(|(limiter, pick)| Op::Replace { limiter, pick }),
        1 => (
            jitter_strategy(),
            0u64..10_000,
            proptest::option::weighted(0.5, (l.clone(), rate())),
        )
            .prop_map(|(strategy, max_ms, rerate)| Op::Reconfigure { strategy, max_ms, rerate }),
        2 => (l.clone(), rate()).prop_map(|(limiter, rate)| Op::SetRate { limiter, rate }),
        1 => (l.clone(), prop_oneof![Just(0u64), 0u64..10_000_000_000])
            .prop_map(|(limiter, for_ns)| Op::Pause { limiter, for_ns }),
        2 => (
            l.clone(),
            proptest::option::of(0u64..1_000),
            prop_oneof![Just(0u64), 0u64..100, 0u64..1_000_000_000],
            prop_oneof![Just(0u64), 0u64..100_000_000_000, 0u64..(1 << 50)],
            prop_oneof![Just(0u64), 0u64..20],
        )
            .prop_map(|(limiter, limit, remaining, reset_ns, in_flight)| Op::Announce {
                limiter,
                limit,
                remaining,
                reset_ns,
                in_flight,
            }),
        1 => Just(Op::Export),
        1 => Just(Op::Import),
        6 => prop_oneof![
            Just(Step::Frozen),
            (0u64..1_000).prop_map(Step::Small),
            (0u64..5).prop_map(Step::Intervals),
            (0u64..(1 << 50)).prop_map(Step::Large),
            (0u64..10_000_000_000).prop_map(Step::Back),
        ]
        .prop_map(Op::Clock),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(limiter(), 1..3),
        jitter_strategy(),
        0u64..10_000,
        1u32..6,
    )
        .prop_flat_map(|(limiters, strategy, max_ms, failure_threshold)| {
            let n = limiters.len();
            (
                Just(limiters),
                Just(strategy),
                Just(max_ms),
                Just(failure_threshold),
                proptest::collection::vec(op(n), 1..120),
            )
        })
        .prop_map(
            |(limiters, strategy, max_ms, failure_threshold, ops)| Case {
                limiters,
                strategy,
                max_ms,
                failure_threshold,
                ops,
            },
        )
}

/// Grants of one limiter since the last reset, and what else it must keep.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// `(time the caller may act, cost)`.
    grants: Vec<(u64, u32)>,
    /// The latest maturity of a FIFO reservation (reserve, or next_delay without extra delay).
    fifo: u64,
    /// Slots a host holds: `(due, cost)`.
    held: Vec<(u64, u32)>,
}

impl Ledger {
    /// Records a FIFO reservation maturing at `due`; an error if it overtakes an earlier one.
    fn in_order(&mut self, due: u64, what: &str) -> Result<(), String> {
        if due < self.fifo {
            return Err(format!(
                "{what} matures at {due}, before an earlier one at {}",
                self.fifo
            ));
        }
        self.fifo = due;
        Ok(())
    }
}

fn config(case: &Case, limiters: &[LimiterSpec], strategy: JitterStrategy, max_ms: u64) -> Config {
    let limiters = limiters
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut limiter = LimiterConfig::new(format!("l{i}"), spec.tokens_per_hour);
            limiter.burst = Some(spec.burst);
            limiter.initial = spec.initial;
            limiter.adaptive = spec
                .adaptive
                .map(|(min, max, on_503)| pacer::AdaptiveConfig {
                    min_tokens_per_hour: min,
                    max_tokens_per_hour: max,
                    on_503,
                });
            limiter
        })
        .collect();
    let mut config = Config::new(limiters);
    config.seed = Some(7);
    config.jitter.strategy = strategy;
    config.jitter.max_ms = max_ms;
    config.backoff.failure_threshold = case.failure_threshold;
    config.backoff.base_ms = 100;
    config.backoff.max_ms = 60_000;
    config.backoff.open_ms = 2_000;
    config
}

/// Runs one case; an error names the first violation.
fn check(case: &Case) -> Result<(), String> {
    let mut specs = case.limiters.clone();
    let mut policy =
        Policy::new(config(case, &specs, case.strategy, case.max_ms)).map_err(|e| e.to_string())?;
    let mut ledgers = vec![Ledger::default(); specs.len()];
    let mut clock: u64 = 1 << 40;
    let mut now: u64 = 0; // what the policy has seen: time never goes back inside
    let mut snapshot: Option<(Vec<u8>, Vec<LimiterSpec>)> = None;
    // The rates in force: the configured ones until `set_rate` changes them.
    let mut rates: Vec<f64> = specs.iter().map(|s| s.tokens_per_hour).collect();
    // The rate an announcement may not exceed: the one in force before the first.
    let mut ceilings: Vec<Option<f64>> = vec![None; specs.len()];
    // The highest rate adaptation may reach: `max_tokens_per_hour`, or a rate set since.
    let mut adaptive_ceilings: Vec<f64> = specs.iter().map(adaptive_ceiling).collect();
    let memory = MemoryReading::default();
    let mut extra_possible = case.strategy != JitterStrategy::None;
    for (i, op) in case.ops.iter().enumerate() {
        if !matches!(op, Op::Clock(_) | Op::Reconfigure { .. }) {
            // Every other op hands the policy `clock`: it sees the highest reading so far.
            now = now.max(clock);
        }
        let at = |what: &str| format!("op {i} ({op:?}) at {now}: {what}");
        match *op {
            Op::TryAcquire { limiter, cost } => {
                let cost = cost.min(specs[limiter].burst);
                let decision = policy
                    .try_acquire(clock, limiter, cost)
                    .map_err(|e| at(&e.to_string()))?;
                if decision == Decision::Admit {
                    ledgers[limiter].grants.push((now, cost));
                }
            }
            Op::Reserve { limiter, cost } => {
                let cost = cost.min(specs[limiter].burst);
                let wait = policy
                    .reserve(clock, limiter, cost)
                    .map_err(|e| at(&e.to_string()))?;
                let ledger = &mut ledgers[limiter];
                let due = now.saturating_add(wait);
                ledger.in_order(due, "reserve").map_err(|e| at(&e))?;
                ledger.grants.push((due, cost));
                ledger.held.push((due, cost));
            }
            Op::NextDelay {
                limiter,
                cost,
                base_ns,
            } => {
                let cost = cost.min(specs[limiter].burst);
                let schedule = policy
                    .next_delay(clock, memory, limiter, cost, base_ns)
                    .map_err(|e| at(&e.to_string()))?;
                if let Schedule::Act { delay } = schedule {
                    let ledger = &mut ledgers[limiter];
                    let due = now.saturating_add(delay);
                    let no_extra = !extra_possible && base_ns == 0;
                    if no_extra {
                        ledger
                            .in_order(due, "next_delay without extra delay")
                            .map_err(|e| at(&e))?;
                    }
                    ledger.grants.push((due, cost));
                    ledger.held.push((due, cost));
                }
            }
            Op::Respond {
                limiter,
                status,
                retry_after_ms,
                sent_ago,
            } => {
                let retry_after = retry_after_ms.map(|ms| ms * 1_000_000);
                match sent_ago {
                    None => policy.on_response(clock, limiter, status, retry_after),
                    Some(ago) => policy.on_response_sent(
                        clock,
                        limiter,
                        status,
                        retry_after,
                        now.saturating_sub(ago),
                    ),
                }
                .map_err(|e| at(&e.to_string()))?;
                // Adaptation: a throttling answer may lower the rate, a success raise it,
                // within the adaptive bounds; nothing else moves it.
                let rate = policy.rate(limiter).map_err(|e| at(&e.to_string()))?;
                let before = rates[limiter];
                if rate.to_bits() != before.to_bits() {
                    let Some((min, _, _)) = specs[limiter].adaptive else {
                        return Err(at(&format!("a fixed rate moved from {before} to {rate}")));
                    };
                    let ceiling = adaptive_ceilings[limiter].max(before);
                    if rate < min.min(before) || rate > ceiling {
                        return Err(at(&format!(
                            "adapted from {before} to {rate}, outside [{min}, {ceiling}]"
                        )));
                    }
                    let what = at("before an adaptive change");
                    new_rate(
                        &mut ledgers[limiter],
                        &specs[limiter],
                        &mut rates[limiter],
                        rate,
                        &what,
                    )?;
                }
            }
            Op::Replace { limiter, pick } => {
                let ledger = &mut ledgers[limiter];
                if ledger.held.is_empty() {
                    // Nothing held: the policy still sees the clock.
                    policy
                        .available_milli(clock, limiter)
                        .map_err(|e| at(&e.to_string()))?;
                    continue;
                }
                let (due, cost) = ledger.held.swap_remove(pick % ledger.held.len());
                let cost = cost.min(specs[limiter].burst);
                let due_in = due.saturating_sub(now);
                let schedule = policy
                    .replace(clock, limiter, cost, due_in)
                    .map_err(|e| at(&e.to_string()))?;
                if let Schedule::Act { delay } = schedule {
                    let new_due = now.saturating_add(delay);
                    if delay != due_in {
                        // A new reservation, made as reserve makes it: FIFO, and a grant.
                        ledger
                            .in_order(new_due, "a re-placed slot")
                            .map_err(|e| at(&e))?;
                        ledger.grants.push((new_due, cost));
                    }
                    ledger.held.push((new_due, cost));
                }
            }
            Op::Reconfigure {
                strategy,
                max_ms,
                rerate,
            } => {
                let mut next = specs.clone();
                if let Some((limiter, rate)) = rerate {
                    next[limiter].tokens_per_hour = rate;
                    if let Some((min, max, _)) = &mut next[limiter].adaptive {
                        (*min, *max) = (min.min(rate), max.max(rate));
                    }
                }
                policy
                    .reconfigure(config(case, &next, strategy, max_ms))
                    .map_err(|e| at(&e.to_string()))?;
                let after: Vec<f64> = (0..next.len())
                    .map(|i| policy.rate(i))
                    .collect::<Result<_, _>>()
                    .map_err(|e| at(&e.to_string()))?;
                for (i, (old, new)) in specs.iter().zip(&next).enumerate() {
                    let kept = old.adaptive.is_some()
                        && old.adaptive == new.adaptive
                        && old.tokens_per_hour.to_bits() == new.tokens_per_hour.to_bits();
                    let expected = if kept { rates[i] } else { new.tokens_per_hour };
                    if after[i].to_bits() != expected.to_bits() {
                        return Err(at(&format!(
                            "limiter {i} runs at {} after a re-configure, not {expected}",
                            after[i]
                        )));
                    }
                    if old.tokens_per_hour.to_bits() != new.tokens_per_hour.to_bits()
                        || rates[i].to_bits() != after[i].to_bits()
                    {
                        // A re-configure ends a set rate: the limiter keeps its tokens under
                        // the configured one, or (new rate) may start afresh.
                        let mut before = old.clone();
                        before.tokens_per_hour = rates[i];
                        check_windows(&ledgers[i], &before, &at("before a re-configure"))?;
                        ledgers[i].grants.clear();
                    }
                }
                for (ledger, (old, new)) in ledgers.iter_mut().zip(specs.iter().zip(&next)) {
                    if old.tokens_per_hour.to_bits() != new.tokens_per_hour.to_bits() {
                        // The contract allows a reset here: the limiter starts afresh.
                        *ledger = Ledger::default();
                    }
                }
                for (i, (old, new)) in specs.iter().zip(&next).enumerate() {
                    // An adaptation goes on only where the limiter is unchanged.
                    if !(old.adaptive.is_some()
                        && old.adaptive == new.adaptive
                        && old.tokens_per_hour.to_bits() == new.tokens_per_hour.to_bits())
                    {
                        adaptive_ceilings[i] = adaptive_ceiling(new);
                    }
                }
                rates = after;
                ceilings = vec![None; next.len()];
                specs = next;
                extra_possible |= strategy != JitterStrategy::None;
            }
            Op::SetRate { limiter, rate } => {
                let before = policy
                    .available_milli(clock, limiter)
                    .map_err(|e| at(&e.to_string()))?;
                policy
                    .set_rate(clock, limiter, rate)
                    .map_err(|e| at(&e.to_string()))?;
                let after = policy
                    .available_milli(clock, limiter)
                    .map_err(|e| at(&e.to_string()))?;
                // A bucket with tokens keeps them: none gained, none lost but rounding. One
                // in debt keeps the time it is paid (the FIFO checks hold it to that).
                let slack = 1 + (before as f64 * 1e-9) as i64;
                if before >= 0 && (after > before || after < before - slack) {
                    return Err(at(&format!(
                        "set_rate({rate}) moved the bucket from {before} to {after} milli-tokens"
                    )));
                }
                let what = at("before a rate change");
                new_rate(
                    &mut ledgers[limiter],
                    &specs[limiter],
                    &mut rates[limiter],
                    rate,
                    &what,
                )?;
                ceilings[limiter] = None;
                adaptive_ceilings[limiter] = rate;
            }
            Op::Announce {
                limiter,
                limit,
                remaining,
                reset_ns,
                in_flight,
            } => {
                let announced = pacer::Announced {
                    limit,
                    remaining,
                    reset: reset_ns,
                    in_flight,
                };
                policy
                    .announce(clock, limiter, announced)
                    .map_err(|e| at(&e.to_string()))?;
                let remaining = limit.map_or(remaining, |l| remaining.min(l));
                if reset_ns == 0 || remaining == 0 {
                    continue;
                }
                // A fixed rate is held to the rate before the first announcement, an adaptive
                // one to its ceiling.
                let ceiling = match specs[limiter].adaptive {
                    Some(_) => adaptive_ceilings[limiter],
                    None => *ceilings[limiter].get_or_insert(rates[limiter]),
                };
                let rate = (remaining as f64 * 3.6e12 / reset_ns as f64).clamp(0.0001, ceiling);
                let in_force = policy.rate(limiter).map_err(|e| at(&e.to_string()))?;
                if in_force.to_bits() != rate.to_bits() {
                    return Err(at(&format!("announced {rate} an hour, runs at {in_force}")));
                }
                let remaining = remaining.saturating_sub(in_flight);
                let available = policy
                    .available_milli(clock, limiter)
                    .map_err(|e| at(&e.to_string()))?;
                if available > i64::try_from(remaining.saturating_mul(1000)).unwrap_or(i64::MAX) {
                    return Err(at(&format!(
                        "{available} milli-tokens left after {remaining} were announced"
                    )));
                }
                let what = at("before an announcement");
                new_rate(
                    &mut ledgers[limiter],
                    &specs[limiter],
                    &mut rates[limiter],
                    rate,
                    &what,
                )?;
            }
            Op::Pause { limiter, for_ns } => {
                policy
                    .pause(clock, limiter, for_ns)
                    .map_err(|e| at(&e.to_string()))?;
                let paused_until = now.saturating_add(for_ns);
                let wait = policy
                    .try_acquire(clock, limiter, 1)
                    .map_err(|e| at(&e.to_string()))?
                    .wait_ns();
                if now.saturating_add(wait) < paused_until {
                    return Err(at(&format!(
                        "admitted {wait} ns from now, inside a pause until {paused_until}"
                    )));
                }
            }
            Op::Export => {
                snapshot = Some((policy.export_state(clock), specs.clone()));
            }
            Op::Import => {
                let Some((bytes, taken_with)) = &snapshot else {
                    // Nothing exported yet: the policy still sees the clock.
                    snapshot = Some((policy.export_state(clock), specs.clone()));
                    continue;
                };
                let same = taken_with
                    .iter()
                    .zip(&specs)
                    .all(|(a, b)| a.tokens_per_hour.to_bits() == b.tokens_per_hour.to_bits());
                let result = policy.import_state(clock, bytes);
                if same != result.is_ok() {
                    return Err(at(&format!(
                        "import of a snapshot (same limiters: {same}): {result:?}"
                    )));
                }
                if result.is_ok() {
                    // A restore may roll state back: the check starts again, at the
                    // configured rates (a restore ends a set rate).
                    for ((ledger, spec), rate) in ledgers.iter_mut().zip(&specs).zip(&mut rates) {
                        let mut before = spec.clone();
                        before.tokens_per_hour = *rate;
                        check_windows(ledger, &before, &at("before a restore"))?;
                        *ledger = Ledger::default();
                        *rate = spec.tokens_per_hour;
                    }
                    ceilings = vec![None; specs.len()];
                    adaptive_ceilings = specs.iter().map(adaptive_ceiling).collect();
                }
            }
            Op::Clock(step) => {
                let min_interval = rates
                    .iter()
                    .map(|r| interval_ns(*r))
                    .fold(f64::INFINITY, f64::min);
                clock = match step {
                    Step::Frozen => clock,
                    Step::Small(ns) => clock.saturating_add(ns),
                    Step::Intervals(n) => {
                        clock.saturating_add((min_interval * n as f64).min(1e15) as u64)
                    }
                    Step::Large(ns) => clock.saturating_add(ns),
                    Step::Back(ns) => clock.saturating_sub(ns),
                };
            }
        }
    }
    for ((ledger, spec), rate) in ledgers.iter().zip(&specs).zip(&rates) {
        let mut in_force = spec.clone();
        in_force.tokens_per_hour = *rate;
        check_windows(ledger, &in_force, "at the end")?;
    }
    Ok(())
}

/// The highest rate a limiter's adaptation may reach as configured.
fn adaptive_ceiling(spec: &LimiterSpec) -> f64 {
    spec.adaptive
        .map_or(spec.tokens_per_hour, |(_, max, _)| max)
}

/// A limiter's rate changes to `rate`: grants so far keep the old rate's bound (checked now);
/// later ones are held to the new rate's, starting from the tokens kept (at most burst).
fn new_rate(
    ledger: &mut Ledger,
    spec: &LimiterSpec,
    in_force: &mut f64,
    rate: f64,
    at: &str,
) -> Result<(), String> {
    let mut old = spec.clone();
    old.tokens_per_hour = *in_force;
    check_windows(ledger, &old, at)?;
    ledger.grants.clear();
    *in_force = rate;
    Ok(())
}

/// In every window between two grants: at most `burst + W / interval + 1` tokens.
fn check_windows(ledger: &Ledger, spec: &LimiterSpec, at: &str) -> Result<(), String> {
    let mut grants = ledger.grants.clone();
    grants.sort_unstable();
    let interval = interval_ns(spec.tokens_per_hour);
    for i in 0..grants.len() {
        let mut tokens = 0u64;
        for j in i..grants.len() {
            tokens += u64::from(grants[j].1);
            let window = (grants[j].0 - grants[i].0) as f64;
            let allowed = f64::from(spec.burst) + window / interval + 1.0;
            if tokens as f64 > allowed * (1.0 + 1e-12) {
                return Err(format!(
                    "{at}: {tokens} tokens granted in the window [{}, {}] of {window} ns; \
                     at most {allowed} allowed (rate {}/h, burst {})",
                    grants[i].0, grants[j].0, spec.tokens_per_hour, spec.burst
                ));
            }
        }
    }
    Ok(())
}

/// The floor: fewer sequences than this and the test fails, whatever the budget.
const FLOOR: u64 = 100_000;
/// How long past its time budget the test may run to reach the floor on a slow machine.
const GRACE: Duration = Duration::from_secs(120);

#[test]
#[ignore = "time-budgeted (60 s, at least 100,000 sequences): make test runs it on its own"]
fn the_bucket_rule_holds_in_every_window_across_everything() {
    let seconds = common::floors::number("PACER_BUCKET_SECONDS", 60);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut runner = TestRunner::new(RunnerConfig {
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = case();
    let mut sequences = 0u64;
    // The budget, and past it to the floor, but not past the grace.
    loop {
        let now = Instant::now();
        if now >= deadline && (sequences >= FLOOR || now >= deadline + GRACE) {
            break;
        }
        for _ in 0..64 {
            let mut tree = strategy.new_tree(&mut runner).expect("a case");
            if let Err(first) = check(&tree.current()) {
                // Shrink: simplify while it still fails.
                let mut failure = first;
                let mut minimal = tree.current();
                while tree.simplify() {
                    match check(&tree.current()) {
                        Err(smaller) => {
                            failure = smaller;
                            minimal = tree.current();
                        }
                        Ok(()) => {
                            if !tree.complicate() {
                                break;
                            }
                        }
                    }
                }
                panic!("after {sequences} sequences: {failure}\nminimal case: {minimal:?}");
            }
            sequences += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        sequences >= FLOOR,
        "bucket rule: only {sequences} random sequences in {elapsed:.0} s, below the floor of \
         {FLOOR} ({seconds} s budget and {} s grace)",
        GRACE.as_secs()
    );
    println!(
        "bucket rule: 0 violations in {sequences} random sequences ({elapsed:.0} s; {seconds} s \
         budget, floor {FLOOR})"
    );
}

/// A client that always waits exactly the returned time gets the configured rate: after n
/// grants its elapsed time is `(n - 1) · interval` to within the last wait's rounding.
#[test]
fn a_client_that_waits_exactly_gets_the_configured_rate() {
    proptest!(common::floors::cases(400), |(
        tokens_per_hour in rate(),
        burst in 1u32..50,
        use_reserve in any::<bool>(),
        cost in 1u32..4,
    )| {
        let cost = cost.min(burst);
        let mut limiter = LimiterConfig::new("l", tokens_per_hour);
        limiter.burst = Some(burst);
        limiter.initial = 0.0;
        let mut config = Config::new(vec![limiter]);
        config.seed = Some(1);
        let mut policy = Policy::new(config).expect("valid");
        let mut now: u64 = 1 << 40;
        let mut first = None;
        // 2,000 grants, or fewer where that would pass 1e18 ns.
        let n = (1e18 / (interval_ns(tokens_per_hour) * f64::from(cost))).clamp(2.0, 2_000.0) as u64;
        for _ in 0..n {
            if use_reserve {
                now += policy.reserve(now, 0, cost).expect("valid");
            } else {
                loop {
                    match policy.try_acquire(now, 0, cost).expect("valid") {
                        Decision::Admit => break,
                        Decision::Wait(w) => now += w,
                    }
                }
            }
            first.get_or_insert(now);
        }
        let elapsed = (now - first.expect("granted")) as f64;
        let exact = (n - 1) as f64 * f64::from(cost) * interval_ns(tokens_per_hour);
        prop_assert!(
            (elapsed - exact).abs() <= 1.0 + 1e-9 * exact,
            "elapsed {elapsed} ns for {n} grants, exact {exact}"
        );
    });
}
