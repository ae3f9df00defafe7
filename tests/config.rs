//! Config parsing: defaults, strict fields, and errors that name the field.

use pacer::Config;
use pacer::jitter::Strategy;

#[test]
fn only_limiters_are_required_and_defaults_match_the_guide() {
    let config = Config::from_json(r#"{"limiters":[{"name":"catalog","tokens_per_hour":90}]}"#)
        .expect("valid");
    assert_eq!(config.seed, None);
    assert_eq!(config.limiters[0].quota().expect("valid").burst(), 1);
    assert_eq!(config.limiters[0].initial, 0.5);
    assert_eq!(config.jitter.strategy, Strategy::Adaptive);
    assert_eq!(config.jitter.max_ms, 3000);
    assert_eq!((config.pressure.medium, config.pressure.high), (0.70, 0.85));
    assert_eq!(
        (config.backoff.base_ms, config.backoff.max_ms),
        (1000, 300_000)
    );
    assert_eq!(
        (config.backoff.failure_threshold, config.backoff.open_ms),
        (5, 30_000)
    );
    assert_eq!(
        (config.pool.max_buffers, config.pool.buffer_size),
        (20, 81_920)
    );
}

#[test]
fn the_documented_example_parses_and_round_trips() {
    let json = r#"{
      "seed": 7,
      "limiters": [{ "name": "catalog", "tokens_per_hour": 90, "burst": 3, "initial": 0.5 }],
      "jitter":   { "strategy": "adaptive", "max_ms": 3000 },
      "pressure": { "medium": 0.70, "high": 0.85, "hysteresis": 0.05, "high_delay_ms": 1000 },
      "backoff":  { "base_ms": 1000, "max_ms": 300000, "failure_threshold": 5, "open_ms": 30000 },
      "pool":     { "max_buffers": 20, "buffer_size": 81920 }
    }"#;
    let config = Config::from_json(json).expect("valid");
    assert_eq!(config.seed, Some(7));
    assert_eq!(Config::from_json(&config.to_json()), Ok(config));
}

#[test]
fn integral_numbers_count_as_integers() {
    let config = Config::from_json(
        r#"{"limiters":[{"name":"a","tokens_per_hour":3600,"burst":3.0}],"jitter":{"max_ms":1e3}}"#,
    )
    .expect("valid");
    assert_eq!(config.limiters[0].burst, Some(3));
    assert_eq!(config.jitter.max_ms, 1000);
}

