//! `pacer run --shared` trusts Redis only as far as it should, against real redis-servers the
//! tests start: the password is never printed or logged; `rediss://` with a certificate made
//! here, and ACL users, work; values any Redis client could write (hostile records, pauses of
//! a day, keys of the wrong type) are discarded or cut; `--max-hosts` is enforced; a group's
//! done marks belong to one catalogue.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::redis::Redis;

/// The tests run groups of processes on 2 cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// A distinctive secret: any trace of it in the output is a leak.
const SECRET: &str = "pw-7f3a9c-S3cret";

/// A config at `rate_per_s`, burst 4, whose longest pause is 1 s (backoff max 1 s, circuit
/// open 0.5 s).
fn config(dir: &Path, rate_per_s: f64) -> PathBuf {
    let path = dir.join("pacer.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"limiters":[{{"name":"origin","tokens_per_hour":{},"burst":4}}],
                "jitter":{{"strategy":"none"}},
                "backoff":{{"base_ms":50,"max_ms":1000,"failure_threshold":50,"open_ms":500}}}}"#,
            rate_per_s * 3600.0
        ),
    )
    .expect("config");
    path
}

/// `pacer run --shared URL` against `origin`, tracing everything (RUST_LOG=trace), with
/// `extra` arguments; `--json` unless `extra` says `--no-json`.
fn pacer(origin: &str, url: &str, config: &Path, out: &Path, extra: &[&str]) -> Child {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
    command
        .args(["run", "--origin", origin, "--out"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .args(["--shared", url, "--lease-ms", "1000"]);
    if !extra.contains(&"--no-json") {
        command.arg("--json");
    }
    command
        .args(extra.iter().filter(|a| **a != "--no-json"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("XDG_CACHE_HOME", cache)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs")
}

/// Waits for every process, at most `limit` in all.
fn finish(children: Vec<Child>, limit: Duration) -> Vec<Output> {
    let started = Instant::now();
    children
        .into_iter()
        .map(|mut child| {
            while child.try_wait().expect("status").is_none() {
                if started.elapsed() > limit {
                    let _ = child.kill();
                    let output = child.wait_with_output().expect("output");
                    panic!(
                        "a host hung for {limit:?}:\n{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.wait_with_output().expect("output")
        })
        .collect()
}

fn run(origin: &str, url: &str, config: &Path, out: &Path, extra: &[&str]) -> Output {
    finish(
        vec![pacer(origin, url, config, out, extra)],
        Duration::from_secs(60),
    )
    .remove(0)
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn summary(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "a host failed:\n{}", text(output));
    serde_json::from_slice(&output.stdout).expect("a JSON summary")
}

/// Every file under `dir`, recursively, as text.
fn files_text(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all += &files_text(&path);
        } else {
            all += &String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default());
        }
    }
    all
}

fn redis_connection(redis: &Redis) -> redis::Connection {
    redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("redis")
}

#[test]
fn a_password_is_never_printed_or_logged() {
    let _alone = alone();
    // The default user's password, and an ACL user with the same one.
    let user = format!(">{SECRET}");
    let redis = Redis::start_with(
        &[
            "--requirepass",
            SECRET,
            "--user",
            "pacer",
            "on",
            &user,
            "~*",
            "+@all",
        ],
        false,
    );
    let origin = common::ScriptedOrigin::start(6, |_| (200, String::new()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), 50.0);
    let port = redis.port;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = |name: &str| dir.path().join(name);
    let mut said = String::new();
    // It works, with the startup line and the summary in text, and in JSON.
    let url = format!("redis://:{SECRET}@127.0.0.1:{port}/");
    let output = run(&origin.url, &url, &config, &out("a"), &["--no-json"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("on redis://:***@127.0.0.1:{port}/")),
        "{}",
        text(&output)
    );
    said += &text(&output);
    let url = format!("redis://pacer:{SECRET}@127.0.0.1:{port}/0");
    let output = run(&origin.url, &url, &config, &out("b"), &[]);
    let json = summary(&output);
    assert!(json["group"]["renewals"].as_u64() > Some(0), "{json}");
    said += &text(&output);
    // A wrong password stops the run at once, saying why, without the password.
    let url = format!("redis://pacer:{SECRET}-wrong@127.0.0.1:{port}/");
    let output = run(&origin.url, &url, &config, &out("c"), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--shared redis://pacer:***@127.0.0.1")
            && stderr.contains("Redis refused this host"),
        "{stderr}"
    );
    said += &text(&output);
    // Redis unreachable: the warnings name the URL, redacted.
    let url = format!("redis://:{SECRET}@127.0.0.1:{dead}/");
    let output = run(&origin.url, &url, &config, &out("d"), &[]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Redis unreachable"),
        "{}",
        text(&output)
    );
    said += &text(&output);
    // Bad URLs are refused, named redacted.
    for url in [
        format!("redis://:{SECRET}@127.0.0.1:notaport/"),
        format!("http://:{SECRET}@127.0.0.1:{port}/"),
        format!("rediss://:{SECRET}@127.0.0.1:{port}/#insecure"),
    ] {
        let output = run(&origin.url, &url, &config, &out("e"), &[]);
        assert!(!output.status.success(), "{url} was accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("--shared"),
            "{}",
            text(&output)
        );
        said += &text(&output);
    }
    said += &files_text(dir.path());
    // Every path above was taken, with logging on below warnings.
    assert!(
        said.len() > 3_000 && said.contains("INFO"),
        "the trace said little: {said}"
    );
    assert!(
        !said.contains(SECRET) && !said.contains("S3cret"),
        "the password leaked:\n{said}"
    );
}

#[test]
fn rediss_with_an_acl_user_and_a_ca_made_in_the_test() {
    let _alone = alone();
    // TLS only, the default user off: only `pacer` with its password gets in.
    let user = format!(">{SECRET}");
    let redis = Redis::start_with(
        &[
            "--user", "default", "off", "--user", "pacer", "on", &user, "~pacer:*", "+@all",
        ],
        true,
    );
    let origin = common::ScriptedOrigin::start(8, |_| (200, String::new()));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), 50.0);
    let ca = redis.ca_cert();
    let ca = ca.to_str().expect("a UTF-8 path");
    let url = format!("rediss://pacer:{SECRET}@127.0.0.1:{}/", redis.port);
    let output = run(
        &origin.url,
        &url,
        &config,
        &dir.path().join("a"),
        &["--redis-ca-cert", ca],
    );
    let json = summary(&output);
    assert_eq!(json["downloaded"], 8, "{}", text(&output));
    assert!(json["group"]["renewals"].as_u64() > Some(2), "{json}");
    assert_eq!(json["group"]["fallbacks"], 0, "{json}");
    let requests = origin.requests.lock().expect("log").len();
    assert_eq!(requests, 8);
    let localhost = format!("rediss://pacer:{SECRET}@localhost:{}/", redis.port);

    // Refused at once, saying why: a certificate nobody trusts, no password, a wrong one, a
    // CA file for plain redis://, TLS not spoken.
    for (url, extra, why) in [
        (url.clone(), vec![], "TLS failed"),
        (
            format!("rediss://127.0.0.1:{}/", redis.port),
            vec!["--redis-ca-cert", ca],
            "Redis refused this host",
        ),
        (
            format!("rediss://pacer:nope@127.0.0.1:{}/", redis.port),
            vec!["--redis-ca-cert", ca],
            "Redis refused this host",
        ),
        (
            format!("redis://pacer:{SECRET}@127.0.0.1:{}/", redis.port),
            vec!["--redis-ca-cert", ca],
            "only for a rediss://",
        ),
        (
            url.clone(),
            vec!["--redis-ca-cert", "/nonexistent/ca.pem"],
            "--redis-ca-cert /nonexistent/ca.pem",
        ),
    ] {
        let output = run(&origin.url, &url, &config, &dir.path().join("b"), &extra);
        let said = text(&output);
        assert!(!output.status.success(), "{url} {extra:?} ran:\n{said}");
        assert!(
            said.contains(why),
            "{url} {extra:?}: expected {why:?}:\n{said}"
        );
        assert!(!said.contains(SECRET), "{said}");
    }
    assert_eq!(
        origin.requests.lock().expect("log").len(),
        requests,
        "a refused host requested files"
    );
    // By name, too.
    let output = run(
        &origin.url,
        &localhost,
        &config,
        &dir.path().join("c"),
        &["--redis-ca-cert", ca],
    );
    assert_eq!(summary(&output)["by_other_hosts"], 8, "{}", text(&output));
}

/// Values a hostile or broken client wrote into the group's keys before its hosts start:
/// records claiming the whole rate for ever, a group that "formed" in the future, a pause of a
/// day (group "hostile": without the checks its hosts would wait for ever, or a day); NaN,
/// infinite, negative and unparsable records ("nan"); keys of the wrong type ("types").
#[test]
fn hostile_values_in_redis_are_discarded_or_cut() {
    let _alone = alone();
    let redis = Redis::start();
    let mut connection = redis_connection(&redis);
    let key = |group: &str, what: &str| format!("pacer:{{{group}}}:origin:{what}");
    // Records that would starve every host: the whole rate, claimed for ever.
    for (group, host, record) in [
        ("hostile", "evil-huge", "1e308 1e308 99999999999999999"),
        ("hostile", "evil-rate", "7200000 7200000 99999999999999999"),
        ("hostile", "evil-far", "72000 72000 1e300"),
        ("nan", "evil-nan", "nan nan nan"),
        ("nan", "evil-negative", "-5 -5 -5"),
        ("nan", "evil-text", "abc"),
        ("nan", "evil-inf", "inf inf inf"),
        ("nan", "evil-hex", "0x7fffffff 0x10 9e99"),
    ] {
        redis::cmd("HSET")
            .arg(key(group, "members"))
            .arg(host)
            .arg(record)
            .exec(&mut connection)
            .expect("HSET");
    }
    redis::cmd("HSET")
        .arg(key("hostile", "contact"))
        .arg("last")
        .arg("1e18")
        .arg("since")
        .arg("1e18")
        .exec(&mut connection)
        .expect("HSET");
    redis::cmd("SET")
        .arg(key("hostile", "pause"))
        .arg("1")
        .arg("PX")
        .arg(86_400_000)
        .exec(&mut connection)
        .expect("SET");
    // Another group's keys of the wrong type.
    redis::cmd("SET")
        .arg(key("types", "members"))
        .arg("not a hash")
        .exec(&mut connection)
        .expect("SET");
    redis::cmd("RPUSH")
        .arg(key("types", "identity"))
        .arg("a list")
        .exec(&mut connection)
        .expect("RPUSH");
    redis::cmd("SET")
        .arg(key("types", "contact"))
        .arg("x")
        .exec(&mut connection)
        .expect("SET");
    redis::cmd("HSET")
        .arg(key("types", "pause"))
        .arg("a")
        .arg("b")
        .exec(&mut connection)
        .expect("HSET");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), 20.0);
    for group in ["hostile", "nan", "types"] {
        let origin = common::ScriptedOrigin::start(30, |_| (200, String::new()));
        let started = Instant::now();
        let hosts = (0..2)
            .map(|i| {
                pacer(
                    &origin.url,
                    &redis.url(),
                    &config,
                    &dir.path().join(format!("{group}{i}")),
                    &["--group", group, "--max-hosts", "4"],
                )
            })
            .collect();
        let outputs = finish(hosts, Duration::from_secs(45));
        let took = started.elapsed();
        let mut said = String::new();
        for output in &outputs {
            summary(output);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.matches("discarded").count() <= 1,
                "said more than once:\n{stderr}"
            );
            said += &stderr;
        }
        assert!(said.contains("discarded"), "{group}: {said}");
        if group == "hostile" {
            assert!(said.contains("cut to it"), "{said}");
            let left: i64 = redis::cmd("PTTL")
                .arg(key(group, "pause"))
                .query(&mut connection)
                .expect("PTTL");
            assert!(left <= 1_000, "the pause of a day is still {left} ms");
        }
        let members: Vec<String> = redis::cmd("HKEYS")
            .arg(key(group, "members"))
            .query(&mut connection)
            .expect("HKEYS");
        assert!(
            members.iter().all(|m| !m.starts_with("evil")),
            "{members:?}"
        );
        assert_eq!(origin.requests.lock().expect("log").len(), 30);
        println!("group {group:?} over hostile keys: 30 files in {took:.1?}");
        // 30 files at 20/s take 1.5 s, plus a pause of at most 1 s and a lease of settling.
        assert!(took < Duration::from_secs(30), "{group}: {took:?}");
    }
}

