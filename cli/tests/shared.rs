//! `pacer run --shared`: several real processes share one limit and one catalogue through a
//! real redis-server, against the embedded origin in global scope, which enforces exactly the
//! quota for all of them together. Faults: a host killed, Redis stopped and restarted empty,
//! Redis unreachable from the start, bad URLs and disagreeing configs.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use common::redis::Redis;
use pacer_cli::origin::{LimitScope, Origin, OriginOptions};

/// The tests measure rates on 2 cores: one group at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The embedded origin, global scope, on its own runtime.
struct GlobalOrigin {
    origin: Origin,
    _runtime: tokio::runtime::Runtime,
    files: usize,
    rate_per_s: f64,
}

fn origin(files: usize, rate_per_s: f64, burst: u32) -> GlobalOrigin {
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let options = OriginOptions {
        files,
        file_size_bytes: 4_096,
        tokens_per_hour: rate_per_s * 3600.0,
        burst,
        limit_scope: LimitScope::Global,
        ..OriginOptions::default()
    };
    let origin = runtime.block_on(Origin::start(options, 0)).expect("origin");
    GlobalOrigin {
        origin,
        _runtime: runtime,
        files,
        rate_per_s,
    }
}

/// The origin's quota as the hosts' config: same rate, same burst.
fn config(dir: &Path, rate_per_s: f64, burst: u32) -> PathBuf {
    let path = dir.join("pacer.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"limiters":[{{"name":"origin","tokens_per_hour":{},"burst":{burst}}}],
                "jitter":{{"strategy":"adaptive","max_ms":20}},
                "backoff":{{"base_ms":50,"max_ms":1000,"failure_threshold":50,"open_ms":500}}}}"#,
            rate_per_s * 3600.0
        ),
    )
    .expect("config");
    path
}

/// Starts one `pacer run --shared` host against the embedded origin (at most 4 hosts).
fn host(origin: &GlobalOrigin, redis_url: &str, group: &str, config: &Path, out: &Path) -> Child {
    common::redis::shared_host(&origin.origin.url(), redis_url, group, 4, config, out)
}

/// Waits for every host, at most `limit`.
fn finish(hosts: Vec<Child>, limit: Duration) -> Vec<Output> {
    let started = Instant::now();
    hosts
        .into_iter()
        .map(|mut child| {
            while child.try_wait().expect("status").is_none() {
                if started.elapsed() > limit {
                    let _ = child.kill();
                    panic!("a host hung");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.wait_with_output().expect("output")
        })
        .collect()
}

fn summary(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "a host failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON summary")
}

/// How many of the out dirs hold each finished file (nothing else may look finished).
fn copies(outs: &[PathBuf]) -> HashMap<String, usize> {
    let mut copies = HashMap::new();
    for out in outs {
        for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("item-") && !name.ends_with(".partial") {
                *copies.entry(name).or_insert(0) += 1;
            }
        }
    }
    copies
}

fn outs(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| dir.join(format!("out{i}"))).collect()
}

#[test]
fn four_hosts_share_one_quota_exactly_and_each_file_is_downloaded_once() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // 20 a second, burst 8, for all clients together: about 6 s of work.
    let origin = origin(120, 20.0, 8);
    let config = config(dir.path(), 20.0, 8);
    let outs = outs(dir.path(), 4);
    // They join one by one, so shares are rebalanced as each arrives: a host raises its rate
    // only after the others have lowered theirs.
    let hosts = outs
        .iter()
        .map(|out| {
            let child = host(&origin, &redis.url(), "four", &config, out);
            std::thread::sleep(Duration::from_millis(400));
            child
        })
        .collect();
    let outputs = finish(hosts, Duration::from_secs(90));
    let downloaded: u64 = outputs
        .iter()
        .map(|o| summary(o)["downloaded"].as_u64().expect("count"))
        .sum();
    let stats = origin.origin.stats();
    let copies = copies(&outs);
    assert_eq!(stats.throttled.load(Relaxed), 0, "the origin answered 429");
    assert_eq!(downloaded, origin.files as u64);
    assert_eq!(
        stats.requests.load(Relaxed),
        origin.files as u64,
        "one request a file"
    );
    assert_eq!(copies.len(), origin.files);
    assert!(copies.values().all(|n| *n == 1), "{copies:?}");
    let achieved = stats.request_rate();
    println!(
        "4 hosts, one quota of {}/s: {} requests, 0 x 429, {achieved:.2}/s in aggregate ({:.1} %)",
        origin.rate_per_s,
        origin.files,
        100.0 * achieved / origin.rate_per_s
    );
    assert!(
        achieved >= 0.95 * origin.rate_per_s,
        "{achieved:.2}/s of {}/s",
        origin.rate_per_s
    );
}

