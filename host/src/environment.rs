//! What the module's imports read: the clock, memory, entropy. Real sources for production,
//! and a scripted one for replaying test vectors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pacer::MemoryReading;

use crate::memory::MemorySource;

/// The values behind the `now_ns`, `memory_used`, `memory_limit` and `random_fill` imports.
pub trait Environment: Send + 'static {
    /// Monotonic nanoseconds from any origin.
    fn now_ns(&mut self) -> i64;
    /// Bytes used and allowed (each `None` when unknown).
    fn memory(&mut self) -> MemoryReading;
    /// Fills `buf` with random bytes.
    fn random_fill(&mut self, buf: &mut [u8]);
}

/// The real machine: a TSC clock, cgroup or /proc memory readings, OS entropy.
#[derive(Debug)]
pub struct SystemEnvironment {
    clock: quanta::Clock,
    origin: u64,
    source: MemorySource,
    refresh_ns: u64,
    last_read_ns: Option<i64>,
    reading: MemoryReading,
}

impl SystemEnvironment {
    /// Reads memory at most once per `memory_refresh`, since the policy may ask on every decision
    /// and a cgroup read costs microseconds.
    pub fn new(source: MemorySource, memory_refresh: Duration) -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        SystemEnvironment {
            clock,
            origin,
            source,
            refresh_ns: u64::try_from(memory_refresh.as_nanos()).unwrap_or(u64::MAX),
            last_read_ns: None,
            reading: MemoryReading::default(),
        }
    }

    /// This process's memory source, found under `/`, refreshed every 100 ms.
    pub fn detect() -> Self {
        SystemEnvironment::new(
            MemorySource::detect(std::path::Path::new("/")),
            Duration::from_millis(100),
        )
    }
}

impl Environment for SystemEnvironment {
    fn now_ns(&mut self) -> i64 {
        // Raw counter ticks scaled straight to ns: no Duration round trip on the hot path.
        let elapsed = self.clock.delta_as_nanos(self.origin, self.clock.raw());
        i64::try_from(elapsed).unwrap_or(i64::MAX)
    }

    fn memory(&mut self) -> MemoryReading {
        let now = self.now_ns();
        let stale = self
            .last_read_ns
            .is_none_or(|last| now.abs_diff(last) >= self.refresh_ns);
        if stale {
            self.reading = self.source.read();
            self.last_read_ns = Some(now);
        }
        self.reading
    }

    fn random_fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // No OS entropy is a broken machine; fall back to clock bits rather than zeros.
            let seed = self.now_ns().to_le_bytes();
            buf.iter_mut()
                .zip(seed.iter().cycle())
                .for_each(|(b, s)| *b ^= s);
        }
    }
}

/// Values set by hand, shared with the test that sets them (clones see the same values).
#[derive(Debug, Clone, Default)]
pub struct ScriptedEnvironment {
    values: Arc<Mutex<Script>>,
}

/// What a [`ScriptedEnvironment`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Script {
    /// `now_ns`.
    pub now_ns: i64,
    /// `memory_used` (`< 0` unknown).
    pub memory_used: i64,
    /// `memory_limit` (`<= 0` unknown).
    pub memory_limit: i64,
    /// How many times `random_fill` was called.
    pub random_fill_calls: u64,
}

impl ScriptedEnvironment {
    /// Clock at 0, memory unknown.
    pub fn new() -> Self {
        let script = Script {
            memory_used: -1,
            ..Script::default()
        };
        ScriptedEnvironment {
            values: Arc::new(Mutex::new(script)),
        }
    }

    /// Changes the values.
    pub fn update(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.lock());
    }

    /// The values now.
    pub fn get(&self) -> Script {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        // A test that panicked while holding the lock left plain numbers behind: still usable.
        self.values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Environment for ScriptedEnvironment {
    fn now_ns(&mut self) -> i64 {
        self.get().now_ns
    }

    fn memory(&mut self) -> MemoryReading {
        let script = self.get();
        MemoryReading::from_abi(script.memory_used, script.memory_limit)
    }

    /// Byte `i` is `i mod 256`, as the test-vector format specifies.
    fn random_fill(&mut self, buf: &mut [u8]) {
        self.update(|s| s.random_fill_calls += 1);
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    }
}
