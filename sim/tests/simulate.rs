//! The simulator against the core: determinism, the origin's limit, outages, pressure, errors.

use pacer_sim::trace::arrivals;
use pacer_sim::{CoreEngine, Pattern, Report, Scenario, Simulation};

fn run(scenario: Scenario) -> Report {
    Simulation::new(scenario, CoreEngine::new())
        .and_then(Simulation::run)
        .unwrap_or_else(|e| panic!("simulation failed: {e}"))
}

fn error_of(scenario: Scenario) -> String {
    match Simulation::new(scenario, CoreEngine::new()) {
        Ok(_) => panic!("the scenario was accepted"),
        Err(e) => e.to_string(),
    }
}

fn config(tokens_per_hour: f64, burst: u32) -> String {
    format!(
        r#"{{"seed":3,"limiters":[{{"name":"a","tokens_per_hour":{tokens_per_hour},"burst":{burst}}}],"jitter":{{"strategy":"none"}}}}"#
    )
}

/// A steady overload: 20 clients at 1/s against a policy of 10/s and an origin of 10/s.
fn overload() -> Scenario {
    Scenario {
        config: config(36_000.0, 10),
        clients: 20,
        pattern: Pattern::Steady,
        rate_per_client: 1.0,
        duration_s: 120,
        origin_rate: 10.0,
        origin_burst: 10,
        memory: vec![],
        ..Scenario::default()
    }
}

#[test]
fn the_same_scenario_gives_the_same_report() {
    let scenario = Scenario::default();
    assert_eq!(run(scenario.clone()), run(scenario));
}

#[test]
fn a_policy_matching_the_origin_never_trips_it_and_achieves_its_quota() {
    let report = run(overload());
    let s = &report.summary;
    assert_eq!(s.rejected_429, 0, "{s:?}");
    assert_eq!(s.requests, 2400);
    // 10/s for 120 s plus the bucket's initial 5 tokens.
    assert!((1200..=1206).contains(&s.admitted), "{s:?}");
    assert!(
        s.achieved_vs_quota > 0.99 && s.achieved_vs_quota < 1.01,
        "{s:?}"
    );
    assert_eq!(s.admitted + s.waiting_at_end, s.requests);
    // The backlog grows by 10 a second: the last served request waited about a minute.
    assert!(
        s.wait_max_ms > 55_000.0 && s.wait_max_ms < 65_000.0,
        "{s:?}"
    );
}

#[test]
fn a_policy_faster_than_the_origin_honours_its_retry_after() {
    let scenario = Scenario {
        config: config(72_000.0, 20),
        ..overload()
    };
    let s = run(scenario).summary;
    assert!(s.rejected_429 > 0, "{s:?}");
    // Each 429 pauses the limiter for Retry-After; requests queued meanwhile leave at the
    // policy's rate after it, so few attempts fail. 429s from a healthy origin that serves
    // between them never make enough failed rounds in a row to open the circuit.
    assert!(s.rejected_429 < s.admitted / 10, "{s:?}");
    assert_eq!(s.refused_circuit, 0, "{s:?}");
    assert!(
        s.admitted >= 1150,
        "the origin's own rate is still used: {s:?}"
    );
}

#[test]
fn an_outage_opens_the_circuit_and_the_herd_returns_at_its_end() {
    let scenario = Scenario {
        config: r#"{"seed":3,"limiters":[{"name":"a","tokens_per_hour":36000,"burst":10}],
                    "backoff":{"base_ms":100,"max_ms":5000,"failure_threshold":3,"open_ms":5000}}"#
            .into(),
        pattern: Pattern::Herd,
        clients: 10,
        rate_per_client: 0.5,
        duration_s: 120,
        outage_start_s: 30,
        outage_end_s: 60,
        ..overload()
    };
    let report = run(scenario);
    let s = &report.summary;
    assert!(s.failed_503 > 0, "{s:?}");
    assert!(s.refused_circuit > 0, "{s:?}");
    assert_eq!(
        s.waiting_at_end, 0,
        "the backlog drains after the outage: {s:?}"
    );
    let served_in_outage: u64 = report
        .series
        .t_s
        .iter()
        .zip(&report.series.admitted)
        .filter(|(t, _)| **t > 30.0 && **t <= 60.0)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(served_in_outage, 0);
    let served_in_10s_after: u64 = report
        .series
        .t_s
        .iter()
        .zip(&report.series.admitted)
        .filter(|(t, _)| **t > 60.0 && **t <= 70.0)
        .map(|(_, n)| n)
        .sum();
    // The herd is paced: at most the burst plus 10 s of quota (10/s).
    assert!(
        served_in_10s_after > 50 && served_in_10s_after <= 111,
        "{served_in_10s_after}"
    );
}

