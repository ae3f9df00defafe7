//! What `pacer run` takes from an origin and a user, it bounds: redirects stay on the origin
//! (and never leave https) unless `--redirects` says otherwise; the index's size, entry count,
//! names and sizes are capped with errors naming the entry; names reach the wire
//! percent-encoded and never reach the terminal raw; counts and sizes from flags and the
//! config are capped with errors naming the flag or field. Real servers on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacer_cli::http::Redirects;
use pacer_cli::pipeline::{self, NoProgress, PipelineError, PipelineOptions, Summary};
use pacer_host::{BufferPool, Policy, SystemEnvironment};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

mod common;
mod raw;
use raw::{Conn, RawOrigin};

const BODY: &[u8] = b"the one file's bytes\n";

fn policy() -> Arc<Mutex<Policy>> {
    let runtime = common::runtime();
    let module = common::real_module(&runtime);
    let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect())).expect("instance");
    policy
        .configure(
            r#"{"limiters":[{"name":"origin","tokens_per_hour":36000,"burst":3}],
                "backoff":{"base_ms":20,"max_ms":100,"failure_threshold":50,"open_ms":100}}"#,
        )
        .expect("config");
    Arc::new(Mutex::new(policy))
}

/// A run of `url` into a fresh directory, with `redirects` and a CA to trust, bounded in time.
async fn run(
    url: &str,
    redirects: Redirects,
    ca_cert: Option<PathBuf>,
) -> (tempfile::TempDir, Result<Summary, PipelineError>) {
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = PipelineOptions::new(url, out.path());
    options.max_attempts = 2;
    options.http.redirects = redirects;
    options.http.read_timeout = Duration::from_secs(10);
    options.ca_cert = ca_cert;
    let run = pipeline::run(
        options,
        policy(),
        BufferPool::new(64 << 10, 4),
        Arc::new(NoProgress),
    );
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends");
    (out, result)
}

/// Serves `/index.json` listing `f0`, and `f0`'s bytes at `/files/f0` and `/real/f0`.
fn serving_f0(path: &str, conn: &mut dyn Conn) -> bool {
    match path {
        "/index.json" => raw::respond(conn, 200, "", raw::index(&[("f0", BODY)]).as_bytes()),
        "/files/f0" | "/real/f0" => raw::respond(conn, 200, "", BODY),
        _ => return false,
    }
    true
}

/// An origin whose `/files/f0` redirects to `location`.
fn redirecting_to(location: String) -> RawOrigin {
    RawOrigin::start(move |path: &str, conn: &mut dyn Conn| {
        if path == "/files/f0" {
            raw::respond(conn, 302, &format!("location: {location}\r\n"), b"");
        } else if !serving_f0(path, conn) {
            raw::respond(conn, 404, "", b"");
        }
    })
}

fn downloaded(result: &Result<Summary, PipelineError>, out: &Path) -> bool {
    matches!(result, Ok(summary) if summary.downloaded == 1)
        && std::fs::read(out.join("f0")).is_ok_and(|bytes| bytes == BODY)
}