/// Each invalid document and the start of the error it must give.
const INVALID: &[(&str, &str)] = &[
    ("", "invalid JSON"),
    ("[]", "must be an object"),
    ("{}", "limiters: is required"),
    (
        r#"{"limiters":[]}"#,
        "limiters: must list at least one limiter",
    ),
    (r#"{"limiters":{}}"#, "limiters: must be an array"),
    (
        r#"{"limiters":[{"tokens_per_hour":1}]}"#,
        "limiters[0].name: is required",
    ),
    (
        r#"{"limiters":[{"name":"","tokens_per_hour":1}]}"#,
        "limiters[0].name: must not be empty",
    ),
    (
        r#"{"limiters":[{"name":7,"tokens_per_hour":1}]}"#,
        "limiters[0].name: must be a string",
    ),
    (
        r#"{"limiters":[{"name":"a"}]}"#,
        "limiters[0].tokens_per_hour: is required",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":"9"}]}"#,
        "limiters[0].tokens_per_hour: must be a number",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":0}]}"#,
        "limiters[0].tokens_per_hour: must be a number from 0.0001",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":4e12}]}"#,
        "limiters[0].tokens_per_hour: must be a number from 0.0001",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"burst":0}]}"#,
        "limiters[0].burst: must be an integer from 1 to 2147483647",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"burst":2.5}]}"#,
        "limiters[0].burst: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"burst":2147483648}]}"#,
        "limiters[0].burst: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"initial":1.5}]}"#,
        "limiters[0].initial: must be a fraction",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"rate":1}]}"#,
        "limiters[0].rate: unknown field (expected one of name, tokens_per_hour, burst, initial, adaptive)",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1},{"name":"b","tokens_per_hour":1},{"name":"a","tokens_per_hour":2}]}"#,
        "limiters[2].name: \"a\" is already the name of limiters[0]",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"seed":-1}"#,
        "seed: must be an integer from 0 to 9007199254740992",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"seed":9007199254740993}"#,
        "seed: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"frobnicate":1}"#,
        "frobnicate: unknown field",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"jitter":{"strategy":"wild"}}"#,
        "jitter.strategy: must be one of adaptive",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"jitter":{"max_ms":-5}}"#,
        "jitter.max_ms: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"jitter":[]}"#,
        "jitter: must be an object",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pressure":{"medium":0.9}}"#,
        "pressure.high: must be above medium",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pressure":{"medium":0}}"#,
        "pressure.medium: must be a fraction",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pressure":{"hysteresis":0.8}}"#,
        "pressure.hysteresis: must be at least 0 and below medium",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pressure":{"high_delay_ms":0.5}}"#,
        "pressure.high_delay_ms: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"backoff":{"base_ms":10,"max_ms":5}}"#,
        "backoff.max_ms: must be at least backoff.base_ms",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"backoff":{"failure_threshold":0}}"#,
        "backoff.failure_threshold: must be at least 1",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"backoff":{"open_ms":"1s"}}"#,
        "backoff.open_ms: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pool":{"buffer_size":0}}"#,
        "pool.buffer_size: must be at least 1",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pool":{"max_buffers":-1}}"#,
        "pool.max_buffers: must be an integer",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":1}],"pool":{"size":1}}"#,
        "pool.size: unknown field",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"max_tokens_per_hour":20}}]}"#,
        "limiters[0].adaptive.min_tokens_per_hour: is required",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":1}}]}"#,
        "limiters[0].adaptive.max_tokens_per_hour: is required",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":11,"max_tokens_per_hour":20}}]}"#,
        "limiters[0].adaptive.min_tokens_per_hour: must not be above the limiter's tokens_per_hour",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":1,"max_tokens_per_hour":9}}]}"#,
        "limiters[0].adaptive.max_tokens_per_hour: must not be below the limiter's tokens_per_hour",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":0,"max_tokens_per_hour":20}}]}"#,
        "limiters[0].adaptive.min_tokens_per_hour: must be a number from 0.0001",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":1,"max_tokens_per_hour":"fast"}}]}"#,
        "limiters[0].adaptive.max_tokens_per_hour: must be a number",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":1,"max_tokens_per_hour":20,"on_503":1}}]}"#,
        "limiters[0].adaptive.on_503: must be true or false",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":{"min_tokens_per_hour":1,"max_tokens_per_hour":20,"on_429":true}}]}"#,
        "limiters[0].adaptive.on_429: unknown field (expected one of min_tokens_per_hour, max_tokens_per_hour, on_503)",
    ),
    (
        r#"{"limiters":[{"name":"a","tokens_per_hour":10,"adaptive":true}]}"#,
        "limiters[0].adaptive: must be an object",
    ),
];

#[test]
fn each_invalid_field_yields_an_error_naming_it() {
    for (json, expected) in INVALID {
        let error = Config::from_json(json).expect_err(json).to_string();
        assert!(
            error.starts_with(expected),
            "{json}\n  gave: {error}\n  want: {expected}…"
        );
    }
}

#[test]
fn an_adaptive_limiter_parses_and_round_trips() {
    let json = r#"{"limiters":[{"name":"api","tokens_per_hour":3600,
        "adaptive":{"min_tokens_per_hour":360,"max_tokens_per_hour":36000,"on_503":true}}]}"#;
    let config = Config::from_json(json).expect("valid");
    let adaptive = config.limiters[0].adaptive.expect("adaptive");
    assert_eq!(
        (
            adaptive.min_tokens_per_hour,
            adaptive.max_tokens_per_hour,
            adaptive.on_503
        ),
        (360.0, 36_000.0, true)
    );
    assert_eq!(Config::from_json(&config.to_json()), Ok(config));
    let fixed = Config::from_json(r#"{"limiters":[{"name":"api","tokens_per_hour":3600}]}"#);
    assert_eq!(fixed.expect("valid").limiters[0].adaptive, None);
}
