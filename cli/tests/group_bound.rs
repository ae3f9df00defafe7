//! The group's bound, checked in every window: simulated groups on a virtual clock, each host
//! running `group.rs`'s own sharing rules (`pacer_cli::group::rules::ShareState`: the demand
//! it reports, how it applies a grant, when it falls back) over a native pacer policy whose
//! workers take slots as `pacer run`'s pipeline does. Renewals go to a model of the renewal
//! script, written from `group/renew.lua`, which is checked against the real script on a real
//! redis-server (given the virtual time) on every renewal of a set of groups. Hosts join, are
//! killed; Redis goes away and comes back, sometimes empty. Rates run from one an hour to
//! thousands a second, bursts below and above `--max-hosts`. In any window W the group's
//! grants must stay within `burst + W × rate`, where `burst` is the group's, or the sum of its
//! hosts' buckets when that is more (a burst below `--max-hosts` gives every host a bucket of
//! one: ABI.md, "Shared limits").

mod common;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use pacer::quota::MIN_TOKENS_PER_HOUR;
use pacer::{Config, MemoryReading, Policy, Schedule};
use pacer_cli::group::rules::{Bucket, ShareRules, ShareState};
use pacer_cli::group::{RENEW_SCRIPT, local_config};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

/// The virtual clock's origin, so that no time is near zero.
const BASE_MS: u64 = 1_000_000_000;
/// Simulated groups the property test must run at least (`PACER_GROUP_CASES` may ask more).
const CASES_FLOOR: u32 = 200;
/// Groups run through the real script beside the model, and the renewals they must compare.
const REAL_CASES: u32 = 16;
const REAL_RENEWALS_FLOOR: u64 = 2_000;

/// The renewal script's rules (`group/renew.lua`), in Rust, with the script's arithmetic.
#[derive(Default)]
struct ScriptModel {
    /// host -> (recorded, demand, expires_ms)
    members: BTreeMap<String, (f64, f64, u64)>,
    identity: Option<String>,
    last: Option<u64>,
    since: Option<u64>,
}

impl ScriptModel {
    #[allow(clippy::too_many_arguments)]
    fn renew(
        &mut self,
        host: &str,
        identity: &str,
        total: f64,
        applied: f64,
        demand: f64,
        lease_ms: u64,
        now: u64,
    ) -> Result<(f64, bool), String> {
        match &self.identity {
            None => self.identity = Some(identity.to_string()),
            Some(known) if known != identity => return Err(known.clone()),
            Some(_) => {}
        }
        let since = match (self.last, self.since) {
            (Some(last), Some(since)) if now - last <= lease_ms => since,
            _ => now,
        };
        self.last = Some(now);
        self.since = Some(since);
        let settling = now < since + lease_ms;
        let (mut others, mut entries) = (0.0, Vec::new());
        self.members
            .retain(|h, (_, _, expires)| h == host || *expires >= now);
        for (h, (recorded, d, _)) in &self.members {
            if h != host {
                others += recorded;
                entries.push(*d);
            }
        }
        entries.push(demand);
        entries.sort_by(f64::total_cmp);
        let (mut left, mut target) = (total, 0.0);
        let n = entries.len();
        for (i, d) in entries.iter().enumerate() {
            let share = d.min(left / (n - i) as f64);
            left -= share;
            if *d == demand {
                target = share;
            }
        }
        let target = demand.min(target.max(0.0));
        let mut grant = target.min(total - others);
        if settling {
            grant = grant.min(applied);
        }
        let grant = grant.max(0.0);
        self.members.insert(
            host.to_string(),
            (grant.max(applied), demand, now + lease_ms + lease_ms / 2),
        );
        Ok((grant, settling))
    }
}

/// Where renewals go: the model alone, or the model and the real script, which must agree.
struct Store<'a> {
    model: ScriptModel,
    real: Option<(&'a mut redis::Connection, redis::Script, [String; 4])>,
    /// Renewals compared with the real script.
    compared: u64,
}

