//! A hostile corpus written from ABI.md's contract: every export trapping, looping and
//! recursing; every import called with hostile arguments; memory and tables beyond the caps;
//! start functions that loop or trap; modules too big or too complex to compile; the compile
//! cache fed stale, foreign and corrupt artifacts; and traps in a row. Each module must end in
//! an error naming what went wrong, within [`REFUSAL_BOUND`], with the host's peak RSS under
//! [`RSS_BOUND_MIB`].

use std::path::Path;
use std::time::{Duration, Instant};

use pacer::Decision;
use pacer_host::{HostError, Policy, Runtime, SandboxOptions, ScriptedEnvironment};

mod common;

/// The longest one hostile module may take, from load to its last refused call (the goal).
const REFUSAL_BOUND: Duration = Duration::from_secs(5);
/// The host's peak resident memory while checking any of them (the goal).
const RSS_BOUND_MIB: u64 = 256;
/// How much resident memory 10,000 traps in a row may add (a leak would be MiBs).
const TRAP_LEAK_BOUND_MIB: u64 = 16;

const CONFIG: &str = r#"{"limiters":[{"name":"a","tokens_per_hour":3600}]}"#;

/// Every required export, with its signature and a well-behaved body, in ABI.md's order.
/// `;;HOOK` marks where a case puts its hostile code (run before the body).
const EXPORTS: &[(&str, &str, &str)] = &[
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
        "(global.set $taken (i64.add (global.get $taken) (i64.extend_i32_u (local.get 1)))) (i64.const 0)",
    ),
    (
        "pacer_reserve",
        "(param i32 i32) (result i64)",
        "(i64.const 0)",
    ),
    (
        "pacer_available_milli",
        "(param i32) (result i64)",
        "(global.get $taken)",
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
    (
        "pacer_state_export",
        "(result i32)",
        "(i64.store (i32.const 1024) (global.get $taken)) (i32.const 8)",
    ),
    ("pacer_state_ptr", "(result i32)", "(i32.const 1024)"),
    (
        "pacer_state_import",
        "(param i32 i32) (result i32)",
        "(global.set $taken (i64.load (local.get 0))) (i32.const 0)",
    ),
];

/// A minimal ABI v1 module whose export `hooked` runs `hostile` first; `extra` adds module
/// fields (a start function, more memory, ...). Its state is one counter, which its
/// snapshots carry.
fn module(hooked: &str, hostile: &str, extra: &str) -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
  (import "pacer" "now_ns" (func $now_ns (result i64)))
  (import "pacer" "random_fill" (func $random_fill (param i32 i32)))
  (import "pacer" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $taken (mut i64) (i64.const 0))
  (func $recurse (call $recurse))
"#,
    );
    wat.push_str(extra);
    for (name, signature, body) in EXPORTS {
        let hook = if *name == hooked { hostile } else { "" };
        wat.push_str(&format!(
            "  (func (export \"{name}\") {signature} {hook} {body})\n"
        ));
    }
    wat.push(')');
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("WAT for {hooked}: {e}\n{wat}"))
}

/// Bytes with a hand-written body: for modules whose shape, not code, is hostile.
fn raw(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|e| panic!("WAT: {e}\n{wat}"))
}

