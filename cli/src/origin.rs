//! The embedded origin: a real HTTP/1.1 server on 127.0.0.1 serving a synthetic catalogue.
//!
//! `GET /index.json` lists the files (`name`, `size`, `sha256`); `GET /files/<name>` serves
//! each, with deterministic bytes. File requests are limited per client (the `X-Client` header,
//! else the peer address), or for all clients together ([`LimitScope::Global`]), by the
//! origin's own token bucket, which answers 429 with
//! `Retry-After` (whole seconds, rounded up). Faults can be switched on: 503s, connections
//! reset mid-body, slow bodies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pacer::{Decision, KeyedLimiter, Quota};

use sha2::{Digest, Sha256};

use crate::catalogue;
use crate::loopback::LoopbackServer;

/// How the origin behaves.
#[derive(Debug, Clone)]
pub struct OriginOptions {
    /// Files in the catalogue.
    pub files: usize,
    /// Bytes per file.
    pub file_size_bytes: u64,
    /// Seeds the file contents.
    pub seed: u64,
    /// File requests allowed per client per hour.
    pub tokens_per_hour: f64,
    /// Requests a client may make at once.
    pub burst: u32,
    /// Share of file requests answered 503.
    pub error_rate: f64,
    /// Share of file responses cut off halfway (the connection is reset).
    pub reset_rate: f64,
    /// Bodies are sent no faster than this (bytes per second), when set.
    pub slow_bytes_per_second: Option<u64>,
    /// Whom the limit binds: each client alone, or all of them together.
    pub limit_scope: LimitScope,
    /// Whether and how file responses announce the client's quota.
    pub announce: Announce,
    /// Changes of the limit mid-run: from each time after the start, this many requests per
    /// client per hour (the buckets keep their tokens across a change).
    pub schedule: Vec<(Duration, f64)>,
}

/// How the origin announces the quota left to a client, on every file response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Announce {
    /// No rate-limit headers.
    #[default]
    None,
    /// `RateLimit-Policy: "origin";q=BURST;w=S` and `RateLimit: "origin";r=R;t=T` (the IETF
    /// draft, revision 10): whole tokens left, and whole seconds until as many more have come
    /// (rounded up, as the draft's integer seconds require).
    Draft,
    /// `X-RateLimit-Limit: BURST`, `-Remaining` and `-Reset` in seconds with milliseconds: whole
    /// tokens left, and the time until as many more have come (or, with none left, until one
    /// has).
    Legacy,
}

/// Whom the origin's limit binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitScope {
    /// Each client (the `X-Client` header, else the peer address) has its own quota.
    #[default]
    Client,
    /// One quota binds every client together, as an account's quota does.
    Global,
}

impl Default for OriginOptions {
    /// 60 files of 2 MiB, one request per second per client with a burst of 3: about a minute.
    fn default() -> Self {
        OriginOptions {
            files: 60,
            file_size_bytes: 2 << 20,
            seed: 1,
            tokens_per_hour: 3600.0,
            burst: 3,
            error_rate: 0.0,
            reset_rate: 0.0,
            slow_bytes_per_second: None,
            limit_scope: LimitScope::Client,
            announce: Announce::None,
            schedule: Vec::new(),
        }
    }
}

/// What the origin has seen.
#[derive(Debug, Default)]
pub struct OriginStats {
    /// File requests.
    pub requests: AtomicU64,
    /// 429s sent.
    pub throttled: AtomicU64,
    /// 503s sent.
    pub errors: AtomicU64,
    /// Bodies cut off.
    pub resets: AtomicU64,
    /// When the first and the latest file request came, in ns since the origin started
    /// (`u64::MAX` / 0 before any).
    pub first_request_ns: AtomicU64,
    /// See `first_request_ns`.
    pub last_request_ns: AtomicU64,
    /// When each file request came, in ns since the origin started.
    pub arrivals_ns: Mutex<Vec<u64>>,
}

impl OriginStats {
    /// File requests per second between the first and the latest (0 before two).
    pub fn request_rate(&self) -> f64 {
        let (first, last) = (
            self.first_request_ns.load(Relaxed),
            self.last_request_ns.load(Relaxed),
        );
        let requests = self.requests.load(Relaxed);
        if requests < 2 || last <= first {
            return 0.0;
        }
        (requests - 1) as f64 / ((last - first) as f64 / 1e9)
    }
}

/// One file served: its catalogue entry and the index that seeds its bytes.
#[derive(Debug, Clone)]
struct Entry {
    listed: catalogue::Entry,
    index: u64,
}

