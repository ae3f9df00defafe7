//! A hosted policy: `pacer_host::Policy` over dist/pacer.wasm in wasmtime, driven by a random
//! sequence of API calls with arbitrary arguments (hostile ones included: clocks that jump
//! back, limiters and costs past `i32::MAX`, NaN and infinite rates, zero and huge durations,
//! configs and snapshots of random bytes).
//!
//! The oracle is the core itself: every call is made on the hosted policy and on a native
//! `pacer::exports::Exports` (the code the module is built from, instrumented here, so the
//! fuzzer's coverage is the core's) fed the same imports. Invariants: no panic and no trap
//! (a module error is an error, never a crash); the hosted answer equals the native one,
//! value for value and error code for error code; after every call, error or not, both
//! still answer and their snapshots are byte for byte the same.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use pacer::exports::{Exports, Host, LogLevel};
use pacer::{Decision, Schedule};
use pacer_host::{HostError, Policy, PolicyModule, Runtime, SandboxOptions, ScriptedEnvironment};

/// `pacer_next_delay_ns`'s answer while the circuit is open.
const CIRCUIT_OPEN: i64 = -7;

/// The engine and dist/pacer.wasm, compiled once per process.
fn module() -> &'static PolicyModule {
    static MODULE: OnceLock<PolicyModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let runtime = Runtime::new(SandboxOptions {
            // Generous: the fuzzer shares a loaded machine; a real hang still shows (libFuzzer's
            // -timeout is the backstop).
            call_timeout: Duration::from_secs(10),
            pool_instances: 2,
            ..SandboxOptions::default()
        })
        .expect("a wasmtime engine");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/pacer.wasm");
        runtime
            .load_file(path.as_ref())
            .unwrap_or_else(|e| panic!("{path}: {e} (run `make wasm`)"))
    })
}

/// `FUZZ_TRACE=1`: print each call and both answers (to read a crash input).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// The native side's imports: the same script the hosted policy's environment reads.
struct Mirror(ScriptedEnvironment);

impl Host for Mirror {
    fn now_ns(&mut self) -> i64 {
        self.0.get().now_ns
    }
    fn memory_used(&mut self) -> i64 {
        self.0.get().memory_used
    }
    fn memory_limit(&mut self) -> i64 {
        self.0.get().memory_limit
    }
    /// As [`ScriptedEnvironment`]'s: byte `i` is `i mod 256`.
    fn random_fill(&mut self, buf: &mut [u8]) {
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
}

/// A hosted answer as the ABI's integer: the value, or the module's error code. Anything else
/// (a trap, a timeout, a module found incompatible) is a finding.
fn code<T>(
    call: &str,
    result: std::result::Result<T, HostError>,
    value: impl FnOnce(T) -> i64,
) -> i64 {
    match result {
        Ok(ok) => value(ok),
        Err(HostError::Policy { code, message }) => {
            assert!(code < 0, "{call}: error code {code}");
            assert!(
                !message.is_empty(),
                "{call}: error {code} without a message"
            );
            i64::from(code)
        }
        Err(other) => panic!("{call}: not an error code but {other}"),
    }
}

fn arg(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn retry_ms(retry: Option<Duration>) -> i64 {
    retry.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A limiter index: mostly one that may exist, sometimes any `u32`.
fn limiter(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => u.arbitrary()?,
        n => u32::from(n % 4),
    })
}

/// A cost: mostly small, sometimes 0 or anything.
fn cost(u: &mut Unstructured) -> Result<u32> {
    Ok(match u.int_in_range(0..=7)? {
        0 => u.arbitrary()?,
        n => n - 1,
    })
}

fn duration(u: &mut Unstructured) -> Result<Duration> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Duration::from_nanos(u.arbitrary()?),
        1 => Duration::from_millis(u.int_in_range(0..=10_000)?),
        2 => Duration::from_secs(u.arbitrary::<u64>()?),
        _ => Duration::ZERO,
    })
}

/// A number for a config: an interesting one, or any `f64` (NaN and inf make invalid JSON).
fn number(u: &mut Unstructured) -> Result<String> {
    const VALUES: [&str; 12] = [
        "0",
        "1",
        "-1",
        "0.0001",
        "0.5",
        "3.6e12",
        "3.6e13",
        "4294967295",
        "4294967296",
        "9007199254740993",
        "1e308",
        "-0",
    ];
    Ok(match u.int_in_range(0..=2)? {
        0 => VALUES[usize::from(u.arbitrary::<u8>()?) % VALUES.len()].to_string(),
        1 => u.arbitrary::<u32>()?.to_string(),
        _ => u.arbitrary::<f64>()?.to_string(),
    })
}