impl Store<'_> {
    #[allow(clippy::too_many_arguments)]
    fn renew(
        &mut self,
        host: &str,
        identity: &str,
        total: f64,
        applied: f64,
        demand: f64,
        lease_ms: u64,
        now: u64,
    ) -> Result<(f64, bool), String> {
        let (modelled, settles) = self
            .model
            .renew(host, identity, total, applied, demand, lease_ms, now)?;
        if let Some((redis, script, keys)) = &mut self.real {
            let (real, _pause, settling): (String, i64, i64) = script
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .key(&keys[3])
                .arg(host)
                .arg(identity)
                .arg(total)
                .arg(applied)
                .arg(demand)
                .arg(lease_ms)
                .arg(0)
                .arg(now)
                .invoke(*redis)
                .map_err(|e| format!("the real script: {e}"))?;
            let real: f64 = real.parse().map_err(|e| format!("grant {real:?}: {e}"))?;
            if (real - modelled).abs() > 1e-9 * total || (settling != 0) != settles {
                return Err(format!(
                    "at {now} ms {host}: the script granted {real} (settling {settling}), the \
                     model {modelled} (settling {settles})"
                ));
            }
            self.compared += 1;
        }
        Ok((modelled, settles))
    }

    /// Redis came back empty.
    fn flush(&mut self) -> Result<(), String> {
        self.model = ScriptModel::default();
        if let Some((redis, _, _)) = &mut self.real {
            redis::cmd("FLUSHALL")
                .exec(*redis)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A native policy's bucket at one moment of the virtual clock, as the rules see it.
struct NativeBucket<'a> {
    policy: &'a mut Policy,
    now_ns: u64,
}

impl Bucket for NativeBucket<'_> {
    fn debt_milli(&mut self) -> u64 {
        self.policy
            .available_milli(self.now_ns, 0)
            .map_or(0, |milli| milli.min(0).unsigned_abs())
    }

    fn set_rate(&mut self, tokens_per_hour: f64) -> Result<(), String> {
        self.policy
            .set_rate(self.now_ns, 0, tokens_per_hour)
            .map_err(|e| e.to_string())
    }

    fn pause(&mut self, duration: Duration) -> Result<(), String> {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.policy
            .pause(self.now_ns, 0, ns)
            .map_err(|e| e.to_string())
    }
}

/// One simulated host: the rules' state, its policy, its workers.
struct Host {
    id: String,
    policy: Policy,
    share: ShareState,
    alive: bool,
    /// When it joined: its rules run on a clock from then, as `group.rs`'s do.
    joined: u64,
    /// The chance that a worker goes straight on to its next file (1 = always busy).
    busy: f64,
    /// Every rate change: (ns, new rate).
    rates: Vec<(u64, f64)>,
}

#[derive(Debug, Clone)]
struct Scenario {
    per_hour: f64,
    burst: u32,
    max_hosts: u32,
    lease_ms: u64,
    /// (joins at, busy share, workers, killed at), times as fractions of the run.
    hosts: Vec<(f64, f64, u32, Option<f64>)>,
    /// (from, to, comes back empty), as fractions of the run.
    outages: Vec<(f64, f64, bool)>,
    seed: u64,
    /// The run lasts at least this many of a host's intervals at an even share.
    intervals: f64,
}

impl Scenario {
    /// A host's interval at an even share, in seconds.
    fn even_interval_s(&self) -> f64 {
        3600.0 / self.per_hour * self.hosts.len() as f64
    }

    /// Long enough for a dozen leases and for each host to take a few slots at an even share.
    fn run_ns(&self) -> u64 {
        let run_s =
            (12.0 * self.lease_ms as f64 / 1000.0).max(self.intervals * self.even_interval_s());
        (run_s * 1e9) as u64
    }

    /// The most tokens the group may take at once: its burst, or its hosts' buckets.
    fn group_burst(&self) -> f64 {
        let bucket = (self.burst / self.max_hosts).max(1);
        f64::from(self.burst.max(bucket * self.hosts.len() as u32))
    }
}

