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
            assert_eq!(
                again, config,
                "to_json -> from_json changed the config: {json}"
            );
            // A second configure with the same document is accepted (reconfigure path).
            assert_eq!(module.configure(bytes), 0, "{}", module.last_error());
        }
    }
});
