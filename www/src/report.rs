//! A simulation report as a plain JS object, shaped exactly like `pacer simulate --json`'s
//! output (the browser tests compare the two field for field).
//!
//! Built with js-sys rather than serialized to JSON: numbers cross as numbers, and the module
//! carries no float formatting.

use js_sys::{Array, Object, Reflect};
use pacer_sim::Report;
use pacer_sim::report::{Histogram, JitterDraws, Series, Summary};
use wasm_bindgen::JsValue;

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

fn numbers<T: Copy>(values: &[T], as_f64: impl Fn(T) -> f64) -> Array {
    values
        .iter()
        .map(|v| JsValue::from_f64(as_f64(*v)))
        .collect()
}

fn counts(values: &[u64]) -> Array {
    numbers(values, |v| v as f64)
}

fn summary(s: &Summary) -> Object {
    let object = Object::new();
    for (key, value) in [
        ("requests", s.requests as f64),
        ("decisions", s.decisions as f64),
        ("admitted", s.admitted as f64),
        ("rejected_429", s.rejected_429 as f64),
        ("failed_503", s.failed_503 as f64),
        ("refused_circuit", s.refused_circuit as f64),
        ("waiting_at_end", s.waiting_at_end as f64),
        ("wait_p50_ms", s.wait_p50_ms),
        ("wait_p99_ms", s.wait_p99_ms),
        ("wait_max_ms", s.wait_max_ms),
        ("offered_per_hour", s.offered_per_hour),
        ("achieved_per_hour", s.achieved_per_hour),
        ("quota_per_hour", s.quota_per_hour),
        ("achieved_vs_quota", s.achieved_vs_quota),
    ] {
        set(&object, key, value);
    }
    object
}

fn series(s: &Series) -> Object {
    let object = Object::new();
    set(&object, "interval_s", s.interval_s);
    set(&object, "t_s", numbers(&s.t_s, |t| t));
    set(&object, "tokens", numbers(&s.tokens, |t| t));
    set(&object, "admitted", counts(&s.admitted));
    set(&object, "rejected", counts(&s.rejected));
    set(&object, "failed", counts(&s.failed));
    set(&object, "refused", counts(&s.refused));
    set(&object, "waiting", counts(&s.waiting));
    set(&object, "pressure", numbers(&s.pressure, f64::from));
    set(&object, "pool_target", numbers(&s.pool_target, f64::from));
    set(&object, "memory", optional(&s.memory));
    set(&object, "rate_per_s", optional(&s.rate_per_s));
    object
}

/// Numbers, `null` where unknown.
fn optional(values: &[Option<f64>]) -> Array {
    values
        .iter()
        .map(|m| m.map_or(JsValue::NULL, JsValue::from_f64))
        .collect()
}

fn histogram(h: &Histogram) -> Object {
    let object = Object::new();
    set(&object, "edges_ms", numbers(&h.edges_ms, |e| e));
    set(&object, "counts", counts(&h.counts));
    object
}

fn jitter(j: &JitterDraws) -> Object {
    let object = Object::new();
    set(&object, "base_ms", j.base_ms);
    set(&object, "utilization", numbers(&j.utilization, |u| u));
    set(&object, "edges_ms", numbers(&j.edges_ms, |e| e));
    let rows: Array = j
        .counts
        .iter()
        .map(|row| JsValue::from(counts(row)))
        .collect();
    set(&object, "counts", rows);
    object
}

/// The report as `{ summary, series, wait_histogram, jitter }`.
pub fn to_js(report: &Report) -> Object {
    let object = Object::new();
    set(&object, "summary", summary(&report.summary));
    set(&object, "series", series(&report.series));
    set(&object, "wait_histogram", histogram(&report.wait_histogram));
    set(&object, "jitter", jitter(&report.jitter));
    object
}

/// One strategy's scores as a plain object (`None` becomes `null`).
pub fn scores_to_js(s: &pacer_sim::Scores) -> JsValue {
    let object = Object::new();
    let optional = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from_f64);
    set(&object, "strategy", s.strategy.as_str());
    set(&object, "goodput_per_s", s.goodput_per_s);
    set(&object, "sent_per_success", optional(s.sent_per_success));
    set(&object, "sent", s.sent as f64);
    set(&object, "rejected_429", s.rejected_429 as f64);
    set(&object, "failed_5xx", s.failed_5xx as f64);
    set(&object, "held", s.held as f64);
    set(&object, "wait_p50_s", s.wait_p50_s);
    set(&object, "wait_p99_s", s.wait_p99_s);
    set(&object, "recovery_s", optional(s.recovery_s));
    set(&object, "fairness", s.fairness);
    set(&object, "max_sent_1s", s.max_sent_1s as f64);
    set(&object, "origin_limit_1s", s.origin_limit_1s);
    set(&object, "waiting_at_end", s.waiting_at_end as f64);
    object.into()
}

/// A scenario's fields as a plain object (the page's starting values).
pub fn scenario_to_js(s: &pacer_sim::Scenario) -> Object {
    let object = Object::new();
    set(&object, "config", s.config.as_str());
    set(&object, "clients", s.clients);
    set(&object, "pattern", s.pattern.name());
    set(&object, "rate_per_client", s.rate_per_client);
    set(&object, "duration_s", s.duration_s);
    set(&object, "seed", s.seed as f64);
    set(&object, "origin_rate", s.origin_rate);
    set(&object, "origin_burst", s.origin_burst);
    set(&object, "burst_period_s", s.burst_period_s);
    set(&object, "outage_start_s", s.outage_start_s);
    set(&object, "outage_end_s", s.outage_end_s);
    let memory: Array = s
        .memory
        .iter()
        .map(|[t, f]| JsValue::from(Array::of2(&JsValue::from_f64(*t), &JsValue::from_f64(*f))))
        .collect();
    set(&object, "memory", memory);
    set(&object, "base_ms", s.base_ms);
    set(&object, "cost", s.cost);
    set(&object, "latency_ms", s.latency_ms);
    object
}
