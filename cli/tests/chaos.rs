//! Chaos: `kill -9` a real `pacer run` process 30 times at seeded random moments, restarting
//! it each time, against an origin that answers 503s and 429s and cuts bodies off. After
//! every kill, no file under a final name may hold wrong bytes and the state file must read;
//! after a last clean run, every file verifies and nothing temporary is left.
//!
//! The moments: at random times, or inside a chosen phase (mid-stream, before a file's
//! fsync, before its rename, before the folders' fsync, mid-way through a state save, before
//! the state file's rename), which the process announces and pauses in when
//! `PACER_PHASE_PAUSE` asks (`cli/src/phase.rs`). `PACER_CHAOS_SEED` repeats a run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pacer_cli::catalogue::{self, Entry};
use pacer_cli::origin::{Origin, OriginOptions};
use pacer_cli::pipeline::PARTIAL_DIR;
use pacer_cli::{phase, state_file};
use sha2::{Digest, Sha256};

mod common;

const KILLS: usize = 30;
/// Restarts at most (a run that finishes before its kill is a restart without one).
const MAX_CYCLES: usize = 90;
const FILES: usize = 40;
const FILE_SIZE: u64 = 192 << 10;
/// How long the process stays in a phase it announces: the kill lands well inside it.
const PAUSE_MS: u64 = 1500;
/// How long to wait for an announced phase before killing wherever the process is.
const PHASE_WAIT: Duration = Duration::from_secs(15);
/// The last, clean run's bound.
const FINAL_RUN: Duration = Duration::from_secs(120);

/// Where a kill lands.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// At the `nth` (1-based) announcement of `phase`.
    In(phase::Phase, usize),
    /// This long after the process starts.
    After(Duration),
}

const PHASES: [phase::Phase; 6] = [
    phase::Phase::Stream,
    phase::Phase::Fsync,
    phase::Phase::Rename,
    phase::Phase::DirSync,
    phase::Phase::StateWrite,
    phase::Phase::StateRename,
];

/// SplitMix64: the seeded choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A kill moment: one of the six phases or a random time, equally likely.
    fn moment(&mut self) -> Moment {
        match self.below(7) as usize {
            i if i < PHASES.len() => Moment::In(PHASES[i], 1 + self.below(2) as usize),
            _ => Moment::After(Duration::from_millis(300 + self.below(2700))),
        }
    }
}

/// A running `pacer run`, its stderr read line by line.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    started: Instant,
}

