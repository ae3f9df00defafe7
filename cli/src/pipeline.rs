//! The paced download pipeline: an origin's catalogue into a directory, as fast as the policy
//! allows and no faster, through pooled buffers, with nothing left that looks complete unless
//! it is.
//!
//! Each file streams into `.pacer-partial/<name>` (a folder no catalogue name can reach, since
//! names cannot start with a dot), capped at the index's size, is checked against the index's
//! sha256, fsynced and renamed to its name, and the folders are fsynced; a re-run skips files
//! already verified and finishes the rest. Before every request
//! a worker asks the policy (`next_delay`, waiting out an open circuit), and after it reports
//! the status and any Retry-After. While memory pressure is High, workers start nothing new.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use pacer::{Level, Schedule};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use pacer_host::pool::{BufferPool, PoolStats};
use pacer_host::{HostError, Policy};

use crate::catalogue::{self, Entry as Item};
use crate::durable;
use crate::group::{Claim, Group};
use crate::http::{self, HttpOptions};
use crate::phase::{self, Phase};
use crate::ratelimit;
use crate::retry_after::{self, RetryAfter};
use crate::state_file;
use crate::tls;

/// What to download, where, and how.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The origin's base URL; it serves `/index.json` and `/files/<name>`.
    pub origin: String,
    /// Where finished files go.
    pub out_dir: PathBuf,
    /// Downloads at once.
    pub workers: usize,
    /// The policy limiter that paces the requests.
    pub limiter: u32,
    /// Jitter base for `next_delay`.
    pub base_delay: Duration,
    /// Attempts per file before it is reported failed.
    pub max_attempts: u32,
    /// Sent as `X-Client`, so the origin can tell clients apart.
    pub client_id: String,
    /// Where the policy's state is saved after each failure and at the end (a restart that
    /// restores it honours a pause or an open circuit still in force); `None` = not saved.
    pub state_file: Option<PathBuf>,
    /// The longest Retry-After honoured; longer ones are cut to it (with a warning).
    pub max_retry_after: Duration,
    /// PEM certificates trusted for an https origin besides the platform's roots (a private
    /// CA).
    pub ca_cert: Option<PathBuf>,
    /// The group this host shares its limits and its work with (`pacer run --shared`).
    pub group: Option<Arc<Group>>,
    /// Deadlines for every request, and which redirects are followed.
    pub http: HttpOptions,
}

impl PipelineOptions {
    /// Where files being downloaded are: `.pacer-partial/` in the output folder, or in a group
    /// `.pacer-partial-<host>/`, so that hosts sharing one folder never touch each other's. A
    /// catalogue name cannot start with a dot, so none can reach it.
    pub fn partial_dir(&self) -> PathBuf {
        self.out_dir.join(match &self.group {
            Some(group) => format!("{PARTIAL_DIR}-{}", group.host()),
            None => PARTIAL_DIR.to_string(),
        })
    }

    /// Defaults for `origin` into `out_dir`: 3 workers, limiter 0, 20 attempts per file.
    pub fn new(origin: impl Into<String>, out_dir: impl Into<PathBuf>) -> Self {
        PipelineOptions {
            origin: origin.into().trim_end_matches('/').to_string(),
            out_dir: out_dir.into(),
            workers: 3,
            limiter: 0,
            base_delay: Duration::ZERO,
            max_attempts: 20,
            client_id: format!("pacer-{}", std::process::id()),
            state_file: None,
            max_retry_after: Duration::from_secs(300),
            ca_cert: None,
            group: None,
            http: HttpOptions::default(),
        }
    }
}

/// The folder of files being downloaded, inside the output folder.
pub const PARTIAL_DIR: &str = ".pacer-partial";

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files in the index.
    pub files: usize,
    /// Files downloaded and verified in this run.
    pub downloaded: usize,
    /// Files already present and verified.
    pub skipped: usize,
    /// Files other hosts of the group downloaded.
    pub by_others: usize,
    /// Files that failed every attempt, with the last reason.
    pub failed: Vec<(String, String)>,
    /// Bytes downloaded (verified files only).
    pub bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// File requests made.
    pub requests: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Time workers slept on the policy's advice.
    pub waited: Duration,
    /// The buffer pool's counters.
    pub pool: PoolStats,
    /// Pressure levels seen (Low, Medium, High).
    pub pressure_seen: [bool; 3],
    /// The limiter's rate at the end, tokens an hour: where adaptation or announcements
    /// brought it (`None`: the module cannot say).
    pub rate_at_end: Option<f64>,
}

