//! The download pipeline end to end against the embedded origin, over real HTTP on loopback.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pacer::MemoryReading;
use pacer_cli::origin::{Announce, Origin, OriginOptions};
use pacer_cli::pipeline::{self, NoProgress, PipelineError, PipelineOptions, Summary};
use pacer_host::{BufferPool, Environment, Policy, SystemEnvironment};
use sha2::{Digest, Sha256};

mod common;

/// 10 requests a second, burst 3: quick, and the same quota on both sides unless a test says.
fn origin_options(files: usize) -> OriginOptions {
    OriginOptions {
        files,
        file_size_bytes: 200_000,
        tokens_per_hour: 36_000.0,
        burst: 3,
        ..OriginOptions::default()
    }
}

/// Matches the origin's quota; small jitter and quick backoff so tests stay short.
fn policy_config(tokens_per_hour: f64) -> String {
    format!(
        r#"{{"seed":3,"limiters":[{{"name":"origin","tokens_per_hour":{tokens_per_hour},"burst":3}}],
            "jitter":{{"strategy":"adaptive","max_ms":100}},
            "backoff":{{"base_ms":20,"max_ms":400,"failure_threshold":50,"open_ms":200}}}}"#
    )
}

/// The real clock and entropy, with memory readings a test can change.
struct TestEnvironment {
    system: SystemEnvironment,
    used_permille: Arc<AtomicI64>,
}

impl Environment for TestEnvironment {
    fn now_ns(&mut self) -> i64 {
        self.system.now_ns()
    }
    fn memory(&mut self) -> MemoryReading {
        MemoryReading::from_abi(self.used_permille.load(Ordering::Relaxed), 1000)
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        self.system.random_fill(buf)
    }
}

fn policy(tokens_per_hour: f64, used_permille: Arc<AtomicI64>) -> Arc<Mutex<Policy>> {
    let runtime = common::runtime();
    let module = common::real_module(&runtime);
    let environment = TestEnvironment {
        system: SystemEnvironment::detect(),
        used_permille,
    };
    let mut policy = Policy::new(&module, Box::new(environment)).expect("instance");
    policy
        .configure(&policy_config(tokens_per_hour))
        .expect("config");
    Arc::new(Mutex::new(policy))
}

async fn download(
    origin: &Origin,
    out: &Path,
    policy: Arc<Mutex<Policy>>,
) -> Result<Summary, PipelineError> {
    let options = PipelineOptions::new(origin.url(), out);
    pipeline::run(
        options,
        policy,
        BufferPool::new(64 << 10, 8),
        Arc::new(NoProgress),
    )
    .await
}

/// A run into a fresh directory with the matching quota and low memory pressure.
async fn fetch_all(origin: &Origin) -> (tempfile::TempDir, Summary) {
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy(36_000.0, Arc::new(AtomicI64::new(100)));
    let summary = download(origin, out.path(), policy).await.expect("run");
    (out, summary)
}

