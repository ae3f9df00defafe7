//! `pacer check` on hostile modules, as a user would run it: each ends with exit code 1 and a
//! message naming what went wrong (never a crash: the bounded recovery replaced a stack
//! overflow, exit 134), within a time bound, with the child's peak RSS under a bound.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest `pacer check` may take to refuse a hostile module (the goal: 5 s; the rest is
/// process start and the sample on a loaded machine).
const REFUSAL_BOUND: Duration = Duration::from_secs(10);
/// The children's peak resident memory (the goal).
const RSS_BOUND_MIB: i64 = 256;

/// Every required export, well behaved; `hooked` runs `hostile` first, `extra` adds fields.
fn module(hooked: &str, hostile: &str, extra: &str) -> Vec<u8> {
    let exports = [
        ("pacer_abi_version", "(result i32)", "(i32.const 1)"),
        ("pacer_features", "(result i32)", "(i32.const 0)"),
        (
            "pacer_alloc",
            "(param i32) (result i32)",
            "(i32.const 2048)",
        ),
        ("pacer_dealloc", "(param i32 i32)", ""),
        (
            "pacer_configure",
            "(param i32 i32) (result i32)",
            "(i32.const 0)",
        ),
        ("pacer_last_error_ptr", "(result i32)", "(i32.const 0)"),
        ("pacer_last_error_len", "(result i32)", "(i32.const 0)"),
        (
            "pacer_try_acquire",
            "(param i32 i32) (result i64)",
            "(i64.const 0)",
        ),
        (
            "pacer_reserve",
            "(param i32 i32) (result i64)",
            "(i64.const 0)",
        ),
        (
            "pacer_available_milli",
            "(param i32) (result i64)",
            "(i64.const 1000)",
        ),
        (
            "pacer_on_response",
            "(param i32 i32 i64) (result i32)",
            "(i32.const 0)",
        ),
        (
            "pacer_next_delay_ns",
            "(param i32 i32 i64) (result i64)",
            "(i64.const 0)",
        ),
        (
            "pacer_retry_in_ns",
            "(param i32) (result i64)",
            "(i64.const 0)",
        ),
        (
            "pacer_jitter_ns",
            "(param i64 i32) (result i64)",
            "(local.get 0)",
        ),
        ("pacer_pressure", "(result i32)", "(i32.const 0)"),
        ("pacer_should_throttle", "(result i32)", "(i32.const 0)"),
        (
            "pacer_pool_target",
            "(param i32) (result i32)",
            "(local.get 0)",
        ),
        ("pacer_state_export", "(result i32)", "(i32.const 8)"),
        ("pacer_state_ptr", "(result i32)", "(i32.const 1024)"),
        (
            "pacer_state_import",
            "(param i32 i32) (result i32)",
            "(i32.const 0)",
        ),
    ];
    let mut wat = String::from(
        "(module\n  (import \"pacer\" \"random_fill\" (func $random_fill (param i32 i32)))\n  (memory (export \"memory\") 1)\n",
    );
    wat.push_str(extra);
    for (name, signature, body) in exports {
        let hook = if name == hooked { hostile } else { "" };
        wat.push_str(&format!(
            "  (func (export \"{name}\") {signature} {hook} {body})\n"
        ));
    }
    wat.push(')');
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("WAT: {e}\n{wat}"))
}

/// Runs `pacer check` on `bytes`: (exit code, stderr, time taken).
fn check(name: &str, bytes: &[u8]) -> (Option<i32>, String, Duration) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("check-hostile");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{}.wasm", name.replace(' ', "_")));
    std::fs::write(&path, bytes).expect("write module");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .arg("check")
        .arg(&path)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs");
    let status = loop {
        if let Some(status) = child.try_wait().expect("status") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("pacer check {name} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    (status.code(), stderr, took)
}

/// The peak RSS of every child waited for so far, in MiB.
fn children_peak_mib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(ok, 0, "getrusage");
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    usage.ru_maxrss / 1024
}

#[test]
fn pacer_check_refuses_hostile_modules_with_a_named_error_never_a_crash() {
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "state_export always traps",
            module("pacer_state_export", "unreachable", ""),
            "pacer_state_export failed (wasm trap: wasm `unreachable` instruction executed) right after pacer_configure",
        ),
        (
            "state_import always traps",
            module("pacer_state_import", "unreachable", ""),
            "pacer_state_import failed (wasm trap: wasm `unreachable` instruction executed) right after pacer_configure",
        ),
        (
            "configure asks random_fill for 2 GiB",
            module(
                "pacer_configure",
                "(call $random_fill (i32.const 0) (i32.const 0x7fff0000))",
                "",
            ),
            "random_fill(0, 2147418112): 2147418112 bytes asked for; at most 65536 in one call",
        ),
        (
            "configure traps",
            module("pacer_configure", "unreachable", ""),
            "failed in pacer_configure (wasm trap: wasm `unreachable` instruction executed)",
        ),
        (
            "a decision loops",
            module("pacer_try_acquire", "(loop (br 0))", ""),
            "failed in pacer_try_acquire (no answer within 100ms)",
        ),
        (
            "the start function loops",
            module("", "", "(func $start (loop (br 0))) (start $start)"),
            "start function): no answer within 100ms",
        ),
    ];
    for (name, bytes, says) in &cases {
        let (code, stderr, took) = check(name, bytes);
        assert_eq!(code, Some(1), "{name}: exit {code:?}, stderr {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(took < REFUSAL_BOUND, "{name}: took {took:?}");
        eprintln!("{name}: refused in {took:?}");
    }
    let peak = children_peak_mib();
    eprintln!("children's peak RSS {peak} MiB");
    assert!(peak <= RSS_BOUND_MIB, "a child peaked at {peak} MiB");
    // The same path accepts a module that keeps the contract, so the refusals above mean
    // something.
    let (code, stderr, _) = check("well behaved", &module("", "", ""));
    assert_eq!(code, Some(0), "{stderr}");
}