/// A download could not run at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// The origin could not be reached or did not serve its index.
    Origin(String),
    /// The index is not in the expected format.
    Index(String),
    /// The output directory cannot be written (missing, read-only, full...).
    OutDir {
        /// The path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The policy module failed.
    Policy(HostError),
    /// HTTPS cannot work: an untrusted certificate, a failed handshake, a bad `--ca-cert`.
    /// Retrying would not help, so the run stops.
    Tls(String),
    /// The origin redirected somewhere `--redirects` does not allow. Retrying would not help
    /// either.
    Redirect(String),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Origin(why) => write!(f, "origin: {why}"),
            PipelineError::Index(why) => write!(f, "origin index: {why}"),
            PipelineError::OutDir { path, reason } => write!(f, "{}: {reason}", path.display()),
            PipelineError::Policy(error) => write!(f, "policy: {error}"),
            PipelineError::Tls(why) | PipelineError::Redirect(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for PipelineError {}

impl From<HostError> for PipelineError {
    fn from(error: HostError) -> Self {
        PipelineError::Policy(error)
    }
}

/// Hooks for showing progress (the CLI draws bars; tests use [`NoProgress`]).
pub trait Progress: Send + Sync {
    /// The run knows its work: `files` to fetch, `bytes` in all.
    fn planned(&self, _files: usize, _bytes: u64) {}
    /// Worker `worker` starts (or retries) `name` of `size` bytes.
    fn started(&self, _worker: usize, _name: &str, _size: u64) {}
    /// `bytes` more arrived.
    fn advanced(&self, _worker: usize, _bytes: u64) {}
    /// Worker `worker` is waiting, and why.
    fn waiting(&self, _worker: usize, _why: &str) {}
    /// A file is done (verified), or has given up.
    fn finished(&self, _worker: usize, _name: &str, _ok: bool) {}
}

/// Shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why one attempt failed, and what to tell the policy.
struct Failure {
    status: u16,
    retry_after: Option<Duration>,
    reason: String,
}

/// State shared by the workers.
struct Run {
    options: PipelineOptions,
    client: reqwest::Client,
    policy: Arc<Mutex<Policy>>,
    pool: BufferPool,
    progress: Arc<dyn Progress>,
    queue: Mutex<VecDeque<Item>>,
    /// Files another host of the group holds a claim on: tried again once the queue is empty.
    deferred: Mutex<Vec<Item>>,
    by_others: AtomicU64,
    /// A malformed rate-limit header was reported (once per run).
    warned_headers: AtomicBool,
    /// Slots the policy has handed out: an announcement answering the `n`th counts none of
    /// those after it, which are in flight or on their way.
    granted: AtomicU64,
    requests: AtomicU64,
    throttled: AtomicU64,
    retries: AtomicU64,
    waited_ns: AtomicU64,
    bytes: AtomicU64,
    downloaded: AtomicU64,
    failed: Mutex<Vec<(String, String)>>,
    pressure_seen: Mutex<[bool; 3]>,
    /// The one writer of the state file, if the run keeps one.
    state: Option<state_file::Writer>,
}

/// Downloads the origin's catalogue into `options.out_dir`, paced by `policy`.
pub async fn run(
    options: PipelineOptions,
    policy: Arc<Mutex<Policy>>,
    pool: BufferPool,
    progress: Arc<dyn Progress>,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    prepare_out_dir(&options.out_dir, &options.partial_dir())?;
    let _partial_dir = RemovedIfEmpty(options.partial_dir());
    if let Some(path) = &options.state_file {
        state_file::clear_temporaries(path);
    }
    let origin = http::origin_url(&options.origin).map_err(PipelineError::Origin)?;
    options.http.check().map_err(PipelineError::Origin)?;
    let client = http::client(&origin, options.ca_cert.as_deref(), &options.http)
        .map_err(PipelineError::Tls)?;
    let items = fetch_index(&client, &origin, &options.http).await?;
    if let Some(group) = &options.group {
        group.set_catalogue(&items);
    }
    let mut summary = Summary {
        files: items.len(),
        ..Summary::default()
    };
    let mut queue = VecDeque::new();
    for item in items {
        if verified(&options.out_dir.join(&item.name), &item).await {
            summary.skipped += 1;
        } else {
            queue.push_back(item);
        }
    }
    // The index's sizes sum within a u64 (catalogue::parse checks), so these do too.
    let planned_bytes = queue.iter().fold(0u64, |sum, i| sum.saturating_add(i.size));
    progress.planned(queue.len(), planned_bytes);
    let workers = options.workers.max(1);
    let state = options.state_file.clone().map(state_file::Writer::new);
    let run = Arc::new(Run {
        options,
        client,
        policy,
        pool,
        progress,
        queue: Mutex::new(queue),
        deferred: Mutex::new(Vec::new()),
        by_others: AtomicU64::new(0),
        warned_headers: AtomicBool::new(false),
        granted: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        waited_ns: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        downloaded: AtomicU64::new(0),
        failed: Mutex::new(Vec::new()),
        pressure_seen: Mutex::new([false; 3]),
        state,
    });
    let tasks: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(worker(Arc::clone(&run), w)))
        .collect();
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => first_error = first_error.or(Some(error)),
            Err(join) => {
                first_error = first_error.or(Some(PipelineError::Origin(format!(
                    "worker panicked: {join}"
                ))))
            }
        }
    }
    save_state(&run)?;
    if let Some(error) = first_error {
        return Err(error);
    }
    summary.downloaded = run.downloaded.load(Relaxed) as usize;
    summary.by_others = run.by_others.load(Relaxed) as usize;
    summary.failed = lock(&run.failed).clone();
    summary.bytes = run.bytes.load(Relaxed);
    summary.requests = run.requests.load(Relaxed);
    summary.throttled = run.throttled.load(Relaxed);
    summary.retries = run.retries.load(Relaxed);
    summary.waited = Duration::from_nanos(run.waited_ns.load(Relaxed));
    summary.pool = run.pool.stats();
    summary.pressure_seen = *lock(&run.pressure_seen);
    summary.rate_at_end = lock(&run.policy).rate(run.options.limiter)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The partial folder, removed when the run ends however it ends, if empty (it is unless a
/// download was cut short; the next run clears it).
struct RemovedIfEmpty(PathBuf);

impl Drop for RemovedIfEmpty {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Workers never panic while holding a lock; if one did, its data is still plain data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The next file this worker may download: from the queue, or, once it is empty, one that
/// another host held a claim on (its claim may have expired). `None` when nothing is left.
async fn next_item(run: &Run) -> Option<Item> {
    loop {
        let next = lock(&run.queue).pop_front();
        let Some(item) = next else {
            let deferred = std::mem::take(&mut *lock(&run.deferred));
            if deferred.is_empty() {
                return None;
            }
            lock(&run.queue).extend(deferred);
            if let Some(group) = &run.options.group {
                // Claims expire within three leases: look again a little later.
                tokio::time::sleep(group.lease() / 2).await;
            }
            continue;
        };
        let Some(group) = &run.options.group else {
            return Some(item);
        };
        match group.claim(&item.name).await {
            Claim::Mine => return Some(item),
            Claim::Done => {
                run.by_others.fetch_add(1, Relaxed);
            }
            Claim::Elsewhere => lock(&run.deferred).push(item),
        }
    }
}

async fn worker(run: Arc<Run>, id: usize) -> Result<(), PipelineError> {
    loop {
        let Some(item) = next_item(&run).await else {
            return Ok(());
        };
        let mut last_reason = String::new();
        let mut done = false;
        for attempt in 0..run.options.max_attempts.max(1) {
            if attempt > 0 {
                run.retries.fetch_add(1, Relaxed);
            }
            let grant = pace(&run, id).await?;
            run.progress.started(id, &item.name, item.size);
            run.requests.fetch_add(1, Relaxed);
            let sent_at = lock(&run.policy).now_ns();
            let outcome = download(&run, id, &item, grant).await?;
            let (status, retry_after) = match &outcome {
                Ok(()) => (200, None),
                Err(failure) => (failure.status, failure.retry_after),
            };
            if status == 429 {
                run.throttled.fetch_add(1, Relaxed);
            }
            if let (Some(group), Some(pause)) = (&run.options.group, retry_after) {
                group.publish_pause(run.options.limiter, pause).await;
            }
            lock(&run.policy).on_response_sent(
                run.options.limiter,
                status,
                retry_after,
                sent_at,
            )?;
            match outcome {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(failure) => {
                    last_reason = failure.reason;
                    // A pause or an open circuit may have begun: keep it across a restart.
                    save_state(&run)?;
                }
            }
        }
        if done {
            run.downloaded.fetch_add(1, Relaxed);
            if let Some(group) = &run.options.group {
                group.finished(&item.name).await;
            }
        } else {
            lock(&run.failed).push((item.name.clone(), last_reason));
            if let Some(group) = &run.options.group {
                group.release(&item.name).await;
            }
        }
        run.progress.finished(id, &item.name, done);
    }
}

/// Waits until the policy says go: out of High pressure, past an open circuit, then the delay.
/// Returns which slot it was, counting from 0.
async fn pace(run: &Run, id: usize) -> Result<u64, PipelineError> {
    loop {
        let (level, throttle) = {
            let mut policy = lock(&run.policy);
            let level = policy.pressure()?;
            let target =
                policy.pool_target(u32::try_from(run.pool.max_idle()).unwrap_or(u32::MAX))?;
            run.pool.set_target(target as usize);
            (level, level == Level::High)
        };
        lock(&run.pressure_seen)[level as usize] = true;
        if !throttle {
            break;
        }
        run.progress
            .waiting(id, "memory pressure High: starting nothing new");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    loop {
        if let Some(group) = &run.options.group {
            // No share of the group's rate yet: a slot now would be placed far away.
            group.ready(run.options.limiter).await;
        }
        let schedule =
            lock(&run.policy).next_delay(run.options.limiter, 1, run.options.base_delay)?;
        if let (Some(group), Schedule::Act { delay }) = (&run.options.group, schedule) {
            group.acquired(run.options.limiter, delay > 0);
        }
        match schedule {
            Schedule::Act { mut delay } => {
                let grant = run.granted.fetch_add(1, Relaxed);
                loop {
                    run.waited_ns.fetch_add(delay, Relaxed);
                    if delay > 0 {
                        run.progress.waiting(id, "paced");
                        tokio::time::sleep(Duration::from_nanos(delay)).await;
                    }
                    // A pause or an open circuit that began while this worker slept binds its
                    // slot too: re-place it (a module without pacer_replace_ns keeps the slot).
                    let replaced = lock(&run.policy).replace(run.options.limiter, 1, 0)?;
                    match replaced {
                        Schedule::Act { delay: 0 } => return Ok(grant),
                        Schedule::Act { delay: later } => delay = later,
                        Schedule::CircuitOpen { retry_in } => {
                            publish_circuit(run, retry_in).await;
                            wait_out_circuit(run, id, retry_in).await;
                            break;
                        }
                    }
                }
            }
            Schedule::CircuitOpen { retry_in } => {
                publish_circuit(run, retry_in).await;
                wait_out_circuit(run, id, retry_in).await;
            }
        }
    }
}

/// An open circuit pauses the limiter on every host of the group too.
async fn publish_circuit(run: &Run, retry_in: u64) {
    if let Some(group) = &run.options.group {
        group
            .publish_pause(run.options.limiter, Duration::from_nanos(retry_in))
            .await;
    }
}

async fn wait_out_circuit(run: &Run, id: usize, retry_in: u64) {
    run.progress
        .waiting(id, "circuit open: the origin keeps failing");
    run.waited_ns.fetch_add(retry_in, Relaxed);
    tokio::time::sleep(Duration::from_nanos(retry_in.max(1_000_000))).await;
}

/// One attempt: stream into the partial folder, verify, fsync, rename, fsync the folders.
/// `Ok(Err(..))` is a failed attempt (retried); `Err(..)` ends the run (the output directory
/// failed).
async fn download(
    run: &Run,
    id: usize,
    item: &Item,
    grant: u64,
) -> Result<Result<(), Failure>, PipelineError> {
    let target = run.options.out_dir.join(&item.name);
    let partial = run.options.partial_dir().join(&item.name);
    let result = attempt(run, id, item, grant, &partial, &target).await;
    if !matches!(result, Ok(Ok(()))) {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

async fn attempt(
    run: &Run,
    id: usize,
    item: &Item,
    grant: u64,
    partial: &Path,
    target: &Path,
) -> Result<Result<(), Failure>, PipelineError> {
    let transport = |reason: String| {
        Ok(Err(Failure {
            status: 0,
            retry_after: None,
            reason,
        }))
    };
    let origin = http::origin_url(&run.options.origin).map_err(PipelineError::Origin)?;
    let url = http::url(&origin, &["files", &item.name]);
    let request = run
        .client
        .get(url.clone())
        .header("x-client", &run.options.client_id);
    // The client's deadlines bound every wait below: a stall is a failure, never a hang.
    let sent = Instant::now();
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            if let Some(why) = http::refused_redirect(&error) {
                return Err(PipelineError::Redirect(why));
            }
            return match tls::failure(url.as_str(), &error) {
                Some(why) => Err(PipelineError::Tls(why)),
                None => transport(format!(
                    "request failed: {}",
                    http::describe(&error, sent.elapsed(), &run.options.http)
                )),
            };
        }
    };
    let status = response.status().as_u16();
    announced(run, response.headers(), grant)?;
    if status != 200 {
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .and_then(|v| {
                match retry_after::parse(&v, SystemTime::now(), run.options.max_retry_after) {
                    RetryAfter::Wait(delay) => Some(delay),
                    RetryAfter::Ignored => None,
                }
            });
        return Ok(Err(Failure {
            status,
            retry_after,
            reason: format!("HTTP {status}"),
        }));
    }
    // A body that cannot be the file is refused before anything is written.
    if let Some(length) = response.content_length().filter(|n| *n != item.size) {
        return transport(format!(
            "the origin sends {length} bytes, the index says {}",
            item.size
        ));
    }
    let out_error = |e: std::io::Error| PipelineError::OutDir {
        path: partial.to_path_buf(),
        reason: e.to_string(),
    };
    // (Left by nothing but a crash between two attempts; the folder is this run's own.)
    durable::remove_if_present(partial).map_err(out_error)?;
    let mut file = durable::create_new_async(partial)
        .await
        .map_err(out_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = run.pool.rent();
    let (mut filled, mut total, mut received) = (0usize, 0u64, 0u64);
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                let why = http::describe(&error, sent.elapsed(), &run.options.http);
                let total = total + filled as u64;
                return transport(format!("body cut off after {total} bytes: {why}"));
            }
        };
        // Capped while streaming: no byte past the index's size reaches the disk.
        received = received.saturating_add(chunk.len() as u64);
        if received > item.size {
            return transport(format!("body longer than the index's {} bytes", item.size));
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = rest.len().min(buffer.len() - filled);
            buffer[filled..filled + n].copy_from_slice(&rest[..n]);
            (filled, rest) = (filled + n, &rest[n..]);
            if filled == buffer.len() {
                hasher.update(&buffer[..filled]);
                file.write_all(&buffer[..filled]).await.map_err(out_error)?;
                total += filled as u64;
                run.progress.advanced(id, filled as u64);
                filled = 0;
                phase::reached_async(Phase::Stream, &item.name).await;
            }
        }
    }
    hasher.update(&buffer[..filled]);
    file.write_all(&buffer[..filled]).await.map_err(out_error)?;
    total += filled as u64;
    run.progress.advanced(id, filled as u64);
    let digest = format!("{:x}", hasher.finalize());
    if total != item.size || digest != item.sha256 {
        return transport(format!(
            "verification failed: {total} bytes, sha256 {digest}"
        ));
    }
    // Durable before it has its name: a crash never leaves the name with missing bytes.
    phase::reached_async(Phase::Fsync, &item.name).await;
    file.sync_all().await.map_err(out_error)?;
    drop(file);
    phase::reached_async(Phase::Rename, &item.name).await;
    tokio::fs::rename(partial, target)
        .await
        .map_err(out_error)?;
    // The rename itself must survive a crash: sync both directory entries too.
    phase::reached_async(Phase::DirSync, &item.name).await;
    for dir in [&run.options.out_dir, &run.options.partial_dir()] {
        durable::sync_dir(dir).map_err(|e| PipelineError::OutDir {
            path: dir.clone(),
            reason: format!("syncing the folder: {e}"),
        })?;
    }
    run.bytes.fetch_add(total, Relaxed);
    Ok(Ok(()))
}

/// Hands a quota the response to slot `grant` announced (`RateLimit`, `X-RateLimit-*`) to the
/// policy. A malformed one is said once (then at debug level) and ignored.
fn announced(
    run: &Run,
    headers: &reqwest::header::HeaderMap,
    grant: u64,
) -> Result<(), PipelineError> {
    let joined = |name: &str| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let found: Vec<(&str, String)> = [
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
    ]
    .into_iter()
    .filter_map(|name| joined(name).map(|value| (name, value)))
    .collect();
    if found.is_empty() {
        return Ok(());
    }
    let now_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = |name: &str| {
        found
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    match ratelimit::parse(header, now_unix) {
        Ok(Some(quota)) => {
            // A group's host is told the group's quota: its part of it is its share.
            let part = run
                .options
                .group
                .as_ref()
                .map_or(1.0, |group| group.fraction(run.options.limiter));
            // (A share is granted a hair under its exact part: round that hair away.)
            let remaining = (quota.remaining as f64 * part + 1e-6).floor() as u64;
            let in_flight = run.granted.load(Relaxed).saturating_sub(grant + 1);
            lock(&run.policy).announce(
                run.options.limiter,
                quota.limit,
                remaining,
                quota.reset,
                in_flight,
            )?;
        }
        Ok(None) => {}
        Err(why) => {
            if !run.warned_headers.swap(true, Relaxed) {
                tracing::warn!("ignoring the origin's rate-limit headers: {why}");
            } else {
                tracing::debug!("ignoring the origin's rate-limit headers: {why}");
            }
        }
    }
    Ok(())
}

/// The name of the file that proves the output folder writable, before the process id.
const PROBE: &str = ".pacer-write-test-";

/// Saves the policy's snapshot to the state file, if the run keeps one: through its one
/// writer, the snapshot taken in the writer's turn, so the file ends with the latest.
fn save_state(run: &Run) -> Result<(), PipelineError> {
    let Some(writer) = &run.state else {
        return Ok(());
    };
    let turn = writer.turn();
    let snapshot = lock(&run.policy).snapshot()?;
    turn.save(&snapshot).map_err(|e| PipelineError::OutDir {
        path: writer.path().to_path_buf(),
        reason: format!("saving the policy's state: {e}"),
    })
}

/// Creates the directory, proves it writable, and gives the run an empty partial folder of its
/// own (an earlier run's partial files are cleared; in a folder hosts of a group share, each
/// host has its own). Whatever held the folder's name, a symlink included, is removed, never
/// followed.
fn prepare_out_dir(dir: &Path, partial: &Path) -> Result<(), PipelineError> {
    let fail = |reason: String| PipelineError::OutDir {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create: {e}")))?;
    // Probes a killed run left behind go first (a live one's is gone before it could care).
    for entry in std::fs::read_dir(dir)
        .map_err(|e| fail(e.to_string()))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(PROBE) {
            let _ = durable::remove_if_present(&entry.path());
        }
    }
    let probe = dir.join(format!("{PROBE}{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    let fail = |reason: String| PipelineError::OutDir {
        path: partial.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(partial) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(partial),
        Ok(_) => std::fs::remove_file(partial),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| fail(format!("cannot clear an earlier run's partial files: {e}")))?;
    std::fs::create_dir(partial).map_err(|e| fail(format!("cannot create: {e}")))?;
    Ok(())
}

/// The origin's index, read up to [`catalogue::MAX_INDEX_BYTES`] and parsed.
async fn fetch_index(
    client: &reqwest::Client,
    origin: &reqwest::Url,
    options: &HttpOptions,
) -> Result<Vec<Item>, PipelineError> {
    let url = http::url(origin, &["index.json"]);
    let sent = Instant::now();
    let failed = |e: reqwest::Error| {
        if let Some(why) = http::refused_redirect(&e) {
            return PipelineError::Redirect(why);
        }
        match tls::failure(url.as_str(), &e) {
            Some(why) => PipelineError::Tls(why),
            None => PipelineError::Origin(format!(
                "cannot reach {url}: {}",
                http::describe(&e, sent.elapsed(), options)
            )),
        }
    };
    let mut response = client.get(url.clone()).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(PipelineError::Origin(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        )));
    }
    let too_long = || {
        PipelineError::Index(format!(
            "longer than the {} bytes a catalogue may have",
            catalogue::MAX_INDEX_BYTES
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > catalogue::MAX_INDEX_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if bytes.len() + chunk.len() > catalogue::MAX_INDEX_BYTES {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    let text =
        String::from_utf8(bytes).map_err(|e| PipelineError::Index(format!("not UTF-8: {e}")))?;
    catalogue::parse(&text).map_err(PipelineError::Index)
}

/// True when `path` is a regular file (not a symlink to one) holding exactly the item's
/// bytes.
async fn verified(path: &Path, item: &Item) -> bool {
    let path = path.to_path_buf();
    let expected = item.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            return false;
        };
        if !metadata.is_file() || metadata.len() != expected.size {
            return false;
        }
        let Ok(mut file) = std::fs::File::open(&path) else {
            return false;
        };
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).is_ok()
            && format!("{:x}", hasher.finalize()) == expected.sha256
    })
    .await
    .unwrap_or(false)
}