/// Every file in `out` that looks complete verifies against the origin's index.
async fn assert_all_verified(origin: &Origin, out: &Path, expected_files: usize) {
    let index: serde_json::Value = reqwest::get(format!("{}/index.json", origin.url()))
        .await
        .expect("index")
        .json()
        .await
        .expect("JSON");
    let mut complete = 0;
    for file in index["files"].as_array().expect("files") {
        let path = out.join(file["name"].as_str().expect("name"));
        if let Ok(bytes) = std::fs::read(&path) {
            assert_eq!(
                format!("{:x}", Sha256::digest(&bytes)),
                file["sha256"].as_str().expect("sha"),
                "{}",
                path.display()
            );
            complete += 1;
        }
    }
    assert_eq!(complete, expected_files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_verifies_with_zero_429s_when_the_quotas_match() {
    let origin = Origin::start(origin_options(12), 0).await.expect("origin");
    let (out, summary) = fetch_all(&origin).await;
    assert_eq!(
        (summary.files, summary.downloaded, summary.skipped),
        (12, 12, 0)
    );
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    assert_eq!(summary.throttled, 0);
    assert_eq!(origin.stats().throttled.load(Ordering::Relaxed), 0);
    assert_eq!(summary.bytes, 12 * 200_000);
    assert!(summary.pool.hits > 0, "{:?}", summary.pool);
    assert_all_verified(&origin, out.path(), 12).await;
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_503s_and_resets_every_file_still_completes() {
    let options = OriginOptions {
        error_rate: 0.3,
        reset_rate: 0.25,
        ..origin_options(10)
    };
    let origin = Origin::start(options, 0).await.expect("origin");
    let (out, summary) = fetch_all(&origin).await;
    assert_eq!(summary.downloaded, 10, "{:?}", summary.failed);
    assert!(summary.retries > 0, "faults were injected: {summary:?}");
    assert!(
        origin.stats().errors.load(Ordering::Relaxed) > 0
            && origin.stats().resets.load(Ordering::Relaxed) > 0
    );
    assert_all_verified(&origin, out.path(), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_429s_are_honoured_when_the_policy_asks_too_much() {
    // The policy thinks 10/s; the origin allows 3/s: 429s come back with Retry-After, and
    // every file still arrives.
    let options = OriginOptions {
        tokens_per_hour: 10_800.0,
        burst: 1,
        ..origin_options(6)
    };
    let origin = Origin::start(options, 0).await.expect("origin");
    let (out, summary) = fetch_all(&origin).await;
    assert_eq!(summary.downloaded, 6, "{:?}", summary.failed);
    assert!(summary.throttled > 0);
    assert_all_verified(&origin, out.path(), 6).await;
}

#[test]
fn a_run_killed_midway_leaves_nothing_that_looks_complete_and_a_rerun_finishes() {
    let out = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let origin = runtime
        .block_on(Origin::start(
            OriginOptions {
                slow_bytes_per_second: Some(2_000_000),
                ..origin_options(12)
            },
            0,
        ))
        .expect("origin");
    // A separate runtime for the first run, torn down mid-download: the kill.
    let doomed = tokio::runtime::Runtime::new().expect("tokio");
    let policy_first = policy(36_000.0, Arc::new(AtomicI64::new(100)));
    let (url, path) = (origin.url(), out.path().to_path_buf());
    doomed.spawn(async move {
        let options = PipelineOptions::new(url, path);
        let _ = pipeline::run(
            options,
            policy_first,
            BufferPool::new(64 << 10, 8),
            Arc::new(NoProgress),
        )
        .await;
    });
    std::thread::sleep(Duration::from_millis(400));
    doomed.shutdown_background();
    runtime.block_on(async {
        // Whatever the kill left: complete-looking files verify; the rest are .partial.
        let done_before = std::fs::read_dir(out.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
            .count();
        assert!(done_before < 12, "the kill came too late to test anything");
        assert_all_verified(&origin, out.path(), done_before).await;
        let summary = download(
            &origin,
            out.path(),
            policy(36_000.0, Arc::new(AtomicI64::new(100))),
        )
        .await
        .expect("rerun");
        assert_eq!(summary.skipped, done_before);
        assert_eq!(summary.downloaded + summary.skipped, 12);
        assert_all_verified(&origin, out.path(), 12).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_high_pressure_workers_start_nothing_new() {
    let origin = Origin::start(origin_options(4), 0).await.expect("origin");
    let out = tempfile::tempdir().expect("tempdir");
    let used = Arc::new(AtomicI64::new(900));
    // The test keeps a handle on the pool, to see the target pressure gives it.
    let pool = BufferPool::new(64 << 10, 8);
    let run = tokio::spawn({
        let (policy, url, path, pool) = (
            policy(36_000.0, Arc::clone(&used)),
            origin.url(),
            out.path().to_path_buf(),
            pool.clone(),
        );
        async move {
            pipeline::run(
                PipelineOptions::new(url, path),
                policy,
                pool,
                Arc::new(NoProgress),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        origin.stats().requests.load(Ordering::Relaxed),
        0,
        "High pressure: nothing started"
    );
    assert_eq!(
        pool.target(),
        0,
        "High pressure: the pool keeps no idle buffer"
    );
    used.store(100, Ordering::Relaxed);
    let summary = run.await.expect("task").expect("run");
    assert_eq!(summary.downloaded, 4);
    assert_eq!(summary.pressure_seen, [true, false, true]);
    // Back at Low the pool keeps all it may again, and every buffer the downloads used
    // came back to it: none dropped, as many idle as were ever allocated.
    assert_eq!(pool.target(), 8, "Low pressure: the pool's full target");
    assert!(summary.pool.rents >= 4, "{:?}", summary.pool);
    assert_eq!(summary.pool.drops, 0, "{:?}", summary.pool);
    assert_eq!(
        summary.pool.idle as u64, summary.pool.allocations,
        "{:?}",
        summary.pool
    );
}

async fn download_url(
    url: String,
    out: &Path,
    policy: Arc<Mutex<Policy>>,
) -> Result<Summary, PipelineError> {
    pipeline::run(
        PipelineOptions::new(url, out),
        policy,
        BufferPool::new(64 << 10, 8),
        Arc::new(NoProgress),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_a_clear_error_and_leaves_nothing_complete() {
    let out = tempfile::tempdir().expect("tempdir");
    let policy = policy(36_000.0, Arc::new(AtomicI64::new(100)));
    // Unreachable: a port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let error = download_url(format!("http://{free}"), out.path(), Arc::clone(&policy))
        .await
        .expect_err("unreachable");
    assert!(error.to_string().contains("cannot reach"), "{error}");
    // A server whose index is not an index.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"files\":[1]}").await;
        }
    });
    let error = download_url(format!("http://{address}"), out.path(), Arc::clone(&policy))
        .await
        .expect_err("bad index");
    assert!(error.to_string().contains("files[0].name"), "{error}");
    // An output directory that cannot exist: its parent is a file.
    let blocker = out.path().join("a-file");
    std::fs::write(&blocker, b"x").expect("write");
    let origin = Origin::start(origin_options(2), 0).await.expect("origin");
    let error = download(&origin, &blocker.join("sub"), policy)
        .await
        .expect_err("unwritable");
    assert!(error.to_string().contains("cannot create"), "{error}");
    assert_eq!(
        std::fs::read_dir(out.path()).expect("dir").count(),
        1,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_static_file_server_with_an_index_works_as_an_origin() {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(site.path().join("files")).expect("mkdir");
    let mut files = Vec::new();
    for i in 0..5u8 {
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|j| (j as u8).wrapping_mul(i + 1))
            .collect();
        let name = format!("part-{i}.dat");
        std::fs::write(site.path().join("files").join(&name), &bytes).expect("write");
        files.push(serde_json::json!({ "name": name, "size": bytes.len(), "sha256": format!("{:x}", Sha256::digest(&bytes)) }));
    }
    std::fs::write(
        site.path().join("index.json"),
        serde_json::json!({ "files": files }).to_string(),
    )
    .expect("index");
    let server = common::StaticServer::start(site.path());
    let out = tempfile::tempdir().expect("tempdir");
    let result = download_url(
        server.url.clone(),
        out.path(),
        policy(36_000.0, Arc::new(AtomicI64::new(100))),
    )
    .await;
    drop(server);
    let summary = result.expect("run");
    assert_eq!(summary.downloaded, 5, "{:?}", summary.failed);
    for i in 0..5 {
        let name = format!("part-{i}.dat");
        assert_eq!(
            std::fs::read(out.path().join(&name)).expect("file"),
            std::fs::read(site.path().join("files").join(&name)).expect("source")
        );
    }
}

/// Set in the child process that runs the full-disk case.
const FULL_DISK_CHILD: &str = "PACER_FULL_DISK_CHILD";
/// The child's file-size limit: below one file of the catalogue (200,000 B), so the first
/// download to cross it fails mid-body.
const FILE_SIZE_LIMIT: u64 = 128 << 10;
/// What the child prints once its case has run to the end.
const FULL_DISK_RAN: &str = "full-disk case ran: ";

/// A disk that fills mid-download, without a mount or root: this test runs itself again as a
/// child process, which caps the size of any file it writes (RLIMIT_FSIZE) with SIGXFSZ
/// ignored, so the write that crosses the cap fails with EFBIG ("File too large") the way a
/// full disk's fails with ENOSPC. The parent passes only if the child ran its case and said so.
#[test]
fn a_full_disk_ends_the_run_with_a_clear_error_and_nothing_that_looks_complete() {
    const NAME: &str =
        "a_full_disk_ends_the_run_with_a_clear_error_and_nothing_that_looks_complete";
    if std::env::var_os(FULL_DISK_CHILD).is_some() {
        full_disk_case();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let output = std::process::Command::new(exe)
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(FULL_DISK_CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the full-disk case failed:\n{stdout}\n{stderr}"
    );
    // The harness prints the test's name and its output on one line.
    let ran = stdout
        .lines()
        .find_map(|line| line.find(FULL_DISK_RAN).map(|at| &line[at..]));
    assert!(
        ran.is_some() && stdout.contains("1 passed"),
        "the child did not run the full-disk case:\n{stdout}\n{stderr}"
    );
    println!("{}", ran.unwrap_or_default());
}

/// Every regular file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir");
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// The case itself, in the child: the file-size cap is set here, after the module is compiled
/// (the compile cache's files are larger than the cap).
fn full_disk_case() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let policy = policy(36_000.0, Arc::new(AtomicI64::new(100)));
    let limit = libc::rlimit {
        rlim_cur: FILE_SIZE_LIMIT,
        rlim_max: FILE_SIZE_LIMIT,
    };
    // SAFETY: plain system calls on this process; no memory is shared with them.
    unsafe {
        assert_ne!(
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN),
            libc::SIG_ERR,
            "ignore SIGXFSZ"
        );
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0, "setrlimit");
    }
    let out = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let origin = Origin::start(origin_options(4), 0).await.expect("origin");
        let error = download(&origin, out.path(), policy)
            .await
            .expect_err("the disk fills: the run must fail");
        assert!(error.to_string().contains("File too large"), "{error}");
        // Every file left, at any depth, is a catalogue file with the right bytes: no partial
        // file, and nothing under a final name that is not complete.
        let left = files_under(out.path());
        assert!(
            left.iter().all(|name| !name.contains(".partial")),
            "{left:?}"
        );
        assert_all_verified(&origin, out.path(), left.len()).await;
        println!("{FULL_DISK_RAN}{error}; left {left:?}");
    });
}

/// Runs the pipeline (3 workers, 10 requests a second, burst 3) against a scripted origin that
/// Downloads a scripted origin's catalogue with 3 workers and a policy of 10 a second.
async fn run_scripted(origin: &common::ScriptedOrigin) -> pipeline::Summary {
    run_paced(&origin.url, 36_000.0).await
}

/// Downloads `url`'s catalogue with 3 workers and a policy of `tokens_per_hour`.
async fn run_paced(url: &str, tokens_per_hour: f64) -> pipeline::Summary {
    let out = tempfile::tempdir().expect("temp dir");
    let mut options = PipelineOptions::new(url, out.path());
    options.workers = 3;
    pipeline::run(
        options,
        policy(tokens_per_hour, Arc::new(AtomicI64::new(-1))),
        BufferPool::new(4096, 2),
        Arc::new(pipeline::NoProgress),
    )
    .await
    .expect("run")
}

/// answers its first file request 429 with `retry_after`, and every later one 200; returns
/// the gap between that request and the next.
async fn gap_after_a_429(retry_after: String) -> std::time::Duration {
    let origin = common::ScriptedOrigin::start(6, move |n| match n {
        0 => (429, format!("retry-after: {retry_after}\r\n")),
        _ => (200, String::new()),
    });
    let summary = run_scripted(&origin).await;
    assert_eq!(summary.downloaded, 6, "{summary:?}");
    let times = origin.requests.lock().expect("log").clone();
    assert_eq!(times.len(), 7, "one 429, then the six files");
    times[1] - times[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn slots_handed_out_before_a_retry_after_do_not_act_through_it() {
    // Two other workers hold slots due within 0.3 s when the 429 arrives; they are re-placed
    // behind the 2 s pause rather than sent into it.
    let gap = gap_after_a_429("2".into()).await;
    assert!(
        gap >= std::time::Duration::from_secs(2),
        "next request after {gap:?}"
    );
    assert!(
        gap < std::time::Duration::from_secs(4),
        "next request after {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_http_date_is_honoured() {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(3);
    // Whole seconds: the date is 2-3 s ahead when the policy reads it.
    let gap = gap_after_a_429(httpdate::fmt_http_date(at)).await;
    assert!(
        gap >= std::time::Duration::from_millis(1900),
        "next request after {gap:?}"
    );
    assert!(
        gap < std::time::Duration::from_secs(5),
        "next request after {gap:?}"
    );
}

/// Runs 12 files against an origin whose every answer carries `headers`, with a policy of 10
/// a second; returns the requests per second from the third request on (the first answer
/// brings the announcement; requests already in flight may precede it).
async fn rate_with_headers(headers: &'static str) -> f64 {
    let origin = common::ScriptedOrigin::start(12, move |_| (200, headers.to_string()));
    let summary = run_scripted(&origin).await;
    assert_eq!(summary.downloaded, 12, "{summary:?}");
    let times = origin.requests.lock().expect("log").clone();
    (times.len() - 3) as f64 / (times[times.len() - 1] - times[2]).as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_announced_quota_slows_the_run_to_it() {
    // 2 left for the next second, every time: 2 a second, not the policy's 10.
    let announced = rate_with_headers("x-ratelimit-remaining: 2\r\nx-ratelimit-reset: 1\r\n").await;
    assert!((1.6..=2.2).contains(&announced), "{announced:.2}/s");
    let draft =
        rate_with_headers("ratelimit-policy: \"q\";q=20;w=10\r\nratelimit: \"q\";r=4;t=2\r\n")
            .await;
    assert!((1.6..=2.2).contains(&draft), "{draft:.2}/s");
    // Malformed headers are ignored: the policy's own pace.
    let ignored =
        rate_with_headers("x-ratelimit-remaining: lots\r\nx-ratelimit-reset: 1\r\n").await;
    assert!(ignored > 5.0, "{ignored:.2}/s");
    println!(
        "announced 2/s: {announced:.2}/s (X-RateLimit), {draft:.2}/s (RateLimit); malformed: {ignored:.2}/s"
    );
}

/// The embedded origin (10 a second, burst 3) announcing its quota on every answer, and a
/// policy configured 4 times too fast: the announcements hold the run to the origin's rate.
/// Returns (429s, requests per second over the run).
async fn against_an_announcing_origin(announce: Announce) -> (u64, f64) {
    let origin = Origin::start(
        OriginOptions {
            announce,
            ..origin_options(60)
        },
        0,
    )
    .await
    .expect("origin");
    let summary = run_paced(&origin.url(), 144_000.0).await;
    assert_eq!(summary.downloaded, 60, "{summary:?}");
    (summary.throttled, origin.stats().request_rate())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_s_announced_quota_keeps_a_too_fast_policy_from_429s() {
    let (throttled, legacy) = against_an_announcing_origin(Announce::Legacy).await;
    println!("X-RateLimit: {throttled} x 429, {legacy:.2}/s of 10/s");
    assert!(
        throttled <= 1,
        "{throttled} x 429 (the first answer may come too late)"
    );
    assert!(legacy >= 9.8, "{legacy:.2}/s");
    // The draft's whole seconds round the reset up: slower, never over.
    let (throttled, draft) = against_an_announcing_origin(Announce::Draft).await;
    println!("RateLimit: {throttled} x 429, {draft:.2}/s of 10/s");
    assert!(throttled <= 1, "{throttled} x 429");
    // Without announcements, the same policy earns 429s.
    let (throttled, _) = against_an_announcing_origin(Announce::None).await;
    assert!(throttled > 10, "{throttled} x 429 without announcements");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_origin_that_halves_then_restores_its_limit_is_followed_through_its_announcements() {
    // 10 a second, 5 from 2 s, 10 again from 5 s; the policy is configured at 10 a second.
    let origin = Origin::start(
        OriginOptions {
            announce: Announce::Legacy,
            schedule: vec![
                (std::time::Duration::from_secs(2), 18_000.0),
                (std::time::Duration::from_secs(5), 36_000.0),
            ],
            ..origin_options(80)
        },
        0,
    )
    .await
    .expect("origin");
    let summary = run_paced(&origin.url(), 36_000.0).await;
    assert_eq!(summary.downloaded, 80, "{summary:?}");
    let arrivals = origin.stats().arrivals_ns.lock().expect("arrivals").clone();
    // Requests per second in [from, to) seconds after the origin started.
    let rate = |from: f64, to: f64| {
        let n = arrivals
            .iter()
            .filter(|t| (from..to).contains(&(**t as f64 / 1e9)))
            .count();
        n as f64 / (to - from)
    };
    let (halved, restored) = (rate(2.5, 5.0), rate(5.5, 7.0));
    println!(
        "origin 10/s, 5/s from 2 s, 10/s from 5 s: {} x 429; {halved:.2}/s while halved, \
         {restored:.2}/s once restored",
        summary.throttled
    );
    assert!(
        summary.throttled <= 2,
        "at most one 429 per change: {}",
        summary.throttled
    );
    assert!(
        (4.4..=5.6).contains(&halved),
        "{halved:.2}/s while the limit is 5/s"
    );
    assert!(
        (8.8..=11.0).contains(&restored),
        "{restored:.2}/s once it is 10/s again"
    );
}