/// A config document: built from parts with arbitrary numbers (often valid), or raw text.
fn config(u: &mut Unstructured) -> Result<String> {
    if u.int_in_range(0..=7)? == 0 {
        let len = u.int_in_range(0..=200)?;
        return Ok(String::from_utf8_lossy(u.bytes(len.min(u.len()))?).into_owned());
    }
    let mut limiters = Vec::new();
    for i in 0..u.int_in_range(1..=3)? {
        let mut fields = vec![
            format!(r#""name":"l{}""#, i % 3),
            format!(r#""tokens_per_hour":{}"#, number(u)?),
        ];
        if u.arbitrary()? {
            fields.push(format!(r#""burst":{}"#, number(u)?));
        }
        if u.arbitrary()? {
            fields.push(format!(r#""initial":{}"#, number(u)?));
        }
        if u.arbitrary()? {
            fields.push(format!(
                r#""adaptive":{{"min_tokens_per_hour":{},"max_tokens_per_hour":{},"on_503":{}}}"#,
                number(u)?,
                number(u)?,
                u.arbitrary::<bool>()?
            ));
        }
        limiters.push(format!("{{{}}}", fields.join(",")));
    }
    let mut doc = vec![format!(r#""limiters":[{}]"#, limiters.join(","))];
    if u.arbitrary()? {
        doc.push(format!(r#""seed":{}"#, number(u)?));
    }
    if u.arbitrary()? {
        let strategy = ["adaptive", "full", "equal", "decorrelated", "none", "bogus"];
        doc.push(format!(
            r#""jitter":{{"strategy":"{}","max_ms":{}}}"#,
            strategy[usize::from(u.arbitrary::<u8>()?) % strategy.len()],
            number(u)?
        ));
    }
    if u.arbitrary()? {
        doc.push(format!(
            r#""backoff":{{"base_ms":{},"max_ms":{},"failure_threshold":{},"open_ms":{}}}"#,
            number(u)?,
            number(u)?,
            number(u)?,
            number(u)?
        ));
    }
    if u.arbitrary()? {
        doc.push(format!(
            r#""pressure":{{"medium":{},"high":{},"hysteresis":{},"high_delay_ms":{}}}"#,
            number(u)?,
            number(u)?,
            number(u)?,
            number(u)?
        ));
    }
    Ok(format!("{{{}}}", doc.join(",")))
}

struct Run {
    script: ScriptedEnvironment,
    hosted: Policy,
    native: Exports<Mirror>,
    last_snapshot: Vec<u8>,
}

impl Run {
    /// Both sides' snapshots (which also brings both clocks' high-water marks to `now`).
    fn same_state(&mut self, after: &str) {
        let hosted = self.hosted.snapshot();
        let native = self.native.state_export();
        match hosted {
            Ok(bytes) => {
                assert!(
                    native >= 0,
                    "after {after}: hosted snapshot, native code {native}"
                );
                if trace() && bytes != self.native.snapshot() {
                    eprintln!("hosted {bytes:?}\nnative {:?}", self.native.snapshot());
                }
                assert!(
                    bytes == self.native.snapshot(),
                    "after {after}: the snapshots differ"
                );
                self.last_snapshot = bytes;
            }
            Err(error) => assert_eq!(
                code("snapshot", Err::<(), _>(error), |_| 0),
                i64::from(native)
            ),
        }
    }

    fn step(&mut self, u: &mut Unstructured) -> Result<()> {
        let now = self.script.get().now_ns;
        let op = u.int_in_range(0..=21)?;
        let (name, hosted, native): (&str, i64, i64) = match op {
            0 => {
                let by: u32 = u.arbitrary()?;
                self.script
                    .update(|s| s.now_ns = s.now_ns.saturating_add(by.into()));
                return Ok(());
            }
            1 => {
                let to: i64 = u.arbitrary()?;
                self.script.update(|s| s.now_ns = to);
                return Ok(());
            }
            2 => {
                let (used, limit): (i64, i64) = match u.int_in_range(0..=2)? {
                    0 => (u.arbitrary()?, u.arbitrary()?),
                    1 => (u.int_in_range(0..=100)?, 100),
                    _ => (-1, 0),
                };
                self.script.update(|s| {
                    s.memory_used = used;
                    s.memory_limit = limit;
                });
                return Ok(());
            }
            3 => {
                let json = config(u)?;
                let h = code("configure", self.hosted.configure(&json), |()| 0);
                (
                    "configure",
                    h,
                    configure_as_the_host_does(&mut self.native, &json).into(),
                )
            }
            4 => {
                let (l, c) = (limiter(u)?, cost(u)?);
                let h = code("try_acquire", self.hosted.try_acquire(l, c), |d| match d {
                    Decision::Admit => 0,
                    Decision::Wait(wait) => {
                        assert!(wait > 0, "Wait(0)");
                        i64::try_from(wait).unwrap_or(i64::MAX)
                    }
                });
                (
                    "try_acquire",
                    h,
                    self.native.try_acquire_at(now, arg(l), arg(c)),
                )
            }
            5 => {
                let (l, c) = (limiter(u)?, cost(u)?);
                let h = code("reserve", self.hosted.reserve(l, c), |w| w as i64);
                ("reserve", h, self.native.reserve_at(now, arg(l), arg(c)))
            }
            6 => {
                let (l, c) = (limiter(u)?, cost(u)?);
                let due: i64 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    now.saturating_add(u.arbitrary::<u32>()?.into())
                };
                let h = code("cancel", self.hosted.cancel(l, c, due), i64::from);
                ("cancel", h, self.native.cancel(arg(l), arg(c), due).into())
            }
            7 | 8 => {
                let (l, c, d) = (limiter(u)?, cost(u)?, duration(u)?);
                let hosted = if op == 7 {
                    self.hosted.next_delay(l, c, d)
                } else {
                    self.hosted
                        .replace(l, c, d.as_nanos().try_into().unwrap_or(u64::MAX))
                };
                let native = if op == 7 {
                    self.native.next_delay_at(now, arg(l), arg(c), ns(d))
                } else {
                    self.native.replace_ns(arg(l), arg(c), ns(d))
                };
                let native_retry =
                    (native == CIRCUIT_OPEN).then(|| self.native.retry_in_ns(arg(l)));
                let h = code("next_delay/replace", hosted, |s| match s {
                    Schedule::Act { delay } => i64::try_from(delay).unwrap_or(i64::MAX),
                    Schedule::CircuitOpen { retry_in } => {
                        assert_eq!(Some(retry_in as i64), native_retry, "retry_in while open");
                        CIRCUIT_OPEN
                    }
                });
                ("next_delay/replace", h, native)
            }
            9 | 10 => {
                let l = limiter(u)?;
                let status: u16 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    [0, 200, 429, 503, 500, 999][usize::from(u.arbitrary::<u8>()?) % 6]
                };
                let retry = if u.arbitrary()? {
                    Some(duration(u)?)
                } else {
                    None
                };
                if op == 9 {
                    let h = code(
                        "on_response",
                        self.hosted.on_response(l, status, retry),
                        |()| 0,
                    );
                    (
                        "on_response",
                        h,
                        self.native
                            .on_response(arg(l), status.into(), retry_ms(retry))
                            .into(),
                    )
                } else {
                    let sent: i64 = if u.arbitrary()? {
                        u.arbitrary()?
                    } else {
                        now.saturating_sub(u.arbitrary::<u32>()?.into())
                    };
                    let h = code(
                        "on_response_sent",
                        self.hosted.on_response_sent(l, status, retry, sent),
                        |()| 0,
                    );
                    let n =
                        self.native
                            .on_response_sent(arg(l), status.into(), retry_ms(retry), sent);
                    ("on_response_sent", h, n.into())
                }
            }
            11 => {
                let l = limiter(u)?;
                let rate: f64 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    f64::from(u.arbitrary::<u32>()?) / 16.0
                };
                let micro = (rate * 1e6).round();
                let micro = if micro.is_finite() && (0.0..9.2e18).contains(&micro) {
                    micro as i64
                } else {
                    -1
                };
                let h = code("set_rate", self.hosted.set_rate(l, rate), |()| 0);
                ("set_rate", h, self.native.set_rate(arg(l), micro).into())
            }
            12 => {
                let l = limiter(u)?;
                let n = self.native.rate_micro(arg(l));
                let h = code("rate", self.hosted.rate(l), |rate| {
                    let rate = rate.expect("dist/pacer.wasm has pacer_rate_micro");
                    assert_eq!(rate, n as f64 / 1e6, "rate");
                    n
                });
                ("rate", h, n)
            }
            13 => {
                let l = limiter(u)?;
                let limit: Option<u64> = u.arbitrary()?;
                let remaining: u64 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    u.int_in_range(0..=100)?
                };
                let reset = duration(u)?;
                let in_flight: u64 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    u.int_in_range(0..=5)?
                };
                let h = code(
                    "announce",
                    self.hosted.announce(l, limit, remaining, reset, in_flight),
                    |b| {
                        assert!(b, "dist/pacer.wasm has pacer_announce");
                        0
                    },
                );
                let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let n = self.native.announce(
                    arg(l),
                    limit.map_or(-1, big),
                    big(remaining),
                    ns(reset),
                    big(in_flight),
                );
                ("announce", h, n.into())
            }
            14 => {
                let (l, d) = (limiter(u)?, duration(u)?);
                let h = code("pause", self.hosted.pause(l, d), |()| 0);
                ("pause", h, self.native.pause(arg(l), ns(d)).into())
            }
            15 => {
                let l = limiter(u)?;
                let h = code("retry_in", self.hosted.retry_in(l), |w| w as i64);
                ("retry_in", h, self.native.retry_in_ns(arg(l)))
            }
            16 => {
                let l = limiter(u)?;
                let h = code("available_milli", self.hosted.available_milli(l), |v| v);
                ("available_milli", h, self.native.available_milli(arg(l)))
            }
            17 => {
                let (base, ppm) = (
                    duration(u)?,
                    if u.arbitrary()? {
                        u.arbitrary()?
                    } else {
                        u.int_in_range(0..=1_000_000)?
                    },
                );
                let h = code("jitter", self.hosted.jitter(base, ppm), |w| w as i64);
                ("jitter", h, self.native.jitter_ns(ns(base), arg(ppm)))
            }
            18 => {
                let h = code("pressure", self.hosted.pressure(), |l| l as i64);
                let t = code("should_throttle", self.hosted.should_throttle(), i64::from);
                let n = self.native.pressure();
                assert_eq!(
                    t,
                    i64::from(self.native.should_throttle()),
                    "should_throttle"
                );
                ("pressure", h, n.into())
            }
            19 => {
                let max: u32 = if u.arbitrary()? {
                    u.arbitrary()?
                } else {
                    u.int_in_range(0..=64)?
                };
                let h = code("pool_target", self.hosted.pool_target(max), i64::from);
                ("pool_target", h, self.native.pool_target(arg(max)).into())
            }
            20 => {
                // Our own snapshot, perhaps altered (and its CRC fixed, or not), or raw bytes.
                let mut bytes = if u.arbitrary()? {
                    self.last_snapshot.clone()
                } else {
                    let len = u.int_in_range(0..=300)?;
                    u.bytes(len.min(u.len()))?.to_vec()
                };
                if !bytes.is_empty() && u.arbitrary()? {
                    let at = usize::from(u.arbitrary::<u16>()?) % bytes.len();
                    bytes[at] ^= u.arbitrary::<u8>()?;
                    if u.arbitrary()? && bytes.len() >= 4 {
                        let body = bytes.len() - 4;
                        let crc = pacer::snapshot::crc32(&bytes[..body]);
                        bytes[body..].copy_from_slice(&crc.to_le_bytes());
                    }
                }
                let h = code("restore", self.hosted.restore(&bytes), |()| 0);
                ("restore", h, self.native.state_import(&bytes).into())
            }
            _ => {
                // The module's own message for its last failure is readable at any time.
                let message = self.hosted.last_error().expect("last_error answers");
                assert!(
                    message.len() <= 4096,
                    "a {}-byte error message",
                    message.len()
                );
                return Ok(());
            }
        };
        if trace() {
            eprintln!("{name} at {now}: hosted {hosted}, native {native}");
        }
        assert_eq!(hosted, native, "{name}: hosted {hosted}, native {native}");
        self.same_state(name);
        Ok(())
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let script = ScriptedEnvironment::new();
    let hosted = Policy::new(module(), Box::new(script.clone())).expect("an instance");
    let native = Exports::new(Mirror(script.clone()));
    let mut run = Run {
        script,
        hosted,
        native,
        last_snapshot: Vec::new(),
    };
    // Most runs start configured, so the calls reach the policy.
    if !u.arbitrary::<u8>().unwrap_or(0).is_multiple_of(8) {
        let json = r#"{"seed":7,"limiters":[{"name":"a","tokens_per_hour":3600,"burst":3},{"name":"b","tokens_per_hour":60,"adaptive":{"min_tokens_per_hour":6,"max_tokens_per_hour":600,"on_503":true}}],"backoff":{"base_ms":100,"max_ms":2000,"failure_threshold":2,"open_ms":1000}}"#;
        run.hosted.configure(json).expect("the starting config");
        assert_eq!(configure_as_the_host_does(&mut run.native, json), 0);
    }
    // Both clocks' high-water marks at the start (the hosted configure took a checkpoint).
    run.same_state("the start");
    for _ in 0..64 {
        if u.is_empty() || run.step(&mut u).is_err() {
            break;
        }
    }
});

/// `pacer_configure`, then what the host does after an accepted config (`Policy::configure`):
/// a snapshot of it imported straight back, the check that the module can be restored.
fn configure_as_the_host_does(native: &mut Exports<Mirror>, json: &str) -> i32 {
    let code = native.configure(json.as_bytes());
    if code != 0 {
        return code;
    }
    assert!(native.state_export() >= 0, "native export after configure");
    let snapshot = native.snapshot().to_vec();
    native.state_import(&snapshot)
}
