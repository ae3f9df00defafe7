//! The WebAssembly boundary (ABI v1, `ABI.md`): raw imports, exported functions, pointer checks.
//!
//! This is the only file that knows it runs inside WebAssembly and the only one with `unsafe`.
//! Every export decodes its pointers here and forwards to [`Exports`], the same safe code the
//! native tests drive, so the module and the core cannot disagree. Nothing here may panic:
//! a panic in wasm is a trap, and no input may trap the module.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

use crate::error::Error;
use crate::exports::{Exports, Host, LogLevel};
use crate::interface::{ABI_VERSION, FEATURES};

/// The five host functions, module `"pacer"`.
mod imports {
    #[link(wasm_import_module = "pacer")]
    unsafe extern "C" {
        pub fn now_ns() -> i64;
        pub fn memory_used() -> i64;
        pub fn memory_limit() -> i64;
        pub fn random_fill(ptr: i32, len: i32);
        pub fn log(level: i32, ptr: i32, len: i32);
    }
}

/// The host, as seen through the imports.
struct WasmHost;

impl Host for WasmHost {
    fn now_ns(&mut self) -> i64 {
        // SAFETY: an import without arguments; the host supplies it or instantiation fails.
        unsafe { imports::now_ns() }
    }

    fn memory_used(&mut self) -> i64 {
        // SAFETY: as above.
        unsafe { imports::memory_used() }
    }

    fn memory_limit(&mut self) -> i64 {
        // SAFETY: as above.
        unsafe { imports::memory_limit() }
    }

    fn random_fill(&mut self, buf: &mut [u8]) {
        // SAFETY: `buf` is valid, writable module memory of exactly `buf.len()` bytes.
        unsafe { imports::random_fill(buf.as_mut_ptr() as i32, buf.len() as i32) }
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        // SAFETY: the host only reads `message.len()` bytes at the pointer.
        unsafe { imports::log(level as i32, message.as_ptr() as i32, message.len() as i32) }
    }
}

/// The module's state: the exports and the buffers handed out by `pacer_alloc`.
struct Module {
    exports: Exports<WasmHost>,
    buffers: BTreeMap<usize, Vec<u8>>,
}

/// Module state behind a cell: a wasm instance runs one call at a time on one thread.
struct Global(UnsafeCell<Module>);

// SAFETY: wasm32-unknown-unknown modules are single-threaded; no two calls overlap.
unsafe impl Sync for Global {}

/// The module state, built at compile time: no call pays for a first-use check.
static MODULE: Global = Global(UnsafeCell::new(Module {
    exports: Exports::new(WasmHost),
    buffers: BTreeMap::new(),
}));

fn module() -> &'static mut Module {
    // SAFETY: single-threaded, and no export holds this reference across another export call
    // (imports do not call back into the module).
    unsafe { &mut *MODULE.0.get() }
}

fn exports() -> &'static mut Exports<WasmHost> {
    &mut module().exports
}

/// The largest buffer `pacer_alloc` hands out: configs and snapshots are far smaller.
const MAX_BUFFER_BYTES: usize = 16 << 20;

