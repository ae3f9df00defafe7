//! The group's bound, checked in every window: many simulated hosts on a virtual clock, each
//! a native pacer policy paced by the sharing rules (`pacer_cli::group::rules`), renewing
//! through the real renewal script on a real redis-server (given the virtual time) and, beside
//! it, a fake store written from the script's rules; the two must agree on every grant. Hosts
//! join, are killed and come back idle or busy; Redis goes away and comes back, sometimes
//! empty. In any window W the group's grants must stay within `burst + W × rate`.

mod common;

use std::collections::BTreeMap;

use pacer::quota::MIN_TOKENS_PER_HOUR;
use pacer::{Config, Decision, Policy};
use pacer_cli::group::{RENEW_SCRIPT, local_config, rules};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

const LEASE_MS: u64 = 1000;
const STEP_MS: u64 = LEASE_MS / 4;
const RUN_MS: u64 = 20_000;
/// The virtual clock's origin, so that no time is near zero.
const BASE_MS: u64 = 1_000_000_000;

/// The renewal script's rules, in Rust, with the script's arithmetic (doubles).
#[derive(Default)]
struct FakeStore {
    /// host -> (recorded, demand, expires_ms)
    members: BTreeMap<String, (f64, f64, u64)>,
    identity: Option<String>,
    last: Option<u64>,
    since: Option<u64>,
}

impl FakeStore {
    #[allow(clippy::too_many_arguments)]
    fn renew(
        &mut self,
        host: &str,
        identity: &str,
        total: f64,
        applied: f64,
        demand: f64,
        leaving: bool,
        now: u64,
    ) -> Result<f64, String> {
        match &self.identity {
            None => self.identity = Some(identity.to_string()),
            Some(known) if known != identity => return Err(known.clone()),
            Some(_) => {}
        }
        let since = match (self.last, self.since) {
            (Some(last), Some(since)) if now - last <= LEASE_MS => since,
            _ => now,
        };
        self.last = Some(now);
        self.since = Some(since);
        let settling = now < since + LEASE_MS;
        let (mut others, mut entries) = (0.0, Vec::new());
        self.members
            .retain(|h, (_, _, expires)| h == host || *expires >= now);
        for (h, (recorded, d, _)) in &self.members {
            if h != host {
                others += recorded;
                entries.push(*d);
            }
        }
        if leaving {
            self.members.remove(host);
            return Ok(0.0);
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
            (grant.max(applied), demand, now + LEASE_MS + LEASE_MS / 10),
        );
        Ok(grant)
    }
}

/// One simulated host: the rules of `group.rs`'s renewal and `apply`, on the virtual clock.
struct Host {
    id: String,
    policy: Policy,
    rate: f64,
    before_cut: Option<(f64, u64)>,
    lease_until: Option<u64>,
    fallback: bool,
    started: u64,
    next_renewal: u64,
    alive: bool,
    /// Share of milliseconds in which it has work (1 = always busy).
    busy: f64,
    acquired: u64,
    waited: bool,
    period_start: u64,
    /// Every rate change: (ms, new rate).
    rates: Vec<(u64, f64)>,
}

#[derive(Debug, Clone)]
struct Scenario {
    rate_per_s: f64,
    burst: u32,
    max_hosts: u32,
    /// (joins at ms, busy share, killed at ms)
    hosts: Vec<(u64, f64, Option<u64>)>,
    /// (from ms, to ms, comes back empty)
    outages: Vec<(u64, u64, bool)>,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2u32..=16, 1.0f64..200.0, 1u32..=64)
        .prop_flat_map(|(max_hosts, rate_per_s, burst_per_host)| {
            let host = (
                prop_oneof![Just(0u64), 0u64..RUN_MS / 2],
                prop_oneof![Just(1.0), 0.05f64..1.0],
                proptest::option::weighted(0.3, 0u64..RUN_MS),
            );
            (
                Just(max_hosts),
                Just(rate_per_s),
                Just(burst_per_host * max_hosts),
                proptest::collection::vec(host, 2..=max_hosts as usize),
                proptest::collection::vec((0u64..RUN_MS, 100u64..5_000, any::<bool>()), 0..3),
                any::<u64>(),
            )
        })
        .prop_map(
            |(max_hosts, rate_per_s, burst, hosts, outages, seed)| Scenario {
                rate_per_s,
                burst,
                max_hosts,
                hosts,
                outages: outages
                    .into_iter()
                    .map(|(from, length, empty)| (from, from + length, empty))
                    .collect(),
                seed,
            },
        )
}

