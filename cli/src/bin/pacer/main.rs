//! `pacer`: load, check and run pacer policy modules.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// Prints a line to stdout; a closed stdout (`pacer run --json | head`) is not an error worth
/// a panic: the reader is gone, so the line is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod progress;
mod run;
mod simulate;
use pacer::{Decision, Schedule};
use pacer_host::memory::MemorySource;
use pacer_host::{HostError, Policy, Runtime, SandboxOptions, ScriptedEnvironment};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The config `pacer check` uses when none is given: the guide's natural download pace.
const SAMPLE_CONFIG: &str =
    r#"{"seed":7,"limiters":[{"name":"downloads","tokens_per_hour":90,"burst":3}]}"#;

#[derive(Parser)]
#[command(
    name = "pacer",
    version,
    about = "Pacing policies as sandboxed WebAssembly modules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a catalogue, paced by the policy: from the embedded origin unless --origin.
    Run(Box<run::RunArgs>),
    /// Serve the embedded origin alone.
    Origin {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        #[command(flatten)]
        options: run::OriginArgs,
    },
    /// Serve the browser load simulator on 127.0.0.1 (build it first: `make www`).
    Serve {
        /// Port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// The page's directory; default: this checkout's www/.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a load simulation on the native core: the page's simulator, without the page.
    Simulate {
        /// A scenario (JSON, `-` = stdin); default: the page's starting scenario.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        /// Score pacer against the baseline strategies on the same arrivals: one table per
        /// scenario (every file in sim/scenarios/ unless --scenario), means over --seeds.
        #[arg(long)]
        scorecard: bool,
        /// With --scorecard: how many seeds, counting up from each scenario's own.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        seeds: u64,
    },
    /// Load a policy module, check it against ABI v1, and show a few of its decisions.
    Check {
        /// The module, e.g. dist/pacer.wasm (`make wasm` builds it).
        module: PathBuf,
        /// A policy config (JSON, ABI v1); default: 90 per hour, burst 3, seed 7.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // RUST_LOG as targets and levels (e.g. `pacer::module=debug,warn`); warnings by default.
    // `Targets` parses it without the regex engine EnvFilter needs: a faster cold build.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check { module, config } => check(module, config.as_deref()),
        Command::Run(args) => run::run(args),
        Command::Origin { port, options } => run::origin(options, *port),
        Command::Serve { port, dir } => simulate::serve(dir.as_deref(), *port),
        Command::Simulate {
            scenario,
            json,
            scorecard: true,
            seeds,
        } => simulate::scorecard(scenario.as_deref(), *seeds, *json),
        Command::Simulate { scenario, json, .. } => simulate::simulate(scenario.as_deref(), *json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pacer: {message}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path, config_path: Option<&Path>) -> Result<(), String> {
    let at = |e: HostError| match e {
        HostError::Io { .. } => e.to_string(),
        _ => format!("{}: {e}", path.display()),
    };
    let options = SandboxOptions {
        cache_dir: cache_dir(),
        ..SandboxOptions::default()
    };
    let runtime = Runtime::new(options).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let module = runtime.load_file(path).map_err(at)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    say!(
        "{}: pacer ABI v{} module, {size} bytes, loaded and checked in {:.1} ms",
        path.display(),
        module.info.abi_version,
        started.elapsed().as_secs_f64() * 1e3
    );
    say!("  features: {:#x}", module.info.features);
    say!("  imports:  {}", module.info.imports.join(", "));
    say!(
        "  exports:  {} ({})",
        module.info.exports.len(),
        module.info.exports.join(", ")
    );

    let (config, source) = match config_path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            (text, p.display().to_string())
        }
        None => (SAMPLE_CONFIG.to_string(), "built-in sample".to_string()),
    };
    // A virtual clock, so the sample is the same on every run; memory is read for real.
    let environment = ScriptedEnvironment::new();
    let memory = MemorySource::detect(Path::new("/"));
    let reading = memory.read();
    environment.update(|s| {
        s.memory_used = reading
            .used
            .and_then(|u| i64::try_from(u).ok())
            .unwrap_or(-1);
        s.memory_limit = reading
            .limit
            .and_then(|l| i64::try_from(l).ok())
            .unwrap_or(0);
    });
    let mut policy = Policy::new(&module, Box::new(environment.clone())).map_err(at)?;
    policy
        .configure(&config)
        .map_err(|e| format!("config ({source}): {e}"))?;
    say!("  config:   {source}: ok");
    sample(&mut policy, &environment, &memory).map_err(at)
}

fn sample(
    policy: &mut Policy,
    environment: &ScriptedEnvironment,
    memory: &MemorySource,
) -> Result<(), HostError> {
    say!("  sample decisions for limiter 0, on a virtual clock:");
    let at = |environment: &ScriptedEnvironment| {
        seconds(u64::try_from(environment.get().now_ns).unwrap_or(0))
    };
    for _ in 0..3 {
        let decision = policy.try_acquire(0, 1)?;
        let available = policy.available_milli(0)? as f64 / 1000.0;
        let what = match decision {
            Decision::Admit => "admitted".to_string(),
            Decision::Wait(ns) => format!("wait {}", seconds(ns)),
        };
        say!(
            "    t={:>8}  try_acquire(1)    {what:<18} available {available:.3}",
            at(environment)
        );
    }
    for _ in 0..3 {
        let schedule = policy.next_delay(0, 1, Duration::from_millis(500))?;
        let what = match schedule {
            Schedule::Act { delay } => {
                let line = format!("act after {}", seconds(delay));
                environment.update(|s| s.now_ns += i64::try_from(delay).unwrap_or(0));
                line
            }
            Schedule::CircuitOpen { retry_in } => {
                format!("circuit open, retry in {}", seconds(retry_in))
            }
        };
        say!("    t={:>8}  next_delay(0.5 s) {what}", at(environment));
    }
    policy.on_response(0, 429, Some(Duration::from_secs(30)))?;
    let wait = policy.try_acquire(0, 1)?.wait_ns();
    say!(
        "    t={:>8}  on_response(429, Retry-After 30 s): next try waits {}",
        at(environment),
        seconds(wait)
    );
    let reading = memory.read();
    let gib = |b: Option<u64>| {
        b.map_or("unknown".to_string(), |b| {
            format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))
        })
    };
    say!(
        "  memory ({memory:?}): {} of {}: pressure {:?}, pool target {} of 20",
        gib(reading.used),
        gib(reading.limit),
        policy.pressure()?,
        policy.pool_target(20)?
    );
    Ok(())
}

/// Compiled modules are cached in `$XDG_CACHE_HOME/pacer` (or `~/.cache/pacer`):
/// a second load deserializes instead of compiling.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("pacer"))
}

fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}