/// One hostile module and what its error must say (every fragment, case-sensitive).
struct Case {
    name: String,
    bytes: Vec<u8>,
    says: Vec<String>,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, says: &[&str]) -> Case {
    Case {
        name: name.into(),
        bytes,
        says: says.iter().map(|s| s.to_string()).collect(),
    }
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    // Each export trapping, looping and recursing.
    for (export, _, _) in EXPORTS {
        for (how, code, says) in [
            ("traps", "unreachable", "unreachable"),
            ("loops", "(loop (br 0))", "no answer within"),
            ("recurses", "(call $recurse)", "call stack exhausted"),
        ] {
            cases.push(case(
                format!("{export} {how}"),
                module(export, code, ""),
                &[export, says],
            ));
        }
    }
    // Imports called with hostile arguments, from configure and from a decision.
    for (export, _, _) in [EXPORTS[4], EXPORTS[7]] {
        for (what, code, says) in [
            (
                "random_fill of 2 GiB",
                "(call $random_fill (i32.const 0) (i32.const 0x7fff0000))",
                "random_fill(0, 2147418112): 2147418112 bytes asked for; at most 65536",
            ),
            (
                "random_fill of a negative length",
                "(call $random_fill (i32.const 0) (i32.const -1))",
                "random_fill(0, -1): a negative length",
            ),
            (
                "random_fill at a negative pointer",
                "(call $random_fill (i32.const -16) (i32.const 32))",
                "random_fill(-16, 32): outside the module's memory",
            ),
            (
                "random_fill across the end of memory",
                "(call $random_fill (i32.const 65530) (i32.const 100))",
                "random_fill(65530, 100): outside the module's memory",
            ),
            (
                "log of 2 GiB",
                "(call $log (i32.const 0) (i32.const 0) (i32.const 0x7fff0000))",
                "log(0, 0, 2147418112): outside the module's memory",
            ),
            (
                "log of a negative length",
                "(call $log (i32.const 1) (i32.const 0) (i32.const -5))",
                "log(1, 0, -5): a negative length",
            ),
            (
                "log for ever",
                "(loop (call $log (i32.const 0) (i32.const 0) (i32.const 4096)) (br 0))",
                "no answer within",
            ),
            (
                "random_fill for ever",
                "(loop (call $random_fill (i32.const 0) (i32.const 65536)) (br 0))",
                "no answer within",
            ),
            (
                "now_ns for ever",
                "(loop (drop (call $now_ns)) (br 0))",
                "no answer within",
            ),
        ] {
            cases.push(case(
                format!("{export}: {what}"),
                module(export, code, ""),
                &[export, says],
            ));
        }
    }
    // Memory beyond the 16 MiB cap: declared, grown, and grown until refused then trapping.
    cases.push(case(
        "memory of 257 pages declared",
        raw_module_with("(memory (export \"memory\") 257)"),
        &["its memory starts at 257 pages (16842752 bytes); this host allows at most 16777216 bytes"],
    ));
    cases.push(case(
        "memory of 4 GiB declared",
        raw_module_with("(memory (export \"memory\") 65536)"),
        &["its memory starts at 65536 pages (4294967296 bytes)"],
    ));
    cases.push(case(
        "memory grown until refused, then trapping",
        module(
            "pacer_try_acquire",
            "(loop (br_if 0 (i32.ne (memory.grow (i32.const 64)) (i32.const -1)))) unreachable",
            "",
        ),
        &["pacer_try_acquire", "unreachable"],
    ));
    cases.push(case(
        "two memories",
        raw_module_with("(memory (export \"memory\") 1) (memory 1)"),
        &["declares 2 memories; this host allows at most 1"],
    ));
    cases.push(case(
        "a table of a million elements",
        module("", "", "(table 1000000 funcref)"),
        &["declares 1000000 table elements; this host allows at most 10000"],
    ));
    cases.push(case(
        "a table grown beyond the cap",
        module(
            "pacer_try_acquire",
            "(if (i32.eq (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1)) (then unreachable))",
            "(table $t 1 funcref)",
        ),
        &["pacer_try_acquire", "unreachable"],
    ));
    // Start functions.
    for (how, body, says) in [
        ("loops", "(loop (br 0))", "no answer within"),
        ("traps", "unreachable", "unreachable"),
        ("recurses", "(call $recurse)", "call stack exhausted"),
        (
            "calls random_fill with 2 GiB",
            "(call $random_fill (i32.const 0) (i32.const 0x7fff0000))",
            "bytes asked for",
        ),
    ] {
        cases.push(case(
            format!("a start function that {how}"),
            module("", "", &format!("(func $start {body}) (start $start)")),
            &["start function", says],
        ));
    }
    // Answers the host cannot use.
    cases.push(case(
        "a snapshot longer than memory",
        module("pacer_state_export", "(return (i32.const 0x7fffffff))", ""),
        &["pacer_state_ptr", "outside its memory"],
    ));
    cases.push(case(
        "an allocation outside memory",
        module("pacer_alloc", "(return (i32.const -8))", ""),
        &["pacer_alloc returned -8, outside its memory"],
    ));
    cases.push(case(
        "a module that refuses its own snapshot",
        module("pacer_state_import", "(return (i32.const -6))", ""),
        &["pacer_state_import", "policy error -6"],
    ));
    // Too big, or too complex to compile cheaply.
    cases.push(case(
        "a module over 1 MiB",
        module(
            "",
            "",
            &format!("(data (i32.const 0) \"{}\")", "a".repeat(1 << 20)),
        ),
        &["bytes; this host loads modules of at most 1048576 bytes"],
    ));
    cases.push(case(
        "a function with 6000 locals",
        module("", "", &format!("(func {})", "(local i64) ".repeat(6000))),
        &["declares 6000 locals in one function; this host allows at most 5000"],
    ));
    cases.push(case(
        "10,001 functions",
        module("", "", &"(func)".repeat(10_001)),
        &["functions; this host allows at most 10000"],
    ));
    cases.push(case(
        "a function body over 128 KiB",
        module(
            "",
            "",
            &format!("(func {})", "(drop (i64.const 1))".repeat(50_000)),
        ),
        &["a function body is", "this host allows at most 131072"],
    ));
    cases
}

