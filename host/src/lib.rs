//! pacer-host: the library an embedder adds to run pacer policy modules (ABI v1, `ABI.md`)
//! sandboxed in wasmtime, with the real clock, real memory readings (cgroup v2, cgroup v1,
//! /proc/meminfo) and OS entropy behind the imports, and a capped buffer pool. It has no HTTP
//! server or client and no CLI: those live in `pacer-cli`.
//!
//! ```no_run
//! use pacer_host::{Policy, Runtime, SandboxOptions, SystemEnvironment};
//!
//! // Compile once; every instance after that is cheap.
//! let runtime = Runtime::new(SandboxOptions::default())?;
//! let module = runtime.load_file("dist/pacer.wasm".as_ref())?;
//! let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect()))?;
//! policy.configure(r#"{"limiters":[{"name":"catalog","tokens_per_hour":90,"burst":3}]}"#)?;
//! match policy.next_delay(0, 1, std::time::Duration::from_millis(500))? {
//!     pacer::Schedule::Act { delay } => std::thread::sleep(std::time::Duration::from_nanos(delay)),
//!     pacer::Schedule::CircuitOpen { retry_in } => println!("circuit open, retry in {retry_in} ns"),
//! }
//! policy.on_response(0, 200, None)?;
//! # Ok::<(), pacer_host::HostError>(())
//! ```

/// The README's examples (core and host), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

mod cache;
mod environment;
mod error;
pub mod memory;
mod policy;
pub mod pool;
mod sandbox;
mod shape;
mod shared;

pub use environment::{Environment, Script, ScriptedEnvironment, SystemEnvironment};
pub use error::HostError;
pub use policy::Policy;
pub use pool::{BufferPool, PoolStats, PooledBuffer};
#[cfg(feature = "raw")]
pub use sandbox::raw;
pub use sandbox::{HostState, ModuleInfo, PolicyModule, Runtime, SandboxOptions};
pub use shared::SharedPolicy;
