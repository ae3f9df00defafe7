//! Replays the engine-neutral vectors in `tests/vectors/*.json` (format in its README)
//! against the native core, through the same integer-level exports the wasm module runs.
//!
//! `PACER_BLESS=1` rewrites the `expect` of steps marked `"bless": true` with what this build
//! returns; only the seeded-random vectors use that, every other value is derived by hand.
//! It is refused when `CI` is set: CI checks the vectors, it never rewrites them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use pacer::exports::{Exports, Host, LogLevel};
use serde_json::Value;

/// The imports, as the vector sets them.
#[derive(Debug, Default)]
struct ScriptHost {
    now_ns: i64,
    memory_used: i64,
    memory_limit: i64,
    random_fill_calls: u64,
}

impl Host for ScriptHost {
    fn now_ns(&mut self) -> i64 {
        self.now_ns
    }
    fn memory_used(&mut self) -> i64 {
        self.memory_used
    }
    fn memory_limit(&mut self) -> i64 {
        self.memory_limit
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        self.random_fill_calls += 1;
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
    fn log(&mut self, _level: LogLevel, message: &str) {
        assert!(!message.is_empty());
    }
}

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("tests/vectors exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn int(value: &Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} must be an integer, got {value}"))
}

/// Runs one step; returns the call's integer result.
fn call(module: &mut Exports<ScriptHost>, saved: &mut Vec<u8>, step: &Value) -> Option<i64> {
    let name = step["call"].as_str().expect("call is a string");
    let args: Vec<i64> = match step.get("args") {
        Some(args) => args
            .as_array()
            .expect("args is an array")
            .iter()
            .map(|a| int(a, "arg"))
            .collect(),
        None => Vec::new(),
    };
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .unwrap_or_else(|| panic!("{name} needs arg {i}"))
    };
    let a32 = |i: usize| i32::try_from(arg(i)).expect("i32 argument");
    Some(match name {
        "pacer_abi_version" => pacer::interface::ABI_VERSION.into(),
        "pacer_features" => pacer::interface::FEATURES.into(),
        "pacer_configure" => {
            let text = match &step["config"] {
                Value::String(raw) => raw.clone(),
                config => serde_json::to_string(config).expect("serializable"),
            };
            module.configure(text.as_bytes()).into()
        }
        "pacer_try_acquire" => module.try_acquire(a32(0), a32(1)),
        "pacer_reserve" => module.reserve(a32(0), a32(1)),
        "pacer_available_milli" => module.available_milli(a32(0)),
        "pacer_on_response" => module.on_response(a32(0), a32(1), arg(2)).into(),
        "pacer_on_response_sent" => module
            .on_response_sent(a32(0), a32(1), arg(2), arg(3))
            .into(),
        "pacer_next_delay_ns" => module.next_delay_ns(a32(0), a32(1), arg(2)),
        "pacer_replace_ns" => module.replace_ns(a32(0), a32(1), arg(2)),
        "pacer_try_acquire_at" => module.try_acquire_at(arg(0), a32(1), a32(2)),
        "pacer_reserve_at" => module.reserve_at(arg(0), a32(1), a32(2)),
        "pacer_next_delay_at" => module.next_delay_at(arg(0), a32(1), a32(2), arg(3)),
        "pacer_cancel" => module.cancel(a32(0), a32(1), arg(2)).into(),
        "pacer_set_rate" => module.set_rate(a32(0), arg(1)).into(),
        "pacer_pause" => module.pause(a32(0), arg(1)).into(),
        "pacer_announce" => module
            .announce(a32(0), arg(1), arg(2), arg(3), arg(4))
            .into(),
        "pacer_rate_micro" => module.rate_micro(a32(0)),
        "pacer_retry_in_ns" => module.retry_in_ns(a32(0)),
        "pacer_jitter_ns" => module.jitter_ns(arg(0), a32(1)),
        "pacer_pressure" => module.pressure().into(),
        "pacer_should_throttle" => module.should_throttle().into(),
        "pacer_pool_target" => module.pool_target(a32(0)).into(),
        "pacer_state_export" => {
            let len = module.state_export();
            if len >= 0 {
                *saved = module.snapshot().to_vec();
            }
            len.into()
        }
        "pacer_state_import" => {
            let mut bytes = saved.clone();
            if let Some(n) = step.get("flip_byte") {
                let n = usize::try_from(int(n, "flip_byte")).expect("index");
                bytes[n] ^= 0xff;
            }
            if let Some(n) = step.get("truncate") {
                bytes.truncate(usize::try_from(int(n, "truncate")).expect("length"));
            }
            module.state_import(&bytes).into()
        }
        "restart" => {
            let host = std::mem::take(module.host_mut());
            *module = Exports::new(host);
            return None;
        }
        other => panic!("unknown call {other}"),
    })
}

fn replay(path: &Path, bless: bool) -> Option<Value> {
    let text = fs::read_to_string(path).expect("readable vector");
    let mut vector: Value = serde_json::from_str(&text).expect("vector is JSON");
    let mut module = Exports::new(ScriptHost {
        memory_used: -1,
        ..ScriptHost::default()
    });
    let mut saved = Vec::new();
    let mut blessed = false;
    let steps = vector["steps"].as_array_mut().expect("steps is an array");
    for (i, step) in steps.iter_mut().enumerate() {
        let at = format!("{} step {i} ({})", path.display(), step["call"]);
        let host = module.host_mut();
        if let Some(now) = step.get("now_ns") {
            host.now_ns = int(now, "now_ns");
        }
        if let Some(memory) = step.get("memory") {
            host.memory_used = int(&memory[0], "memory used");
            host.memory_limit = int(&memory[1], "memory limit");
        }
        let result = call(&mut module, &mut saved, step);
        if bless && step.get("bless").is_some_and(|b| b == true) {
            step["expect"] = result.into();
            blessed = true;
            continue;
        }
        let checked = step.get("expect").is_some() || step.get("error").is_some();
        assert!(
            checked || step["call"] == "restart",
            "{at}: checks nothing (bless it?)"
        );
        if let Some(expected) = step.get("expect") {
            assert_eq!(
                result,
                Some(int(expected, "expect")),
                "{at}: {}",
                module.last_error()
            );
        }
        if let Some(error) = step.get("error") {
            let error = error.as_str().expect("error is a string");
            assert!(
                module.last_error().contains(error),
                "{at}: last error {:?} lacks {error:?}",
                module.last_error()
            );
        }
    }
    if let Some(calls) = vector.get("random_fill_calls") {
        let expected = u64::try_from(int(calls, "random_fill_calls")).expect("count");
        assert_eq!(
            module.host_mut().random_fill_calls,
            expected,
            "{}: random_fill calls",
            path.display()
        );
    }
    blessed.then_some(vector)
}

#[test]
fn every_vector_replays_identically_on_the_native_core() {
    let bless = std::env::var_os("PACER_BLESS").is_some();
    if bless {
        common::floors::refuse_under_ci(
            "PACER_BLESS",
            "it rewrites the expected results of the shared vectors instead of checking them",
        );
    }
    let files = vector_files();
    assert!(
        files.len() >= 5,
        "expected the shared vectors, found {files:?}"
    );
    for path in files {
        if let Some(updated) = replay(&path, bless) {
            let text = serde_json::to_string_pretty(&updated).expect("serializable") + "\n";
            fs::write(&path, text).expect("writable vector");
        }
    }
}