#[test]
fn hosts_can_share_one_output_folder() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(30, 20.0, 8);
    let config = config(dir.path(), 20.0, 8);
    let out = dir.path().join("shared-out");
    let hosts = (0..2)
        .map(|_| host(&origin, &redis.url(), "one-folder", &config, &out))
        .collect();
    let outputs = finish(hosts, Duration::from_secs(60));
    let downloaded: u64 = outputs
        .iter()
        .map(|o| summary(o)["downloaded"].as_u64().expect("count"))
        .sum();
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(downloaded, 30);
    assert_eq!(copies(std::slice::from_ref(&out)).len(), 30);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("item-") && !n.contains(".partial")),
        "only finished files are left: {names:?}"
    );
    assert_eq!(origin.origin.stats().requests.load(Relaxed), 30);
}

/// The first file request is answered 429 with Retry-After: 3; the host that gets it publishes
/// the pause, and no host sends anything until it ends.
#[test]
fn a_retry_after_seen_by_one_host_pauses_every_host() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = common::ScriptedOrigin::start(40, |n| {
        if n == 4 {
            (429, "retry-after: 3\r\n".to_string())
        } else {
            (200, String::new())
        }
    });
    let config = config(dir.path(), 10.0, 8);
    // Retry-After is honoured up to the policy's longest backoff: 5 s here.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(r#""max_ms":1000"#, r#""max_ms":5000"#),
    )
    .expect("config");
    let hosts = (0..2)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            common::redis::shared_host(&origin.url, &redis.url(), "paused", 4, &config, &out)
        })
        .collect();
    let outputs = finish(hosts, Duration::from_secs(60));
    for output in &outputs {
        summary(output);
    }
    let times = origin.requests.lock().expect("log").clone();
    let throttled_at = times[4];
    // Requests already in flight may land just after it; then nothing for the pause, which
    // the other host learns of at its next renewal (a quarter lease).
    let during: Vec<f64> = times[5..]
        .iter()
        .map(|t| t.duration_since(throttled_at).as_secs_f64())
        .filter(|after| (0.4..2.9).contains(after))
        .collect();
    assert!(
        during.is_empty(),
        "requests during the pause, s after the 429: {during:?}"
    );
    assert_eq!(
        times.len(),
        41,
        "each file once, plus the one that was retried"
    );
}

/// The origin announces the group's quota (4 a second left, every second) to every host; each
/// takes its part, so together they keep to it rather than each to all of it.
#[test]
fn an_announced_quota_is_the_group_s() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = common::ScriptedOrigin::start(48, |_| {
        (
            200,
            "x-ratelimit-remaining: 4\r\nx-ratelimit-reset: 1\r\n".to_string(),
        )
    });
    let config = config(dir.path(), 10.0, 8);
    let hosts = (0..2)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            common::redis::shared_host(&origin.url, &redis.url(), "announced", 2, &config, &out)
        })
        .collect();
    for output in &finish(hosts, Duration::from_secs(60)) {
        summary(output);
    }
    let times = origin.requests.lock().expect("log").clone();
    assert_eq!(times.len(), 48);
    // From the tenth request on, when both hosts have heard the announcement.
    let rate = (times.len() - 10) as f64 / (times[times.len() - 1] - times[9]).as_secs_f64();
    println!("2 hosts told the group has 4/s: {rate:.2}/s together");
    assert!((3.0..=4.6).contains(&rate), "{rate:.2}/s");
}

#[test]
fn a_host_killed_midway_returns_its_share_and_its_files() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(90, 15.0, 8);
    let config = config(dir.path(), 15.0, 8);
    let outs = outs(dir.path(), 3);
    let mut hosts: Vec<Child> = outs
        .iter()
        .map(|out| host(&origin, &redis.url(), "killed", &config, out))
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    let mut killed = hosts.remove(0);
    killed.kill().expect("kill");
    let _ = killed.wait();
    let killed_at = Instant::now();
    let outputs = finish(hosts, Duration::from_secs(90));
    let finished_in = killed_at.elapsed();
    for output in &outputs {
        summary(output);
    }
    let stats = origin.origin.stats();
    let copies = copies(&outs);
    assert_eq!(stats.throttled.load(Relaxed), 0, "the origin answered 429");
    assert_eq!(
        copies.len(),
        origin.files,
        "every file, once finished, is somewhere"
    );
    // At most the killed host's one file in flight is fetched twice.
    assert!(
        stats.requests.load(Relaxed) <= origin.files as u64 + 3,
        "{} requests for {} files",
        stats.requests.load(Relaxed),
        origin.files
    );
    println!(
        "a host killed 2.5 s in: the other two finished {:.1} s later, {} requests, 0 x 429, \
         {:.2}/s in aggregate",
        finished_in.as_secs_f64(),
        stats.requests.load(Relaxed),
        stats.request_rate()
    );
}

#[test]
fn redis_stopped_and_restarted_empty_midway_loses_nothing_and_holds_the_bound() {
    let _alone = alone();
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(80, 10.0, 8);
    let config = config(dir.path(), 10.0, 8);
    let outs = outs(dir.path(), 2);
    let hosts = outs
        .iter()
        .map(|out| host(&origin, &redis.url(), "outage", &config, out))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    redis.stop();
    std::thread::sleep(Duration::from_secs(3));
    redis.restart();
    let outputs = finish(hosts, Duration::from_secs(90));
    let stats = origin.origin.stats();
    for output in &outputs {
        summary(output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.matches("Redis unreachable").count(),
            1,
            "said once per outage:\n{stderr}"
        );
        assert!(stderr.contains("rejoined"), "{stderr}");
    }
    assert_eq!(stats.throttled.load(Relaxed), 0, "the origin answered 429");
    assert_eq!(copies(&outs).len(), origin.files, "every file downloaded");
    println!(
        "Redis down 3 s, back empty: {} requests for {} files, 0 x 429",
        stats.requests.load(Relaxed),
        origin.files
    );
}

