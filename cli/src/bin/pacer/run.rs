//! `pacer run` and `pacer origin`: the main job, on the embedded origin or any other.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use pacer_cli::group::{self, Group, GroupOptions};
use pacer_cli::http::{self, HttpOptions, Redirects};
use pacer_cli::origin::{Announce, LimitScope, Origin, OriginOptions};
use pacer_cli::pipeline::{self, PipelineOptions, Progress, Summary};
use pacer_cli::state_file;
use pacer_host::{BufferPool, Environment, Policy, Runtime, SandboxOptions, SystemEnvironment};

use crate::progress::{Bars, Quiet};

/// The embedded origin's knobs (also `pacer origin`'s).
#[derive(Args, Debug, Clone)]
pub struct OriginArgs {
    /// Files in the embedded origin's catalogue.
    #[arg(long, default_value_t = 60)]
    pub files: usize,
    /// Bytes per file.
    #[arg(long, default_value_t = 2 << 20)]
    pub file_size: u64,
    /// Requests the origin allows per client per hour.
    #[arg(long, default_value_t = 3600.0)]
    pub origin_rate: f64,
    /// Requests the origin allows at once.
    #[arg(long, default_value_t = 3)]
    pub origin_burst: u32,
    /// Fault: share of file requests answered 503 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fault: share of bodies cut off halfway by a connection reset (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Fault: send bodies no faster than this many bytes per second.
    #[arg(long)]
    pub slow: Option<u64>,
    /// Whom the limit binds: each client alone (its X-Client header), or all clients together
    /// (one account's quota, which hosts sharing a limit must respect together).
    #[arg(long, value_enum, default_value_t = Scope::Client)]
    pub limit_scope: Scope,
    /// Announce the quota left to each client on every file response: in the IETF draft's
    /// RateLimit headers, in X-RateLimit-* headers, or not at all.
    #[arg(long, value_enum, default_value_t = Headers::None)]
    pub announce: Headers,
    /// Change the limit mid-run: comma-separated SECONDS:PER_HOUR steps, e.g. `30:1800,60:3600`
    /// halves a limit of 3600 an hour 30 s in and restores it 30 s later.
    #[arg(long, value_name = "STEPS")]
    pub origin_schedule: Option<String>,
}

/// `--origin-schedule`: `SECONDS:PER_HOUR` steps, in time order, each rate a valid quota.
fn schedule(text: &str) -> Result<Vec<(Duration, f64)>, String> {
    let mut steps: Vec<(Duration, f64)> = Vec::new();
    for step in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| format!("--origin-schedule: {step:?}: {why}");
        let (at, rate) = step
            .split_once(':')
            .ok_or_else(|| bad("expected SECONDS:PER_HOUR"))?;
        let at: f64 = at
            .trim()
            .parse()
            .map_err(|_| bad("SECONDS is not a number"))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| bad("PER_HOUR is not a number"))?;
        if !(0.0..=1e9).contains(&at) {
            return Err(bad("SECONDS must be from 0 to 1e9"));
        }
        if !(pacer::quota::MIN_TOKENS_PER_HOUR..=pacer::quota::MAX_TOKENS_PER_HOUR).contains(&rate)
        {
            return Err(bad("PER_HOUR must be from 0.0001 to 3.6e12"));
        }
        let at = Duration::from_secs_f64(at);
        if steps.last().is_some_and(|(last, _)| *last > at) {
            return Err(bad("steps must be in time order"));
        }
        steps.push((at, rate));
    }
    Ok(steps)
}

/// `--redirects`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectArg {
    /// Follow none.
    None,
    /// Only to the origin's own scheme, host and port.
    SameOrigin,
    /// To any host, never from https to plain http.
    AnyHost,
    /// Anywhere, https to plain http included.
    Insecure,
}

