//! A load simulator for pacer policies, on a virtual clock.
//!
//! Clients send requests by an arrival pattern; each asks the policy (`next_delay`), waits
//! the answer out, and reaches an origin with its own limit, whose answer (200, 429 with
//! Retry-After, 503 in an outage) goes back to the policy. Memory follows a curve the
//! policy reads as pressure. The same scenario gives the same report natively and in wasm.
//!
//! ```
//! use pacer_sim::{CoreEngine, Scenario, Simulation};
//!
//! let scenario = Scenario { duration_s: 60, ..Scenario::default() };
//! let report = Simulation::new(scenario, CoreEngine::new())?.run()?;
//! assert_eq!(report.summary.rejected_429, 0);
//! println!("p99 wait {} ms", report.summary.wait_p99_ms);
//! # Ok::<(), pacer_sim::SimulationError>(())
//! ```

pub mod engine;
pub mod origin;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scorecard;
pub mod select;
pub mod strategy;
pub mod trace;

pub use engine::{CoreEngine, Engine, Reading};
pub use report::{Report, Summary};
pub use run::{Simulation, SimulationError};
pub use scenario::{Pattern, Scenario, ScenarioError};
pub use scorecard::{Scorecard, Scores, scorecard, scorecard_with};

/// Makes `count` `try_acquire` decisions on limiter 0, the virtual clock moving 1 µs per
/// call; returns how many were admitted. The raw decision rate, without the simulator around it.
pub fn decision_batch<E: Engine>(engine: &mut E, count: u32) -> u64 {
    let mut admitted = 0;
    for i in 0..u64::from(count) {
        engine.set_reading(Reading {
            now_ns: i * 1000,
            memory_used: -1,
            memory_limit: -1,
        });
        admitted += u64::from(engine.try_acquire(0, 1) == 0);
    }
    admitted
}
