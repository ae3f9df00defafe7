//! Hostile and broken modules: each ends in a clear error within a bounded time, and the host
//! keeps serving decisions afterwards.

use std::time::{Duration, Instant};

use pacer::Decision;
use pacer_host::{HostError, Policy, Runtime, ScriptedEnvironment};

mod common;

use common::{module_path, real_module, runtime};

/// Generous: a hung call would take forever; a correct one ends after the 100 ms deadline.
const BOUND: Duration = Duration::from_secs(10);

/// A minimal ABI v1 module in WAT. Its state is one counter (tokens taken), which its
/// snapshots save; `try_acquire` with cost 99 traps. `edit` rewrites parts of the text.
fn stub(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    let wat = r#"(module
  (memory (export "memory") 1)
  (global $taken (mut i64) (i64.const 0))
  (func (export "pacer_abi_version") (result i32) (i32.const 1))
  (func (export "pacer_features") (result i32) (i32.const 0))
  (func (export "pacer_alloc") (param i32) (result i32) (i32.const 2048))
  (func (export "pacer_dealloc") (param i32 i32))
  (func (export "pacer_configure") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pacer_last_error_ptr") (result i32) (i32.const 0))
  (func (export "pacer_last_error_len") (result i32) (i32.const 0))
  (func (export "pacer_try_acquire") (param i32 i32) (result i64)
    (if (i32.eq (local.get 1) (i32.const 99)) (then unreachable))
    (global.set $taken (i64.add (global.get $taken) (i64.extend_i32_u (local.get 1))))
    (i64.const 0))
  (func (export "pacer_reserve") (param i32 i32) (result i64) (i64.const 0))
  (func (export "pacer_available_milli") (param i32) (result i64) (global.get $taken))
  (func (export "pacer_on_response") (param i32 i32 i64) (result i32) (i32.const 0))
  (func (export "pacer_next_delay_ns") (param i32 i32 i64) (result i64) (i64.const 0))
  (func (export "pacer_retry_in_ns") (param i32) (result i64) (i64.const 0))
  (func (export "pacer_jitter_ns") (param i64 i32) (result i64) (local.get 0))
  (func (export "pacer_pressure") (result i32) (i32.const 0))
  (func (export "pacer_should_throttle") (result i32) (i32.const 0))
  (func (export "pacer_pool_target") (param i32) (result i32) (local.get 0))
  (func (export "pacer_state_export") (result i32)
    (i64.store (i32.const 1024) (global.get $taken)) (i32.const 8))
  (func (export "pacer_state_ptr") (result i32) (i32.const 1024))
  (func (export "pacer_state_import") (param i32 i32) (result i32)
    (global.set $taken (i64.load (local.get 0))) (i32.const 0))
)"#;
    wat::parse_str(edit(wat.to_string())).expect("valid WAT")
}

const CONFIG: &str = r#"{"limiters":[{"name":"a","tokens_per_hour":3600}]}"#;

/// A working policy on the same runtime still decides.
fn still_serving(runtime: &Runtime) {
    let mut policy =
        Policy::new(&real_module(runtime), Box::new(ScriptedEnvironment::new())).expect("instance");
    policy.configure(CONFIG).expect("configure");
    assert_eq!(policy.try_acquire(0, 1).expect("decision"), Decision::Admit);
}

fn load_error(runtime: &Runtime, bytes: &[u8]) -> String {
    let started = Instant::now();
    let error = runtime
        .load(bytes)
        .err()
        .expect("the module must be refused");
    assert!(started.elapsed() < BOUND);
    error.to_string()
}

fn running(runtime: &Runtime, bytes: &[u8]) -> Policy {
    let module = runtime.load(bytes).expect("the module loads");
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    policy.configure(CONFIG).expect("configure");
    policy
}

