//! `pacer run` cannot hang: an origin that accepts and never answers, one that stops mid-body
//! and one that trickles a byte a second each end the attempt at a deadline. The file is
//! reported failed (nothing under its name), the policy hears every stalled attempt as a
//! failure, and the run ends within a bound. Real TCP servers on 127.0.0.1, started here.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacer::Schedule;
use pacer_cli::http::HttpOptions;
use pacer_cli::pipeline::{self, NoProgress, PipelineOptions, Summary};
use pacer_host::{BufferPool, Policy, SystemEnvironment};

mod common;
mod raw;
use raw::{Conn, RawOrigin};

/// The one file every stalling origin lists: 1,000 bytes.
const BODY: [u8; 1000] = [b'x'; 1000];

/// Attempts per file in these runs; the policy's circuit opens at the same count, so a run
/// whose every attempt failed leaves the circuit open (and one that did not, closed).
const ATTEMPTS: u32 = 3;

/// How an origin stalls on `/files/…` (the index it serves at once).
#[derive(Clone, Copy, Debug)]
enum Stall {
    /// Reads the request, then says nothing.
    Silent,
    /// Sends the headers and half the body, then says nothing.
    MidBody,
    /// Sends the headers, then one byte a second.
    Trickle,
}

fn stalling_origin(stall: Stall) -> RawOrigin {
    let index = raw::index(&[("f0", &BODY)]);
    RawOrigin::start(move |path: &str, conn: &mut dyn Conn| {
        if path == "/index.json" {
            return raw::respond(conn, 200, "", index.as_bytes());
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            BODY.len()
        );
        match stall {
            Stall::Silent => {}
            Stall::MidBody => {
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&BODY[..BODY.len() / 2]);
                let _ = conn.flush();
            }
            Stall::Trickle => {
                let _ = conn.write_all(head.as_bytes());
                for byte in BODY.chunks(1) {
                    if conn.write_all(byte).and_then(|()| conn.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        raw::hold(conn);
    })
}

/// The real module, quick to back off, its circuit opening after [`ATTEMPTS`] failures in a
/// row.
fn policy() -> Arc<Mutex<Policy>> {
    let runtime = common::runtime();
    let module = common::real_module(&runtime);
    let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect())).expect("instance");
    policy
        .configure(&format!(
            r#"{{"limiters":[{{"name":"origin","tokens_per_hour":36000,"burst":3}}],
                "backoff":{{"base_ms":20,"max_ms":100,"failure_threshold":{ATTEMPTS},"open_ms":600000}}}}"#
        ))
        .expect("config");
    Arc::new(Mutex::new(policy))
}

/// Runs against `origin` with these deadlines, and fails the test if the run outlives
/// `bound`.
async fn run_bounded(
    origin: &RawOrigin,
    out: &Path,
    policy: Arc<Mutex<Policy>>,
    http: HttpOptions,
    bound: Duration,
) -> (Summary, Duration) {
    let mut options = PipelineOptions::new(origin.url.clone(), out);
    options.workers = 1;
    options.max_attempts = ATTEMPTS;
    options.http = http;
    let started = Instant::now();
    let run = pipeline::run(
        options,
        policy,
        BufferPool::new(64 << 10, 4),
        Arc::new(NoProgress),
    );
    let summary = tokio::time::timeout(bound, run)
        .await
        .unwrap_or_else(|_| panic!("the run hung: still going after {bound:?}"))
        .expect("the run itself works");
    (summary, started.elapsed())
}

