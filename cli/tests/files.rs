//! `pacer run` cannot corrupt a file: partial files live where no catalogue name reaches,
//! symlinks are replaced rather than followed, bodies are capped at the index's size, and
//! the state file has one writer. Against real HTTP servers on loopback.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pacer_cli::pipeline::{self, NoProgress, PARTIAL_DIR, PipelineOptions, Summary};
use pacer_cli::state_file;
use pacer_host::{BufferPool, Policy, SystemEnvironment};
use sha2::{Digest, Sha256};

mod common;

/// 100 a second, so that pacing never slows these tests; quick backoff.
fn policy() -> Arc<Mutex<Policy>> {
    let runtime = common::runtime();
    let module = common::real_module(&runtime);
    let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect())).expect("instance");
    policy
        .configure(
            r#"{"seed":5,"limiters":[{"name":"origin","tokens_per_hour":360000,"burst":20}],
                "jitter":{"strategy":"none"},
                "pressure":{"medium":0.98,"high":0.99,"hysteresis":0.01},
                "backoff":{"base_ms":10,"max_ms":50,"failure_threshold":1000,"open_ms":10}}"#,
        )
        .expect("config");
    Arc::new(Mutex::new(policy))
}

async fn download(options: PipelineOptions) -> Summary {
    pipeline::run(
        options,
        policy(),
        BufferPool::new(64 << 10, 8),
        Arc::new(NoProgress),
    )
    .await
    .expect("run")
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Distinct bytes for file `i`.
fn bytes(i: u8, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|j| (j as u8).wrapping_mul(i * 2 + 1) ^ i)
        .collect()
}

/// A site for `python3 -m http.server`: `index.json` listing `files` in this order, and each
/// under `files/`.
fn site(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let site = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(site.path().join("files")).expect("mkdir");
    let mut listed = Vec::new();
    for (name, bytes) in files {
        std::fs::write(site.path().join("files").join(name), bytes).expect("write");
        listed.push(
            serde_json::json!({ "name": name, "size": bytes.len(), "sha256": sha256(bytes) }),
        );
    }
    std::fs::write(
        site.path().join("index.json"),
        serde_json::json!({ "files": listed }).to_string(),
    )
    .expect("index");
    site
}

/// The names in `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_x_and_x_partial_each_arrive_whole_in_either_order_and_survive_a_rerun() {
    // Today's bug, as reported: `x` streamed into `x.partial`, the other entry's final name.
    // In index order [x.partial, x] with one worker it loses x.partial every time; with two
    // workers the two streams meet in one file.
    let (x, x_partial) = (bytes(1, 300_000), bytes(2, 200_000));
    for (order, workers) in [([1, 0], 1), ([0, 1], 1), ([1, 0], 2), ([0, 1], 2)] {
        let files = [("x", x.clone()), ("x.partial", x_partial.clone())];
        let listed: Vec<_> = order.iter().map(|&i| files[i].clone()).collect();
        let site = site(&listed);
        let server = common::StaticServer::start(site.path());
        let out = tempfile::tempdir().expect("tempdir");
        let mut options = PipelineOptions::new(&server.url, out.path());
        options.workers = workers;
        let summary = download(options.clone()).await;
        let case = format!("order {order:?}, {workers} worker(s)");
        assert_eq!(
            (summary.downloaded, summary.failed.len()),
            (2, 0),
            "{case}: {summary:?}"
        );
        // (sha256s, not bytes, so that a failure prints two lines.)
        let held = |name: &str| {
            std::fs::read(out.path().join(name))
                .map(|b| sha256(&b))
                .ok()
        };
        let check = |when: &str| {
            assert_eq!(held("x"), Some(sha256(&x)), "{case}, {when}: x");
            assert_eq!(
                held("x.partial"),
                Some(sha256(&x_partial)),
                "{case}, {when}: x.partial"
            );
            assert_eq!(
                names(out.path()),
                BTreeSet::from(["x".to_string(), "x.partial".to_string()]),
                "{case}, {when}: nothing else is left"
            );
        };
        check("after the run");
        // A rerun finds both verified (it once cleared every *.partial as its own leftovers).
        let again = download(options).await;
        assert_eq!(
            (again.skipped, again.downloaded),
            (2, 0),
            "{case}: {again:?}"
        );
        check("after a rerun");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_at_the_partial_folder_or_a_final_name_are_replaced_never_followed() {
    let data = bytes(3, 150_000);
    let site = site(&[("a", data.clone()), ("b", data.clone())]);
    let server = common::StaticServer::start(site.path());
    let out = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, b"not yours").expect("write");
    // A planted partial folder, and a final name pointing at someone else's file.
    std::os::unix::fs::symlink(elsewhere.path(), out.path().join(PARTIAL_DIR)).expect("link");
    std::os::unix::fs::symlink(&victim, out.path().join("a")).expect("link");
    let summary = download(PipelineOptions::new(&server.url, out.path())).await;
    assert_eq!(summary.downloaded, 2, "{summary:?}");
    assert_eq!(
        std::fs::read(&victim).expect("victim"),
        b"not yours",
        "written through"
    );
    assert_eq!(
        names(elsewhere.path()),
        BTreeSet::from(["victim".to_string()])
    );
    for name in ["a", "b"] {
        let path = out.path().join(name);
        assert!(
            std::fs::symlink_metadata(&path).expect("there").is_file(),
            "{name} is a plain file now"
        );
        assert_eq!(std::fs::read(&path).expect("read"), data, "{name}");
    }
}

