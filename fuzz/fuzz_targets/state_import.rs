//! `state_import`: `pacer::Policy::import_state` (what `pacer_state_import` runs) on arbitrary
//! snapshots, into a policy put in an arbitrary state first.
//!
//! The input: a config choice, a few operations to move the state, a clock reading, a flag
//! to fix the snapshot's CRC (so mutations get past the checksum into the fields), then the
//! snapshot's bytes.
//!
//! Invariants: no panic; a refused snapshot changes nothing (the export before equals the
//! export after); an accepted one leaves a policy that still decides, and its export is a
//! fixed point (importing it again is accepted and exports the same bytes).
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pacer::{Announced, Config, MemoryReading, Policy};

/// Configs of one, two and three limiters: fixed and adaptive, tiny and huge rates.
const CONFIGS: [&str; 4] = [
    r#"{"seed":1,"limiters":[{"name":"a","tokens_per_hour":3600,"burst":5}]}"#,
    r#"{"seed":2,"limiters":[{"name":"a","tokens_per_hour":0.0001,"burst":1,"initial":0},
        {"name":"b","tokens_per_hour":3.6e12,"burst":1000000}],"jitter":{"strategy":"decorrelated","max_ms":1000}}"#,
    r#"{"seed":3,"limiters":[{"name":"x","tokens_per_hour":60,"adaptive":{"min_tokens_per_hour":1,"max_tokens_per_hour":600,"on_503":true}}],
        "backoff":{"base_ms":1,"max_ms":10,"failure_threshold":1,"open_ms":5}}"#,
    r#"{"limiters":[{"name":"p","tokens_per_hour":100},{"name":"q","tokens_per_hour":200},{"name":"r","tokens_per_hour":300,"burst":2}],
        "pressure":{"medium":0.1,"high":0.2,"hysteresis":0.01,"high_delay_ms":100}}"#,
];

/// One step that moves a policy's state (any error is fine: only panics matter here).
fn step(u: &mut Unstructured, policy: &mut Policy, now: &mut u64) -> Result<()> {
    let limiters = policy.config().limiters.len();
    let limiter = usize::from(u.arbitrary::<u8>()?) % (limiters + 1);
    match u.int_in_range(0..=8)? {
        0 => *now = now.saturating_add(u.arbitrary::<u32>()?.into()),
        1 => *now = u.arbitrary()?,
        2 => drop(policy.reserve(*now, limiter, u.int_in_range(1..=3)?)),
        3 => drop(policy.on_response(*now, limiter, u.arbitrary::<u16>()? % 1000, u.arbitrary()?)),
        4 => drop(policy.pause(*now, limiter, u.arbitrary()?)),
        5 => drop(policy.set_rate(*now, limiter, u.arbitrary()?)),
        6 => {
            let announced = Announced {
                limit: u.arbitrary()?,
                remaining: u.arbitrary()?,
                reset: u.arbitrary()?,
                in_flight: u.arbitrary()?,
            };
            drop(policy.announce(*now, limiter, announced));
        }
        7 => {
            let memory = MemoryReading::from_abi(u.arbitrary()?, u.arbitrary()?);
            drop(policy.next_delay(*now, memory, limiter, 1, u.arbitrary::<u32>()?.into()));
        }
        _ => drop(policy.try_acquire(*now, limiter, u.int_in_range(1..=3)?)),
    }
    Ok(())
}

fn run(u: &mut Unstructured) -> Result<()> {
    let json = CONFIGS[usize::from(u.arbitrary::<u8>()?) % CONFIGS.len()];
    let config = Config::from_json(json).expect("the target's configs are valid");
    let mut policy = Policy::with_entropy(config, || Ok([9; 32])).expect("a policy");
    let mut now: u64 = u.arbitrary()?;
    for _ in 0..u.int_in_range(0..=6)? {
        step(u, &mut policy, &mut now)?;
    }
    let at: u64 = if u.arbitrary()? { now } else { u.arbitrary()? };
    let fix_crc: bool = u.arbitrary()?;
    let mut snapshot = u.bytes(u.len())?.to_vec();
    if fix_crc && snapshot.len() >= 4 {
        let body = snapshot.len() - 4;
        let crc = pacer::snapshot::crc32(&snapshot[..body]);
        snapshot[body..].copy_from_slice(&crc.to_le_bytes());
    }

    let before = policy.export_state(at);
    match policy.import_state(at, &snapshot) {
        Err(error) => {
            assert!(!error.to_string().is_empty());
            assert_eq!(
                policy.export_state(at),
                before,
                "a refused import changed the state"
            );
        }
        Ok(()) => {
            let first = policy.export_state(at);
            policy
                .import_state(at, &first)
                .expect("the policy's own export is accepted back");
            assert_eq!(
                policy.export_state(at),
                first,
                "export -> import -> export differs"
            );
            // Still decides, on every limiter.
            let limiters = policy.config().limiters.len();
            for limiter in 0..limiters {
                let _ = policy.try_acquire(at, limiter, 1);
                let memory = MemoryReading::new(1, 2);
                let _ = policy.next_delay(at, memory, limiter, 1, 1_000_000);
                let _ = policy.retry_in(at, limiter);
                let _ = policy.on_response(at, limiter, 503, Some(1));
                let _ = policy.available_milli(at.saturating_add(1), limiter);
            }
            let _ = policy.export_state(at.saturating_add(1));
        }
    }
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let _ = run(&mut Unstructured::new(bytes));
});