#[test]
fn a_host_beyond_max_hosts_says_so_and_runs_at_its_fallback_share() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // 10/s for the group of 2; the third host, not admitted, takes its fallback share of 5/s.
    let config = config(dir.path(), 10.0);
    let files = 90;
    // Two origins with the same catalogue: one catalogue, so one set of claims, and the third
    // host's requests are told apart by where they arrive.
    let members = common::ScriptedOrigin::start(files, |_| (200, String::new()));
    let third = common::ScriptedOrigin::start(files, |_| (200, String::new()));
    let args = ["--group", "capped", "--max-hosts", "2"];
    let mut hosts = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("out{i}"));
        hosts.push(pacer(&members.url, &redis.url(), &config, &out, &args));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let out = dir.path().join("out2");
    hosts.push(pacer(&third.url, &redis.url(), &config, &out, &args));
    let outputs = finish(hosts, Duration::from_secs(60));
    let saying = "already has --max-hosts 2 hosts";
    for (i, output) in outputs.iter().enumerate() {
        let json = summary(output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = usize::from(i == 2);
        assert_eq!(
            stderr.matches(saying).count(),
            expected,
            "host {i}: {json}\n{stderr}"
        );
    }
    let first = members.requests.lock().expect("log").len();
    let times = third.requests.lock().expect("log").clone();
    assert_eq!(first + times.len(), files, "each file once");
    // Its first 3 s: at most its fallback share (5/s) and a bucket of 2 (burst 4 / 2 hosts),
    // one at the window's edge, and one of slack; and some (not starved).
    let early = times
        .iter()
        .filter(|t| t.duration_since(times[0]) < Duration::from_secs(3))
        .count();
    println!(
        "max-hosts 2, 3 hosts: the third made {early} requests in its first 3 s (5/s = 15), \
         {} in all of {files}",
        times.len()
    );
    assert!((3..=19).contains(&early), "{early} requests in 3 s");
}

