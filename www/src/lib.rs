//! pacer in the browser: the policy core and the load simulator, exported to the page's JS.
//!
//! A thin layer: every decision is the core's (`pacer`), every simulated event the
//! simulator's (`pacer_sim`). JS draws; Rust decides.

#[cfg(target_arch = "wasm32")]
mod allocator;
mod report;
mod user_module;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator::new();

use pacer_sim::{CoreEngine, Engine, Scenario, Simulation};
use wasm_bindgen::prelude::*;

pub use user_module::AbiModule;

/// A simulation the page runs in batches between frames.
#[wasm_bindgen]
pub struct Simulator {
    simulation: Simulation<'static>,
}

#[wasm_bindgen]
impl Simulator {
    /// Validates `scenario_json` and builds the trace; the policy is the built-in core, or
    /// `module` (a user's ABI v1 module) when given.
    #[wasm_bindgen(constructor)]
    pub fn new(scenario_json: &str, module: Option<AbiModule>) -> Result<Simulator, JsError> {
        let scenario =
            Scenario::from_json(scenario_json).map_err(|e| JsError::new(&e.to_string()))?;
        let engine: Box<dyn Engine> = match module {
            Some(module) => Box::new(user_module::JsEngine::new(module)),
            None => Box::new(CoreEngine::new()),
        };
        let simulation = Simulation::new(scenario, engine).map_err(|e| JsError::new(&e.0))?;
        Ok(Simulator { simulation })
    }

    /// Runs up to `budget` events; `true` once the run is over.
    pub fn step(&mut self, budget: u32) -> Result<bool, JsError> {
        self.simulation.step(budget).map_err(|e| JsError::new(&e.0))
    }

    /// Share of the simulated span done, 0..=1.
    pub fn progress(&self) -> f64 {
        self.simulation.progress()
    }

    /// Requests in the arrival trace.
    pub fn requests(&self) -> u32 {
        u32::try_from(self.simulation.requests()).unwrap_or(u32::MAX)
    }

    /// `next_delay` decisions made so far.
    pub fn decisions(&self) -> f64 {
        self.simulation.decisions() as f64
    }

    /// The report (`{ summary, series, wait_histogram, jitter }`), once the run is over.
    pub fn report(&self) -> Option<js_sys::Object> {
        self.simulation.report().map(report::to_js)
    }
}

/// The scorecard of `scenario_json`: pacer (the built-in core, or `module` when given) and
/// every baseline on the same arrivals; one plain object per strategy, pacer first.
#[wasm_bindgen]
pub fn scorecard(scenario_json: &str, module: Option<AbiModule>) -> Result<js_sys::Array, JsError> {
    let scenario = Scenario::from_json(scenario_json).map_err(|e| JsError::new(&e.to_string()))?;
    let mut engine: Box<dyn Engine> = match module {
        Some(module) => Box::new(user_module::JsEngine::new(module)),
        None => Box::new(CoreEngine::new()),
    };
    engine
        .configure(&scenario.config, pacer_sim::run::entropy_for(scenario.seed))
        .map_err(|e| JsError::new(&format!("config: {e}")))?;
    let card = pacer_sim::scorecard_with(&scenario, engine).map_err(|e| JsError::new(&e))?;
    Ok(card.rows.iter().map(report::scores_to_js).collect())
}

/// The default scenario: the page's starting values.
#[wasm_bindgen(js_name = defaultScenario)]
pub fn default_scenario() -> js_sys::Object {
    report::scenario_to_js(&Scenario::default())
}

/// Checks a policy config as the module would: `undefined` if valid, else the message.
#[wasm_bindgen(js_name = checkConfig)]
pub fn check_config(json: &str) -> Option<String> {
    pacer::Config::from_json(json).err().map(|e| e.to_string())
}

/// Makes `count` decisions with the core on a virtual clock (1 µs apart); returns how many
/// were admitted. The page times it for the raw decision rate.
#[wasm_bindgen(js_name = decisionBatch)]
pub fn decision_batch(config_json: &str, count: u32) -> Result<f64, JsError> {
    let mut engine = CoreEngine::new();
    engine
        .configure(config_json, [0; 32])
        .map_err(|e| JsError::new(&format!("config: {e}")))?;
    Ok(pacer_sim::decision_batch(&mut engine, count) as f64)
}
