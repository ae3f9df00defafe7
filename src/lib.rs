//! pacer: a pacing policy — token buckets, jitter, memory pressure and backoff — written once
//! and run anywhere, with time, memory readings and randomness injected by the host.
//!
//! The core does no I/O and never reads a clock: every call takes `now` in nanoseconds, so
//! tests drive it with a [`FakeClock`] and the WebAssembly build with the host's clock.
//!
//! ```
//! use pacer::{Clock, Config, Decision, FakeClock, LimiterConfig, Policy, Schedule};
//!
//! // 90 downloads an hour, 3 at once, the bucket starting half full (1.5 tokens).
//! let mut limiter = LimiterConfig::new("catalog", 90.0);
//! limiter.burst = Some(3);
//! let mut config = Config::new(vec![limiter]);
//! config.seed = Some(7);
//! let mut policy = Policy::new(config)?;
//!
//! let clock = FakeClock::new(0);
//! assert_eq!(policy.try_acquire(clock.now(), 0, 1)?, Decision::Admit);
//! // 0.5 tokens left; one token takes 40 s, so the next is due in 20 s, exactly.
//! assert_eq!(policy.try_acquire(clock.now(), 0, 1)?, Decision::Wait(20_000_000_000));
//!
//! // The host's one call before each operation: reserve a slot, sleep, act, report.
//! clock.advance(20_000_000_000);
//! let memory = pacer::MemoryReading::new(1 << 30, 4 << 30);
//! let Schedule::Act { delay } = policy.next_delay(clock.now(), memory, 0, 1, 0)? else {
//!     unreachable!("the circuit is closed")
//! };
//! assert!(delay < 3_000_000_000, "adaptive jitter adds at most max_ms · utilization");
//! policy.on_response(clock.now() + delay, 0, 200, None)?;
//! # Ok::<(), pacer::Error>(())
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

// The wasm boundary: the one module allowed `unsafe`. Feature `abi` (default) puts ABI v1's
// exports and imports into a wasm32 build; crates that link the core into a wasm module of
// their own (the browser crate) turn it off.
#[cfg(all(target_arch = "wasm32", feature = "abi"))]
#[allow(unsafe_code, missing_docs)]
mod abi;
pub mod adaptive;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod decimal;
mod error;
pub mod exports;
pub mod interface;
pub mod jitter;
pub mod json;
pub mod keyed;
pub mod limiter;
pub mod policy;
pub mod pressure;
pub mod quota;
pub mod random;
pub mod snapshot;

pub use adaptive::AdaptiveConfig;
pub use backoff::{BackoffSettings, Breaker, Circuit, Outcome};
pub use clock::{Clock, FakeClock, HighWater, Nanos};
pub use config::{Config, LimiterConfig};
pub use error::{ConfigError, Error};
pub use jitter::{Jitter, Strategy};
pub use keyed::KeyedLimiter;
pub use limiter::{Decision, Limiter};
pub use policy::{Announced, Policy, Schedule};
pub use pressure::{Level, MemoryReading, Pressure, Thresholds};
pub use quota::Quota;
pub use random::Rng;