/// A module of every required export (well behaved) with its memory declared by `memory`.
fn raw_module_with(memory: &str) -> Vec<u8> {
    let mut wat = format!("(module {memory} (global $taken (mut i64) (i64.const 0))\n");
    for (name, signature, body) in EXPORTS {
        wat.push_str(&format!(
            "  (func (export \"{name}\") {signature} {body})\n"
        ));
    }
    wat.push(')');
    raw(&wat)
}

/// Loads, configures and drives `bytes` through every call of the API; the first error, and
/// whether the policy kept answering afterwards.
fn drive(runtime: &Runtime, bytes: &[u8]) -> Option<String> {
    let module = match runtime.load(bytes) {
        Ok(module) => module,
        Err(error) => return Some(error.to_string()),
    };
    let mut policy = match Policy::new(&module, Box::new(ScriptedEnvironment::new())) {
        Ok(policy) => policy,
        Err(error) => return Some(error.to_string()),
    };
    if let Err(error) = policy.configure(CONFIG) {
        return Some(error.to_string());
    }
    let mut first = None;
    let mut note = |result: Result<(), HostError>| {
        if let Err(error) = result {
            first.get_or_insert(error.to_string());
        }
    };
    // Twice over: a trap recovered from, then the same calls on the new instance.
    for _ in 0..2 {
        note(policy.try_acquire(0, 1).map(drop));
        note(policy.reserve(0, 1).map(drop));
        note(policy.available_milli(0).map(drop));
        note(policy.next_delay(0, 1, Duration::from_millis(5)).map(drop));
        note(policy.retry_in(0).map(drop));
        note(policy.on_response(0, 200, None));
        note(policy.jitter(Duration::from_millis(5), 0).map(drop));
        note(policy.pressure().map(drop));
        note(policy.should_throttle().map(drop));
        note(policy.pool_target(8).map(drop));
        note(policy.last_error().map(drop));
        note(policy.snapshot().map(drop));
    }
    first
}

/// This process's `VmHWM` or `VmRSS`, in MiB.
fn status_mib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    kb / 1024
}

fn uncached() -> Runtime {
    Runtime::new(SandboxOptions::default()).expect("engine")
}

#[test]
fn every_hostile_module_ends_in_an_error_naming_what_went_wrong_within_bounds() {
    let runtime = uncached();
    let corpus = corpus();
    assert!(corpus.len() >= 25, "only {} modules", corpus.len());
    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for case in &corpus {
        let started = Instant::now();
        let outcome = drive(&runtime, &case.bytes);
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.name.clone());
        }
        match outcome {
            None => failures.push(format!("{}: accepted", case.name)),
            Some(error) => {
                if let Some(missing) = case.says.iter().find(|s| !error.contains(s.as_str())) {
                    failures.push(format!("{}: {error:?} does not say {missing:?}", case.name));
                }
                if error.contains('\n') {
                    failures.push(format!("{}: {error:?} is more than one line", case.name));
                }
            }
        }
        if took > REFUSAL_BOUND {
            failures.push(format!("{}: took {took:?}", case.name));
        }
    }
    let peak = status_mib("VmHWM");
    eprintln!(
        "{} hostile modules; slowest {:?} ({}); peak RSS {peak} MiB",
        corpus.len(),
        slowest.0,
        slowest.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(peak <= RSS_BOUND_MIB, "peak RSS {peak} MiB");
    // The runtime still serves a good module after all of that.
    let mut policy = Policy::new(
        &runtime
            .load(&module("", "", ""))
            .expect("a good module loads"),
        Box::new(ScriptedEnvironment::new()),
    )
    .expect("instance");
    policy.configure(CONFIG).expect("configure");
    assert_eq!(policy.try_acquire(0, 1).expect("decides"), Decision::Admit);
}