/// Bytes of module memory at `ptr..ptr + len` (`ptr` read as unsigned), or a bad argument.
fn guest_bytes(ptr: i32, len: i32) -> Result<&'static [u8], Error> {
    let bad = || Error::bad_argument("ptr/len", "outside module memory");
    let start = ptr as u32 as usize;
    let len = usize::try_from(len).map_err(|_| bad())?;
    if len == 0 {
        return Ok(&[]);
    }
    let memory_bytes = core::arch::wasm32::memory_size(0) * 65_536;
    let end = start.checked_add(len).ok_or_else(bad)?;
    if start == 0 || end > memory_bytes {
        return Err(bad());
    }
    // SAFETY: `start..end` is inside linear memory and non-null; the module does not write
    // to it while the slice lives (the call only reads its input).
    Ok(unsafe { core::slice::from_raw_parts(start as *const u8, len) })
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_abi_version() -> i32 {
    ABI_VERSION
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_features() -> i32 {
    FEATURES
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_alloc(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    if len == 0 || len > MAX_BUFFER_BYTES {
        return 0;
    }
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(len).is_err() {
        return 0;
    }
    buffer.resize(len, 0);
    let ptr = buffer.as_ptr() as usize;
    module().buffers.insert(ptr, buffer);
    ptr as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_dealloc(ptr: i32, len: i32) {
    let buffers = &mut module().buffers;
    let key = ptr as u32 as usize;
    if buffers
        .get(&key)
        .is_some_and(|buffer| Ok(buffer.len()) == usize::try_from(len))
    {
        buffers.remove(&key);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_configure(ptr: i32, len: i32) -> i32 {
    match guest_bytes(ptr, len) {
        Ok(json) => exports().configure(json),
        Err(error) => exports().fail(error),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_last_error_ptr() -> i32 {
    exports().last_error().as_ptr() as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_last_error_len() -> i32 {
    exports().last_error().len() as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_try_acquire(limiter: i32, cost: i32) -> i64 {
    exports().try_acquire(limiter, cost)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_reserve(limiter: i32, cost: i32) -> i64 {
    exports().reserve(limiter, cost)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_available_milli(limiter: i32) -> i64 {
    exports().available_milli(limiter)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_on_response(limiter: i32, status: i32, retry_after_ms: i64) -> i32 {
    exports().on_response(limiter, status, retry_after_ms)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_on_response_sent(
    limiter: i32,
    status: i32,
    retry_after_ms: i64,
    sent_at_ns: i64,
) -> i32 {
    exports().on_response_sent(limiter, status, retry_after_ms, sent_at_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_replace_ns(limiter: i32, cost: i32, due_in_ns: i64) -> i64 {
    exports().replace_ns(limiter, cost, due_in_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_try_acquire_at(now_ns: i64, limiter: i32, cost: i32) -> i64 {
    exports().try_acquire_at(now_ns, limiter, cost)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_reserve_at(now_ns: i64, limiter: i32, cost: i32) -> i64 {
    exports().reserve_at(now_ns, limiter, cost)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_next_delay_at(now_ns: i64, limiter: i32, cost: i32, base_ns: i64) -> i64 {
    exports().next_delay_at(now_ns, limiter, cost, base_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_cancel(limiter: i32, cost: i32, due_at_ns: i64) -> i32 {
    exports().cancel(limiter, cost, due_at_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_set_rate(limiter: i32, micro_tokens_per_hour: i64) -> i32 {
    exports().set_rate(limiter, micro_tokens_per_hour)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_announce(
    limiter: i32,
    limit: i64,
    remaining: i64,
    reset_ns: i64,
    in_flight: i64,
) -> i32 {
    exports().announce(limiter, limit, remaining, reset_ns, in_flight)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_rate_micro(limiter: i32) -> i64 {
    exports().rate_micro(limiter)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_pause(limiter: i32, for_ns: i64) -> i32 {
    exports().pause(limiter, for_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_next_delay_ns(limiter: i32, cost: i32, base_ns: i64) -> i64 {
    exports().next_delay_ns(limiter, cost, base_ns)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_retry_in_ns(limiter: i32) -> i64 {
    exports().retry_in_ns(limiter)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_jitter_ns(base_ns: i64, utilization_ppm: i32) -> i64 {
    exports().jitter_ns(base_ns, utilization_ppm)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_pressure() -> i32 {
    exports().pressure()
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_should_throttle() -> i32 {
    exports().should_throttle()
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_pool_target(max_buffers: i32) -> i32 {
    exports().pool_target(max_buffers)
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_state_export() -> i32 {
    exports().state_export()
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_state_ptr() -> i32 {
    exports().snapshot().as_ptr() as i32
}

#[unsafe(no_mangle)]
pub extern "C" fn pacer_state_import(ptr: i32, len: i32) -> i32 {
    match guest_bytes(ptr, len) {
        Ok(snapshot) => exports().state_import(snapshot),
        Err(error) => exports().fail(error),
    }
}