/// Rates from one an hour to 5,000 a second (log-uniform); bursts below `max_hosts` half the
/// time; leases from 200 ms to 60 s, shorter where a run would hold too many slots and longer
/// where it would hold too many renewals.
fn scenario() -> impl Strategy<Value = Scenario> {
    (
        2u32..=16,
        0.0f64..1.0,
        any::<bool>(),
        0.0f64..1.0,
        200u64..=60_000,
    )
        .prop_flat_map(|(max_hosts, log_rate, below, burst_draw, lease_ms)| {
            let per_hour = (3600.0f64 * 5000.0).powf(log_rate);
            let burst = if below {
                1 + (burst_draw * f64::from(max_hosts - 1)) as u32
            } else {
                max_hosts + (burst_draw * f64::from(3 * max_hosts)) as u32
            };
            // At most about 30,000 slots in a run of 12 leases.
            let slots_cap_ms = (30_000.0 / per_hour * 3600.0 / 12.0 * 1000.0) as u64;
            let lease_ms = lease_ms.min(slots_cap_ms).clamp(200, 60_000);
            let host = (
                prop_oneof![Just(0.0), 0.0f64..0.5],
                prop_oneof![Just(1.0), 0.05f64..1.0],
                1u32..=3,
                proptest::option::weighted(0.3, 0.0f64..1.0),
            );
            (
                Just((per_hour, burst, max_hosts, lease_ms)),
                proptest::collection::vec(host, 2..=max_hosts as usize),
                proptest::collection::vec((0.0f64..1.0, 0.01f64..0.2, any::<bool>()), 0..3),
                any::<u64>(),
            )
        })
        .prop_map(
            |((per_hour, burst, max_hosts, lease_ms), hosts, outages, seed)| {
                let mut scenario = Scenario {
                    per_hour,
                    burst,
                    max_hosts,
                    lease_ms,
                    hosts,
                    outages: outages
                        .into_iter()
                        .map(|(from, length, empty)| (from, (from + length).min(1.0), empty))
                        .collect(),
                    seed,
                    intervals: 4.0,
                };
                // Not more than about 2,000 renewals a host: a longer lease at low rates.
                let renewals = scenario.run_ns() as f64 / 1e6 / (scenario.lease_ms / 4) as f64;
                if renewals > 2_000.0 {
                    scenario.lease_ms =
                        ((scenario.lease_ms as f64 * renewals / 2_000.0) as u64).min(60_000);
                }
                scenario
            },
        )
}

/// What happens next on the virtual clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Redis goes away or comes back (scenario outage index).
    OutageEdge(usize),
    Join(usize),
    Kill(usize),
    Renew(usize),
    /// A worker of a host asks for its next slot.
    Work(usize, u32),
    /// A worker's slot has come: it acts, if its host is still alive.
    Act(usize, u32),
}

/// What a run produced: every grant (ns), each host's rate changes, renewals compared.
struct Outcome {
    grants: Vec<u64>,
    rates: Vec<Vec<(u64, f64)>>,
    compared: u64,
}