/// The origin's limit now: its buckets, its rate, and how much of the schedule is done.
struct Limit {
    buckets: KeyedLimiter<String>,
    per_hour: f64,
    steps_taken: usize,
}

impl Limit {
    /// Takes every step of `schedule` due by `now` (ns since the start).
    fn follow_schedule(&mut self, schedule: &[(Duration, f64)], now: u64) {
        while let Some(&(at, per_hour)) = schedule.get(self.steps_taken) {
            if u64::try_from(at.as_nanos()).unwrap_or(u64::MAX) > now {
                break;
            }
            self.steps_taken += 1;
            // Checked when the options were: a step's rate is a valid quota's.
            if let Ok(quota) = self.buckets.quota().with_rate(per_hour) {
                self.buckets.set_quota(now, quota);
                self.per_hour = per_hour;
                tracing::info!(per_hour, "the origin's limit changed");
            }
        }
    }
}

struct Shared {
    options: OriginOptions,
    entries: Vec<Entry>,
    limiter: Mutex<Limit>,
    started: Instant,
    stats: Arc<OriginStats>,
    faults: Mutex<u64>,
}

/// A running origin; dropping it stops the server.
pub struct Origin {
    server: LoopbackServer,
    stats: Arc<OriginStats>,
}

impl Origin {
    /// Starts serving on `127.0.0.1:port` (0 = any free port).
    pub async fn start(options: OriginOptions, port: u16) -> std::io::Result<Origin> {
        let quota = Quota::per_hour(options.tokens_per_hour)
            .and_then(|q| q.with_burst(options.burst.max(1)))
            .and_then(|q| q.with_initial(1.0))
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("origin limit: {e}"),
                )
            })?;
        let entries = (0..options.files as u64)
            .map(|index| {
                let mut hasher = Sha256::new();
                for_each_chunk(options.seed, index, options.file_size_bytes, |chunk| {
                    hasher.update(chunk)
                });
                Entry {
                    listed: catalogue::Entry {
                        name: format!("item-{index:04}.bin"),
                        size: options.file_size_bytes,
                        sha256: format!("{:x}", hasher.finalize()),
                    },
                    index,
                }
            })
            .collect();
        let per_hour = options.tokens_per_hour;
        let stats = Arc::new(OriginStats {
            first_request_ns: AtomicU64::new(u64::MAX),
            ..OriginStats::default()
        });
        let shared = Arc::new(Shared {
            options,
            entries,
            limiter: Mutex::new(Limit {
                buckets: KeyedLimiter::new(quota, 10_000),
                per_hour,
                steps_taken: 0,
            }),
            started: Instant::now(),
            stats: Arc::clone(&stats),
            faults: Mutex::new(0x9e37_79b9_7f4a_7c15),
        });
        let app = Router::new()
            .route("/index.json", get(index))
            .route("/files/{name}", get(file))
            .with_state(shared);
        let server = LoopbackServer::start(app, port, "origin").await?;
        Ok(Origin { server, stats })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.address())
    }

    /// What the origin has seen so far.
    pub fn stats(&self) -> &OriginStats {
        &self.stats
    }
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let listed: Vec<_> = shared.entries.iter().map(|e| e.listed.clone()).collect();
    axum::Json(catalogue::to_json(&listed)).into_response()
}