#[test]
fn a_module_whose_state_export_always_traps_is_refused_at_configure() {
    let runtime = uncached();
    let module = runtime
        .load(&module("pacer_state_export", "unreachable", ""))
        .expect("loads: nothing is wrong with its shape");
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    let started = Instant::now();
    let error = policy.configure(CONFIG).expect_err("refused");
    assert!(started.elapsed() < REFUSAL_BOUND);
    let text = error.to_string();
    assert!(
        text.contains("pacer_state_export failed (wasm trap: wasm `unreachable` instruction executed) right after pacer_configure"),
        "{text}"
    );
    // Nothing changed: the instance is back as it was, and serves.
    assert_eq!(policy.pool_target(8).expect("serves"), 8);
}

#[test]
fn a_trap_whose_restore_traps_breaks_the_policy_for_good_and_fast() {
    // state_import traps only once the counter is non-zero: configure's round trip passes,
    // the restore after a later trap does not.
    let runtime = uncached();
    let both = both_hooks();
    let module = runtime.load(&both).expect("loads");
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    policy
        .configure(CONFIG)
        .expect("configure: the empty state round-trips");
    assert_eq!(policy.try_acquire(0, 5).expect("taken"), Decision::Admit);
    policy.on_response(0, 200, None).expect("checkpoint of 5");
    let error = policy.try_acquire(0, 99).expect_err("traps");
    let text = error.to_string();
    assert!(
        matches!(
            error,
            HostError::Broken {
                call: "pacer_state_import",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("pacer_state_import failed (wasm trap: wasm `unreachable` instruction executed) while the host restored it after pacer_try_acquire failed"),
        "{text}"
    );
    // Every later call answers at once with the same error.
    let started = Instant::now();
    for _ in 0..1000 {
        let again = policy.pool_target(8).expect_err("broken");
        assert_eq!(again.to_string(), text);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// try_acquire(_, 99) traps; state_import traps on any non-zero counter.
fn both_hooks() -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
  (memory (export "memory") 1)
  (global $taken (mut i64) (i64.const 0))
"#,
    );
    for (name, signature, body) in EXPORTS {
        let hook = match *name {
            "pacer_try_acquire" => "(if (i32.eq (local.get 1) (i32.const 99)) (then unreachable))",
            "pacer_state_import" => {
                "(if (i64.ne (i64.load (local.get 0)) (i64.const 0)) (then unreachable))"
            }
            _ => "",
        };
        wat.push_str(&format!(
            "  (func (export \"{name}\") {signature} {hook} {body})\n"
        ));
    }
    wat.push(')');
    raw(&wat)
}

#[test]
fn ten_thousand_traps_in_a_row_leak_nothing() {
    let runtime = uncached();
    let module = runtime
        .load(&module(
            "pacer_try_acquire",
            "(if (i32.eq (local.get 1) (i32.const 99)) (then unreachable))",
            "",
        ))
        .expect("loads");
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    policy.configure(CONFIG).expect("configure");
    let mut trap = || {
        let error = policy.try_acquire(0, 99).expect_err("traps");
        assert!(matches!(error, HostError::Trapped { .. }), "{error}");
    };
    for _ in 0..1_000 {
        trap();
    }
    let warm = status_mib("VmRSS");
    let started = Instant::now();
    for _ in 0..10_000 {
        trap();
    }
    let after = status_mib("VmRSS");
    eprintln!(
        "10,000 traps in {:?}: RSS {warm} MiB after 1,000, {after} MiB after 11,000",
        started.elapsed()
    );
    assert!(
        after <= warm + TRAP_LEAK_BOUND_MIB,
        "RSS grew from {warm} to {after} MiB over 10,000 traps"
    );
    assert_eq!(policy.try_acquire(0, 1).expect("serves"), Decision::Admit);
}

#[test]
fn a_compile_past_its_deadline_is_refused() {
    let runtime = Runtime::new(SandboxOptions {
        compile_timeout: Duration::from_millis(1),
        ..SandboxOptions::default()
    })
    .expect("engine");
    let bytes = std::fs::read(common::module_path()).expect("dist/pacer.wasm");
    let started = Instant::now();
    let error = runtime.load(&bytes).err().expect("refused");
    assert!(started.elapsed() < REFUSAL_BOUND);
    assert!(
        error
            .to_string()
            .contains("compiling it took longer than 1ms (SandboxOptions::compile_timeout)"),
        "{error}"
    );
}

#[test]
fn the_module_size_cap_is_configurable() {
    let small = Runtime::new(SandboxOptions {
        max_module_bytes: 100,
        ..SandboxOptions::default()
    })
    .expect("engine");
    let bytes = module("", "", "");
    let error = small.load(&bytes).err().expect("refused");
    assert!(
        error.to_string().contains(&format!(
            "it is {} bytes; this host loads modules of at most 100 bytes",
            bytes.len()
        )),
        "{error}"
    );
    uncached().load(&bytes).expect("the default cap takes it");
}

mod cache {
    use super::*;

    fn cached(dir: &Path) -> Runtime {
        Runtime::new(SandboxOptions {
            cache_dir: Some(dir.to_path_buf()),
            ..SandboxOptions::default()
        })
        .expect("engine")
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn artifacts(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        found.sort();
        found
    }

    fn only_artifact(dir: &Path) -> std::path::PathBuf {
        let mut found = artifacts(dir);
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    /// A module whose pool target is `n`: distinct bytes, distinct artifacts.
    fn numbered(n: i32) -> Vec<u8> {
        module(
            "pacer_pool_target",
            &format!("(return (i32.const {n}))"),
            "",
        )
    }

    fn pool_target(runtime: &Runtime, bytes: &[u8]) -> (u32, bool) {
        let module = runtime.load(bytes).expect("loads");
        let from_cache = module.info.from_cache;
        let mut policy =
            Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
        (policy.pool_target(100).expect("answers"), from_cache)
    }

    #[test]
    fn a_second_load_comes_from_the_cache_and_the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("hit");
        let runtime = cached(&dir);
        assert_eq!(pool_target(&runtime, &numbered(1)), (1, false));
        assert_eq!(pool_target(&runtime, &numbered(1)), (1, true));
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        for artifact in artifacts(&dir) {
            let mode = std::fs::metadata(&artifact)
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn an_artifact_from_another_module_renamed_is_recompiled_not_run() {
        let dir = scratch("foreign");
        let runtime = cached(&dir);
        pool_target(&runtime, &numbered(1));
        let one = only_artifact(&dir);
        pool_target(&runtime, &numbered(2));
        let two = artifacts(&dir)
            .into_iter()
            .find(|p| *p != one)
            .expect("a second artifact");
        // Module 1's code under module 2's name: running it would answer 1.
        std::fs::copy(&one, &two).expect("swap");
        assert_eq!(pool_target(&runtime, &numbered(2)), (2, false));
        assert_eq!(pool_target(&runtime, &numbered(2)), (2, true), "rewritten");
    }

    #[test]
    fn a_corrupt_or_truncated_artifact_is_recompiled() {
        let dir = scratch("corrupt");
        let runtime = cached(&dir);
        pool_target(&runtime, &numbered(3));
        let artifact = only_artifact(&dir);
        let mut bytes = std::fs::read(&artifact).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&artifact, &bytes).expect("corrupt");
        assert_eq!(pool_target(&runtime, &numbered(3)), (3, false));
        std::fs::write(&artifact, &bytes[..40]).expect("truncate");
        assert_eq!(pool_target(&runtime, &numbered(3)), (3, false));
        std::fs::write(&artifact, b"\x7fELF not ours").expect("foreign file");
        assert_eq!(pool_target(&runtime, &numbered(3)), (3, false));
        assert_eq!(pool_target(&runtime, &numbered(3)), (3, true));
    }

    #[test]
    fn an_artifact_with_another_engines_header_is_recompiled() {
        let dir = scratch("version");
        let runtime = cached(&dir);
        pool_target(&runtime, &numbered(4));
        let artifact = only_artifact(&dir);
        let mut bytes = std::fs::read(&artifact).expect("read");
        // The engine's hash (wasmtime's version and settings) follows the magic and the
        // module's hash.
        let engine_at = b"pacer-cwasm v1\n".len() + 32;
        bytes[engine_at] ^= 0x01;
        std::fs::write(&artifact, &bytes).expect("rewrite");
        assert_eq!(pool_target(&runtime, &numbered(4)), (4, false));
    }

    #[test]
    fn a_cache_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("shared");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let runtime = cached(&dir);
        assert_eq!(pool_target(&runtime, &numbered(5)), (5, false));
        assert_eq!(
            pool_target(&runtime, &numbered(5)),
            (5, false),
            "never cached"
        );
        assert!(artifacts(&dir).is_empty());
        // Made private again, it is used.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        pool_target(&runtime, &numbered(5));
        assert_eq!(pool_target(&runtime, &numbered(5)), (5, true));
    }

    #[test]
    fn a_cache_directory_owned_by_another_user_is_not_used() {
        let dir = scratch("other-user");
        std::fs::create_dir_all(&dir).expect("dir");
        let status = std::process::Command::new("chown")
            .arg("65534")
            .arg(&dir)
            .status()
            .expect("chown runs");
        assert!(
            status.success(),
            "chown: the test needs root (CI runs as root)"
        );
        let runtime = cached(&dir);
        assert_eq!(pool_target(&runtime, &numbered(6)), (6, false));
        assert_eq!(
            pool_target(&runtime, &numbered(6)),
            (6, false),
            "never cached"
        );
    }
}

/// An environment whose clock takes `delay` to read: host time inside an import.
struct SlowClock {
    delay: Duration,
}

impl pacer_host::Environment for SlowClock {
    fn now_ns(&mut self) -> i64 {
        std::thread::sleep(self.delay);
        0
    }
    fn memory(&mut self) -> pacer::MemoryReading {
        pacer::MemoryReading::default()
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        buf.fill(7);
    }
}

#[test]
fn host_time_inside_an_import_counts_against_the_call_deadline() {
    let runtime = uncached();
    // One import call and no loop after it: only the host's time can run the deadline out.
    let module = runtime
        .load(&module(
            "pacer_pool_target",
            "(if (i32.eq (local.get 0) (i32.const 99)) (then (drop (call $now_ns))))",
            "",
        ))
        .expect("loads");
    let mut policy = Policy::new(
        &module,
        Box::new(SlowClock {
            delay: Duration::from_millis(300),
        }),
    )
    .expect("instance");
    assert_eq!(policy.pool_target(8).expect("no import, no wait"), 8);
    let started = Instant::now();
    let error = policy
        .pool_target(99)
        .expect_err("300 ms in now_ns: past 100 ms");
    assert!(started.elapsed() < REFUSAL_BOUND);
    assert!(
        error
            .to_string()
            .contains("no answer within 100ms: it ran out inside the `now_ns` import"),
        "{error}"
    );
    assert_eq!(policy.pool_target(8).expect("recovered"), 8);
}

#[test]
fn a_modules_error_message_is_cut_and_cannot_drive_the_terminal() {
    let runtime = uncached();
    // configure refuses with a 60,000-byte message that starts with an ANSI escape.
    let mut wat = String::from(
        "(module\n  (memory (export \"memory\") 1)\n  (global $taken (mut i64) (i64.const 0))\n  (data (i32.const 4096) \"\\1b[31mRED\\07\")\n",
    );
    for (name, signature, body) in EXPORTS {
        let body = match *name {
            "pacer_configure" => "(i32.const -2)",
            "pacer_last_error_ptr" => "(i32.const 4096)",
            "pacer_last_error_len" => "(i32.const 60000)",
            _ => body,
        };
        wat.push_str(&format!(
            "  (func (export \"{name}\") {signature} {body})\n"
        ));
    }
    wat.push(')');
    let module = runtime.load(&raw(&wat)).expect("loads");
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    let error = policy.configure(CONFIG).expect_err("refused").to_string();
    assert!(
        error.starts_with("policy error -2: \u{FFFD}[31mRED\u{FFFD}"),
        "{error:?}"
    );
    assert!(!error.chars().any(char::is_control), "{error:?}");
    assert!(error.len() < 4096 + 64, "{} bytes", error.len());
}