#[test]
fn an_infinite_loop_is_interrupted_at_the_deadline() {
    let runtime = runtime();
    let mut policy = running(
        &runtime,
        &stub(|w| {
            w.replace(
                "(if (i32.eq (local.get 1) (i32.const 99)) (then unreachable))",
                "(loop (br 0))",
            )
        }),
    );
    let started = Instant::now();
    let error = policy.try_acquire(0, 1).expect_err("interrupted");
    assert!(started.elapsed() < BOUND);
    assert!(
        matches!(
            error,
            HostError::Trapped {
                call: "pacer_try_acquire",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("no answer within 100ms"),
        "{error}"
    );
    // The instance was replaced: other exports answer.
    assert_eq!(policy.pool_target(20).expect("serves"), 20);
    still_serving(&runtime);
}

#[test]
fn a_memory_grow_bomb_stays_within_the_limit() {
    let runtime = runtime();
    let bomb = "(loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (if (i32.gt_u (memory.size) (i32.const 256)) (then unreachable))";
    let mut policy = running(
        &runtime,
        &stub(|w| {
            w.replace(
                "(if (i32.eq (local.get 1) (i32.const 99)) (then unreachable))",
                bomb,
            )
        }),
    );
    let started = Instant::now();
    // memory.grow fails at the 16 MiB cap (256 pages), so the bomb's own check never fires.
    assert_eq!(
        policy.try_acquire(0, 1).expect("grow failed gracefully"),
        Decision::Admit
    );
    assert!(started.elapsed() < BOUND);
    still_serving(&runtime);
}

#[test]
fn a_trapping_export_is_recovered_from_with_the_last_good_snapshot() {
    let runtime = runtime();
    let mut policy = running(&runtime, &stub(|w| w));
    assert_eq!(policy.try_acquire(0, 5).expect("taken"), Decision::Admit);
    policy
        .on_response(0, 200, None)
        .expect("feedback takes a snapshot");
    assert_eq!(
        policy.try_acquire(0, 2).expect("taken after the snapshot"),
        Decision::Admit
    );
    assert_eq!(policy.available_milli(0).expect("counter"), 7);
    let error = policy.try_acquire(0, 99).expect_err("traps");
    assert!(error.to_string().contains("unreachable"), "{error}");
    // A new instance, configured again and restored to the last snapshot (5, not 7).
    assert_eq!(policy.available_milli(0).expect("serves"), 5);
    assert_eq!(policy.try_acquire(0, 1).expect("serves"), Decision::Admit);
    still_serving(&runtime);
}

#[test]
fn a_wrong_abi_version_is_refused_at_load() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        &stub(|w| w.replace("(result i32) (i32.const 1))", "(result i32) (i32.const 2))")),
    );
    assert!(
        error.contains("pacer_abi_version() returned 2; this host speaks version 1"),
        "{error}"
    );
    still_serving(&runtime);
}

#[test]
fn a_missing_export_is_refused_at_load() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        &stub(|w| w.replace("(export \"pacer_next_delay_ns\")", "")),
    );
    assert!(
        error.contains("it does not export `pacer_next_delay_ns`"),
        "{error}"
    );
    let error = load_error(
        &runtime,
        &stub(|w| {
            w.replace(
                "(export \"pacer_reserve\") (param i32 i32)",
                "(export \"pacer_reserve\") (param i32)",
            )
        }),
    );
    assert!(
        error.contains(
            "export `pacer_reserve` has type (i32) -> (i64), expected (i32, i32) -> (i64)"
        ),
        "{error}"
    );
    still_serving(&runtime);
}

#[test]
fn an_import_the_host_does_not_provide_is_refused_at_load() {
    let runtime = runtime();
    let error = load_error(
        &runtime,
        &stub(|w| w.replace("(module", "(module (import \"env\" \"abort\" (func))")),
    );
    assert!(
        error.contains("it imports `env.abort`, which the host does not provide"),
        "{error}"
    );
    let error = load_error(
        &runtime,
        &stub(|w| {
            w.replace(
                "(module",
                "(module (import \"pacer\" \"now_ns\" (func (result i32)))",
            )
        }),
    );
    assert!(
        error.contains("import `pacer.now_ns` has type () -> (i32)"),
        "{error}"
    );
    still_serving(&runtime);
}

#[test]
fn bytes_that_are_not_a_module_are_refused_at_load() {
    let runtime = runtime();
    assert!(load_error(&runtime, b"{\"limiters\":[]}").contains("not a WebAssembly module"));
    assert!(load_error(&runtime, b"\0asm\x01\0\0\0\xff\xff").contains("not a WebAssembly module"));
    still_serving(&runtime);
}

#[test]
fn a_reload_carries_state_and_a_bad_module_leaves_the_old_one_in_service() {
    let runtime = runtime();
    let module = real_module(&runtime);
    let environment = ScriptedEnvironment::new();
    let mut policy = Policy::new(&module, Box::new(environment.clone())).expect("instance");
    policy
        .configure(r#"{"seed":1,"limiters":[{"name":"a","tokens_per_hour":3600,"burst":10}]}"#)
        .expect("configure");
    policy.reserve(0, 4).expect("reserve");
    assert_eq!(policy.available_milli(0).expect("milli"), 1000);
    // Same ABI, freshly compiled: state crosses over.
    let bytes = std::fs::read(module_path()).expect("read");
    let again = runtime.load(&bytes).expect("load");
    policy.reload(&again).expect("reload");
    assert_eq!(policy.available_milli(0).expect("milli"), 1000);
    // A module that cannot take the config stays out; the old one keeps serving, clock and all.
    let refuses = runtime.load(&stub(|w| w.replace("(param i32 i32) (result i32) (i32.const 0))\n  (func (export \"pacer_last_error_ptr\")", "(param i32 i32) (result i32) (i32.const -2))\n  (func (export \"pacer_last_error_ptr\")"))).expect("loads");
    assert!(policy.reload(&refuses).is_err());
    environment.update(|s| s.now_ns = 1_000_000_000);
    assert_eq!(policy.available_milli(0).expect("old module serves"), 2000);
}