impl RunArgs {
    /// The HTTP client's deadlines and redirect rule, checked; errors name the flag.
    fn http(&self) -> Result<HttpOptions, String> {
        let options = HttpOptions {
            read_timeout: Duration::from_millis(self.read_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            redirects: match self.redirects {
                RedirectArg::None => Redirects::None,
                RedirectArg::SameOrigin => Redirects::SameOrigin,
                RedirectArg::AnyHost => Redirects::AnyHost,
                RedirectArg::Insecure => Redirects::Insecure,
            },
        };
        options.check()?;
        Ok(options)
    }
}

/// The config's pool section within what `pacer run` will allocate for `workers`; errors name
/// the field (or the flag).
fn bounded_pool(config: &str, workers: usize) -> Result<pacer::config::PoolConfig, String> {
    // The policy's configure has validated the config; this adds the host's own caps.
    let pool = pacer::Config::from_json(config)
        .map(|c| c.pool)
        .unwrap_or_default();
    if pool.buffer_size > MAX_BUFFER_SIZE {
        return Err(format!(
            "config: pool.buffer_size: must be at most {MAX_BUFFER_SIZE} (16 MiB), got {}",
            pool.buffer_size
        ));
    }
    if pool.max_buffers > MAX_POOL_BUFFERS {
        return Err(format!(
            "config: pool.max_buffers: must be at most {MAX_POOL_BUFFERS}, got {}",
            pool.max_buffers
        ));
    }
    // Each worker rents one buffer at a time, so no more than `workers` ever exist (idle ones
    // included); both factors are capped, so the product fits.
    let bytes = workers as u64 * pool.buffer_size;
    if bytes > MAX_BUFFER_BYTES {
        return Err(format!(
            "--workers {workers} x config pool.buffer_size {}: {bytes} bytes of buffers, more \
             than {MAX_BUFFER_BYTES} (1 GiB)",
            pool.buffer_size
        ));
    }
    Ok(pool)
}

/// `--announce`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// No rate-limit headers.
    None,
    /// RateLimit and RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-10).
    Draft,
    /// X-RateLimit-Limit, -Remaining and -Reset.
    Legacy,
}

/// `--limit-scope`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One quota per client.
    Client,
    /// One quota for all clients.
    Global,
}

/// `--files` at most: the catalogue's own cap.
const MAX_FILES: usize = pacer_cli::catalogue::MAX_ENTRIES;
/// `--file-size` at most: 1 GiB.
const MAX_FILE_SIZE: u64 = 1 << 30;
/// `--files` × `--file-size` at most: 16 GiB (the origin hashes it all when it starts).
const MAX_CATALOGUE_BYTES: u64 = 16 << 30;
/// `--workers` at most.
const MAX_WORKERS: usize = 256;
/// `pool.buffer_size` at most: 16 MiB.
const MAX_BUFFER_SIZE: u64 = 16 << 20;
/// `pool.max_buffers` at most.
const MAX_POOL_BUFFERS: u32 = 4096;
/// Bytes of buffers at once (one per worker) at most: 1 GiB.
const MAX_BUFFER_BYTES: u64 = 1 << 30;

