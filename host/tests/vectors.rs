//! The shared vectors (`tests/vectors/*.json`) against the real `dist/pacer.wasm` in wasmtime:
//! results identical to the native core's.

use std::fs;
use std::path::{Path, PathBuf};

use pacer_host::{Policy, ScriptedEnvironment};
use serde_json::Value;

mod common;

use common::{module_path, real_module, runtime};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("expected an integer, got {value}"))
}

#[test]
fn the_module_imports_exactly_the_five_pacer_functions() {
    let module = runtime()
        .load_file(&module_path())
        .expect("dist/pacer.wasm loads");
    let mut imports = module.info.imports.clone();
    imports.sort();
    assert_eq!(
        imports,
        [
            "pacer.log",
            "pacer.memory_limit",
            "pacer.memory_used",
            "pacer.now_ns",
            "pacer.random_fill"
        ]
    );
    let size = fs::metadata(module_path()).expect("size").len();
    assert!(
        size <= 96 * 1024,
        "dist/pacer.wasm is {size} bytes; the budget is 96 KiB"
    );
}

#[test]
fn every_vector_replays_identically_in_wasmtime() {
    let runtime = runtime();
    let module = real_module(&runtime);
    let mut files: Vec<_> = fs::read_dir(root().join("tests/vectors"))
        .expect("vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for file in files {
        let vector: Value =
            serde_json::from_str(&fs::read_to_string(&file).expect("readable")).expect("JSON");
        let environment = ScriptedEnvironment::new();
        let mut policy = Policy::new(&module, Box::new(environment.clone())).expect("instance");
        let mut saved: Vec<u8> = Vec::new();
        for (i, step) in vector["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .enumerate()
        {
            let at = format!("{} step {i} ({})", file.display(), step["call"]);
            if let Some(now) = step.get("now_ns") {
                environment.update(|s| s.now_ns = int(now));
            }
            if let Some(memory) = step.get("memory") {
                environment.update(|s| {
                    (s.memory_used, s.memory_limit) = (int(&memory[0]), int(&memory[1]))
                });
            }
            let name = step["call"].as_str().expect("call");
            let result = match name {
                "restart" => {
                    policy = Policy::new(&module, Box::new(environment.clone())).expect("instance");
                    continue;
                }
                "pacer_configure" => {
                    let text = match &step["config"] {
                        Value::String(raw) => raw.clone(),
                        config => config.to_string(),
                    };
                    policy.call_with_bytes("pacer_configure", text.as_bytes())
                }
                "pacer_state_export" => {
                    let len = policy.call_raw(name, &[]).expect("no trap");
                    if len >= 0 {
                        let ptr = policy.call_raw("pacer_state_ptr", &[]).expect("no trap");
                        assert!(ptr > 0, "{at}");
                        saved = policy.snapshot().expect("snapshot");
                        assert_eq!(saved.len() as i64, len, "{at}");
                    }
                    Ok(len)
                }
                "pacer_state_import" => {
                    let mut bytes = saved.clone();
                    if let Some(n) = step.get("flip_byte") {
                        bytes[int(n) as usize] ^= 0xff;
                    }
                    if let Some(n) = step.get("truncate") {
                        bytes.truncate(int(n) as usize);
                    }
                    policy.call_with_bytes("pacer_state_import", &bytes)
                }
                _ => {
                    let args: Vec<i64> = step.get("args").map_or(Vec::new(), |a| {
                        a.as_array().expect("args").iter().map(int).collect()
                    });
                    policy.call_raw(name, &args)
                }
            };
            let result = result.unwrap_or_else(|e| panic!("{at}: {e}"));
            assert!(
                step.get("expect").is_some() || step.get("error").is_some(),
                "{at}: checks nothing (no expect, no error)"
            );
            if let Some(expected) = step.get("expect") {
                let message = policy.last_error().unwrap_or_default();
                assert_eq!(result, int(expected), "{at}: {message}");
            }
            if let Some(error) = step.get("error").and_then(Value::as_str) {
                let message = policy.last_error().expect("last error");
                assert!(message.contains(error), "{at}: {message:?} lacks {error:?}");
            }
        }
        if let Some(calls) = vector.get("random_fill_calls") {
            assert_eq!(
                environment.get().random_fill_calls as i64,
                int(calls),
                "{}",
                file.display()
            );
        }
    }
}