#[test]
fn a_slow_redis_keeps_decisions_local_and_the_bound() {
    let _alone = alone();
    let redis = Redis::start();
    // 150 ms each way: every renewal and claim takes 300 ms (the lease is 1 s). Decisions
    // never wait on Redis; shares, claims and the bound hold as on a fast one.
    let port = common::redis::slow_proxy(redis.port, Duration::from_millis(150));
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(40, 10.0, 8);
    let config = config(dir.path(), 10.0, 8);
    let outs = outs(dir.path(), 2);
    let url = format!("redis://127.0.0.1:{port}/");
    let hosts = outs
        .iter()
        .map(|out| host(&origin, &url, "slow", &config, out))
        .collect();
    let outputs = finish(hosts, Duration::from_secs(90));
    for output in &outputs {
        summary(output);
    }
    let stats = origin.origin.stats();
    assert_eq!(stats.throttled.load(Relaxed), 0, "the origin answered 429");
    assert_eq!(copies(&outs).len(), origin.files, "every file downloaded");
    assert_eq!(
        stats.requests.load(Relaxed),
        origin.files as u64,
        "each file once"
    );
    println!(
        "Redis 300 ms away: {} requests for {} files, 0 x 429, {:.2}/s",
        stats.requests.load(Relaxed),
        origin.files,
        stats.request_rate()
    );
}

#[test]
fn redis_unreachable_from_the_start_runs_at_the_fallback_share() {
    let _alone = alone();
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(10, 8.0, 4);
    let config = config(dir.path(), 8.0, 4);
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = dir.path().join("out");
    let started = Instant::now();
    let outputs = finish(
        vec![host(
            &origin,
            &format!("redis://127.0.0.1:{port}/"),
            "alone",
            &config,
            &out,
        )],
        Duration::from_secs(60),
    );
    let took = started.elapsed();
    let summary = summary(&outputs[0]);
    let stderr = String::from_utf8_lossy(&outputs[0].stderr);
    assert_eq!(summary["downloaded"], 10);
    assert_eq!(stderr.matches("Redis unreachable").count(), 1, "{stderr}");
    assert_eq!(origin.origin.stats().throttled.load(Relaxed), 0);
    // A quarter of 8/s: 10 files take at least (10 - 1 burst) / 2 s.
    let rate = origin.origin.stats().request_rate();
    assert!(
        rate <= 2.0 * 1.05,
        "{rate:.2}/s is above the fallback share"
    );
    println!("Redis unreachable: fallback at {rate:.2}/s (2/s), done in {took:.1?}");
}

#[test]
fn bad_urls_and_disagreeing_configs_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_pacer"))
            .args(["run", "--origin", "http://127.0.0.1:9/", "--out"])
            .arg(dir.path().join("out"))
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .output()
            .expect("pacer runs");
        assert!(!output.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let said = run(&["--shared", "http://127.0.0.1:6379/"]);
    assert!(
        said.contains("--shared: expected redis://HOST:PORT/"),
        "{said}"
    );
    let said = run(&["--shared", "redis://127.0.0.1:notaport/"]);
    assert!(said.contains("is not a Redis URL"), "{said}");
    let said = run(&["--shared", "redis://127.0.0.1:1/", "--group", "a b"]);
    assert!(said.contains("--group"), "{said}");
    let said = run(&["--shared", "redis://127.0.0.1:1/", "--max-hosts", "0"]);
    assert!(said.contains("--max-hosts"), "{said}");
    let said = run(&["--group", "g"]);
    assert!(said.contains("--shared"), "--group needs --shared: {said}");

    // A group whose limiter another host configured differently.
    let redis = Redis::start();
    let origin = origin(4, 10.0, 4);
    let config = config(dir.path(), 10.0, 4);
    let mut connection = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    redis::cmd("SET")
        .arg("pacer:{mixed}:origin:identity")
        .arg("rate 7200/h, burst 4, max-hosts 4, lease 1000 ms")
        .exec(&mut connection)
        .expect("set");
    let outputs = finish(
        vec![host(
            &origin,
            &redis.url(),
            "mixed",
            &config,
            &dir.path().join("o"),
        )],
        Duration::from_secs(30),
    );
    assert!(!outputs[0].status.success());
    let stderr = String::from_utf8_lossy(&outputs[0].stderr);
    assert!(
        stderr.contains("configured differently in group \"mixed\"")
            && stderr.contains("rate 7200/h"),
        "{stderr}"
    );
    assert_eq!(origin.origin.stats().requests.load(Relaxed), 0);
}
