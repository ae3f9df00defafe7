//! The combined decision, reconfiguration, and state snapshots.

mod common;

use pacer::Strategy as Jitter;
use pacer::{Config, Decision, Error, Level, LimiterConfig, MemoryReading, Policy, Schedule};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
const T0: u64 = 1_000 * SECOND;

fn config(seed: u64) -> Config {
    let mut catalog = LimiterConfig::new("catalog", 90.0);
    catalog.burst = Some(3);
    let mut config = Config::new(vec![catalog, LimiterConfig::new("fast", 36_000.0)]);
    config.seed = Some(seed);
    config
}

fn memory(ratio: f64) -> MemoryReading {
    MemoryReading::new((ratio * 1000.0) as u64, 1000)
}

#[test]
fn next_delay_is_the_reservation_wait_plus_jitter_plus_pressure_delay() {
    let mut config = config(3);
    config.jitter.strategy = Jitter::None;
    let mut policy = Policy::new(config).expect("valid");
    let go = |delay| Schedule::Act { delay };
    // 1.5 tokens: the first goes now, the second after 20 s, the third 40 s later.
    assert_eq!(policy.next_delay(T0, memory(0.1), 0, 1, 0), Ok(go(0)));
    assert_eq!(
        policy.next_delay(T0, memory(0.1), 0, 1, 0),
        Ok(go(20 * SECOND))
    );
    // A backlog absorbs the extra delay: the reservation is placed 250 ms (then 1 s) later,
    // but it matures where the bucket puts it anyway.
    assert_eq!(
        policy.next_delay(T0, memory(0.1), 0, 1, 250 * MS),
        Ok(go(60 * SECOND))
    );
    assert_eq!(
        policy.next_delay(T0, memory(0.9), 0, 1, 0),
        Ok(go(100 * SECOND))
    );
    assert_eq!(policy.pressure().level(), Level::High);
    // With the bucket full again, the extra delay is the whole wait: base 250 ms + 1 s High.
    let later = T0 + 3_600 * SECOND;
    assert_eq!(
        policy.next_delay(later, memory(0.9), 0, 1, 250 * MS),
        Ok(go(1_250 * MS))
    );
    // Burst 3: a caller without extra delay still finds tokens and goes first (extra delay
    // may reorder next_delay callers; it never bunches them).
    assert_eq!(policy.next_delay(later, memory(0.1), 0, 1, 0), Ok(go(0)));
}

