//! The host's side of the sharing rules, as plain values on a clock the caller gives (time
//! since the host joined): what a host reports at each renewal, and how it runs the grant it
//! gets back. `group.rs` drives them with the hosted policy and Redis; the group's
//! simulation (`cli/tests/group_bound.rs`) drives the same code with a native policy on a
//! virtual clock.
//!
//! Demand is judged over a window of at least two of the host's own intervals, never less
//! than a lease: a host at 60 a minute shared three ways takes a slot every 3 s, so a quarter
//! lease mostly sees no slot taken, and judging by that cut every host to the fallback share,
//! where a slot placed at 16 s kept the next renewal's raise from ever being used.
//!
//! A host that gains a share holds its first slot back for one to two of its intervals, the
//! point drawn from its own seed (its bucket holds at most one token meanwhile). Hosts started together are granted together; each host's slots then keep their
//! phase, so without it they act in lockstep, and with a burst below the number of hosts
//! every interval then spends the group's whole slack (one token a host) at once: a late
//! answer was enough for a 429 from nginx at 60 a minute, burst 2, three hosts.

use std::time::Duration;

/// A shared limiter's parameters, the same on every host of the group.
#[derive(Debug, Clone, Copy)]
pub struct ShareRules {
    /// The group's rate, tokens an hour.
    pub total: f64,
    /// The most hosts the group may have.
    pub max_hosts: u32,
    /// How long a grant lasts without renewal.
    pub lease: Duration,
}

/// What the rules need of the host's bucket for the shared limiter.
pub trait Bucket {
    /// Tokens handed out beyond those accrued, × 1000; 0 when not in debt. In debt, a worker
    /// waits for a slot: the host is held back by its share.
    fn debt_milli(&mut self) -> u64;
    /// Runs the limiter at `tokens_per_hour` from now on.
    fn set_rate(&mut self, tokens_per_hour: f64) -> Result<(), String>;
    /// Holds the limiter's next slot back for `duration` (a longer pause in force stays).
    fn pause(&mut self, duration: Duration) -> Result<(), String>;
}

/// What a host reports at a renewal, both in tokens an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// The fastest rate it may be running at (slots handed out before a cut still count).
    pub applied: f64,
    /// The rate it would use.
    pub demand: f64,
}

/// One host's share of one limiter.
#[derive(Debug, Clone, Default)]
pub struct ShareState {
    /// The rate the module runs at (tokens an hour); 0 = not granted (the module runs at the
    /// slowest rate and the pipeline asks for nothing).
    rate: f64,
    /// A faster rate that slots handed out before a cut were placed at, and until when.
    before_cut: Option<(f64, Duration)>,
    /// The grant's end; `None` before the first grant.
    lease_until: Option<Duration>,
    /// Running at the fallback share because Redis could not be reached.
    fallback: bool,
    /// When a slot last had to wait for the bucket.
    waited_at: Option<Duration>,
    /// Slots taken lately, for the demand's rate.
    used: UseWindow,
    /// Draws the first slot's phase (xorshift64; never 0).
    phase_seed: u64,
}

/// Slots counted in the current window and the one before it.
#[derive(Debug, Clone, Copy, Default)]
struct UseWindow {
    start: Duration,
    count: u64,
    previous: Option<(Duration, u64)>,
}

impl UseWindow {
    /// Slots an hour over the last one to two windows of `length`.
    fn per_hour(&mut self, now: Duration, length: Duration) -> f64 {
        if now.saturating_sub(self.start) >= length {
            self.previous = Some((self.start, self.count));
            self.start = now;
            self.count = 0;
        }
        let (since, before) = self.previous.unwrap_or((self.start, 0));
        let span = now.saturating_sub(since).as_secs_f64().max(1e-3);
        (before + self.count) as f64 * 3600.0 / span
    }
}

impl ShareState {
    /// No share yet; `seed` draws the phase of the first slot after each share gained.
    pub fn new(seed: u64) -> ShareState {
        ShareState {
            phase_seed: seed | 1,
            ..ShareState::default()
        }
    }

    /// The rate the module runs at now (0 = no share).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether this is the fallback share (Redis unreachable).
    pub fn fallback(&self) -> bool {
        self.fallback
    }

    /// A worker took a slot at `now`; `waited` if it had to wait for it.
    pub fn acquired(&mut self, now: Duration, waited: bool) {
        self.used.count += 1;
        if waited {
            self.waited_at = Some(now);
        }
    }

    /// What to report at a renewal sent at `now`.
    pub fn report(&mut self, rules: &ShareRules, now: Duration, bucket: &mut dyn Bucket) -> Report {
        let window = demand_window(self.rate, rules.lease);
        if bucket.debt_milli() > 0 {
            self.waited_at = Some(now);
        }
        let waited = self
            .waited_at
            .is_some_and(|at| now.saturating_sub(at) < window);
        let used = self.used.per_hour(now, window);
        let demand = demand(rules.total, rules.max_hosts, self.rate, waited, used);
        let mut applied = self.rate;
        if let Some((faster, until)) = self.before_cut {
            if now < until {
                applied = applied.max(faster);
            } else {
                self.before_cut = None;
            }
        }
        Report { applied, demand }
    }

