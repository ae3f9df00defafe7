//! The config reader: `pacer::Config::from_json` and the module's configure path
//! (`pacer::exports::Exports::configure`, which `pacer_configure` runs on the bytes a host
//! passes), on arbitrary bytes.
//!
//! Invariants: no panic; the module's path accepts exactly what `from_json` accepts (and
//! refuses everything else with a negative code and a message); an accepted config builds a
//! policy, validates again, and survives `to_json` -> `from_json` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pacer::Config;
use pacer::exports::{Exports, Host, LogLevel};

/// The imports, answering fixed values: configure only asks for entropy.
struct Fixed;

impl Host for Fixed {
    fn now_ns(&mut self) -> i64 {
        0
    }
    fn memory_used(&mut self) -> i64 {
        -1
    }
    fn memory_limit(&mut self) -> i64 {
        0
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        buf.fill(7);
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
}

fn to_value(config: &Config) -> serde_json::Value {
    serde_json::to_value(config).expect("a config serialises")
}

/// The same document, numbers equal or adjacent doubles.
fn within_an_ulp(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x != y => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x.to_bits().abs_diff(y.to_bits()) <= 1 && x.signum() == y.signum()
            }
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| within_an_ulp(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| within_an_ulp(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut module = Exports::new(Fixed);
    let code = module.configure(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        assert!(code < 0, "non-UTF-8 config accepted");
        return;
    };
    match Config::from_json(text) {
        Err(error) => {
            assert!(
                code < 0,
                "the module accepted what from_json refused: {error}"
            );
            assert!(
                !module.last_error().is_empty(),
                "a refusal without a message"
            );
            assert!(!error.to_string().is_empty());
        }
        Ok(config) => {
            assert_eq!(
                code,
                0,
                "from_json accepted, the module refused: {}",
                module.last_error()
            );
            config
                .validate()
                .expect("an accepted config validates again");
            let mut seeded = config.clone();
            seeded.seed = Some(seeded.seed.unwrap_or(1));
            pacer::Policy::new(seeded).expect("an accepted config builds a policy");
            let json = config.to_json();
            let again = Config::from_json(&json)
                .unwrap_or_else(|e| panic!("to_json wrote what from_json refuses: {e}\n{json}"));
            // Finding (BENCHMARKS.md, Fuzzing): the core's number reader rounds twice for
            // mantissas above 2^53 or powers beyond 10^22, so a float may come back one ulp
            // off ("0.9444604377709551615" reads as ...552, its shortest form as ...551).
            // Anything more than that is a failure.
            if again != config {
                let (a, b) = (to_value(&again), to_value(&config));
                assert!(
                    within_an_ulp(&a, &b),
                    "to_json -> from_json changed the config: {json}"
                );
            }
            // A second configure with the same document is accepted (reconfigure path).
            assert_eq!(module.configure(bytes), 0, "{}", module.last_error());
        }
    }
});