/// An origin for one file `f` of `SIZE` bytes whose body runs on past them: the right bytes,
/// then `EXTRA` more, with no Content-Length (the end is the connection's close, which comes
/// `HOLD` later). Another file `g` is announced with a Content-Length above its size. `HOLD` is
/// long, so that reading to the close and cutting off at once stay far apart on a loaded machine.
const SIZE: usize = 100_000;
const EXTRA: usize = 60_000;
const HOLD: Duration = Duration::from_secs(30);

async fn overlong_origin() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = bytes(4, SIZE + EXTRA);
    let index = serde_json::json!({ "files": [
        { "name": "f", "size": SIZE, "sha256": sha256(&body[..SIZE]) },
        { "name": "g", "size": SIZE, "sha256": sha256(&body[..SIZE]) },
    ]})
    .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (body, index) = (body.clone(), index.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = match path.as_str() {
                    "/index.json" => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            index.len()
                        );
                        socket.write_all((head + &index).as_bytes()).await
                    }
                    "/files/g" => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        socket.write_all(&body).await
                    }
                    _ => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                            .await;
                        let _ = socket.write_all(&body).await;
                        let _ = socket.flush().await;
                        tokio::time::sleep(HOLD).await;
                        Ok(())
                    }
                };
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_longer_than_the_index_says_fails_without_writing_past_its_size() {
    let url = overlong_origin().await;
    let out = tempfile::tempdir().expect("tempdir");
    // Watch the partial file while the origin holds the connection open after its body.
    let partial = out.path().join(PARTIAL_DIR).join("f");
    let (largest, watching) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(true)));
    let watcher = std::thread::spawn({
        let (largest, watching) = (Arc::clone(&largest), Arc::clone(&watching));
        move || {
            while watching.load(Relaxed) {
                if let Ok(meta) = std::fs::metadata(&partial) {
                    largest.fetch_max(meta.len(), Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut options = PipelineOptions::new(url, out.path());
    options.max_attempts = 2;
    options.workers = 2;
    let started = Instant::now();
    let summary = download(options).await;
    watching.store(false, Relaxed);
    watcher.join().expect("watcher");
    let failed: BTreeSet<_> = summary.failed.iter().cloned().collect();
    assert_eq!(
        failed,
        BTreeSet::from([
            (
                "f".to_string(),
                format!("body longer than the index's {SIZE} bytes")
            ),
            (
                "g".to_string(),
                format!(
                    "the origin sends {} bytes, the index says {SIZE}",
                    SIZE + EXTRA
                )
            ),
        ]),
        "{summary:?}"
    );
    assert!(
        largest.load(Relaxed) <= SIZE as u64,
        "the partial file grew to {} bytes, past the index's {SIZE}",
        largest.load(Relaxed)
    );
    // Cut off at once, not at the origin's close.
    assert!(
        started.elapsed() < HOLD,
        "took {:?}: the body was read to its end",
        started.elapsed()
    );
    assert!(names(out.path()).is_empty(), "{:?}", names(out.path()));
}

#[test]
fn many_concurrent_saves_of_the_state_file_all_land_and_leave_no_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = state_file::path_in(dir.path());
    // One run's writer shared by 16 workers, and 4 more writers on the same file (other
    // processes): 20 threads x 50 saves.
    let shared = Arc::new(state_file::Writer::new(path.clone()));
    let threads: Vec<_> = (0..20u8)
        .map(|t| {
            let writer = if t < 16 {
                Arc::clone(&shared)
            } else {
                Arc::new(state_file::Writer::new(path.clone()))
            };
            std::thread::spawn(move || {
                for i in 0..50u8 {
                    writer
                        .save(&[t, i, 0xAA])
                        .unwrap_or_else(|e| panic!("thread {t}, save {i}: {e}"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no save failed");
    }
    let saved = state_file::load(&path)
        .expect("a state file")
        .expect("present");
    assert_eq!(saved.snapshot.len(), 3);
    assert_eq!(saved.snapshot[2], 0xAA);
    assert_eq!(saved.snapshot[1], 49, "some thread's last save is the file");
    assert_eq!(
        names(dir.path()),
        BTreeSet::from([state_file::FILE_NAME.to_string()])
    );
}

#[test]
fn a_killed_run_s_state_temporaries_are_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = state_file::path_in(dir.path());
    state_file::save(&path, b"kept").expect("saved");
    for leftover in [".pacer-state.tmp", ".pacer-state.tmp-123-4"] {
        std::fs::write(dir.path().join(leftover), b"half").expect("write");
    }
    std::fs::write(dir.path().join("item"), b"not mine").expect("write");
    state_file::clear_temporaries(&path);
    assert_eq!(
        names(dir.path()),
        BTreeSet::from([".pacer-state".to_string(), "item".to_string()])
    );
    assert_eq!(
        state_file::load(&path)
            .expect("ok")
            .expect("present")
            .snapshot,
        b"kept"
    );
}

/// Every file request of a scripted origin fails at once: 16 workers fail together, and each
/// failure saves the policy's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_workers_failing_together_save_the_state_without_a_race() {
    let origin = common::ScriptedOrigin::start(32, |_| (503, String::new()));
    let out = tempfile::tempdir().expect("tempdir");
    let mut options = PipelineOptions::new(&origin.url, out.path());
    options.workers = 16;
    options.max_attempts = 4;
    options.state_file = Some(state_file::path_in(out.path()));
    let summary = download(options).await;
    assert_eq!(summary.failed.len(), 32, "{summary:?}");
    assert_eq!(summary.requests, 128);
    assert!(
        state_file::load(&state_file::path_in(out.path()))
            .expect("readable")
            .is_some()
    );
    let left: Vec<PathBuf> = std::fs::read_dir(out.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with(state_file::FILE_NAME))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