impl Run {
    fn start(origin: &str, config: &Path, out: &Path, pause: Option<phase::Phase>) -> Run {
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-cache");
        let mut command = Command::new(env!("CARGO_BIN_EXE_pacer"));
        command
            .args(["run", "--json", "--workers", "3", "--origin", origin])
            .arg("--policy")
            .arg(common::module_path())
            .arg("--config")
            .arg(config)
            .arg("--out")
            .arg(out)
            .env("XDG_CACHE_HOME", cache)
            .env_remove(phase::ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(phase) = pause {
            command.env(phase::ENV, format!("{}:{PAUSE_MS}", phase.name()));
        }
        let mut child = command.spawn().expect("pacer runs");
        let stderr = child.stderr.take().expect("stderr");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            log: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Waits for `moment` and kills the process there (SIGKILL): `Some(true)` inside the
    /// announced phase, `Some(false)` at the deadline (a phase not reached, or a random time);
    /// `None` if it exited first (panicking if it failed).
    fn kill_at(&mut self, moment: Moment) -> Option<bool> {
        let deadline = match moment {
            Moment::In(..) => self.started + PHASE_WAIT,
            Moment::After(after) => self.started + after,
        };
        let mut seen = 0;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                if let Moment::In(phase, nth) = moment {
                    let announced = format!("pacer-phase {} ", phase.name());
                    if line.starts_with(&announced) {
                        seen += 1;
                        if seen == nth {
                            self.log.push(line);
                            self.kill();
                            return Some(true);
                        }
                    }
                }
                self.log.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("status") {
                self.drain();
                assert!(
                    status.success(),
                    "pacer run failed after a restart ({status}):\n{}",
                    self.log.join("\n")
                );
                return None;
            }
            if Instant::now() >= deadline {
                self.kill();
                return Some(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn kill(&mut self) {
        // std's kill is SIGKILL: kill -9.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
        self.drain();
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
    }

    /// A restored state the process refused: a state file a kill broke.
    fn refused_its_state(&self) -> bool {
        self.log
            .iter()
            .any(|line| line.contains("starting with a fresh policy state"))
    }
}

/// Checks `out` after a kill: every file under a catalogue name is a plain file with its
/// bytes, the state file reads, and nothing else is there but the run's own temporaries.
/// Returns the files complete.
fn check(out: &Path, index: &BTreeMap<String, Entry>, when: &str) -> usize {
    let mut complete = 0;
    for entry in std::fs::read_dir(out).expect("out").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(listed) = index.get(&name) {
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            assert!(meta.is_file(), "{when}: {name} is not a plain file");
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                bytes.len() as u64 == listed.size
                    && format!("{:x}", Sha256::digest(&bytes)) == listed.sha256,
                "{when}: WRONG BYTES under the final name {name} ({} bytes)",
                bytes.len()
            );
            complete += 1;
        } else {
            assert!(
                name == state_file::FILE_NAME
                    || name == PARTIAL_DIR
                    || name.starts_with(&format!("{}.tmp-", state_file::FILE_NAME))
                    || name.starts_with(".pacer-write-test-"),
                "{when}: a stray file {name}"
            );
        }
    }
    if let Err(why) = state_file::load(&state_file::path_in(out)) {
        panic!("{when}: the state file does not read: {why}");
    }
    complete
}

/// 5 a second against the origin's 4 (429s), quick backoff, a circuit that rarely opens, no
/// memory pressure (a loaded machine must not stall the run), 64 KiB buffers (3 per file).
const CONFIG: &str = r#"{"limiters":[{"name":"origin","tokens_per_hour":18000,"burst":2}],
  "jitter":{"strategy":"adaptive","max_ms":100},
  "pressure":{"medium":0.98,"high":0.99,"hysteresis":0.01},
  "backoff":{"base_ms":50,"max_ms":1000,"failure_threshold":20,"open_ms":500},
  "pool":{"max_buffers":8,"buffer_size":65536}}"#;

#[test]
fn thirty_kill_9s_at_random_moments_leave_no_wrong_bytes_and_a_clean_finish() {
    let started = Instant::now();
    let seed = std::env::var("PACER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("chaos seed {seed} (PACER_CHAOS_SEED={seed} repeats the choices)");
    let mut rng = Rng(seed);
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    // 4 a second per client (each restart is a new client), burst 2; 10 % 503s, 10 % of bodies
    // cut off halfway; bodies at 256 KiB/s, so each file streams for about 0.75 s.
    let origin = runtime
        .block_on(Origin::start(
            OriginOptions {
                files: FILES,
                file_size_bytes: FILE_SIZE,
                seed: seed % 1000,
                tokens_per_hour: 14_400.0,
                burst: 2,
                error_rate: 0.1,
                reset_rate: 0.1,
                slow_bytes_per_second: Some(256 << 10),
                ..OriginOptions::default()
            },
            0,
        ))
        .expect("origin");
    let url = origin.url();
    let index_text = runtime
        .block_on(async {
            let client =
                pacer_cli::tls::client(reqwest::Client::builder(), false, None).expect("client");
            client
                .get(format!("{url}/index.json"))
                .send()
                .await?
                .text()
                .await
        })
        .expect("index");
    let index: BTreeMap<String, Entry> = catalogue::parse(&index_text)
        .expect("an index")
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).expect("config");
    let out = dir.path().join("out");
    // (A kill may come before the first run made it.)
    std::fs::create_dir(&out).expect("out");

    let (mut kills, mut recovered, mut finished_early, mut refills) = (0, 0, 0, 0);
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    let mut kill_pending = false;
    for cycle in 0..MAX_CYCLES {
        if kills == KILLS {
            break;
        }
        let moment = rng.moment();
        let pause = match moment {
            Moment::In(phase, _) => Some(phase),
            Moment::After(_) => None,
        };
        let mut run = Run::start(&url, &config, &out, pause);
        let killed = run.kill_at(moment);
        // The restart after the previous kill got going: it ran until this kill or its end
        // without failing (kill_at panics otherwise) and accepted the state file.
        if kill_pending {
            assert!(!run.refused_its_state(), "{}", run.log.join("\n"));
            recovered += 1;
        }
        let when = format!("cycle {cycle} ({moment:?})");
        let complete = check(&out, &index, &when);
        if let Some(in_phase) = killed {
            kills += 1;
            kill_pending = true;
            let label = match (moment, in_phase) {
                (Moment::In(phase, _), true) => phase.name().to_string(),
                (Moment::In(phase, _), false) => format!("{} not reached in 15 s", phase.name()),
                (Moment::After(_), _) => "a random time".to_string(),
            };
            *landed.entry(label).or_default() += 1;
        } else {
            finished_early += 1;
            kill_pending = false;
        }
        if complete == FILES {
            // All there before the kills are done: give the next runs work again.
            refills += 1;
            for name in index.keys() {
                if rng.below(2) == 0 {
                    std::fs::remove_file(out.join(name)).expect("removed");
                }
            }
        }
    }
    assert_eq!(kills, KILLS, "only {kills} kills in {MAX_CYCLES} restarts");

    // The last run, left alone.
    let mut last = Run::start(&url, &config, &out, None);
    let mut exited = None;
    while exited.is_none() && last.started.elapsed() < FINAL_RUN {
        exited = last.child.try_wait().expect("status");
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(status) = exited else {
        last.kill();
        panic!("the last run took over {FINAL_RUN:?}");
    };
    last.drain();
    assert!(status.success(), "the last run: {}", last.log.join("\n"));
    assert!(!last.refused_its_state(), "{}", last.log.join("\n"));
    if kill_pending {
        recovered += 1;
    }
    let complete = check(&out, &index, "after the last run");
    assert_eq!(complete, FILES, "every file is there and verifies");
    let left: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = index
        .keys()
        .cloned()
        .chain([state_file::FILE_NAME.to_string()])
        .collect();
    assert_eq!(
        left.difference(&expected).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "nothing partial or temporary is left"
    );
    let stats = origin.stats();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    println!(
        "chaos: seed {seed}: {kills} kills by kill -9 ({landed:?}), {recovered} recovered, \
         0 files with wrong bytes (checked after every kill), {finished_early} runs finished \
         before their kill, {refills} refills; origin: {} requests, {} x 429, {} x 503, {} \
         bodies cut off; {:.1} s wall",
        stats.requests.load(relaxed),
        stats.throttled.load(relaxed),
        stats.errors.load(relaxed),
        stats.resets.load(relaxed),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(recovered, KILLS, "every kill recovered");
    assert!(
        stats.throttled.load(relaxed) > 0
            && stats.errors.load(relaxed) > 0
            && stats.resets.load(relaxed) > 0,
        "the origin's faults all happened"
    );
}