/// Runs one scenario against the real script and the fake; an error names what went wrong.
fn run(scenario: &Scenario, redis: &mut redis::Connection, case: u64) -> Result<Worst, String> {
    simulate(scenario, redis, case).and_then(|(grants, _)| {
        check_windows(
            &grants,
            f64::from(scenario.burst),
            scenario.rate_per_s * 3600.0,
        )
    })
}

/// Runs one scenario: every grant (ns), and each host's rate changes.
#[allow(clippy::type_complexity)]
fn simulate(
    scenario: &Scenario,
    redis: &mut redis::Connection,
    case: u64,
) -> Result<(Vec<u64>, Vec<Vec<(u64, f64)>>), String> {
    let total = scenario.rate_per_s * 3600.0;
    let config = format!(
        r#"{{"seed":1,"limiters":[{{"name":"l","tokens_per_hour":{total},"burst":{}}}],"jitter":{{"strategy":"none"}}}}"#,
        scenario.burst
    );
    let local = local_config(
        &config,
        scenario.max_hosts,
        std::time::Duration::from_millis(LEASE_MS),
    )?;
    let identity = format!("case {case}");
    let group = format!("sim{case}");
    let keys =
        ["members", "identity", "contact", "pause"].map(|k| format!("pacer:{{{group}}}:l:{k}"));
    let script = redis::Script::new(RENEW_SCRIPT);
    let mut fake = FakeStore::default();
    let mut hosts: Vec<Host> = Vec::new();
    let mut grants: Vec<u64> = Vec::new(); // ns on the virtual clock
    let mut coin = scenario.seed | 1;
    let mut flip = |p: f64| {
        coin ^= coin << 13;
        coin ^= coin >> 7;
        coin ^= coin << 17;
        ((coin >> 11) as f64 / (1u64 << 53) as f64) < p
    };
    let ns = |ms: u64| (BASE_MS + ms) * 1_000_000;
    for ms in 0..RUN_MS {
        let outage = scenario
            .outages
            .iter()
            .find(|(from, to, _)| (*from..*to).contains(&ms));
        for (from, to, empty) in &scenario.outages {
            if ms == *to && *empty && !scenario.outages.iter().any(|(f, t, _)| f < to && *t > *to) {
                redis::cmd("FLUSHALL")
                    .exec(redis)
                    .map_err(|e| e.to_string())?;
                fake = FakeStore::default();
            }
            let _ = from;
        }
        for (i, &(joins, busy, killed)) in scenario.hosts.iter().enumerate() {
            if ms == joins {
                let mut policy = Policy::new(Config::from_json(&local).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                policy
                    .set_rate(ns(ms), 0, MIN_TOKENS_PER_HOUR)
                    .map_err(|e| e.to_string())?;
                hosts.push(Host {
                    id: format!("h{i}"),
                    policy,
                    rate: 0.0,
                    before_cut: None,
                    lease_until: None,
                    fallback: false,
                    started: ms,
                    next_renewal: ms,
                    alive: true,
                    busy,
                    acquired: 0,
                    waited: false,
                    period_start: ms,
                    rates: Vec::new(),
                });
            }
            if killed == Some(ms) {
                if let Some(host) = hosts.iter_mut().find(|h| h.id == format!("h{i}")) {
                    host.alive = false;
                }
            }
        }
        for host in hosts.iter_mut().filter(|h| h.alive) {
            if ms == host.next_renewal {
                host.next_renewal += STEP_MS;
                renew(
                    host,
                    scenario,
                    total,
                    &identity,
                    &keys,
                    &script,
                    redis,
                    &mut fake,
                    outage.is_none(),
                    ms,
                )?;
            }
            // Work: take every token the policy admits this millisecond.
            if host.rate > 0.0 && flip(host.busy) {
                loop {
                    match host
                        .policy
                        .try_acquire(ns(ms), 0, 1)
                        .map_err(|e| e.to_string())?
                    {
                        Decision::Admit => {
                            grants.push(ns(ms));
                            host.acquired += 1;
                        }
                        Decision::Wait(_) => {
                            host.waited = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok((grants, hosts.into_iter().map(|h| h.rates).collect()))
}

#[allow(clippy::too_many_arguments)]
fn renew(
    host: &mut Host,
    scenario: &Scenario,
    total: f64,
    identity: &str,
    keys: &[String; 4],
    script: &redis::Script,
    redis: &mut redis::Connection,
    fake: &mut FakeStore,
    reachable: bool,
    ms: u64,
) -> Result<(), String> {
    let elapsed = ((ms - host.period_start) as f64 / 1000.0).max(1e-3);
    host.period_start = ms;
    let used = std::mem::take(&mut host.acquired) as f64 * 3600.0 / elapsed;
    let waited = std::mem::take(&mut host.waited);
    let demand = rules::demand(total, scenario.max_hosts, host.rate, waited, used);
    let mut applied = host.rate;
    if let Some((faster, until)) = host.before_cut {
        if ms < until {
            applied = applied.max(faster);
        } else {
            host.before_cut = None;
        }
    }
    if !reachable {
        let until = host.lease_until.unwrap_or(host.started + LEASE_MS);
        if ms >= until && !host.fallback {
            apply(
                host,
                scenario,
                total,
                rules::fallback(total, scenario.max_hosts),
                None,
                ms,
            )?;
            host.fallback = true;
        }
        return Ok(());
    }
    let now = BASE_MS + ms;
    let (real, _pause, _settling): (String, i64, i64) = script
        .key(&keys[0])
        .key(&keys[1])
        .key(&keys[2])
        .key(&keys[3])
        .arg(&host.id)
        .arg(identity)
        .arg(total)
        .arg(applied)
        .arg(demand)
        .arg(LEASE_MS)
        .arg(0)
        .arg(now)
        .invoke(redis)
        .map_err(|e| format!("the real script: {e}"))?;
    let real: f64 = real.parse().map_err(|e| format!("grant {real:?}: {e}"))?;
    let faked = fake.renew(&host.id, identity, total, applied, demand, false, now)?;
    if (real - faked).abs() > 1e-9 * total {
        return Err(format!(
            "at {ms} ms {}: the script granted {real}, the fake {faked}",
            host.id
        ));
    }
    apply(
        host,
        scenario,
        total,
        real * (1.0 - 1e-12),
        Some(ms + LEASE_MS),
        ms,
    )
}

/// `group.rs`'s `apply`: the usable rate, a cut's horizon, the module's rate.
fn apply(
    host: &mut Host,
    scenario: &Scenario,
    total: f64,
    grant: f64,
    lease_until: Option<u64>,
    ms: u64,
) -> Result<(), String> {
    let now_ns = (BASE_MS + ms) * 1_000_000;
    let rate = rules::usable(grant, total, scenario.max_hosts);
    if lease_until.is_some() {
        host.lease_until = lease_until;
        host.fallback = false;
    }
    if rate == host.rate {
        return Ok(());
    }
    let horizon = if rate < host.rate {
        let debt = host
            .policy
            .available_milli(now_ns, 0)
            .map_err(|e| e.to_string())?
            .min(0)
            .unsigned_abs();
        Some(rules::horizon(debt, host.rate))
    } else {
        None
    };
    host.policy
        .set_rate(now_ns, 0, rules::module_rate(rate))
        .map_err(|e| e.to_string())?;
    if let Some(horizon) = horizon {
        let until = ms + horizon.as_millis() as u64 + STEP_MS;
        let faster = rules::faster_before_cut(host.before_cut, host.rate);
        host.before_cut = Some((faster, until));
    }
    host.rate = rate;
    host.rates.push((ms, rate));
    Ok(())
}

/// The fullest window of a run: grants in it against the bound.
#[derive(Debug, Default, Clone, Copy)]
struct Worst {
    ratio: f64,
    grants: usize,
    allowed: f64,
}

/// In every window between two grants: at most `burst + W × rate` tokens.
fn check_windows(grants: &[u64], burst: f64, per_hour: f64) -> Result<Worst, String> {
    let per_ns = per_hour / 3.6e12;
    let mut worst = (0.0f64, 0usize, 0.0f64);
    for i in 0..grants.len() {
        for j in i..grants.len() {
            let tokens = (j - i + 1) as f64;
            let window = (grants[j] - grants[i]) as f64;
            let allowed = burst + window * per_ns;
            if tokens > allowed * (1.0 + 1e-9) {
                return Err(format!(
                    "{tokens} grants in a window of {:.3} s; at most {allowed:.3} allowed",
                    window / 1e9
                ));
            }
            if tokens / allowed > worst.0 {
                worst = (tokens / allowed, j - i + 1, allowed);
            }
        }
    }
    Ok(Worst {
        ratio: worst.0,
        grants: worst.1,
        allowed: worst.2,
    })
}

#[test]
fn the_group_never_exceeds_its_bound_in_any_window() {
    let redis_server = common::redis::Redis::start();
    let redis = redis::Client::open(redis_server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let cases: u64 = std::env::var("PACER_GROUP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: cases as u32,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let case = std::cell::Cell::new(0u64);
    let worst = std::cell::Cell::new(Worst::default());
    let redis = std::cell::RefCell::new(redis);
    runner
        .run(&scenario(), |scenario| {
            case.set(case.get() + 1);
            match run(&scenario, &mut redis.borrow_mut(), case.get()) {
                Ok(this) => {
                    if this.ratio > worst.get().ratio {
                        worst.set(this);
                    }
                    Ok(())
                }
                Err(why) => Err(TestCaseError::fail(why)),
            }
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let (case, worst) = (case.get(), worst.get());
    println!(
        "group bound: {case} simulated groups, 0 violations; fullest window: {} grants of \
         {:.2} allowed ({:.1} %)",
        worst.grants,
        worst.allowed,
        100.0 * worst.ratio
    );
}

/// How fast shares move, on the virtual clock through the real script (lease 1 s, renewals
/// every 250 ms): a second busy host joins at 5 s; the first is killed at 10 s; Redis is away
/// from 12 s to 14 s.
#[test]
fn shares_rebalance_within_a_lease_when_a_host_joins_or_leaves() {
    let redis_server = common::redis::Redis::start();
    let mut redis = redis::Client::open(redis_server.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    let scenario = Scenario {
        rate_per_s: 100.0,
        burst: 40,
        max_hosts: 4,
        hosts: vec![(0, 1.0, Some(10_000)), (5_000, 1.0, None)],
        outages: vec![(12_000, 14_000, false)],
        seed: 7,
    };
    let (grants, rates) = simulate(&scenario, &mut redis, 1_000_000).expect("simulation");
    check_windows(&grants, 40.0, 360_000.0).expect("the bound");
    let total = 360_000.0;
    let near = |rate: f64, target: f64| (rate - target).abs() <= 0.01 * target;
    let first_at = |host: usize, from: u64, pred: &dyn Fn(f64) -> bool| {
        rates[host]
            .iter()
            .find(|(ms, rate)| *ms >= from && pred(*rate))
            .map(|(ms, _)| *ms - from)
    };
    let alone = first_at(0, 0, &|r| near(r, total)).expect("the first host gets it all");
    let joined = first_at(1, 5_000, &|r| near(r, total / 2.0)).expect("the newcomer gets half");
    let lowered = first_at(0, 5_000, &|r| near(r, total / 2.0)).expect("the first lowers");
    let took_over = first_at(1, 10_000, &|r| near(r, total)).expect("the survivor gets it all");
    let fell_back = first_at(1, 12_000, &|r| near(r, total / 4.0)).expect("falls back");
    let rejoined = first_at(1, 14_000, &|r| near(r, total)).expect("rejoins");
    println!(
        "rebalance (lease 1 s): a new group's first host at its full share after {alone} ms; \
         on a join the old host halves in {lowered} ms and the newcomer has its half in \
         {joined} ms; a killed host's share is the survivor's after {took_over} ms; with Redis \
         away the survivor falls back to a quarter after {fell_back} ms, and has its whole \
         share again {rejoined} ms after Redis returns"
    );
    assert!(joined <= LEASE_MS && took_over <= LEASE_MS + STEP_MS);
    assert!(fell_back <= LEASE_MS + STEP_MS && rejoined <= LEASE_MS + STEP_MS);
}