impl OriginArgs {
    fn options(&self) -> Result<OriginOptions, String> {
        if self.files > MAX_FILES {
            return Err(format!(
                "--files: must be at most {MAX_FILES}, got {}",
                self.files
            ));
        }
        if self.file_size > MAX_FILE_SIZE {
            return Err(format!(
                "--file-size: must be at most {MAX_FILE_SIZE} (1 GiB), got {}",
                self.file_size
            ));
        }
        // Both within their caps: the product fits in a u64.
        let catalogue = self.files as u64 * self.file_size;
        if catalogue > MAX_CATALOGUE_BYTES {
            return Err(format!(
                "--files x --file-size: {catalogue} bytes, more than the embedded origin's \
                 {MAX_CATALOGUE_BYTES} (16 GiB)"
            ));
        }
        if !(pacer::quota::MIN_TOKENS_PER_HOUR..=pacer::quota::MAX_TOKENS_PER_HOUR)
            .contains(&self.origin_rate)
        {
            return Err(format!(
                "--origin-rate: must be from 0.0001 to 3.6e12 requests an hour, got {}",
                self.origin_rate
            ));
        }
        if !(1..=pacer::quota::MAX_BURST).contains(&self.origin_burst) {
            return Err(format!(
                "--origin-burst: must be from 1 to {}, got {}",
                pacer::quota::MAX_BURST,
                self.origin_burst
            ));
        }
        for (name, rate) in [
            ("--error-rate", self.error_rate),
            ("--reset-rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name}: must be from 0 to 1, got {rate}"));
            }
        }
        Ok(OriginOptions {
            files: self.files,
            file_size_bytes: self.file_size,
            seed: 1,
            tokens_per_hour: self.origin_rate,
            burst: self.origin_burst,
            error_rate: self.error_rate,
            reset_rate: self.reset_rate,
            slow_bytes_per_second: self.slow,
            limit_scope: match self.limit_scope {
                Scope::Client => LimitScope::Client,
                Scope::Global => LimitScope::Global,
            },
            announce: match self.announce {
                Headers::None => Announce::None,
                Headers::Draft => Announce::Draft,
                Headers::Legacy => Announce::Legacy,
            },
            schedule: self
                .origin_schedule
                .as_deref()
                .map(schedule)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// `pacer run`'s arguments.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Download from this origin (serving `/index.json` and `/files/<name>`) instead of the
    /// embedded one: http://… or https://… (checked against the platform's root certificates).
    #[arg(long)]
    pub origin: Option<String>,
    /// PEM file of CA certificates to trust for an https origin besides the platform's (a
    /// private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The policy module [default: dist/pacer.wasm].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The policy config (ABI v1 JSON) [default: the embedded origin's quota, or 90/h burst 3].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the files go; a re-run skips files already verified.
    #[arg(long, default_value = "pacer-downloads")]
    pub out: PathBuf,
    /// Downloads at once (1 to 256).
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// The longest silence allowed between bytes of a response (and before its headers), in
    /// milliseconds; a longer one fails the attempt, which is retried. 1 ms to a day.
    #[arg(long, value_name = "MS", default_value_t = http::DEFAULT_READ_TIMEOUT.as_millis() as u64)]
    pub read_timeout_ms: u64,
    /// One attempt's whole deadline, from connecting to the last byte, in milliseconds; an
    /// attempt still running then fails and is retried. 1 ms to a day.
    #[arg(long, value_name = "MS", default_value_t = http::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
    pub request_timeout_ms: u64,
    /// Which redirects to follow: none; same-origin (the origin's own scheme, host and port);
    /// any-host (never from https to plain http); insecure (anywhere). A refused one stops
    /// the run.
    #[arg(long, value_enum, default_value_t = RedirectArg::SameOrigin)]
    pub redirects: RedirectArg,
    /// Print the summary as JSON, and no progress bars.
    #[arg(long)]
    pub json: bool,
    /// Share the config's limits, and the catalogue, with the other hosts of --group through
    /// this Redis: redis://[USER:PASSWORD@]HOST:PORT/[DB], or rediss://… for TLS. The
    /// password is never printed.
    #[arg(long, value_name = "URL")]
    pub shared: Option<String>,
    /// With a rediss:// --shared: check Redis's certificate against the CA certificates in
    /// this PEM file instead of the platform's roots.
    #[arg(long, value_name = "FILE", requires = "shared")]
    pub redis_ca_cert: Option<PathBuf>,
    /// With --shared: the group's name; hosts with the same name share limits and work.
    #[arg(long, default_value = "pacer", requires = "shared")]
    pub group: String,
    /// With --shared: the most hosts the group will have. Each host's burst, and its share
    /// while Redis is unreachable, is the limit's divided by this.
    #[arg(long, default_value_t = 16, requires = "shared")]
    pub max_hosts: u32,
    /// With --shared: how long a share lasts unrenewed (a dead host's share returns within it).
    #[arg(long, default_value_t = 2000, requires = "shared")]
    pub lease_ms: u64,
    #[command(flatten)]
    pub embedded: OriginArgs,
}

pub fn run(args: &RunArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &RunArgs) -> Result<(), String> {
    if args.workers == 0 {
        return Err("--workers: must be at least 1, got 0".into());
    }
    if args.workers > MAX_WORKERS {
        return Err(format!(
            "--workers: must be at most {MAX_WORKERS}, got {}",
            args.workers
        ));
    }
    if let Some(origin) = &args.origin {
        http::origin_url(origin).map_err(|why| format!("--origin: {why}"))?;
    }
    let http_options = args.http()?;
    let group_options = match &args.shared {
        Some(url) => Some(GroupOptions {
            url: group::RedisUrl::parse(url)?,
            ca_cert: args.redis_ca_cert.clone(),
            group: args.group.clone(),
            max_hosts: args.max_hosts,
            lease: Duration::from_millis(args.lease_ms),
        }),
        None => None,
    };
    if let Some(options) = &group_options {
        options.check()?;
    }
    let module_path = match &args.policy {
        Some(path) => path.clone(),
        None => default_module()
            .ok_or("no policy module: run `make wasm` or pass --policy module.wasm")?,
    };
    let (origin, url) = match &args.origin {
        Some(url) => (None, url.trim_end_matches('/').to_string()),
        None => {
            let origin = Origin::start(args.embedded.options()?, 0)
                .await
                .map_err(|e| format!("embedded origin: {e}"))?;
            let url = origin.url();
            (Some(origin), url)
        }
    };
    let config = match &args.config {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None if origin.is_some() => embedded_config(&args.embedded),
        None => foreign_config(),
    };
    let sandbox = Runtime::new(SandboxOptions {
        cache_dir: crate::cache_dir(),
        ..SandboxOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let module = sandbox
        .load_file(&module_path)
        .map_err(|e| format!("{}: {e}", module_path.display()))?;
    let ahead_ns = Arc::new(AtomicI64::new(0));
    let environment = Resumed {
        inner: SystemEnvironment::detect(),
        ahead_ns: Arc::clone(&ahead_ns),
    };
    let mut policy = Policy::new(&module, Box::new(environment)).map_err(|e| e.to_string())?;
    let local = match &group_options {
        Some(options) => group::local_config(&config, options.max_hosts, options.lease)?,
        None => config.clone(),
    };
    policy
        .configure(&local)
        .map_err(|e| format!("config: {e}"))?;
    let state_path = state_file::path_in(&args.out);
    // A host of a group keeps no state of its own: the group's pauses and shares are in Redis,
    // and its bucket starts empty (a restored one would bring a burst the group did not grant).
    let keeps_state = group_options.is_none();
    let resumed = if keeps_state {
        resume(&mut policy, &state_path, &ahead_ns)
    } else {
        None
    };
    let policy = Arc::new(Mutex::new(policy));
    // After the resume, which brings back the configured rates: the group sets the shares.
    let group = match group_options {
        Some(options) => Some(Arc::new(
            Group::join(options, &config, Arc::clone(&policy)).await?,
        )),
        None => None,
    };
    // The pool section is validated by the core's own parser (defaults: 20 x 81,920 bytes),
    // then against what this host will allocate.
    let pool_config = bounded_pool(&config, args.workers)?;
    let pool = BufferPool::new(
        usize::try_from(pool_config.buffer_size).unwrap_or(usize::MAX),
        pool_config.max_buffers as usize,
    );
    if !args.json {
        say!("pacer run: {url} -> {}", args.out.display());
        say!(
            "  policy {} ({} workers)",
            module_path.display(),
            args.workers
        );
        if args.config.is_none() && origin.is_none() {
            say!(
                "  no --config: learning the origin's limit from its 429s and RateLimit headers, \
                 starting at {}/s, between a floor of {}/min and a ceiling of {}/s",
                FOREIGN_START_PER_HOUR / 3600.0,
                FOREIGN_FLOOR_PER_HOUR / 60.0,
                FOREIGN_CEILING_PER_HOUR / 3600.0
            );
        }
        if let Some(group) = &group {
            say!(
                "  sharing limits and work with group {:?} on {} as {} (at most {} hosts)",
                args.group,
                group.url(),
                group.host(),
                args.max_hosts
            );
        }
        if let Some(age) = resumed {
            say!(
                "  resumed the policy's state saved {:.1} s ago ({})",
                age.as_secs_f64(),
                state_path.display()
            );
        }
    }
    let bars = (!args.json).then(|| Arc::new(Bars::new(args.workers)));
    let progress: Arc<dyn Progress> = match &bars {
        Some(bars) => Arc::clone(bars) as Arc<dyn Progress>,
        None => Arc::new(Quiet),
    };
    let mut options = PipelineOptions::new(url.clone(), &args.out);
    options.workers = args.workers;
    options.http = http_options;
    options.state_file = keeps_state.then(|| state_path.clone());
    options.ca_cert.clone_from(&args.ca_cert);
    options.group.clone_from(&group);
    // Retry-After is honoured up to the policy's own longest backoff.
    if let Ok(parsed) = pacer::Config::from_json(&config) {
        options.max_retry_after = Duration::from_millis(parsed.backoff.max_ms);
    }
    let download = pipeline::run(options, policy, pool, Arc::clone(&progress));
    let outcome = tokio::select! {
        outcome = download => outcome,
        _ = tokio::signal::ctrl_c() => {
            return Err(format!("interrupted: finished files are in {}; partial ones (in .pacer-partial/) are fetched again by the next run", args.out.display()));
        }
    };
    if let Some(bars) = &bars {
        bars.clear();
    }
    if let Some(group) = &group {
        group.leave().await;
    }
    let summary = outcome.map_err(|e| e.to_string())?;
    let allowed = origin.as_ref().map(|_| args.embedded.origin_rate);
    if args.json {
        let mut json = summary_json(&summary, origin.as_ref(), allowed);
        if let Some(group) = &group {
            let (renewals, fallbacks) = group.counts();
            json["group"] = serde_json::json!({
                "name": args.group, "host": group.host(),
                "renewals": renewals, "fallbacks": fallbacks,
                "share_per_hour_at_end": group.rate(0),
            });
        }
        say!("{json}");
    } else {
        print_summary(&summary, origin.as_ref(), allowed, &args.out);
        if let Some(group) = &group {
            let (renewals, fallbacks) = group.counts();
            let share = group.rate(0).map_or(String::new(), |rate| {
                format!(", share at the end {:.1}/h", rate)
            });
            say!(
                "  {:<22} {:?} as {}: {renewals} renewals, {fallbacks} fallbacks to 1/{} of the rate{share}",
                "group",
                args.group,
                group.host(),
                args.max_hosts
            );
        }
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} file(s) failed", summary.failed.len()))
    }
}

/// The starting rate, floor and ceiling against an origin nobody configured (printed as is).
const FOREIGN_START_PER_HOUR: f64 = 36_000.0;
const FOREIGN_FLOOR_PER_HOUR: f64 = 60.0;
const FOREIGN_CEILING_PER_HOUR: f64 = 360_000.0;

/// Against an origin nobody configured: 10 requests a second to start, a one-second burst
/// starting half full, and the rate adaptive between one a minute and 100 a second (ABI.md,
/// Adaptive rates), with jitter under the starting interval.
fn foreign_config() -> String {
    format!(
        r#"{{"limiters":[{{"name":"origin","tokens_per_hour":{FOREIGN_START_PER_HOUR},"burst":10,"adaptive":{{"min_tokens_per_hour":{FOREIGN_FLOOR_PER_HOUR},"max_tokens_per_hour":{FOREIGN_CEILING_PER_HOUR}}}}}],"jitter":{{"strategy":"adaptive","max_ms":100}}}}"#
    )
}

/// The policy for the embedded origin: its quota and burst, starting half full, with jitter
/// under one interval so paced requests never bunch past the origin's burst.
fn embedded_config(origin: &OriginArgs) -> String {
    let interval_ms = (3.6e6 / origin.origin_rate).min(1000.0) as u64;
    format!(
        r#"{{"limiters":[{{"name":"origin","tokens_per_hour":{},"burst":{}}}],"jitter":{{"strategy":"adaptive","max_ms":{interval_ms}}}}}"#,
        origin.origin_rate, origin.origin_burst
    )
}

/// The system clock, moved forward once by the time a restored state spent on disk: the state
/// is restored at the clock's reading, then that much time passes at once, so a pause or an
/// open circuit saved by an earlier run ends when it would have.
struct Resumed {
    inner: SystemEnvironment,
    ahead_ns: Arc<AtomicI64>,
}

impl Environment for Resumed {
    fn now_ns(&mut self) -> i64 {
        self.inner
            .now_ns()
            .saturating_add(self.ahead_ns.load(Relaxed))
    }
    fn memory(&mut self) -> pacer::MemoryReading {
        self.inner.memory()
    }
    fn random_fill(&mut self, buf: &mut [u8]) {
        self.inner.random_fill(buf);
    }
}

/// Restores the state an earlier run saved in `path`, if any and if it fits this config;
/// returns its age. A state that does not fit is reported and left to be overwritten.
fn resume(policy: &mut Policy, path: &Path, ahead_ns: &AtomicI64) -> Option<Duration> {
    let saved = match state_file::load(path) {
        Ok(saved) => saved?,
        Err(reason) => {
            tracing::warn!("{reason}: starting with a fresh policy state");
            return None;
        }
    };
    if let Err(e) = policy.restore(&saved.snapshot) {
        tracing::warn!(
            "{}: not restored ({e}); starting with a fresh policy state",
            path.display()
        );
        return None;
    }
    let age = i64::try_from(saved.age.as_nanos()).unwrap_or(i64::MAX);
    ahead_ns.store(age, Relaxed);
    Some(saved.age)
}

fn default_module() -> Option<PathBuf> {
    crate::simulate::in_checkout("dist/pacer.wasm")
}

fn rate(summary: &Summary) -> f64 {
    let seconds = summary.elapsed.as_secs_f64();
    if seconds > 0.0 {
        summary.requests as f64 / seconds
    } else {
        0.0
    }
}

fn print_summary(
    summary: &Summary,
    origin: Option<&Origin>,
    allowed_per_hour: Option<f64>,
    out: &Path,
) {
    let seconds = summary.elapsed.as_secs_f64().max(1e-9);
    let mb = summary.bytes as f64 / 1e6;
    let levels: Vec<&str> = ["Low", "Medium", "High"]
        .iter()
        .zip(summary.pressure_seen)
        .filter_map(|(name, seen)| seen.then_some(*name))
        .collect();
    let row = |name: &str, value: String| say!("  {name:<22} {value}");
    say!("\nsummary ({})", out.display());
    row(
        "files",
        format!(
            "{} downloaded, {} already there, {} by other hosts, {} failed, of {}",
            summary.downloaded,
            summary.skipped,
            summary.by_others,
            summary.failed.len(),
            summary.files
        ),
    );
    row(
        "bytes",
        format!("{mb:.1} MB in {seconds:.1} s ({:.2} MB/s)", mb / seconds),
    );
    let allowed = allowed_per_hour.map_or(String::new(), |a| {
        format!(
            " = {:.1} % of the origin's {:.3}/s",
            100.0 * rate(summary) / (a / 3600.0),
            a / 3600.0
        )
    });
    row(
        "requests",
        format!("{} ({:.3}/s{allowed})", summary.requests, rate(summary)),
    );
    row("429s", summary.throttled.to_string());
    if let Some(rate) = summary.rate_at_end {
        row(
            "rate at the end",
            format!("{:.3}/s (the policy's, after adaptation)", rate / 3600.0),
        );
    }
    row("retries", summary.retries.to_string());
    row(
        "time waited",
        format!("{:.1} s across workers", summary.waited.as_secs_f64()),
    );
    let pool = &summary.pool;
    row(
        "buffer pool",
        format!(
            "{:.1} % hits ({} rents, {} allocations, {} trimmed, high-water {})",
            100.0 * pool.hit_rate(),
            pool.rents,
            pool.allocations,
            pool.trims,
            pool.high_water
        ),
    );
    row("pressure seen", levels.join(", "));
    if let Some(origin) = origin {
        let stats = origin.stats();
        row(
            "origin",
            format!(
                "{} requests, {} answered 429, {} 503, {} reset",
                stats.requests.load(Relaxed),
                stats.throttled.load(Relaxed),
                stats.errors.load(Relaxed),
                stats.resets.load(Relaxed)
            ),
        );
    }
    for (name, reason) in &summary.failed {
        row("FAILED", format!("{name}: {reason}"));
    }
}

fn summary_json(
    summary: &Summary,
    origin: Option<&Origin>,
    allowed_per_hour: Option<f64>,
) -> serde_json::Value {
    let origin = origin.map(|o| {
        let s = o.stats();
        serde_json::json!({ "requests": s.requests.load(Relaxed), "throttled": s.throttled.load(Relaxed), "errors": s.errors.load(Relaxed), "resets": s.resets.load(Relaxed) })
    });
    serde_json::json!({
        "files": summary.files, "downloaded": summary.downloaded, "skipped": summary.skipped,
        "by_other_hosts": summary.by_others,
        "failed": summary.failed.iter().map(|(n, r)| serde_json::json!({ "name": n, "reason": r })).collect::<Vec<_>>(),
        "bytes": summary.bytes, "seconds": summary.elapsed.as_secs_f64(),
        "requests": summary.requests, "requests_per_second": rate(summary),
        "allowed_per_second": allowed_per_hour.map(|a| a / 3600.0),
        "throttled": summary.throttled, "retries": summary.retries,
        "rate_per_second_at_end": summary.rate_at_end.map(|r| r / 3600.0),
        "waited_seconds": summary.waited.as_secs_f64(),
        "pool": { "rents": summary.pool.rents, "hits": summary.pool.hits, "allocations": summary.pool.allocations,
                  "drops": summary.pool.drops, "trims": summary.pool.trims, "high_water": summary.pool.high_water,
                  "hit_rate": summary.pool.hit_rate() },
        "pressure_seen": { "low": summary.pressure_seen[0], "medium": summary.pressure_seen[1], "high": summary.pressure_seen[2] },
        "origin": origin,
    })
}

/// `pacer origin`: the embedded origin alone, until Ctrl-C.
pub fn origin(args: &OriginArgs, port: u16) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    runtime.block_on(async {
        let origin = Origin::start(args.options()?, port)
            .await
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        say!(
            "pacer origin: serving {} files of {} bytes at {}",
            args.files,
            args.file_size,
            origin.url()
        );
        let scope = match args.limit_scope {
            Scope::Client => "per client",
            Scope::Global => "for all clients together",
        };
        say!(
            "  index: {}/index.json, limit {}/h {scope}, burst {} (Ctrl-C stops)",
            origin.url(),
            args.origin_rate,
            args.origin_burst
        );
        if let Some(steps) = &args.origin_schedule {
            say!("  the limit changes: {steps} (seconds:per hour)");
        }
        if args.announce != Headers::None {
            say!(
                "  every file response announces what is left ({:?} headers)",
                args.announce
            );
        }
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_foreign_config_is_adaptive_between_the_printed_floor_and_ceiling() {
        let config = pacer::Config::from_json(&foreign_config()).expect("valid");
        let limiter = &config.limiters[0];
        let adaptive = limiter.adaptive.expect("adaptive");
        assert_eq!(limiter.tokens_per_hour, FOREIGN_START_PER_HOUR);
        assert_eq!(adaptive.min_tokens_per_hour, FOREIGN_FLOOR_PER_HOUR);
        assert_eq!(adaptive.max_tokens_per_hour, FOREIGN_CEILING_PER_HOUR);
    }
}