#[test]
fn done_marks_belong_to_their_catalogue() {
    let _alone = alone();
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), 50.0);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Two origins whose catalogues have the same names and different contents.
    let origin = |seed: u64| {
        let options = pacer_cli::origin::OriginOptions {
            files: 6,
            file_size_bytes: 1_000,
            seed,
            tokens_per_hour: 360_000.0,
            burst: 10,
            ..Default::default()
        };
        runtime
            .block_on(pacer_cli::origin::Origin::start(options, 0))
            .expect("origin")
    };
    let (a, b) = (origin(1), origin(2));
    let index = |o: &pacer_cli::origin::Origin| {
        runtime
            .block_on(async {
                reqwest::get(format!("{}/index.json", o.url()))
                    .await?
                    .text()
                    .await
            })
            .expect("index")
    };
    let (index_a, index_b) = (index(&a), index(&b));
    let names = |index: &str| {
        pacer_cli::catalogue::parse(index)
            .expect("index")
            .into_iter()
            .map(|e| e.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&index_a), names(&index_b), "the same names");
    assert_ne!(index_a, index_b, "different files");
    let group = ["--group", "marks"];
    let once = |origin: &pacer_cli::origin::Origin, out: &str| {
        summary(&run(
            &origin.url(),
            &redis.url(),
            &config,
            &dir.path().join(out),
            &group,
        ))
    };
    let first = once(&a, "a");
    assert_eq!(first["downloaded"], 6, "{first}");
    // The same group, later, against the other origin: its files are not the first's.
    let other = once(&b, "b");
    assert_eq!(
        (&other["downloaded"], &other["by_other_hosts"]),
        (&6.into(), &0.into()),
        "{other}"
    );
    // Against the first again: done by a host of the group.
    let again = once(&a, "c");
    assert_eq!(
        (&again["downloaded"], &again["by_other_hosts"]),
        (&0.into(), &6.into()),
        "{again}"
    );
}