/// Runs one scenario; an error names what went wrong.
fn simulate(
    scenario: &Scenario,
    real: Option<&mut redis::Connection>,
    case: u64,
) -> Result<Outcome, String> {
    let total = scenario.per_hour;
    let lease = Duration::from_millis(scenario.lease_ms);
    let rules = ShareRules {
        total,
        max_hosts: scenario.max_hosts,
        lease,
    };
    let config = format!(
        r#"{{"seed":1,"limiters":[{{"name":"l","tokens_per_hour":{total},"burst":{}}}],"jitter":{{"strategy":"none"}}}}"#,
        scenario.burst
    );
    let local = local_config(&config, scenario.max_hosts, lease)?;
    let identity = format!("case {case}");
    let group = format!("sim{case}");
    let keys =
        ["members", "identity", "contact", "pause"].map(|k| format!("pacer:{{{group}}}:l:{k}"));
    let mut store = Store {
        model: ScriptModel::default(),
        real: real.map(|redis| (redis, redis::Script::new(RENEW_SCRIPT), keys)),
        compared: 0,
    };
    let run = scenario.run_ns();
    let at = |fraction: f64| (fraction * run as f64) as u64;
    let step = scenario.lease_ms * 1_000_000 / 4;
    let mut coin = scenario.seed | 1;
    let mut draw = move || {
        coin ^= coin << 13;
        coin ^= coin >> 7;
        coin ^= coin << 17;
        (coin >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut queue = BinaryHeap::new();
    for (i, &(joins, _, _, killed)) in scenario.hosts.iter().enumerate() {
        queue.push(Reverse((at(joins), Event::Join(i))));
        if let Some(killed) = killed {
            queue.push(Reverse((at(killed).max(at(joins)), Event::Kill(i))));
        }
    }
    for (i, &(from, to, _)) in scenario.outages.iter().enumerate() {
        queue.push(Reverse((at(from), Event::OutageEdge(i))));
        queue.push(Reverse((at(to), Event::OutageEdge(i))));
    }
    let reachable = |t: u64| {
        !scenario
            .outages
            .iter()
            .any(|&(from, to, _)| (at(from)..at(to)).contains(&t))
    };
    let ns = |t: u64| BASE_MS * 1_000_000 + t;
    let memory = MemoryReading::new(1 << 20, 1 << 30);
    let mut hosts: Vec<Option<Host>> = (0..scenario.hosts.len()).map(|_| None).collect();
    let mut grants = Vec::new();
    while let Some(Reverse((t, event))) = queue.pop() {
        if t >= run {
            break;
        }
        match event {
            Event::OutageEdge(i) => {
                let (_, to, empty) = scenario.outages[i];
                if t == at(to) && empty && reachable(t) {
                    store.flush()?;
                }
            }
            Event::Join(i) => {
                let (_, busy, workers, _) = scenario.hosts[i];
                let mut policy = Policy::new(Config::from_json(&local).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                policy
                    .set_rate(ns(t), 0, MIN_TOKENS_PER_HOUR)
                    .map_err(|e| e.to_string())?;
                hosts[i] = Some(Host {
                    id: format!("h{i}"),
                    policy,
                    share: ShareState::new(scenario.seed ^ (i as u64 + 1)),
                    alive: true,
                    joined: t,
                    busy,
                    rates: Vec::new(),
                });
                queue.push(Reverse((t, Event::Renew(i))));
                for w in 0..workers {
                    queue.push(Reverse((t, Event::Work(i, w))));
                }
            }
            Event::Kill(i) => {
                if let Some(host) = &mut hosts[i] {
                    host.alive = false;
                }
            }
            Event::Renew(i) => {
                let Some(host) = hosts[i].as_mut().filter(|h| h.alive) else {
                    continue;
                };
                queue.push(Reverse((t + step, Event::Renew(i))));
                let now = Duration::from_nanos(t - host.joined);
                let before = host.share.rate();
                let mut bucket = NativeBucket {
                    policy: &mut host.policy,
                    now_ns: ns(t),
                };
                let report = host.share.report(&rules, now, &mut bucket);
                if reachable(t) {
                    let (grant, settling) = store.renew(
                        &host.id,
                        &identity,
                        total,
                        report.applied,
                        report.demand,
                        scenario.lease_ms,
                        BASE_MS + t / 1_000_000,
                    )?;
                    host.share.granted(
                        &rules,
                        now,
                        now,
                        grant * (1.0 - 1e-12),
                        settling,
                        &mut bucket,
                    )?;
                } else if let Some(fell_back) = host.share.unanswered(&rules, now, now, &mut bucket)
                {
                    fell_back?;
                }
                if host.share.rate() != before {
                    host.rates.push((t, host.share.rate()));
                }
            }
            Event::Work(i, w) => {
                let Some(host) = hosts[i].as_mut().filter(|h| h.alive) else {
                    continue;
                };
                // `Group::ready`: no share, no slot.
                if host.share.rate() <= 0.0 {
                    queue.push(Reverse((t + step / 2, Event::Work(i, w))));
                    continue;
                }
                let schedule = host
                    .policy
                    .next_delay(ns(t), memory, 0, 1, 0)
                    .map_err(|e| e.to_string())?;
                let Schedule::Act { delay } = schedule else {
                    return Err(format!("{schedule:?}: no failures here"));
                };
                host.share
                    .acquired(Duration::from_nanos(t - host.joined), delay > 0);
                queue.push(Reverse((t + delay, Event::Act(i, w))));
            }
            Event::Act(i, w) => {
                let Some(host) = hosts[i].as_mut().filter(|h| h.alive) else {
                    continue;
                };
                grants.push(t);
                // The download takes up to a tenth of the host's interval; then the worker goes
                // on, or idles for up to four intervals.
                let interval_ns = 3.6e12 / host.share.rate().max(MIN_TOKENS_PER_HOUR);
                let mut next = t + (draw() * interval_ns / 10.0) as u64;
                if draw() >= host.busy {
                    next += (draw() * 4.0 * interval_ns) as u64;
                }
                queue.push(Reverse((next.max(t + 1), Event::Work(i, w))));
            }
        }
    }
    grants.sort_unstable();
    Ok(Outcome {
        grants,
        rates: hosts
            .into_iter()
            .map(|h| h.map_or_else(Vec::new, |h| h.rates))
            .collect(),
        compared: store.compared,
    })
}

/// The fullest window of a run: the most grants above `W × rate`, against the group's burst.
#[derive(Debug, Default, Clone, Copy)]
struct Worst {
    excess: f64,
    burst: f64,
}

/// In every window between two grants (ns, sorted): at most `burst + W × rate` grants (and a
/// nanosecond's rate a grant, the policy's clock's rounding). With
/// `a_k = k − t_k × rate`, the window from grant i to grant j holds `a_j − a_i + 1` grants
/// above `W × rate`: one pass with the smallest `a_i` so far.
fn check_windows(grants: &[u64], burst: f64, per_hour: f64) -> Result<Worst, String> {
    let Some(&first) = grants.first() else {
        return Ok(Worst { excess: 0.0, burst });
    };
    let per_s = per_hour / 3600.0;
    let (mut lowest, mut lowest_at, mut worst) = (f64::INFINITY, 0, 0.0f64);
    for (k, &t) in grants.iter().enumerate() {
        let a = k as f64 - (t - first) as f64 / 1e9 * per_s;
        if a < lowest {
            (lowest, lowest_at) = (a, k);
        }
        let excess = a - lowest + 1.0;
        // The policy's clock is in whole nanoseconds: each slot may round down by one.
        let rounding = (k - lowest_at + 1) as f64 * 1e-9 * per_s;
        if excess > burst + rounding + 1e-9 {
            return Err(format!(
                "{} grants in a window of {:.9} s; at most {:.6} allowed",
                k - lowest_at + 1,
                (t - grants[lowest_at]) as f64 / 1e9,
                burst + (t - grants[lowest_at]) as f64 / 1e9 * per_s
            ));
        }
        worst = worst.max(excess);
    }
    Ok(Worst {
        excess: worst,
        burst,
    })
}

/// Runs `cases` scenarios; returns how many ran, the fullest window, and renewals compared.
fn property(cases: u32, mut real: Option<&mut redis::Connection>) -> (u32, Worst, u64, f64, f64) {
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let ran = std::cell::Cell::new(0u32);
    let worst = std::cell::Cell::new(Worst::default());
    let compared = std::cell::Cell::new(0u64);
    let rates = std::cell::Cell::new((f64::INFINITY, 0.0f64));
    let real = std::cell::RefCell::new(&mut real);
    runner
        .run(&scenario(), |scenario| {
            ran.set(ran.get() + 1);
            let (low, high) = rates.get();
            rates.set((low.min(scenario.per_hour), high.max(scenario.per_hour)));
            let mut real = real.borrow_mut();
            let outcome = simulate(&scenario, real.as_deref_mut(), u64::from(ran.get()))
                .map_err(TestCaseError::fail)?;
            compared.set(compared.get() + outcome.compared);
            let this = check_windows(&outcome.grants, scenario.group_burst(), scenario.per_hour)
                .map_err(TestCaseError::fail)?;
            if this.excess / this.burst > worst.get().excess / worst.get().burst.max(1.0) {
                worst.set(this);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let (low, high) = rates.get();
    (ran.get(), worst.get(), compared.get(), low, high)
}

#[test]
fn the_group_never_exceeds_its_bound_in_any_window() {
    let asked: u32 = std::env::var("PACER_GROUP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES_FLOOR);
    let (ran, worst, _, low, high) = property(asked.max(CASES_FLOOR), None);
    println!(
        "group bound: {ran} simulated groups at {low:.2} to {high:.0} an hour, 0 violations; \
         fullest window: {:.2} grants above W × rate, of a group burst of {}",
        worst.excess, worst.burst
    );
    assert!(
        ran >= CASES_FLOOR,
        "ran {ran} simulated groups, fewer than the floor of {CASES_FLOOR}"
    );
}

#[test]
fn the_script_model_agrees_with_the_real_script_and_holds_the_bound() {
    let redis_server = common::redis::Redis::start();
    let mut redis = redis::Client::open(redis_server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let (ran, worst, compared, low, high) = property(REAL_CASES, Some(&mut redis));
    println!(
        "the real script: {ran} simulated groups at {low:.2} to {high:.0} an hour, {compared} \
         renewals, every grant the model's; fullest window: {:.2} above W × rate, of {}",
        worst.excess, worst.burst
    );
    assert!(ran >= REAL_CASES, "ran {ran} of {REAL_CASES} groups");
    assert!(
        compared >= REAL_RENEWALS_FLOOR,
        "compared {compared} renewals with the real script, fewer than {REAL_RENEWALS_FLOOR}"
    );
}

/// How fast shares move, through the real script (lease 1 s, renewals every 250 ms): a second
/// busy host joins at 3 s; the first is killed at 5.4 s; Redis is away from 7.8 s to 9.6 s.
#[test]
fn shares_rebalance_within_two_leases_when_a_host_joins_or_leaves() {
    let redis_server = common::redis::Redis::start();
    let mut redis = redis::Client::open(redis_server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let scenario = Scenario {
        per_hour: 360_000.0,
        burst: 40,
        max_hosts: 4,
        lease_ms: 1000,
        hosts: vec![(0.0, 1.0, 3, Some(0.45)), (0.25, 1.0, 3, None)],
        outages: vec![(0.65, 0.8, false)],
        seed: 7,
        intervals: 4.0,
    };
    // A dozen leases: 12 s.
    assert_eq!(scenario.run_ns(), 12_000_000_000);
    let outcome = simulate(&scenario, Some(&mut redis), 1_000_000).expect("simulation");
    check_windows(&outcome.grants, 40.0, 360_000.0).expect("the bound");
    let total = 360_000.0;
    let ms = |fraction: f64| (fraction * 12_000.0) as u64;
    let near = |rate: f64, target: f64| (rate - target).abs() <= 0.01 * target;
    let first_at = |host: usize, from: u64, pred: &dyn Fn(f64) -> bool| {
        outcome.rates[host]
            .iter()
            .find(|(ns, rate)| *ns / 1_000_000 >= from && pred(*rate))
            .map(|(ns, _)| *ns / 1_000_000 - from)
    };
    let alone = first_at(0, 0, &|r| near(r, total)).expect("the first host gets it all");
    let joined = first_at(1, ms(0.25), &|r| near(r, total / 2.0)).expect("the newcomer: half");
    let lowered = first_at(0, ms(0.25), &|r| near(r, total / 2.0)).expect("the first lowers");
    let took_over = first_at(1, ms(0.45), &|r| near(r, total)).expect("the survivor gets it all");
    let fell_back = first_at(1, ms(0.65), &|r| near(r, total / 4.0)).expect("falls back");
    let rejoined = first_at(1, ms(0.8), &|r| near(r, total)).expect("rejoins");
    println!(
        "rebalance (lease 1 s): a new group's first host at its full share after {alone} ms; \
         on a join the old host halves in {lowered} ms and the newcomer has its half in \
         {joined} ms; a killed host's share is the survivor's after {took_over} ms; with Redis \
         away the survivor falls back to a quarter after {fell_back} ms, and has its whole \
         share again {rejoined} ms after Redis returns"
    );
    let lease = 1000;
    assert!(joined <= lease && took_over <= lease + lease / 2 + lease / 4);
    assert!(fell_back <= lease + lease / 4 && rejoined <= lease + lease / 4);
}

/// Three hosts that always have work, at pacer's defaults for a group (`--max-hosts 16`, lease
/// 2 s, 3 workers), take at least 95 % of the rate once every host has begun (after two of its
/// intervals and two leases), at every rate from one an hour to thousands a second. Judging
/// demand by a quarter lease instead held them at their fallback share at 60 a minute.
#[test]
fn busy_hosts_take_the_whole_rate_at_every_rate() {
    for per_hour in [1.0, 60.0, 3600.0, 72_000.0, 7_200_000.0] {
        for burst in [2, 40] {
            let scenario = Scenario {
                per_hour,
                burst,
                max_hosts: 16,
                lease_ms: 2000,
                hosts: vec![(0.0, 1.0, 3, None); 3],
                outages: Vec::new(),
                seed: per_hour as u64 ^ u64::from(burst),
                intervals: 40.0,
            };
            let outcome = simulate(&scenario, None, 1).expect("simulation");
            check_windows(&outcome.grants, scenario.group_burst(), per_hour).expect("the bound");
            let from = ((2.0 * scenario.even_interval_s() + 4.0) * 1e9) as u64;
            let steady: Vec<u64> = outcome
                .grants
                .iter()
                .copied()
                .filter(|t| *t >= from)
                .collect();
            assert!(steady.len() >= 20, "{per_hour}/h: {} grants", steady.len());
            let span_h = (steady[steady.len() - 1] - steady[0]) as f64 / 3.6e12;
            let taken = (steady.len() - 1) as f64 / span_h;
            println!(
                "3 busy hosts at {per_hour}/h, burst {burst}: {:.1} % of the rate ({} grants)",
                100.0 * taken / per_hour,
                steady.len()
            );
            assert!(
                taken >= 0.95 * per_hour,
                "{per_hour}/h, burst {burst}: the group took {taken:.3}/h"
            );
        }
    }
}

/// Groups the property test once failed, kept. (1) A host whose lease ended in an outage
/// shorter than a lease ran at its fallback share while its record had expired (records
/// lasted a lease and a tenth). (2) A host that joined during an outage ran at its fallback
/// share, unrecorded, while the other, cut to its fallback too, was granted back the faster
/// rate it still reported for its slots, during settling.
#[test]
fn groups_the_property_test_once_failed_hold_the_bound() {
    let groups = [
        Scenario {
            per_hour: 15_760_183.278664,
            burst: 2,
            max_hosts: 2,
            lease_ms: 513,
            hosts: vec![(0.2535075217982549, 1.0, 1, None), (0.0, 1.0, 1, None)],
            outages: vec![(0.7501948805525117, 0.825225256853833, false)],
            seed: 0,
            intervals: 4.0,
        },
        Scenario {
            per_hour: 2_732_278.319_203_125_3,
            burst: 2,
            max_hosts: 2,
            lease_ms: 3293,
            hosts: vec![(0.13396511364565672, 1.0, 1, None), (0.0, 1.0, 1, None)],
            outages: vec![(0.12812366496063762, 0.22290312651375954, false)],
            seed: 2_624_382_655_565_672,
            intervals: 4.0,
        },
    ];
    for scenario in &groups {
        let outcome = simulate(scenario, None, 1).expect("simulation");
        check_windows(&outcome.grants, scenario.group_burst(), scenario.per_hour)
            .unwrap_or_else(|why| panic!("{why}: {scenario:?}"));
    }
}
