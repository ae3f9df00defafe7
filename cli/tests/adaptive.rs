//! `pacer run --origin` against an origin that does not announce its quota, without a
//! config: the default config is adaptive, and the run converges on the origin's limit.

use std::path::Path;
use std::process::Command;

use pacer_cli::origin::{Origin, OriginOptions};

#[test]
fn without_a_config_pacer_run_learns_a_foreign_origins_limit_from_its_429s() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    // 4 requests a second, a burst of 4, no rate-limit headers: the default config starts at
    // 10 a second, so it must come down, and stay near 4.
    let limit_per_s = 4.0;
    let options = OriginOptions {
        files: 100,
        file_size_bytes: 20_000,
        tokens_per_hour: limit_per_s * 3600.0,
        burst: 4,
        ..OriginOptions::default()
    };
    let origin = runtime
        .block_on(Origin::start(options, 0))
        .expect("origin starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["run", "--workers", "4", "--origin", &origin.url(), "--out"])
        .arg(dir.path().join("out"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("pacer runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("no --config: learning the origin's limit")
            && stdout.contains("floor of 1/min and a ceiling of 100/s"),
        "the floor and ceiling are printed:\n{stdout}"
    );
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{stdout}"))
            .to_string()
    };
    let number_after = |text: &str, name: &str| -> f64 {
        let rest = text.split(name).nth(1).expect("named");
        rest.trim_start()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a number after {name} in {text}"))
    };
    let files = line("files");
    assert!(files.contains("100 downloaded"), "{stdout}");
    let end_rate = number_after(&line("rate at the end"), "rate at the end");
    let stats = origin.stats();
    let requests = stats.requests.load(std::sync::atomic::Ordering::Relaxed);
    let throttled = stats.throttled.load(std::sync::atomic::Ordering::Relaxed);
    let rate = origin.stats().request_rate();
    eprintln!(
        "converged to {end_rate:.2}/s; {requests} requests at {rate:.2}/s, {throttled} answered 429 (the origin allows {limit_per_s}/s)"
    );
    assert!(
        (0.6 * limit_per_s..=1.25 * limit_per_s).contains(&end_rate),
        "converged to {end_rate}/s against {limit_per_s}/s\n{stdout}"
    );
    assert!(
        rate >= 0.7 * limit_per_s,
        "{rate}/s over the run against {limit_per_s}/s"
    );
    assert!(
        (throttled as f64) <= 0.15 * requests as f64,
        "{throttled} of {requests} requests answered 429"
    );
}