/// Hostile writes while the hosts run: a pause of a day, a record claiming the whole rate for
/// ever, and the group's identity replaced. The pause is cut to the longest backoff, the record
/// discarded, and a refused renewal makes the hosts fall back once their lease ends (said once),
/// instead of keeping their last grant for ever.
#[test]
fn hostile_writes_mid_run_are_cut_and_a_changed_identity_falls_back() {
    let _alone = alone();
    let redis = Redis::start();
    let mut connection = redis_connection(&redis);
    let key = |what: &str| format!("pacer:{{midrun}}:origin:{what}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), 20.0);
    let origin = common::ScriptedOrigin::start(80, |_| (200, String::new()));
    let started = Instant::now();
    let hosts = (0..2)
        .map(|i| {
            pacer(
                &origin.url,
                &redis.url(),
                &config,
                &dir.path().join(format!("out{i}")),
                &["--group", "midrun", "--max-hosts", "4"],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    redis::cmd("SET")
        .arg(key("pause"))
        .arg("1")
        .arg("PX")
        .arg(86_400_000)
        .exec(&mut connection)
        .expect("SET");
    redis::cmd("HSET")
        .arg(key("members"))
        .arg("evil")
        .arg("1e308 1e308 1e300")
        .exec(&mut connection)
        .expect("HSET");
    std::thread::sleep(Duration::from_millis(1000));
    redis::cmd("SET")
        .arg(key("identity"))
        .arg("rate 1/h, burst 1, max-hosts 1, lease 1 ms")
        .exec(&mut connection)
        .expect("SET");
    let outputs = finish(hosts, Duration::from_secs(45));
    let took = started.elapsed();
    let mut said = String::new();
    for output in &outputs {
        let json = summary(output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.matches("configured differently").count(),
            1,
            "said once:\n{stderr}"
        );
        assert!(json["group"]["fallbacks"].as_u64() >= Some(1), "{json}");
        said += &stderr;
    }
    assert!(said.contains("cut to it"), "{said}");
    assert!(said.contains("discarded"), "{said}");
    assert_eq!(origin.requests.lock().expect("log").len(), 80);
    println!("hostile writes mid-run: 80 files in {took:.1?}");
    assert!(took < Duration::from_secs(40), "{took:?}");
}
