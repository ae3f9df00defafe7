#![allow(missing_docs)]
//! Decision costs, side by side with `governor` doing the same check on its fake clock.
//!
//! Both sides advance an atomic fake clock by one interval per admitted check, so each
//! iteration is one clock read, one decision and one clock update on either side.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::clock::Clock as _;
use governor::clock::FakeRelativeClock;
use governor::{Jitter as GovernorJitter, Quota as GovernorQuota, RateLimiter};
use pacer::{
    Clock, Config, FakeClock, KeyedLimiter, Limiter, LimiterConfig, MemoryReading, Policy, Quota,
    Rng,
};
use pacer::{Jitter, Strategy};

const PER_SECOND: u32 = 1_000_000;
const INTERVAL_NS: u64 = 1_000;
const KEYS: u64 = 1_000;

fn pacer_quota() -> Quota {
    Quota::per_hour(f64::from(PER_SECOND) * 3600.0)
        .and_then(|q| q.with_burst(100))
        .expect("valid quota")
}

fn governor_quota() -> GovernorQuota {
    let rate = NonZeroU32::new(PER_SECOND).expect("non-zero");
    GovernorQuota::per_second(rate).allow_burst(NonZeroU32::new(100).expect("non-zero"))
}

/// governor's admitted check, its clock advanced by one interval per iteration.
fn governor_admitted_check(b: &mut criterion::Bencher) {
    let clock = FakeRelativeClock::default();
    let limiter = RateLimiter::direct_with_clock(governor_quota(), clock.clone());
    b.iter(|| {
        clock.advance(Duration::from_nanos(INTERVAL_NS));
        black_box(limiter.check())
    })
}

fn try_acquire(c: &mut Criterion) {
    let mut group = c.benchmark_group("try_acquire");
    group.bench_function("pacer", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(pacer_quota(), clock.now());
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(limiter.try_acquire(clock.now(), black_box(1)))
        })
    });
    group.bench_function("governor", governor_admitted_check);
    group.finish();

    // The refusal path: an exhausted bucket on a frozen clock. pacer computes the exact wait;
    // governor returns a `NotUntil` and computes it only if asked, so it is asked here.
    let mut group = c.benchmark_group("try_acquire_refused");
    group.bench_function("pacer", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(pacer_quota(), clock.now());
        while limiter
            .try_acquire(clock.now(), 1)
            .is_ok_and(|d| d.is_admitted())
        {}
        b.iter(|| black_box(limiter.try_acquire(clock.now(), black_box(1))))
    });
    group.bench_function("governor", |b| {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(governor_quota(), clock.clone());
        while limiter.check().is_ok() {}
        b.iter(|| {
            black_box(
                limiter
                    .check()
                    .map_err(|refused| refused.wait_time_from(clock.now())),
            )
        })
    });
    group.finish();
}

fn keyed(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyed_1000_keys");
    group.bench_function("pacer", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = KeyedLimiter::new(pacer_quota(), 10_000);
        let mut key = 0u64;
        b.iter(|| {
            key = (key + 1) % KEYS;
            clock.advance(INTERVAL_NS);
            black_box(limiter.try_acquire(&key, clock.now(), 1))
        })
    });
    group.bench_function("governor", |b| {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::dashmap_with_clock(governor_quota(), clock.clone());
        let mut key = 0u64;
        b.iter(|| {
            key = (key + 1) % KEYS;
            clock.advance(Duration::from_nanos(INTERVAL_NS));
            black_box(limiter.check_key(&key))
        })
    });
    group.finish();
}

fn policy() -> Policy {
    let rate = f64::from(PER_SECOND) * 3600.0;
    let mut config = Config::new(vec![LimiterConfig::new("bench", rate)]);
    config.seed = Some(1);
    Policy::new(config).expect("valid config")
}

type FakeDirectLimiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    FakeRelativeClock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

/// governor's nearest equivalent of a paced slot: check, the wait if refused, plus jitter.
fn governor_paced_wait(
    limiter: &FakeDirectLimiter,
    clock: &FakeRelativeClock,
    jitter: GovernorJitter,
) -> Duration {
    let wait = match limiter.check() {
        Ok(()) => Duration::ZERO,
        Err(refused) => refused.wait_time_from(clock.now()),
    };
    jitter + wait
}

fn policy_calls(c: &mut Criterion) {
    // governor has no reservations; its admitted check is the nearest operation.
    let mut group = c.benchmark_group("reserve");
    group.bench_function("pacer", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(pacer_quota(), clock.now());
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(limiter.reserve(clock.now(), black_box(1)))
        })
    });
    group.bench_function("governor_check", governor_admitted_check);
    group.finish();

    let mut group = c.benchmark_group("jitter");
    group.bench_function("pacer_adaptive", |b| {
        let mut rng = Rng::from_seed(1);
        let mut jitter = Jitter::new(Strategy::Adaptive, 3_000_000_000);
        b.iter(|| black_box(jitter.delay(&mut rng, black_box(1_000_000), black_box(500_000))))
    });
    group.bench_function("governor_up_to", |b| {
        let jitter = GovernorJitter::up_to(Duration::from_millis(1500));
        b.iter(|| black_box(jitter + black_box(Duration::from_millis(1))))
    });
    group.finish();

    let mut group = c.benchmark_group("next_delay");
    group.bench_function("pacer", |b| {
        let clock = FakeClock::new(0);
        let mut policy = policy();
        let memory = MemoryReading::new(1 << 30, 4 << 30);
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(policy.next_delay(clock.now(), memory, 0, 1, black_box(0)))
        })
    });
    // Burst 1: every reservation uses the whole bucket, so adaptive jitter draws a random
    // spread (up to one interval) on every call, as the governor side draws its jitter.
    group.bench_function("pacer_drawing_jitter", |b| {
        let clock = FakeClock::new(0);
        let rate = f64::from(PER_SECOND) * 3600.0;
        let mut limiter = LimiterConfig::new("bench", rate);
        limiter.burst = Some(1);
        let mut config = Config::new(vec![limiter]);
        config.seed = Some(1);
        let mut policy = Policy::new(config).expect("valid config");
        let memory = MemoryReading::new(1 << 30, 4 << 30);
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(policy.next_delay(clock.now(), memory, 0, 1, black_box(0)))
        })
    });
    group.bench_function("governor_check_wait_jitter", |b| {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(governor_quota(), clock.clone());
        let jitter = GovernorJitter::up_to(Duration::from_millis(1500));
        b.iter(|| {
            clock.advance(Duration::from_nanos(INTERVAL_NS));
            black_box(governor_paced_wait(&limiter, &clock, jitter))
        })
    });
    group.bench_function("pacer_policy_try_acquire", |b| {
        let clock = FakeClock::new(0);
        let mut policy = policy();
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(policy.try_acquire(clock.now(), 0, black_box(1)))
        })
    });
    group.finish();
}

criterion_group!(benches, try_acquire, keyed, policy_calls);
criterion_main!(benches);