fn refused(result: &Result<Summary, PipelineError>, expected: &[&str]) {
    match result {
        Err(PipelineError::Redirect(why)) => {
            for part in expected {
                assert!(why.contains(part), "{why:?} should say {part:?}");
            }
        }
        other => panic!("expected a refused redirect, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_within_the_origin_is_followed_unless_redirects_are_off() {
    let origin = redirecting_to("/real/f0".into());
    let (out, result) = run(&origin.url, Redirects::SameOrigin, None).await;
    assert!(downloaded(&result, out.path()), "{result:?}");
    assert_eq!(origin.count("/real/f0"), 1);

    let (out, result) = run(&origin.url, Redirects::None, None).await;
    refused(&result, &["redirects are not followed", "--redirects none"]);
    assert!(!out.path().join("f0").exists());
    assert_eq!(
        origin.count("/real/f0"),
        1,
        "the refused redirect was not fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_stops_the_run_unless_any_host_is_allowed() {
    let elsewhere = RawOrigin::start(|path: &str, conn: &mut dyn Conn| {
        serving_f0(path, conn);
    });
    let origin = redirecting_to(format!("{}/files/f0", elsewhere.url));
    let (out, result) = run(&origin.url, Redirects::SameOrigin, None).await;
    refused(
        &result,
        &["not the origin", &elsewhere.url, "--redirects same-origin"],
    );
    assert_eq!(elsewhere.count("/"), 0, "the other host was never asked");
    assert!(!out.path().join("f0").exists());

    let (out, result) = run(&origin.url, Redirects::AnyHost, None).await;
    assert!(downloaded(&result, out.path()), "{result:?}");
    assert_eq!(elsewhere.count("/files/f0"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_redirected_elsewhere_is_refused_too() {
    let elsewhere = RawOrigin::start(|path: &str, conn: &mut dyn Conn| {
        serving_f0(path, conn);
    });
    let target = format!("{}/index.json", elsewhere.url);
    let origin = RawOrigin::start(move |_: &str, conn: &mut dyn Conn| {
        raw::respond(conn, 301, &format!("location: {target}\r\n"), b"");
    });
    let (_out, result) = run(&origin.url, Redirects::SameOrigin, None).await;
    refused(&result, &["not the origin", "index.json"]);
    assert_eq!(elsewhere.count("/"), 0);
}

/// A TLS server config for 127.0.0.1, and the PEM of the CA that signed it, in `dir`.
fn tls_for_localhost(dir: &Path) -> (rustls::ServerConfig, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pacer redirect test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).expect("CA written");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .expect("server certificate");
    (config, ca_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_never_redirects_to_plain_http_unless_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, ca) = tls_for_localhost(dir.path());
    let plain = RawOrigin::start(|path: &str, conn: &mut dyn Conn| {
        serving_f0(path, conn);
    });
    let location = format!("{}/files/f0", plain.url);
    let origin = RawOrigin::start_tls(config, move |path: &str, conn: &mut dyn Conn| {
        if path == "/files/f0" {
            raw::respond(conn, 307, &format!("location: {location}\r\n"), b"");
        } else {
            serving_f0(path, conn);
        }
    });
    assert!(origin.url.starts_with("https://"));
    for rule in [Redirects::SameOrigin, Redirects::AnyHost] {
        let (out, result) = run(&origin.url, rule, Some(ca.clone())).await;
        let expected = match rule {
            Redirects::AnyHost => "from https to plain http",
            _ => "not the origin",
        };
        refused(&result, &[expected, rule.flag()]);
        assert!(!out.path().join("f0").exists());
    }
    assert_eq!(plain.count("/"), 0, "nothing went out in clear");
    let (out, result) = run(&origin.url, Redirects::Insecure, Some(ca)).await;
    assert!(downloaded(&result, out.path()), "{result:?}");
    assert_eq!(plain.count("/files/f0"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_past_the_size_cap_is_refused_whether_or_not_it_says_its_length() {
    let cap = pacer_cli::catalogue::MAX_INDEX_BYTES;
    // Announces one byte too many (and sends none of it).
    let announced = RawOrigin::start(move |_: &str, conn: &mut dyn Conn| {
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            cap + 1
        );
        let _ = conn.write_all(head.as_bytes());
    });
    // Says nothing of its length, and streams past the cap until the reader hangs up.
    let streamed = RawOrigin::start(move |_: &str, conn: &mut dyn Conn| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"files\":[");
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..=cap >> 20 {
            if conn.write_all(&spaces).is_err() {
                return;
            }
        }
        let _ = conn.write_all(b"]}");
    });
    for origin in [announced, streamed] {
        let (_out, result) = run(&origin.url, Redirects::SameOrigin, None).await;
        match result {
            Err(PipelineError::Index(why)) => {
                assert!(
                    why.contains(&format!("longer than the {cap} bytes")),
                    "{why}"
                )
            }
            other => panic!("{}: expected the index refused, got {other:?}", origin.url),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_whose_sizes_overflow_is_refused_naming_the_entry() {
    let sha = "0".repeat(64);
    let index = format!(
        r#"{{"files":[{{"name":"a","size":{},"sha256":"{sha}"}},{{"name":"b","size":2,"sha256":"{sha}"}}]}}"#,
        u64::MAX - 1
    );
    let origin = RawOrigin::start(move |_: &str, conn: &mut dyn Conn| {
        raw::respond(conn, 200, "", index.as_bytes());
    });
    let (_out, result) = run(&origin.url, Redirects::SameOrigin, None).await;
    match result {
        Err(PipelineError::Index(why)) => {
            assert!(why.starts_with("files[1].size: the sizes"), "{why}")
        }
        other => panic!("expected the index refused, got {other:?}"),
    }
}

/// `pacer run` with `args`, from the checkout, with its own compile cache, bounded in time.
fn pacer(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
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
    child.wait_with_output().expect("output")
}

#[test]
fn names_with_spaces_percent_hash_query_and_non_ascii_reach_a_static_server_intact() {
    let names = [
        "a b.bin",
        "100%41.bin",
        "x#y.bin",
        "what?.bin",
        "caf\u{e9} \u{65e5}\u{672c}.bin",
    ];
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(site.path().join("files")).expect("mkdir");
    let contents: Vec<Vec<u8>> = names
        .iter()
        .map(|name| format!("bytes of {name}\n").into_bytes())
        .collect();
    for (name, bytes) in names.iter().zip(&contents) {
        std::fs::write(site.path().join("files").join(name), bytes).expect("file");
    }
    let listed: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&contents)
        .map(|(n, b)| (*n, b.as_slice()))
        .collect();
    std::fs::write(site.path().join("index.json"), raw::index(&listed)).expect("index");
    let server = common::StaticServer::start(site.path());
    let out = site.path().join("out");
    let output = pacer(&[
        "run",
        "--json",
        "--origin",
        &server.url,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    drop(server);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(summary["downloaded"], names.len(), "{summary}");
    for (name, bytes) in names.iter().zip(&contents) {
        assert_eq!(&std::fs::read(out.join(name)).expect(name), bytes, "{name}");
    }
}

#[test]
fn a_name_with_an_ansi_escape_is_refused_by_entry_and_never_reaches_the_terminal() {
    let sha = "0".repeat(64);
    let index = format!(
        r#"{{"files":[{{"name":"fine","size":1,"sha256":"{sha}"}},{{"name":"red\u001b[31m\u001b]0;owned\u0007","size":1,"sha256":"{sha}"}}]}}"#
    );
    let origin = RawOrigin::start(move |path: &str, conn: &mut dyn Conn| match path {
        "/index.json" => raw::respond(conn, 200, "", index.as_bytes()),
        _ => raw::respond(conn, 404, "", b""),
    });
    let out = tempfile::tempdir().expect("tempdir");
    let output = pacer(&[
        "run",
        "--origin",
        &origin.url,
        "--out",
        out.path().to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("files[1].name: ") && stderr.contains("U+001B, a control character"),
        "{stderr}"
    );
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !stream.iter().any(|&b| b == 0x1b || b == 0x07),
            "a control byte reached the terminal: {:?}",
            String::from_utf8_lossy(stream)
        );
    }
}

#[test]
fn counts_and_sizes_from_flags_and_config_are_capped_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str, pool: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"{{"limiters":[{{"name":"origin","tokens_per_hour":3600,"burst":3}}],"pool":{pool}}}"#
            ),
        )
        .expect("config");
        path.to_str().expect("utf-8").to_string()
    };
    let big_buffers = config("big-buffers.json", r#"{"buffer_size":16777217}"#);
    let many_buffers = config("many-buffers.json", r#"{"max_buffers":4097}"#);
    let max_buffers = config("max-buffers.json", r#"{"buffer_size":16777216}"#);
    let out = dir.path().join("out");
    let out = out.to_str().expect("utf-8");
    let small = ["--files", "1", "--file-size", "10"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--workers", "0"],
            "--workers: must be at least 1, got 0",
        ),
        (
            vec!["--workers", "257"],
            "--workers: must be at most 256, got 257",
        ),
        (vec!["--files", "100001"], "--files: must be at most 100000"),
        (
            vec!["--file-size", "1073741825"],
            "--file-size: must be at most 1073741824",
        ),
        (
            vec!["--files", "100000", "--file-size", "1073741824"],
            "--files x --file-size: 107374182400000 bytes",
        ),
        (
            [&small[..], &["--config", &big_buffers]].concat(),
            "config: pool.buffer_size: must be at most 16777216",
        ),
        (
            [&small[..], &["--config", &many_buffers]].concat(),
            "config: pool.max_buffers: must be at most 4096",
        ),
        (
            [&small[..], &["--config", &max_buffers, "--workers", "65"]].concat(),
            "--workers 65 x config pool.buffer_size 16777216",
        ),
    ];
    for (args, expected) in cases {
        let all = [&["run", "--out", out][..], &args].concat();
        let output = pacer(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // At the caps themselves, the same run works.
    let output = pacer(
        &[
            &["run", "--json", "--out", out, "--origin-rate", "36000"][..],
            &small,
            &["--config", &max_buffers, "--workers", "64"],
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