/// Every attempt stalled, ended at a deadline the reason names, was counted and retried, and
/// the policy heard each as a failure; nothing looks complete.
fn assert_failed_by_stall(
    summary: &Summary,
    origin: &RawOrigin,
    out: &Path,
    policy: &Mutex<Policy>,
    flag: &str,
) {
    assert_eq!(summary.downloaded, 0, "{summary:?}");
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    let (name, reason) = &summary.failed[0];
    assert_eq!(name, "f0");
    assert!(
        reason.contains("timed out") && reason.contains(flag),
        "the reason names the deadline: {reason}"
    );
    assert_eq!(summary.requests, u64::from(ATTEMPTS), "{summary:?}");
    assert_eq!(summary.retries, u64::from(ATTEMPTS - 1), "{summary:?}");
    assert_eq!(
        origin.count("/files/"),
        ATTEMPTS as usize,
        "every attempt reached it"
    );
    // ATTEMPTS failures in a row open the circuit: the policy heard every one.
    let schedule = policy
        .lock()
        .expect("policy")
        .next_delay(0, 1, Duration::ZERO)
        .expect("next_delay");
    assert!(
        matches!(schedule, Schedule::CircuitOpen { .. }),
        "the policy did not hear {ATTEMPTS} failures: {schedule:?}"
    );
    assert!(!out.join("f0").exists(), "nothing under the final name");
    let visible: Vec<_> = std::fs::read_dir(out)
        .expect("out dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "left behind: {visible:?}");
}

fn deadlines(read_ms: u64, request_ms: u64) -> HttpOptions {
    HttpOptions {
        read_timeout: Duration::from_millis(read_ms),
        request_timeout: Duration::from_millis(request_ms),
        ..HttpOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_accepts_and_never_answers_fails_the_file_at_the_read_timeout() {
    let origin = stalling_origin(Stall::Silent);
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy();
    let (summary, took) = run_bounded(
        &origin,
        out.path(),
        Arc::clone(&policy),
        deadlines(500, 60_000),
        Duration::from_secs(60),
    )
    .await;
    assert_failed_by_stall(&summary, &origin, out.path(), &policy, "--read-timeout-ms");
    assert!(
        took >= Duration::from_millis(500 * u64::from(ATTEMPTS)),
        "each attempt waited its read timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_never_answers_is_also_cut_by_the_request_deadline() {
    let origin = stalling_origin(Stall::Silent);
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy();
    let (summary, _) = run_bounded(
        &origin,
        out.path(),
        Arc::clone(&policy),
        deadlines(60_000, 700),
        Duration::from_secs(60),
    )
    .await;
    assert_failed_by_stall(
        &summary,
        &origin,
        out.path(),
        &policy,
        "--request-timeout-ms",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_stops_mid_body_fails_the_file_at_the_read_timeout() {
    let origin = stalling_origin(Stall::MidBody);
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy();
    let (summary, _) = run_bounded(
        &origin,
        out.path(),
        Arc::clone(&policy),
        deadlines(500, 60_000),
        Duration::from_secs(60),
    )
    .await;
    assert_failed_by_stall(&summary, &origin, out.path(), &policy, "--read-timeout-ms");
    assert!(
        summary.failed[0].1.contains("body cut off after 500 bytes"),
        "{:?}",
        summary.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_trickles_a_byte_a_second_fails_the_file_at_the_request_deadline() {
    // Each byte comes well within the read timeout: only the whole-attempt deadline ends it.
    let origin = stalling_origin(Stall::Trickle);
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy();
    let (summary, took) = run_bounded(
        &origin,
        out.path(),
        Arc::clone(&policy),
        deadlines(5_000, 2_500),
        Duration::from_secs(90),
    )
    .await;
    assert_failed_by_stall(
        &summary,
        &origin,
        out.path(),
        &policy,
        "--request-timeout-ms",
    );
    assert!(
        took >= Duration::from_millis(2_500 * u64::from(ATTEMPTS)),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_deadlines_let_a_prompt_origin_through() {
    // The control: what the stalling origins failed, an answering one passes, so the checks
    // above see the stall and not the set-up.
    let index = raw::index(&[("f0", &BODY)]);
    let origin = RawOrigin::start(move |path: &str, conn: &mut dyn Conn| {
        let body: &[u8] = if path == "/index.json" {
            index.as_bytes()
        } else {
            &BODY
        };
        raw::respond(conn, 200, "", body);
    });
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy();
    let (summary, _) = run_bounded(
        &origin,
        out.path(),
        Arc::clone(&policy),
        deadlines(500, 2_500),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        (summary.downloaded, summary.requests),
        (1, 1),
        "{summary:?}"
    );
    assert_eq!(std::fs::read(out.path().join("f0")).expect("f0"), BODY);
    let schedule = policy
        .lock()
        .expect("policy")
        .next_delay(0, 1, Duration::ZERO)
        .expect("next_delay");
    assert!(matches!(schedule, Schedule::Act { .. }), "{schedule:?}");
}

#[test]
fn pacer_run_takes_the_deadlines_from_its_flags_and_reports_the_stall() {
    let origin = stalling_origin(Stall::Silent);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"limiters":[{"name":"origin","tokens_per_hour":36000,"burst":3}],
            "backoff":{"base_ms":10,"max_ms":50,"failure_threshold":1000,"open_ms":100}}"#,
    )
    .expect("config");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["run", "--json", "--workers", "1", "--origin", &origin.url])
        .args(["--read-timeout-ms", "300", "--request-timeout-ms", "60000"])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("out"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs");
    while child.try_wait().expect("status").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("pacer run hung on an origin that never answers");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a failed file fails the run");
    assert!(stderr.contains("1 file(s) failed"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON summary");
    let reason = summary["failed"][0]["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("no byte for 300 ms (--read-timeout-ms)"),
        "{reason}"
    );
    // pacer run's own 20 attempts, each heard and retried.
    assert_eq!(summary["requests"], 20, "{summary}");
    assert_eq!(summary["retries"], 19, "{summary}");
    assert_eq!(origin.count("/files/"), 20);
}

#[test]
fn timeout_flags_out_of_range_are_refused_by_name() {
    for (flag, value) in [
        ("--read-timeout-ms", "0"),
        ("--read-timeout-ms", "86400001"),
        ("--request-timeout-ms", "0"),
        ("--request-timeout-ms", "86400001"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["run", "--origin", "http://127.0.0.1:9", flag, value])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .expect("pacer runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value}");
        assert!(
            stderr.contains(&format!("{flag}: must be from 1 to 86400000")),
            "{flag} {value}: {stderr}"
        );
    }
}