#[test]
fn poisson_arrivals_keep_the_mean_rate() {
    let scenario = Scenario {
        pattern: Pattern::Poisson,
        clients: 100,
        rate_per_client: 2.0,
        duration_s: 1000,
        ..Scenario::default()
    };
    let trace = arrivals(&scenario);
    let expected = 200_000.0;
    let count = trace.len() as f64;
    // Five standard deviations of a Poisson count.
    assert!((count - expected).abs() < 5.0 * expected.sqrt(), "{count}");
    assert!(trace.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
    let clients: std::collections::HashSet<u32> = trace.iter().map(|a| a.client).collect();
    assert_eq!(clients.len(), 100);
}

#[test]
fn bursts_send_a_periods_worth_at_once() {
    let scenario = Scenario {
        pattern: Pattern::Bursts,
        clients: 3,
        rate_per_client: 0.5,
        burst_period_s: 10,
        duration_s: 30,
        ..Scenario::default()
    };
    let trace = arrivals(&scenario);
    assert_eq!(trace.len(), 3 * 3 * 5);
    assert!(trace[..15].iter().all(|a| a.at_ns == 0));
    assert!(trace[15..30].iter().all(|a| a.at_ns == 10_000_000_000));
}

#[test]
fn high_memory_pressure_delays_requests_and_empties_the_pool() {
    // Half the policy's rate: no backlog, which would absorb the extra delay.
    let light = Scenario {
        rate_per_client: 0.25,
        ..overload()
    };
    let calm = Scenario {
        memory: vec![[0.0, 0.5]],
        ..light.clone()
    };
    let pressed = Scenario {
        memory: vec![[0.0, 0.5], [30.0, 0.95], [90.0, 0.95], [91.0, 0.5]],
        ..light
    };
    let calm_report = run(calm);
    let report = run(pressed);
    let series = &report.series;
    let at = |t: f64| series.t_s.iter().position(|x| *x == t).expect("sampled");
    assert_eq!(series.pressure[at(10.0)], 0);
    assert_eq!(series.pool_target[at(10.0)], 20);
    assert_eq!(series.pressure[at(60.0)], 2);
    assert_eq!(series.pool_target[at(60.0)], 0);
    assert_eq!(series.pressure[at(100.0)], 0);
    assert!(
        report.summary.wait_p50_ms > calm_report.summary.wait_p50_ms,
        "High pressure adds high_delay_ms to every decision"
    );
}

#[test]
fn series_cover_the_run_and_add_up_to_the_summary() {
    let report = run(Scenario::default());
    let series = &report.series;
    assert_eq!(series.t_s.len(), 600);
    assert_eq!(series.t_s.last(), Some(&600.0));
    let admitted: u64 = series.admitted.iter().sum();
    assert_eq!(admitted, report.summary.admitted);
    let rejected: u64 = series.rejected.iter().sum();
    assert_eq!(rejected, report.summary.rejected_429);
    let binned: u64 = report.wait_histogram.counts.iter().sum();
    assert_eq!(binned, report.summary.admitted);
    for row in &report.jitter.counts {
        assert_eq!(row.iter().sum::<u64>(), 2000);
    }
}

#[test]
fn adaptive_jitter_spreads_wider_at_higher_utilization() {
    let report = run(Scenario {
        duration_s: 10,
        ..Scenario::default()
    });
    let jitter = &report.jitter;
    let mean = |row: &Vec<u64>| -> f64 {
        row.iter()
            .zip(&jitter.edges_ms)
            .map(|(n, edge)| *n as f64 * edge)
            .sum::<f64>()
            / 2000.0
    };
    let (quarter, full) = (mean(&jitter.counts[0]), mean(&jitter.counts[2]));
    // Adaptive: U[0, 500 ms · utilization): means near 62.5 ms and 250 ms.
    assert!(full > 3.0 * quarter, "{quarter} vs {full}");
    assert!((200.0..300.0).contains(&full), "{full}");
}

#[test]
fn bad_scenarios_are_refused_naming_the_field() {
    let cases = [
        (
            Scenario {
                clients: 0,
                ..Scenario::default()
            },
            "clients: must be from 1",
        ),
        (
            Scenario {
                rate_per_client: f64::NAN,
                ..Scenario::default()
            },
            "rate_per_client:",
        ),
        (
            Scenario {
                duration_s: 0,
                ..Scenario::default()
            },
            "duration_s:",
        ),
        (
            Scenario {
                memory: vec![[10.0, 0.5], [5.0, 0.5]],
                ..Scenario::default()
            },
            "memory: times must be",
        ),
        (
            Scenario {
                memory: vec![[0.0, 1.5]],
                ..Scenario::default()
            },
            "memory: fractions must be from 0 to 1",
        ),
        (
            Scenario {
                clients: 100_000,
                rate_per_client: 100.0,
                ..Scenario::default()
            },
            "at most 5000000 fit",
        ),
        (
            Scenario {
                config: "{\"limiters\":[]}".into(),
                ..Scenario::default()
            },
            "config: limiters:",
        ),
        (
            Scenario {
                config: "{".into(),
                ..Scenario::default()
            },
            "config:",
        ),
    ];
    for (scenario, expected) in cases {
        let message = error_of(scenario);
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    let message = Scenario::from_json(r#"{"clients": 2, "bogus": 1}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("unknown field `bogus` (expected config, clients, pattern, "),
        "{message}"
    );
    for (json, expected) in [
        (r#"{"clients": 2.5}"#, "clients: must be a whole number"),
        (r#"{"clients": -1}"#, "clients: must be a whole number"),
        (r#"{"clients": 5000000000}"#, "clients: is too large"),
        (r#"{"pattern": "wave"}"#, "pattern: must be one of"),
        (r#"{"memory": [[0, 0.5], [1]]}"#, "memory: must be a list"),
        (r#"{"config": 7}"#, "config: must be a string"),
        (
            r#"{"rate_per_client": "fast"}"#,
            "rate_per_client: must be a number",
        ),
        (r#"[1]"#, "scenario must be a JSON object"),
        (r#"{"#, "scenario is not valid JSON"),
    ] {
        let message = Scenario::from_json(json)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains(expected),
            "{json}: {message:?} lacks {expected:?}"
        );
    }
    let whole = Scenario::from_json(r#"{"clients": 3.0, "memory": [[0, 0.5]], "pattern": "herd"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((whole.clients, whole.pattern), (3, Pattern::Herd));
    let default = serde_json::to_string(&Scenario::default()).expect("serializes");
    assert_eq!(
        Scenario::from_json(&default),
        Ok(Scenario::default()),
        "a round trip"
    );
}

/// Every field distinct from its default and from the others, so a field read into another
/// one shows.
#[test]
fn every_scenario_field_round_trips_through_json() {
    let scenario = Scenario {
        config: r#"{"limiters":[{"name":"b","tokens_per_hour":3600}]}"#.into(),
        clients: 3,
        pattern: Pattern::Herd,
        rate_per_client: 0.25,
        duration_s: 900,
        seed: 17,
        origin_rate: 4.5,
        origin_burst: 6,
        burst_period_s: 45,
        outage_start_s: 120,
        outage_end_s: 240,
        memory: vec![[0.0, 0.25], [60.0, 0.75]],
        base_ms: 8,
        cost: 2,
        latency_ms: 30,
        origin_schedule: vec![[0.0, 4.5], [300.0, 2.0]],
        announce: true,
    };
    let json = serde_json::to_string(&scenario).expect("serializes");
    assert_eq!(Scenario::from_json(&json), Ok(scenario));
    for field in pacer_sim::scenario::FIELDS {
        assert!(
            json.contains(&format!("\"{field}\"")),
            "{field} is not written"
        );
    }
}

#[test]
fn a_policy_without_a_seed_still_gives_a_repeatable_run() {
    let scenario = Scenario {
        config: r#"{"limiters":[{"name":"a","tokens_per_hour":36000}]}"#.into(),
        duration_s: 60,
        ..Scenario::default()
    };
    let first = run(scenario.clone());
    assert_eq!(first, run(scenario.clone()));
    let other_seed = run(Scenario {
        seed: 2,
        ..scenario
    });
    assert_ne!(first.summary, other_seed.summary);
}
