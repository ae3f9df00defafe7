//! A user's ABI v1 module as a simulator engine: `js/abi-module.js` instantiates it with the
//! browser's `WebAssembly` and forwards each call; here each answer comes back as an integer.

use pacer_sim::{Engine, Reading};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// A user's module behind `js/abi-module.js`'s `AbiModule` (ABI v1 exports, i64 as Number).
    pub type AbiModule;

    #[wasm_bindgen(method, catch)]
    fn configure(this: &AbiModule, json: &str, entropy: &[u8]) -> Result<Option<String>, JsValue>;
    #[wasm_bindgen(method, js_name = setReading)]
    fn set_reading(this: &AbiModule, now_ns: f64, memory_used: f64, memory_limit: f64);
    #[wasm_bindgen(method, catch, js_name = tryAcquire)]
    fn try_acquire(this: &AbiModule, limiter: i32, cost: i32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = nextDelay)]
    fn next_delay(this: &AbiModule, limiter: i32, cost: i32, base_ns: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = onResponse)]
    fn on_response(
        this: &AbiModule,
        limiter: i32,
        status: i32,
        retry_after_ms: f64,
    ) -> Result<i32, JsValue>;
    #[wasm_bindgen(method)]
    fn features(this: &AbiModule) -> i32;
    #[wasm_bindgen(method, catch)]
    fn replace(this: &AbiModule, limiter: i32, cost: i32, due_in_ns: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = onResponseSent)]
    fn on_response_sent(
        this: &AbiModule,
        limiter: i32,
        status: i32,
        retry_after_ms: f64,
        sent_at_ns: f64,
    ) -> Result<i32, JsValue>;
    #[wasm_bindgen(method, catch, js_name = retryIn)]
    fn retry_in(this: &AbiModule, limiter: i32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = availableMilli)]
    fn available_milli(this: &AbiModule, limiter: i32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch, js_name = rateMicro)]
    fn rate_micro(this: &AbiModule, limiter: i32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn jitter(this: &AbiModule, base_ns: f64, utilization_ppm: i32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn pressure(this: &AbiModule) -> Result<i32, JsValue>;
    #[wasm_bindgen(method, catch, js_name = poolTarget)]
    fn pool_target(this: &AbiModule, max_buffers: i32) -> Result<i32, JsValue>;
    #[wasm_bindgen(method, js_name = lastError)]
    fn last_error(this: &AbiModule) -> String;
}

/// Not an ABI code: what a call answers when the module threw (trapped).
const TRAPPED: i64 = i64::MIN;

/// A user's module as an [`Engine`]; a trap ends the run with the module's message.
pub struct JsEngine {
    module: AbiModule,
    reading: Option<Reading>,
    pending: Reading,
    trap: Option<String>,
}

impl JsEngine {
    /// Wraps an instantiated module.
    pub fn new(module: AbiModule) -> Self {
        JsEngine {
            module,
            reading: None,
            pending: Reading::default(),
            trap: None,
        }
    }

    /// Hands the module the reading of this call, if it changed since the last one.
    fn sync(&mut self) {
        if self.reading != Some(self.pending) {
            let r = self.pending;
            self.module
                .set_reading(r.now_ns as f64, r.memory_used as f64, r.memory_limit as f64);
            self.reading = Some(r);
        }
    }

    fn answer(&mut self, result: Result<f64, JsValue>) -> i64 {
        match result {
            // Numbers from i64: saturating back is exact for every value a policy returns.
            Ok(value) => value as i64,
            Err(thrown) => {
                let message = js_sys::Error::from(thrown).message();
                self.trap = Some(String::from(message));
                TRAPPED
            }
        }
    }
}

impl Engine for JsEngine {
    fn configure(&mut self, json: &str, entropy: [u8; 32]) -> Result<(), String> {
        match self.module.configure(json, &entropy) {
            Ok(None) => Ok(()),
            Ok(Some(message)) => Err(message),
            Err(thrown) => Err(format!(
                "the module trapped: {}",
                String::from(js_sys::Error::from(thrown).message())
            )),
        }
    }
    fn set_reading(&mut self, reading: Reading) {
        self.pending = reading;
    }
    fn try_acquire(&mut self, limiter: i32, cost: i32) -> i64 {
        self.sync();
        let result = self.module.try_acquire(limiter, cost);
        self.answer(result)
    }
    fn next_delay_ns(&mut self, limiter: i32, cost: i32, base_ns: i64) -> i64 {
        self.sync();
        let result = self.module.next_delay(limiter, cost, base_ns as f64);
        self.answer(result)
    }
    fn on_response(&mut self, limiter: i32, status: i32, retry_after_ms: i64) -> i32 {
        self.sync();
        let result = self
            .module
            .on_response(limiter, status, retry_after_ms as f64)
            .map(f64::from);
        self.answer(result).clamp(i64::from(i32::MIN), 0) as i32
    }
    fn features(&mut self) -> i32 {
        self.module.features()
    }
    fn replace_ns(&mut self, limiter: i32, cost: i32, due_in_ns: i64) -> i64 {
        self.sync();
        let result = self.module.replace(limiter, cost, due_in_ns as f64);
        self.answer(result)
    }
    fn on_response_sent(
        &mut self,
        limiter: i32,
        status: i32,
        retry_after_ms: i64,
        sent_at_ns: i64,
    ) -> i32 {
        self.sync();
        let result = self
            .module
            .on_response_sent(limiter, status, retry_after_ms as f64, sent_at_ns as f64)
            .map(f64::from);
        self.answer(result).clamp(i64::from(i32::MIN), 0) as i32
    }
    fn retry_in_ns(&mut self, limiter: i32) -> i64 {
        self.sync();
        let result = self.module.retry_in(limiter);
        self.answer(result)
    }
    fn available_milli(&mut self, limiter: i32) -> i64 {
        self.sync();
        let result = self.module.available_milli(limiter);
        self.answer(result)
    }
    fn rate_micro(&mut self, limiter: i32) -> i64 {
        self.sync();
        let result = self.module.rate_micro(limiter);
        self.answer(result)
    }
    fn jitter_ns(&mut self, base_ns: i64, utilization_ppm: i32) -> i64 {
        self.sync();
        let result = self.module.jitter(base_ns as f64, utilization_ppm);
        self.answer(result)
    }
    fn pressure(&mut self) -> i32 {
        self.sync();
        let result = self.module.pressure().map(f64::from);
        self.answer(result).clamp(-1, 2) as i32
    }
    fn pool_target(&mut self, max_buffers: i32) -> i32 {
        self.sync();
        let result = self.module.pool_target(max_buffers).map(f64::from);
        self.answer(result).clamp(-1, i64::from(i32::MAX)) as i32
    }
    fn last_error(&mut self) -> String {
        self.module.last_error()
    }
    fn trap(&self) -> Option<String> {
        self.trap.clone()
    }
}