    /// Redis granted `grant` to the renewal sent at `sent`; it is applied at `now`. While the
    /// group is `settling` no host raises: the script caps a grant at what the host reported,
    /// which after a cut (a fallback too) is the faster rate its slots were placed at, so the
    /// host caps it at the rate it runs at. Hosts still at their fallback share, unrecorded,
    /// report within the settling lease.
    pub fn granted(
        &mut self,
        rules: &ShareRules,
        sent: Duration,
        now: Duration,
        grant: f64,
        settling: bool,
        bucket: &mut dyn Bucket,
    ) -> Result<(), String> {
        self.lease_until = Some(sent.saturating_add(rules.lease));
        self.fallback = false;
        let grant = if settling {
            grant.min(self.rate)
        } else {
            grant
        };
        self.run_at(rules, now, grant, bucket)
    }

    /// The renewal sent at `sent` got no answer: once the lease has ended, the host runs at
    /// the fallback share (`Some`, once per outage).
    pub fn unanswered(
        &mut self,
        rules: &ShareRules,
        sent: Duration,
        now: Duration,
        bucket: &mut dyn Bucket,
    ) -> Option<Result<(), String>> {
        let until = self.lease_until.unwrap_or(rules.lease);
        if sent < until || self.fallback {
            return None;
        }
        self.fallback = true;
        Some(self.run_at(rules, now, fallback(rules.total, rules.max_hosts), bucket))
    }

    /// Runs at `grant` (below a useful floor: no share). A cut keeps the faster rate
    /// reported until the slots handed out at it have matured.
    fn run_at(
        &mut self,
        rules: &ShareRules,
        now: Duration,
        grant: f64,
        bucket: &mut dyn Bucket,
    ) -> Result<(), String> {
        let rate = usable(grant, rules.total, rules.max_hosts);
        if rate == self.rate {
            return Ok(());
        }
        // Slots handed out before a cut were placed at the old rate; in debt, the last one
        // matures debt / rate from now (the module keeps that time across the cut).
        let cut_horizon = (rate < self.rate).then(|| horizon(bucket.debt_milli(), self.rate));
        bucket.set_rate(module_rate(rate))?;
        let gained = self.rate <= 0.0;
        if let Some(cut_horizon) = cut_horizon {
            let until = now
                .saturating_add(cut_horizon)
                .saturating_add(rules.lease / 4);
            let faster = faster_before_cut(self.before_cut, self.rate);
            self.before_cut = Some((faster, until));
        }
        self.rate = rate;
        if gained {
            let phase = self.phase(rate);
            bucket.pause(phase)?;
        }
        Ok(())
    }
}

impl ShareState {
    /// One to two intervals at `rate` (> 0), the point drawn from the seed.
    fn phase(&mut self, rate: f64) -> Duration {
        let mut x = self.phase_seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.phase_seed = x;
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        Duration::try_from_secs_f64((1.0 + fraction) * 3600.0 / rate).unwrap_or(Duration::ZERO)
    }
}

/// The share while Redis is unreachable: `total / max_hosts`.
pub fn fallback(total: f64, max_hosts: u32) -> f64 {
    total / f64::from(max_hosts)
}

/// How far back demand looks: two of the host's intervals at `rate`, at least a lease.
pub fn demand_window(rate: f64, lease: Duration) -> Duration {
    let two_intervals = if rate > 0.0 {
        Duration::try_from_secs_f64(2.0 * 3600.0 / rate).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    };
    two_intervals.max(lease)
}

/// The demand a host reports: everything if a slot had to wait within the demand window (or
/// it has no share), otherwise twice its use over the window, at least a fallback share so
/// that new work finds some rate, and never above `total`.
pub fn demand(total: f64, max_hosts: u32, rate: f64, waited: bool, used_per_hour: f64) -> f64 {
    if waited || rate <= 0.0 {
        total
    } else {
        (2.0 * used_per_hour).clamp(fallback(total, max_hosts).min(total), total)
    }
}

/// The rate a host runs at for `grant`: below a quarter of a fallback share, none (a slot
/// placed at a crawl would wait long after the share grows).
pub fn usable(grant: f64, total: f64, max_hosts: u32) -> f64 {
    if grant >= fallback(total, max_hosts) / 4.0 {
        grant
    } else {
        0.0
    }
}

/// The rate the module runs at for a usable `rate` (0 = no share: the slowest it takes).
pub fn module_rate(rate: f64) -> f64 {
    if rate > 0.0 {
        rate
    } else {
        pacer::quota::MIN_TOKENS_PER_HOUR
    }
}

/// The fastest rate slots may still be maturing at, after a cut from `rate`, given the one
/// kept from an earlier cut.
pub fn faster_before_cut<T>(before_cut: Option<(f64, T)>, rate: f64) -> f64 {
    before_cut.map_or(rate, |(faster, _)| faster.max(rate))
}

/// How long slots handed out at `old_rate` (tokens an hour) keep maturing after a cut, from
/// the bucket's debt in milli-tokens just before it.
pub fn horizon(debt_milli: u64, old_rate: f64) -> Duration {
    Duration::try_from_secs_f64((debt_milli as f64 / 1000.0) * 3600.0 / old_rate)
        .unwrap_or(Duration::MAX)
}