async fn file(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let stats = &shared.stats;
    stats.requests.fetch_add(1, Relaxed);
    let arrived = u64::try_from(shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    stats.first_request_ns.fetch_min(arrived, Relaxed);
    stats.last_request_ns.fetch_max(arrived, Relaxed);
    if let Ok(mut arrivals) = stats.arrivals_ns.lock() {
        arrivals.push(arrived);
    }
    let Some(entry) = shared
        .entries
        .iter()
        .find(|e| e.listed.name == name)
        .cloned()
    else {
        return (StatusCode::NOT_FOUND, format!("no file {name}\n")).into_response();
    };
    let client = match shared.options.limit_scope {
        LimitScope::Global => String::new(),
        LimitScope::Client => headers
            .get("x-client")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| peer.ip().to_string(), str::to_string),
    };
    let now = u64::try_from(shared.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let decision = shared.limiter.lock().map_err(|_| ()).and_then(|mut limit| {
        limit.follow_schedule(&shared.options.schedule, now);
        let decision = limit.buckets.try_acquire(&client, now, 1).map_err(|_| ())?;
        let milli = limit.buckets.available_milli(&client, now);
        Ok((decision, milli, limit.per_hour))
    });
    let announced = match &decision {
        Ok((_, milli, per_hour)) => announcement(&shared.options, *per_hour, *milli),
        Err(()) => Vec::new(),
    };
    match decision {
        Ok((Decision::Admit, ..)) => {}
        Ok((Decision::Wait(ns), ..)) => {
            stats.throttled.fetch_add(1, Relaxed);
            let seconds = ns.div_ceil(1_000_000_000).max(1);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, seconds.to_string())],
                "slow down\n",
            )
                .into_response();
            add_headers(&mut response, announced);
            return response;
        }
        Err(()) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "limiter unavailable\n").into_response();
        }
    }
    let (fail, reset) = {
        let mut state = shared
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (
            chance(&mut state, shared.options.error_rate),
            chance(&mut state, shared.options.reset_rate),
        )
    };
    if fail {
        stats.errors.fetch_add(1, Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "injected fault\n").into_response();
    }
    let cut_at = reset.then_some(entry.listed.size / 2);
    if reset {
        stats.resets.fetch_add(1, Relaxed);
    }
    let body = body_stream(
        shared.options.seed,
        entry,
        cut_at,
        shared.options.slow_bytes_per_second,
    );
    let mut response = (
        [(header::CONTENT_TYPE, "application/octet-stream".to_string())],
        Body::from_stream(body),
    )
        .into_response();
    add_headers(&mut response, announced);
    response
}

/// The headers announcing a client's quota, at `per_hour` now, with `milli` thousandths of a
/// token left.
fn announcement(options: &OriginOptions, per_hour: f64, milli: i64) -> Vec<(&'static str, String)> {
    let per_second = per_hour / 3600.0;
    let left = u64::try_from(milli.max(0) / 1000).unwrap_or(0);
    // Until as many more tokens as are left have come; with none left, until one has.
    let missing = if left > 0 {
        left as f64
    } else {
        (1000 - milli.clamp(0, 999)) as f64 / 1000.0
    };
    let reset = missing / per_second;
    match options.announce {
        Announce::None => Vec::new(),
        Announce::Legacy => vec![
            ("x-ratelimit-limit", options.burst.to_string()),
            ("x-ratelimit-remaining", left.to_string()),
            ("x-ratelimit-reset", format!("{reset:.3}")),
        ],
        Announce::Draft => {
            let window = (f64::from(options.burst) / per_second).ceil().max(1.0);
            vec![
                (
                    "ratelimit-policy",
                    format!("\"origin\";q={};w={window}", options.burst),
                ),
                (
                    "ratelimit",
                    format!("\"origin\";r={left};t={}", reset.ceil().max(1.0)),
                ),
            ]
        }
    }
}

fn add_headers(response: &mut Response, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
}

/// The file's bytes in 64 KiB chunks; an error after `cut_at` bytes resets the connection.
fn body_stream(
    seed: u64,
    entry: Entry,
    cut_at: Option<u64>,
    bytes_per_second: Option<u64>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let size = entry.listed.size;
    futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= size {
            return None;
        }
        if cut_at.is_some_and(|cut| sent >= cut) {
            let error = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset");
            return Some((Err(error), size));
        }
        let len = CHUNK.min(size - sent);
        if let Some(rate) = bytes_per_second.filter(|r| *r > 0) {
            tokio::time::sleep(Duration::from_secs_f64(len as f64 / rate as f64)).await;
        }
        Some((
            Ok(Bytes::from(chunk(seed, entry.index, sent, len))),
            sent + len,
        ))
    })
}

const CHUNK: u64 = 64 << 10;

/// Calls `each` with the file's bytes, chunk by chunk.
fn for_each_chunk(seed: u64, index: u64, size: u64, mut each: impl FnMut(&[u8])) {
    let mut offset = 0;
    while offset < size {
        let len = CHUNK.min(size - offset);
        each(&chunk(seed, index, offset, len));
        offset += len;
    }
}

/// Bytes `offset..offset + len` of file `index`: SplitMix64 of (seed, index, 8-byte word).
fn chunk(seed: u64, index: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut word = offset / 8;
    let mut skip = (offset % 8) as usize;
    while (out.len() as u64) < len {
        let bytes = splitmix(seed ^ index.rotate_left(32) ^ word).to_le_bytes();
        let take = (8 - skip).min((len as usize) - out.len());
        out.extend_from_slice(&bytes[skip..skip + take]);
        skip = 0;
        word += 1;
    }
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic coin with probability `p`.
fn chance(state: &mut u64, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    *state = splitmix(*state);
    ((*state >> 11) as f64 / (1u64 << 53) as f64) < p
}
