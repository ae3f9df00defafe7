#![allow(missing_docs)]
//! Decision costs, side by side with `governor` doing the same check on its fake clock.
//!
//! Both sides advance an atomic fake clock by one interval per admitted check, so each
//! iteration is one clock read, one decision and one clock update on either side.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::clock::FakeRelativeClock;
use governor::{Quota as GovernorQuota, RateLimiter};
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
    group.bench_function("governor", |b| {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(governor_quota(), clock.clone());
        b.iter(|| {
            clock.advance(Duration::from_nanos(INTERVAL_NS));
            black_box(limiter.check())
        })
    });
    // The refusal path: an exhausted bucket on a frozen clock.
    group.bench_function("pacer_refused", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(pacer_quota(), clock.now());
        while limiter
            .try_acquire(clock.now(), 1)
            .is_ok_and(|d| d.is_admitted())
        {}
        b.iter(|| black_box(limiter.try_acquire(clock.now(), black_box(1))))
    });
    group.bench_function("governor_refused", |b| {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(governor_quota(), clock.clone());
        while limiter.check().is_ok() {}
        b.iter(|| black_box(limiter.check()))
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

fn policy_calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    group.bench_function("reserve", |b| {
        let clock = FakeClock::new(0);
        let mut limiter = Limiter::new(pacer_quota(), clock.now());
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(limiter.reserve(clock.now(), black_box(1)))
        })
    });
    group.bench_function("jitter_adaptive", |b| {
        let mut rng = Rng::from_seed(1);
        let mut jitter = Jitter::new(Strategy::Adaptive, 3_000_000_000);
        b.iter(|| black_box(jitter.delay(&mut rng, black_box(1_000_000), black_box(500_000))))
    });
    group.bench_function("next_delay", |b| {
        let clock = FakeClock::new(0);
        let mut policy = policy();
        let memory = MemoryReading::new(1 << 30, 4 << 30);
        b.iter(|| {
            clock.advance(INTERVAL_NS);
            black_box(policy.next_delay(clock.now(), memory, 0, 1, black_box(0)))
        })
    });
    group.bench_function("policy_try_acquire", |b| {
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
