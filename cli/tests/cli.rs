//! `pacer check`, run as a user would.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// Runs `pacer` with `args` from the checkout, as a user would.
fn pacer(args: &[&str]) -> (bool, String, String) {
    pacer_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."), args)
}

/// Runs `pacer` with `args` from `dir`, with its own compile cache and a time limit, and
/// returns (success, stdout, stderr).
fn pacer_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs");
    let started = Instant::now();
    while child.try_wait().expect("status").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("pacer {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("UTF-8");
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn check_describes_a_good_module() {
    let (ok, stdout, stderr) = pacer(&["check", "dist/pacer.wasm"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("pacer ABI v1 module"), "{stdout}");
    assert!(stdout.contains("imports:  pacer."), "{stdout}");
    assert!(stdout.contains("try_acquire(1)    admitted"), "{stdout}");
    assert!(
        stdout.contains("wait 20.000 s"),
        "90/h, half of burst 3: 0.5 token short = 20 s\n{stdout}"
    );
    assert!(stdout.contains("pressure"), "{stdout}");
}

#[test]
fn check_fails_clearly_on_bad_input() {
    let config = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-config.json");
    std::fs::write(
        &config,
        r#"{"limiters":[{"name":"a","tokens_per_hour":1,"burst":0}]}"#,
    )
    .expect("write");
    let cases: [(&[&str], &str); 4] = [
        (
            &["check", "Cargo.toml"],
            "Cargo.toml: not a WebAssembly module",
        ),
        (&["check", "no/such.wasm"], "no/such.wasm: No such file"),
        (
            &[
                "check",
                "dist/pacer.wasm",
                "--config",
                config.to_str().expect("utf-8"),
            ],
            "limiters[0].burst: must be an integer from 1",
        ),
        (&["check"], "Usage"),
    ];
    for (args, expected) in cases {
        let (ok, _, stderr) = pacer(args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn run_downloads_the_embedded_catalogue_and_a_rerun_skips_it() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-run");
    let _ = std::fs::remove_dir_all(&out);
    let args = [
        "run",
        "--json",
        "--files",
        "6",
        "--file-size",
        "100000",
        "--origin-rate",
        "36000",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    let (ok, stdout, stderr) = pacer(&args);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["downloaded"], 6, "{summary}");
    assert_eq!(summary["throttled"], 0);
    assert_eq!(summary["origin"]["throttled"], 0);
    let (ok, stdout, stderr) = pacer(&args);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(
        (summary["downloaded"].as_u64(), summary["skipped"].as_u64()),
        (Some(0), Some(6))
    );
}

#[test]
fn run_fails_clearly_on_bad_arguments() {
    let out = tempfile::tempdir().expect("temp dir");
    let out = out.path().to_str().expect("a UTF-8 temp path");
    let cases: [(&[&str], &str); 3] = [
        (
            &["run", "--origin", "http://127.0.0.1:9", "--out", out],
            "cannot reach http://127.0.0.1:9/index.json",
        ),
        (
            &["run", "--error-rate", "2"],
            "--error-rate: must be from 0 to 1",
        ),
        (
            &["run", "--policy", "Cargo.toml"],
            "not a WebAssembly module",
        ),
    ];
    for (args, expected) in cases {
        let (ok, _, stderr) = pacer(args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn simulate_runs_the_page_scenario_natively() {
    let (ok, stdout, stderr) = pacer(&["simulate"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("requests"), "{stdout}");
    assert!(stdout.contains("achieved / quota"), "{stdout}");

    let scenario = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario.json");
    std::fs::write(
        &scenario,
        r#"{"clients": 5, "rate_per_client": 1, "duration_s": 60, "pattern": "steady", "memory": []}"#,
    )
    .expect("write");
    let (ok, stdout, stderr) = pacer(&[
        "simulate",
        "--json",
        "--scenario",
        &scenario.to_string_lossy(),
    ]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["summary"]["requests"], 300);
    assert_eq!(report["series"]["t_s"].as_array().map(Vec::len), Some(60));

    std::fs::write(&scenario, r#"{"clients": 0}"#).expect("write");
    let (ok, _, stderr) = pacer(&["simulate", "--scenario", &scenario.to_string_lossy()]);
    assert!(!ok);
    assert!(
        stderr.contains("scenario: clients: must be from 1 to 100000"),
        "{stderr}"
    );
}

#[test]
fn serve_prints_its_url_and_refuses_a_directory_without_the_built_page() {
    let empty = tempfile::tempdir().expect("a temp dir");
    let (ok, _, stderr) = pacer(&[
        "serve",
        "--port",
        "0",
        "--dir",
        &empty.path().to_string_lossy(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("pkg/pacer_www.js is missing: build the page with `make www`"),
        "{stderr}"
    );

    for file in [
        "pkg/pacer_www.js",
        "pkg/pacer_www_bg.wasm",
        "vendor/uPlot.esm.js",
    ] {
        let path = empty.path().join(file);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, "x").expect("write");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["serve", "--port", "0", "--dir"])
        .arg(empty.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pacer serve starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("a line");
    child.kill().ok();
    child.wait().ok();
    assert!(
        line.starts_with("pacer serve: the load simulator at http://127.0.0.1:"),
        "{line}"
    );
}

/// Starts `pacer run` against `origin` into `out`, one worker; it is killed by the caller.
fn spawn_run(origin: &str, out: &Path, config: &Path) -> std::process::Child {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["run", "--workers", "1", "--origin", origin, "--out"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs")
}

#[test]
fn a_restarted_run_honours_the_pause_its_predecessor_saved() {
    // Every file request is answered 429 with Retry-After: 120.
    let origin = common::ScriptedOrigin::start(3, |_| (429, "retry-after: 120\r\n".into()));
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"limiters":[{"name":"origin","tokens_per_hour":3600,"burst":3}]}"#,
    )
    .expect("config written");
    let state = out.join(".pacer-state");
    let requests = || origin.requests.lock().expect("log").len();

    // The first run is answered 429, saves its paused state, and is killed while it waits.
    let mut first = spawn_run(&origin.url, &out, &config);
    let start = Instant::now();
    while !state.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    first.kill().expect("killed");
    first.wait().expect("reaped");
    assert!(state.exists(), "the first run saved its state");
    assert_eq!(requests(), 1, "one request, then the pause");

    // The second run restores the pause: nothing goes to the origin for seconds.
    let mut second = spawn_run(&origin.url, &out, &config);
    std::thread::sleep(Duration::from_secs(3));
    second.kill().expect("killed");
    let output = second.wait_with_output().expect("reaped");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("resumed the policy's state"), "{stdout}");
    assert_eq!(requests(), 1, "the restored pause held the second run back");

    // Without the saved state, a run asks at once: the test above can fail.
    std::fs::remove_file(&state).expect("removed");
    let mut third = spawn_run(&origin.url, &out, &config);
    let start = Instant::now();
    while requests() < 2 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    third.kill().expect("killed");
    third.wait().expect("reaped");
    assert_eq!(requests(), 2, "a fresh run asks at once");
}

/// Runs `pacer` with `args` from a folder outside the checkout.
fn pacer_elsewhere(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    pacer_in(dir.path(), args)
}

#[test]
fn zero_workers_is_refused_not_a_hang() {
    let (ok, _, stderr) = pacer_elsewhere(&["run", "--workers", "0", "--files", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("--workers: must be at least 1, got 0"),
        "{stderr}"
    );
}

#[test]
fn origin_flags_out_of_range_name_the_flag() {
    let (ok, _, stderr) = pacer_elsewhere(&["run", "--origin-burst", "0", "--files", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("--origin-burst: must be from 1 to 2147483647, got 0"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("limiters[0]"),
        "a field the user never wrote: {stderr}"
    );
    let (ok, _, stderr) = pacer_elsewhere(&["origin", "--origin-rate", "0", "--port", "0"]);
    assert!(!ok);
    assert!(
        stderr.contains("--origin-rate: must be from 0.0001"),
        "{stderr}"
    );
}

#[test]
fn the_default_policy_is_found_from_anywhere_and_named_plainly() {
    // Run from a folder outside the checkout: the module beside the binary is found, and its
    // path is printed without `..`.
    let out = tempfile::tempdir().expect("temp dir");
    let out_arg = out.path().join("downloads");
    let (ok, stdout, stderr) = pacer_elsewhere(&[
        "run",
        "--files",
        "2",
        "--file-size",
        "1000",
        "--origin-rate",
        "36000",
        "--out",
        out_arg.to_str().expect("UTF-8 path"),
    ]);
    assert!(ok, "{stderr}");
    let line = stdout
        .lines()
        .find(|line| line.contains("policy "))
        .unwrap_or_else(|| panic!("no policy line: {stdout}"));
    assert!(line.contains("dist/pacer.wasm"), "{line}");
    assert!(!line.contains(".."), "{line}");
}

#[test]
fn a_config_number_out_of_range_names_the_real_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"limiters":[{"name":"a","tokens_per_hour":90}],"jitter":{"max_ms":1e308}}"#,
    )
    .expect("write");
    let (ok, _, stderr) = pacer(&[
        "check",
        "dist/pacer.wasm",
        "--config",
        config.to_str().expect("UTF-8"),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("jitter.max_ms: must be an integer from 0 to 18446744073709551615"),
        "{stderr}"
    );
}

#[test]
fn serve_and_scorecard_find_the_checkout_from_anywhere() {
    let (ok, stdout, stderr) =
        pacer_elsewhere(&["simulate", "--scorecard", "--seeds", "1", "--json"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("herd"),
        "every scenario in sim/scenarios: {stdout}"
    );
}

#[test]
fn a_bad_origin_schedule_is_refused_naming_the_step() {
    for (schedule, expected) in [
        ("30", "expected SECONDS:PER_HOUR"),
        ("30:fast", "PER_HOUR is not a number"),
        ("30:0", "PER_HOUR must be from 0.0001"),
        ("1e10:60", "SECONDS must be from 0"),
        ("60:100,30:100", "in time order"),
    ] {
        let (ok, _, stderr) = pacer(&["origin", "--port", "0", "--origin-schedule", schedule]);
        assert!(!ok, "{schedule} was accepted");
        assert!(
            stderr.contains("--origin-schedule") && stderr.contains(expected),
            "{schedule}: {stderr}"
        );
    }
}