#[test]
fn adaptive_jitter_grows_with_utilization_and_is_capped_at_one_interval() {
    // "fast": 10 per second (interval 100 ms), burst 600, starting full.
    let mut full = config(5);
    full.limiters[1].initial = 1.0;
    let mut policy = Policy::new(full).expect("valid");
    let first = policy.next_delay(T0, memory(0.1), 1, 1, 0);
    // One token in use of 600: the spread is below 100 ms / 600.
    assert!(matches!(first, Ok(Schedule::Act { delay }) if delay <= 100 * MS / 600));
    // "one": one a second, burst 1, full. Each reservation uses the whole burst, so the
    // spread is U[0, min(3 s, 1 s)): one interval, not jitter.max_ms.
    let mut with_one = config(6);
    let mut one = LimiterConfig::new("one", 3_600.0);
    one.initial = 1.0;
    one.burst = Some(1);
    with_one.limiters.push(one);
    let mut policy = Policy::new(with_one).expect("valid");
    let spread: Vec<u64> = (0..400)
        .map(
            |i| match policy.next_delay(T0 + i * 10 * SECOND, memory(0.1), 2, 1, 0) {
                Ok(Schedule::Act { delay }) => delay,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert!(spread.iter().all(|&s| s < SECOND), "{spread:?}");
    let mean = spread.iter().sum::<u64>() / 400;
    assert!(
        mean > 400 * MS && mean < 600 * MS,
        "mean spread {mean} should be near 0.5 s"
    );
}

#[test]
fn errors_change_nothing_and_follow_the_contract_order() {
    let mut policy = Policy::new(config(1)).expect("valid");
    assert!(matches!(
        policy.try_acquire(T0, 2, 0),
        Err(Error::UnknownLimiter { index: 2, count: 2 })
    ));
    assert!(matches!(
        policy.try_acquire(T0, 0, 0),
        Err(Error::BadArgument { name: "cost", .. })
    ));
    assert!(matches!(
        policy.next_delay(T0, memory(0.9), 0, 4, 0),
        Err(Error::CostExceedsBurst { .. })
    ));
    assert_eq!(
        policy.pressure().level(),
        Level::Low,
        "a failed call reads nothing"
    );
    assert!(policy.bucket(0).is_none(), "a failed call touches nothing");
}

#[test]
fn reconfigure_keeps_the_state_of_unchanged_limiters() {
    let mut policy = Policy::new(config(1)).expect("valid");
    let _ = policy.reserve(T0, 0, 3);
    let _ = policy.reserve(T0, 1, 300);
    policy
        .on_response(T0, 0, 503, Some(200 * SECOND))
        .expect("valid");
    let mut next = config(1);
    next.limiters[1].tokens_per_hour = 72_000.0;
    next.limiters[0].initial = 1.0; // only applies to untouched buckets
    policy.reconfigure(next).expect("valid");
    assert_eq!(
        policy.try_acquire(T0, 0, 1),
        Ok(Decision::Wait(200 * SECOND)),
        "pause kept"
    );
    assert_eq!(policy.breaker(0).map(|b| b.failures()), Some(1));
    assert!(
        policy.bucket(1).is_none(),
        "the changed limiter starts afresh"
    );
    // A bad config changes nothing.
    let mut bad = config(1);
    bad.limiters[0].tokens_per_hour = 0.0;
    assert!(policy.reconfigure(bad).is_err());
    assert_eq!(policy.config().limiters[1].tokens_per_hour, 72_000.0);
}

#[test]
fn time_never_goes_back_inside() {
    let mut policy = Policy::new(config(1)).expect("valid");
    assert_eq!(policy.try_acquire(T0, 0, 1), Ok(Decision::Admit));
    assert_eq!(
        policy.try_acquire(T0 + 20 * SECOND, 0, 1),
        Ok(Decision::Admit)
    );
    assert_eq!(
        policy.try_acquire(T0, 0, 1),
        Ok(Decision::Wait(40 * SECOND)),
        "read as T0 + 20 s"
    );
}

#[test]
fn snapshots_refuse_every_alteration_and_change_nothing() {
    let mut policy = Policy::new(config(9)).expect("valid");
    let _ = policy.reserve(T0, 0, 2);
    policy.on_response(T0, 1, 429, None).expect("valid");
    let snapshot = policy.export_state(T0);
    let mut fresh = Policy::new(config(9)).expect("valid");
    let untouched = fresh.export_state(T0);
    for i in 0..snapshot.len() {
        for bit in [0x01, 0x80] {
            let mut altered = snapshot.clone();
            altered[i] ^= bit;
            assert!(
                matches!(fresh.import_state(T0, &altered), Err(Error::BadSnapshot(_))),
                "byte {i}"
            );
        }
    }
    for len in 0..snapshot.len() {
        assert!(
            fresh.import_state(T0, &snapshot[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Another version, with a valid checksum.
    let mut other_version = snapshot[..snapshot.len() - 4].to_vec();
    other_version[4] = 3;
    let checksum = pacer::snapshot::crc32(&other_version);
    other_version.extend_from_slice(&checksum.to_le_bytes());
    assert_eq!(
        fresh.import_state(T0, &other_version),
        Err(Error::BadSnapshot("unsupported version"))
    );
    // Other limiters.
    let mut other = config(9);
    other.limiters[0].burst = Some(4);
    let mut other = Policy::new(other).expect("valid");
    assert_eq!(
        other.import_state(T0, &snapshot),
        Err(Error::BadSnapshot("taken with other limiters"))
    );
    assert_eq!(fresh.export_state(T0), untouched, "nothing changed");
    assert_eq!(fresh.import_state(T0, &snapshot), Ok(()));
}

#[test]
fn the_snapshot_checksum_is_standard_crc32() {
    assert_eq!(pacer::snapshot::crc32(b"123456789"), 0xCBF4_3926);
    let snapshot = Policy::new(config(4)).expect("valid").export_state(T0);
    // Every length: the four-byte steps and each remainder after them.
    for len in 0..=snapshot.len() {
        assert_eq!(
            pacer::snapshot::crc32(&snapshot[..len]),
            crc32fast::hash(&snapshot[..len])
        );
    }
}

/// One call on the policy, with arguments drawn by proptest.
#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    TryAcquire(usize, u32),
    Reserve(usize, u32),
    Respond(usize, u16, Option<u64>),
    NextDelay(usize, u32, u64, u8),
    Jitter(u64, u32),
    Available(usize),
    RetryIn(usize),
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..120_000).prop_map(|ms| Op::Advance(ms * MS)),
        (0usize..2, 1u32..4).prop_map(|(l, c)| Op::TryAcquire(l, c)),
        (0usize..2, 1u32..4).prop_map(|(l, c)| Op::Reserve(l, c)),
        (
            0usize..2,
            prop::sample::select(vec![0u16, 200, 404, 429, 503]),
            prop::option::of(0u64..90)
        )
            .prop_map(|(l, s, r)| Op::Respond(l, s, r.map(|s| s * SECOND))),
        (0usize..2, 1u32..4, 0u64..5_000, 0u8..10).prop_map(|(l, c, b, m)| Op::NextDelay(
            l,
            c,
            b * MS,
            m
        )),
        (0u64..5_000, 0u32..=1_000_000).prop_map(|(b, u)| Op::Jitter(b * MS, u)),
        (0usize..2).prop_map(Op::Available),
        (0usize..2).prop_map(Op::RetryIn),
    ]
}

/// Runs `ops` from `start`; returns every result as text, and the final time.
fn run(policy: &mut Policy, start: u64, ops: &[Op]) -> (Vec<String>, u64) {
    let mut now = start;
    let results = ops
        .iter()
        .map(|op| match *op {
            Op::Advance(ns) => {
                now += ns;
                String::new()
            }
            Op::TryAcquire(l, c) => format!("{:?}", policy.try_acquire(now, l, c)),
            Op::Reserve(l, c) => format!("{:?}", policy.reserve(now, l, c)),
            Op::Respond(l, s, r) => format!("{:?}", policy.on_response(now, l, s, r)),
            Op::NextDelay(l, c, b, m) => {
                format!(
                    "{:?}",
                    policy.next_delay(now, memory(f64::from(m) / 10.0), l, c, b)
                )
            }
            Op::Jitter(b, u) => format!("{:?}", policy.jitter(b, u)),
            Op::Available(l) => format!("{:?}", policy.available_milli(now, l)),
            Op::RetryIn(l) => format!("{:?}", policy.retry_in(now, l)),
        })
        .collect();
    (results, now)
}

proptest! {
    #![proptest_config(common::floors::cases(256))]

    #[test]
    fn a_snapshot_round_trip_gives_identical_later_decisions(
        strategy in prop::sample::select(Jitter::ALL.to_vec()),
        before in prop::collection::vec(any_op(), 0..60),
        after in prop::collection::vec(any_op(), 1..60),
        elsewhere in 0u64..1 << 50,
    ) {
        let mut config = config(11);
        config.jitter.strategy = strategy;
        config.backoff.failure_threshold = 2;
        let mut exporter = Policy::new(config.clone()).expect("valid");
        let (_, export_at) = run(&mut exporter, T0, &before);
        let snapshot = exporter.export_state(export_at);
        // The importer has another seed and another clock: only the snapshot carries state.
        config.seed = Some(12);
        let mut importer = Policy::new(config).expect("valid");
        importer.import_state(elsewhere, &snapshot).expect("valid snapshot");
        let (expected, _) = run(&mut exporter, export_at, &after);
        let (actual, _) = run(&mut importer, elsewhere, &after);
        prop_assert_eq!(actual, expected);
    }
}

/// Found by the property test above: the open circuit's hold was re-applied by a response
/// after its open period had passed, and a snapshot (which keeps past times as 0) re-based it
/// 1 ms later, so the restored policy decided differently.
#[test]
fn a_snapshot_taken_just_after_the_circuit_reopens_decides_as_the_original() {
    let mut config = config(11);
    config.backoff.failure_threshold = 2;
    let before = [
        Op::Respond(1, 429, None),
        Op::Advance(860_000_000),
        Op::Respond(1, 429, None),
        Op::Advance(30_001_000_000),
    ];
    let after = [Op::Respond(1, 404, None), Op::TryAcquire(1, 2)];
    let mut exporter = Policy::new(config.clone()).expect("valid");
    let (_, export_at) = run(&mut exporter, T0, &before);
    let snapshot = exporter.export_state(export_at);
    config.seed = Some(12);
    let mut importer = Policy::new(config).expect("valid");
    importer.import_state(0, &snapshot).expect("valid snapshot");
    let (expected, _) = run(&mut exporter, export_at, &after);
    let (actual, _) = run(&mut importer, 0, &after);
    assert_eq!(actual, expected);
}

#[test]
fn an_embedder_finds_a_limiter_by_name() {
    let mut config = Config::new(vec![
        LimiterConfig::new("catalog", 90.0),
        LimiterConfig::new("search", 3600.0),
    ]);
    config.seed = Some(1);
    let policy = Policy::new(config).expect("valid config");
    assert_eq!(policy.limiter_index("catalog"), Some(0));
    assert_eq!(policy.limiter_index("search"), Some(1));
    assert_eq!(policy.limiter_index("Search"), None, "names are exact");
    assert_eq!(policy.limiter_index(""), None);
}
