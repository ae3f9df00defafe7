//! The wasmtime wiring, in one place and in the order a host meets it:
//! 1. the engine (Cranelift, epoch interruption for call deadlines, optionally pooling);
//! 2. the epoch ticker that enforces those deadlines;
//! 3. the linker with the five imports, each reading the store's [`Environment`];
//! 4. loading a module: check its size and shape, compile it within a deadline (or take it
//!    from the cache), check its imports and exports against `pacer::interface`, pre-link it,
//!    and read its version and features;
//! 5. a store per instance, with its memory limit and call deadline;
//! 6. instantiation and the typed binding of every export.
//!
//! The [`crate::Policy`] handle on top keeps only the API and trap supervision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, Instance, InstanceAllocationStrategy,
    InstancePre, Linker, Memory, Module, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, TypedFunc, UpdateDeadline, ValType,
};

use pacer::interface::{self, Function, ValueType};

use crate::cache::Cache;
use crate::environment::{Environment, ScriptedEnvironment};
use crate::error::HostError;
use crate::shape;

/// How long one epoch tick is; call deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The most bytes of one `log` message, or of a module's error message, shown; longer ones
/// are cut.
pub const MAX_LOG_BYTES: usize = 4096;
/// `log` calls shown per export call; the rest are dropped (a module cannot flood the log).
pub const MAX_LOG_CALLS_PER_CALL: u32 = 32;
/// The most bytes one `random_fill` call may ask for (this module asks for 32).
pub const MAX_RANDOM_FILL_BYTES: usize = 64 << 10;

/// Limits and tuning for the modules a [`Runtime`] runs.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The most linear memory one instance may have.
    pub memory_limit_bytes: usize,
    /// The longest one export call may run before it is interrupted.
    pub call_timeout: Duration,
    /// Use wasmtime's pooling allocator (cheaper instantiation; reserves address space).
    pub pooling: bool,
    /// Instances the pool holds at once (with `pooling`).
    pub pool_instances: u32,
    /// Where compiled modules are cached, keyed by content and engine (`None`: no cache).
    /// Native code is loaded from it: it must belong to this user and be writable by no one
    /// else, or it is not used (see `ABI.md`, The host's limits).
    pub cache_dir: Option<PathBuf>,
    /// The largest module [`Runtime::load`] accepts, in bytes.
    pub max_module_bytes: usize,
    /// How long compiling one module may take before it is refused (wall clock).
    pub compile_timeout: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            memory_limit_bytes: 16 << 20,
            call_timeout: Duration::from_millis(100),
            pooling: true,
            pool_instances: 64,
            cache_dir: None,
            max_module_bytes: 1 << 20,
            compile_timeout: Duration::from_secs(20),
        }
    }
}

/// What the store of every instance carries: its limits, the import values, and when the
/// call in progress started.
pub struct HostState {
    limits: StoreLimits,
    pub(crate) environment: Box<dyn Environment>,
    /// The tick the call in progress started at; it is interrupted `deadline_ticks` later,
    /// whether the time went to its own code or to the host's inside its imports.
    call_started_at: u64,
    deadline_ticks: u64,
    /// Epoch ticks since the engine started: one clock for wasm code and imports alike.
    ticks: Arc<AtomicU64>,
    /// `log` calls made by the call in progress.
    logs_in_call: u32,
}

/// A wasmtime engine set up for pacer modules, with the imports linked.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    options: SandboxOptions,
    /// Epoch ticks since the engine started (the ticker counts them).
    ticks: Arc<AtomicU64>,
}

/// A checked module, ready to instantiate cheaply.
#[derive(Clone)]
pub struct PolicyModule {
    pub(crate) runtime: Runtime,
    pub(crate) pre: InstancePre<HostState>,
    /// What the checks found.
    pub info: ModuleInfo,
}

impl HostState {
    /// Starts the deadline of the next call (cheap: a relaxed load and two plain writes).
    #[inline]
    pub(crate) fn start_call(&mut self) {
        self.call_started_at = self.ticks.load(Ordering::Relaxed);
        self.logs_in_call = 0;
    }

    fn past_deadline(&self) -> bool {
        let elapsed = self
            .ticks
            .load(Ordering::Relaxed)
            .saturating_sub(self.call_started_at);
        elapsed > self.deadline_ticks
    }

    /// Ends an import: host time inside it counts against the call's deadline, so a module
    /// cannot buy time by making the host work, and the call stops once it has passed.
    fn leave_import(&self, import: &str) -> wasmtime::Result<()> {
        if self.past_deadline() {
            let deadline =
                EPOCH_TICK.saturating_mul(u32::try_from(self.deadline_ticks).unwrap_or(u32::MAX));
            wasmtime::bail!(
                "no answer within {deadline:?}: it ran out inside the `{import}` import"
            );
        }
        Ok(())
    }
}

/// Raw access for benchmarks and conformance tools (feature `raw`): not a stable API.
#[cfg(feature = "raw")]
pub mod raw {
    use wasmtime::{InstancePre, Store};

    use super::{HostState, PolicyModule, Runtime};
    use crate::environment::Environment;

    /// A store with the runtime's memory limit and call deadline.
    pub fn store(runtime: &Runtime, environment: Box<dyn Environment>) -> Store<HostState> {
        runtime.store(environment)
    }

    /// The pre-linked module: `instance_pre(m).instantiate(&mut store(..))` is the cheapest
    /// way to a raw instance.
    pub fn instance_pre(module: &PolicyModule) -> &InstancePre<HostState> {
        &module.pre
    }

    /// Starts the deadline of the next call on a raw store.
    pub fn start_call(store: &mut Store<HostState>) {
        store.data_mut().start_call();
    }
}

/// A module's identity as seen at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// `pacer_abi_version()`.
    pub abi_version: i32,
    /// `pacer_features()`.
    pub features: i32,
    /// `module.name` of every import.
    pub imports: Vec<String>,
    /// Every export name.
    pub exports: Vec<String>,
    /// Whether the compiled code came from the cache.
    pub from_cache: bool,
}

/// A `pacer::interface` value type as wasmtime's.
fn val_type(ty: ValueType) -> ValType {
    match ty {
        ValueType::I32 => ValType::I32,
        ValueType::I64 => ValType::I64,
    }
}

impl Runtime {
    /// One engine for every module: Cranelift, epoch interruption for call deadlines, and
    /// the pooling allocator when asked for.
    pub fn new(options: SandboxOptions) -> Result<Runtime, HostError> {
        // 1. The engine: compiled code is shared by every instance it makes.
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(512 << 10);
        if options.pooling {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(options.pool_instances)
                .total_memories(options.pool_instances)
                .total_tables(options.pool_instances)
                .max_memory_size(options.memory_limit_bytes);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| HostError::Engine(e.to_string()))?;

        // 2. A ticker advances the epoch; a call still running after its deadline traps.
        //    It also counts the ticks: the one clock deadlines are read from, in wasm code and
        //    in imports alike.
        let weak = engine.weak();
        let ticks = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&ticks);
        thread::Builder::new()
            .name("pacer-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| HostError::Engine(format!("epoch thread: {e}")))?;

        // 3. The linker: the five imports, each reading the store's environment.
        let mut linker = Linker::new(&engine);
        link_imports(&mut linker).map_err(|e| HostError::Engine(e.to_string()))?;
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            options,
            ticks,
        })
    }

    /// The options in force.
    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }

    /// Loads, checks and prepares the module in `path`.
    pub fn load_file(&self, path: &Path) -> Result<PolicyModule, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::Io {
            path: path.into(),
            source,
        })?;
        self.load(&bytes)
    }

    /// Compiles (or fetches from the cache), checks imports, exports and ABI version.
    pub fn load(&self, bytes: &[u8]) -> Result<PolicyModule, HostError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(HostError::NotWasm(
                "it does not start with the \\0asm magic bytes".into(),
            ));
        }
        // Size and shape first: cheap, and they bound what compiling can cost.
        shape::check(
            bytes,
            self.options.max_module_bytes,
            self.options.memory_limit_bytes,
        )?;
        let (module, from_cache) = self.compile(bytes)?;
        let imports = check_imports(&module)?;
        let exports = check_exports(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Incompatible(e.to_string()))?;
        let mut module = PolicyModule {
            runtime: self.clone(),
            pre,
            info: ModuleInfo {
                abi_version: 0,
                features: 0,
                imports,
                exports,
                from_cache,
            },
        };
        // A probe instance reads the version, so a wrong module fails here, not mid-job.
        let (mut store, exports) = instantiate(&module, Box::new(ScriptedEnvironment::new()))
            .map_err(|(error, _)| error)?;
        store.data_mut().start_call();
        let version = exports.abi_version.call(&mut store, ()).map_err(|e| {
            let reason = one_line(&e, self.options.call_timeout);
            HostError::Incompatible(format!("pacer_abi_version failed ({reason})"))
        })?;
        if version != interface::ABI_VERSION {
            return Err(HostError::Incompatible(format!(
                "pacer_abi_version() returned {version}; this host speaks version {}",
                interface::ABI_VERSION
            )));
        }
        store.data_mut().start_call();
        let features = exports.features.call(&mut store, ()).map_err(|e| {
            let reason = one_line(&e, self.options.call_timeout);
            HostError::Incompatible(format!("pacer_features failed ({reason})"))
        })?;
        check_features(&module.info.exports, features)?;
        module.info.abi_version = version;
        module.info.features = features;
        Ok(module)
    }

    /// The compiled module, from the cache when a trusted, matching artifact is there.
    fn compile(&self, bytes: &[u8]) -> Result<(Module, bool), HostError> {
        let cache = self.options.cache_dir.as_ref().and_then(|dir| {
            Cache::open(dir, &self.engine)
                .map_err(|why| {
                    tracing::warn!(dir = %dir.display(), %why, "compile cache not used");
                })
                .ok()
        });
        if let Some(module) = cache.as_ref().and_then(|c| c.load(&self.engine, bytes)) {
            return Ok((module, true));
        }
        let module = self.compile_within_deadline(bytes)?;
        if let Some(cache) = &cache {
            cache.store(bytes, &module);
        }
        Ok((module, false))
    }

    /// Compiles on a thread of its own, waited on for at most `compile_timeout`. A compile
    /// past it is refused; Cranelift cannot be stopped, so that thread finishes in the
    /// background (its cost is bounded by the size and shape checks) and its result is dropped.
    fn compile_within_deadline(&self, bytes: &[u8]) -> Result<Module, HostError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        thread::Builder::new()
            .name("pacer-compile".into())
            .stack_size(8 << 20)
            .spawn(move || {
                // The receiver may have given up: then there is no one to tell.
                let _ = sender.send(Module::new(&engine, &owned));
            })
            .map_err(|e| HostError::Engine(format!("compile thread: {e}")))?;
        let timeout = self.options.compile_timeout;
        match receiver.recv_timeout(timeout) {
            Ok(compiled) => compiled.map_err(|e| HostError::NotWasm(format!("{e:#}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HostError::Incompatible(format!(
                "compiling it took longer than {timeout:?} (SandboxOptions::compile_timeout)"
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(HostError::Engine(
                "the compile thread stopped without an answer".into(),
            )),
        }
    }

    /// Step 5: a store with this runtime's memory limit and call deadline. Before each call,
    /// start its deadline with [`HostState::start_call`]. Public only with feature `raw`, for
    /// benchmarks and conformance tools; [`crate::Policy`] does this for you.
    pub(crate) fn store(&self, environment: Box<dyn Environment>) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.options.memory_limit_bytes)
            .memories(shape::MAX_MEMORIES as usize)
            .tables(shape::MAX_TABLES as usize)
            .table_elements(shape::MAX_TABLE_ELEMENTS as usize)
            .instances(1)
            .build();
        let ticks = self.options.call_timeout.as_nanos() / EPOCH_TICK.as_nanos();
        let deadline_ticks = u64::try_from(ticks).unwrap_or(u64::MAX).max(1);
        let state = HostState {
            limits,
            environment,
            // Instantiation (a start function) runs against this deadline.
            call_started_at: self.ticks.load(Ordering::Relaxed),
            deadline_ticks,
            ticks: Arc::clone(&self.ticks),
            logs_in_call: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // Rather than set a deadline before every call (wasmtime reads the engine's epoch for
        // that), check the call's start against the tick counter: the callback runs at most
        // once per tick while wasm runs.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|context| {
            Ok(if context.data().past_deadline() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store
    }
}

/// The five imports. Each checks what the module asks for against its memory and a per-call
/// cap before doing any work, and traps once the call's deadline has passed.
fn link_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("pacer", "now_ns", |mut caller: Caller<'_, HostState>| {
        let state = caller.data_mut();
        let now = state.environment.now_ns();
        state.leave_import("now_ns").map(|()| now)
    })?;
    linker.func_wrap(
        "pacer",
        "memory_used",
        |mut caller: Caller<'_, HostState>| {
            let state = caller.data_mut();
            let used = state.environment.memory().used;
            let used = used.and_then(|u| i64::try_from(u).ok()).unwrap_or(-1);
            state.leave_import("memory_used").map(|()| used)
        },
    )?;
    linker.func_wrap(
        "pacer",
        "memory_limit",
        |mut caller: Caller<'_, HostState>| {
            let state = caller.data_mut();
            let limit = state.environment.memory().limit;
            let limit = limit.and_then(|l| i64::try_from(l).ok()).unwrap_or(0);
            state.leave_import("memory_limit").map(|()| limit)
        },
    )?;
    linker.func_wrap(
        "pacer",
        "random_fill",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            let memory = module_memory(&mut caller, "random_fill")?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let range = guest_range(ptr, len, MAX_RANDOM_FILL_BYTES, data.len())
                .map_err(|why| wasmtime::format_err!("random_fill({ptr}, {len}): {why}"))?;
            // Straight into the module's memory: the host allocates nothing.
            state.environment.random_fill(&mut data[range]);
            state.leave_import("random_fill")
        },
    )?;
    linker.func_wrap(
        "pacer",
        "log",
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let memory = module_memory(&mut caller, "log")?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            // The whole message must be in memory; only its first MAX_LOG_BYTES are shown.
            let range = guest_range(ptr, len, usize::MAX, data.len())
                .map_err(|why| wasmtime::format_err!("log({level}, {ptr}, {len}): {why}"))?;
            state.logs_in_call = state.logs_in_call.saturating_add(1);
            if state.logs_in_call <= MAX_LOG_CALLS_PER_CALL {
                let message = printable(&data[range]);
                match level {
                    0 => tracing::error!(target: "pacer::module", "{message}"),
                    1 => tracing::warn!(target: "pacer::module", "{message}"),
                    2 => tracing::info!(target: "pacer::module", "{message}"),
                    _ => tracing::debug!(target: "pacer::module", "{message}"),
                }
            }
            state.leave_import("log")
        },
    )?;
    Ok(())
}

/// Text from the module, made safe to print: invalid UTF-8 and control characters (a
/// terminal's escape sequences among them) replaced, at most [`MAX_LOG_BYTES`] in all.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(MAX_LOG_BYTES)];
    let mut text = String::new();
    for c in String::from_utf8_lossy(shown).chars() {
        let c = if c.is_control() { '\u{FFFD}' } else { c };
        if text.len() + c.len_utf8() > MAX_LOG_BYTES {
            break;
        }
        text.push(c);
    }
    text
}

/// The module's exported memory, which an import needs to read or write.
fn module_memory(caller: &mut Caller<'_, HostState>, import: &str) -> wasmtime::Result<Memory> {
    caller
        .get_export(interface::MEMORY)
        .and_then(|export| export.into_memory())
        .ok_or_else(|| wasmtime::format_err!("{import}: the module exports no memory"))
}

/// `len` bytes at `ptr` as a range of a memory of `size` bytes, if the module may ask for it:
/// checked before anything is allocated, read or written.
fn guest_range(
    ptr: i32,
    len: i32,
    max_len: usize,
    size: usize,
) -> Result<std::ops::Range<usize>, String> {
    let len = usize::try_from(len).map_err(|_| "a negative length".to_string())?;
    if len > max_len {
        return Err(format!(
            "{len} bytes asked for; at most {max_len} in one call"
        ));
    }
    let start = ptr as u32 as usize;
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(format!("outside the module's memory of {size} bytes")),
    }
}

fn signature(ty: &FuncType) -> String {
    let list = |types: Vec<ValType>| {
        types
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "({}) -> ({})",
        list(ty.params().collect()),
        list(ty.results().collect())
    )
}

fn matches(ty: &FuncType, function: &Function) -> bool {
    let same = |a: Vec<ValType>, b: &[ValueType]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, &val_type(*y)))
    };
    same(ty.params().collect(), function.params) && same(ty.results().collect(), function.results)
}

fn check_imports(module: &Module) -> Result<Vec<String>, HostError> {
    let allowed = interface::IMPORTS
        .iter()
        .map(|f| format!("{}.{}", interface::IMPORT_MODULE, f.name))
        .collect::<Vec<_>>()
        .join(", ");
    let mut names = Vec::new();
    for import in module.imports() {
        let name = format!("{}.{}", import.module(), import.name());
        let expected = interface::IMPORTS
            .iter()
            .find(|f| import.module() == interface::IMPORT_MODULE && f.name == import.name());
        let Some(function) = expected else {
            return Err(HostError::Incompatible(format!(
                "it imports `{name}`, which the host does not provide (a policy module may import only {allowed})"
            )));
        };
        match import.ty() {
            ExternType::Func(ty) if matches(&ty, function) => names.push(name),
            ExternType::Func(ty) => {
                return Err(HostError::Incompatible(format!(
                    "import `{name}` has type {}, expected {}",
                    signature(&ty),
                    function.signature()
                )));
            }
            _ => {
                return Err(HostError::Incompatible(format!(
                    "import `{name}` is not a function"
                )));
            }
        }
    }
    Ok(names)
}

/// Every required export is there with its signature, and so is every optional one present.
fn check_exports(module: &Module) -> Result<Vec<String>, HostError> {
    let exports: Vec<_> = module
        .exports()
        .map(|e| (e.name().to_string(), e.ty()))
        .collect();
    if !exports
        .iter()
        .any(|(name, ty)| name == interface::MEMORY && matches!(ty, ExternType::Memory(_)))
    {
        return Err(HostError::Incompatible(
            "it does not export its `memory`".into(),
        ));
    }
    for function in interface::EXPORTS {
        let name = function.name;
        match exports.iter().find(|(n, _)| n == name).map(|(_, ty)| ty) {
            None if function.is_required() => {
                return Err(HostError::Incompatible(format!(
                    "it does not export `{name}`"
                )));
            }
            None => {}
            Some(ExternType::Func(ty)) if matches(ty, function) => {}
            Some(ExternType::Func(ty)) => {
                return Err(HostError::Incompatible(format!(
                    "export `{name}` has type {}, expected {}",
                    signature(ty),
                    function.signature()
                )));
            }
            Some(_) => {
                return Err(HostError::Incompatible(format!(
                    "export `{name}` is not a function"
                )));
            }
        }
    }
    Ok(exports.into_iter().map(|(name, _)| name).collect())
}

/// Every optional export that `pacer_features` announces is there.
fn check_features(exported: &[String], features: i32) -> Result<(), HostError> {
    let missing: Vec<_> = interface::EXPORTS
        .iter()
        .filter(|f| !f.is_required() && features & f.feature != 0)
        .filter(|f| !exported.iter().any(|name| name == f.name))
        .map(|f| format!("`{}`", f.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(HostError::Incompatible(format!(
        "pacer_features() announces {} but the module does not export it",
        missing.join(", ")
    )))
}

/// Step 6: the typed exports of one instance. Optional exports are bound only where the
/// module announces them in `pacer_features` and has them.
pub(crate) struct Exports {
    /// The instance itself, for raw calls by name (feature `raw`).
    #[cfg_attr(not(feature = "raw"), allow(dead_code))]
    pub instance: Instance,
    pub memory: Memory,
    pub abi_version: TypedFunc<(), i32>,
    pub features: TypedFunc<(), i32>,
    pub alloc: TypedFunc<i32, i32>,
    pub dealloc: TypedFunc<(i32, i32), ()>,
    pub configure: TypedFunc<(i32, i32), i32>,
    pub last_error_ptr: TypedFunc<(), i32>,
    pub last_error_len: TypedFunc<(), i32>,
    pub try_acquire: TypedFunc<(i32, i32), i64>,
    pub reserve: TypedFunc<(i32, i32), i64>,
    pub available_milli: TypedFunc<i32, i64>,
    pub on_response: TypedFunc<(i32, i32, i64), i32>,
    pub next_delay: TypedFunc<(i32, i32, i64), i64>,
    pub retry_in: TypedFunc<i32, i64>,
    pub jitter: TypedFunc<(i64, i32), i64>,
    pub pressure: TypedFunc<(), i32>,
    pub should_throttle: TypedFunc<(), i32>,
    pub pool_target: TypedFunc<i32, i32>,
    pub state_export: TypedFunc<(), i32>,
    pub state_ptr: TypedFunc<(), i32>,
    pub state_import: TypedFunc<(i32, i32), i32>,
    /// `pacer_replace_ns` (feature bit 1).
    pub replace: Option<TypedFunc<(i32, i32, i64), i64>>,
    /// `pacer_on_response_sent` (feature bit 2).
    pub on_response_sent: Option<TypedFunc<(i32, i32, i64, i64), i32>>,
    /// `pacer_try_acquire_at` (feature bit 4).
    pub try_acquire_at: Option<TypedFunc<(i64, i32, i32), i64>>,
    /// `pacer_reserve_at` (feature bit 4).
    pub reserve_at: Option<TypedFunc<(i64, i32, i32), i64>>,
    /// `pacer_next_delay_at` (feature bit 4).
    pub next_delay_at: Option<TypedFunc<(i64, i32, i32, i64), i64>>,
    /// `pacer_cancel` (feature bit 8).
    pub cancel: Option<TypedFunc<(i32, i32, i64), i32>>,
    /// `pacer_set_rate` (feature bit 16).
    pub set_rate: Option<TypedFunc<(i32, i64), i32>>,
    /// `pacer_pause` (feature bit 32).
    pub pause: Option<TypedFunc<(i32, i64), i32>>,
    /// `pacer_announce` (feature bit 64).
    pub announce: Option<TypedFunc<AnnounceArgs, i32>>,
    /// `pacer_rate_micro` (feature bit 128).
    pub rate_micro: Option<TypedFunc<i32, i64>>,
}

impl Exports {
    fn bind(store: &mut Store<HostState>, instance: Instance) -> wasmtime::Result<Exports> {
        macro_rules! typed {
            ($name:literal) => {{
                debug_assert!(interface::export($name).is_some_and(|f| f.is_required()));
                instance.get_typed_func(&mut *store, $name)?
            }};
        }
        let memory = instance
            .get_memory(&mut *store, interface::MEMORY)
            .ok_or_else(|| wasmtime::format_err!("no exported memory"))?;
        let features_func: TypedFunc<(), i32> = typed!("pacer_features");
        store.data_mut().start_call();
        let ticks = u32::try_from(store.data().deadline_ticks).unwrap_or(u32::MAX);
        let features = features_func.call(&mut *store, ()).map_err(|e| {
            let reason = one_line(&e, EPOCH_TICK.saturating_mul(ticks));
            wasmtime::format_err!("pacer_features failed ({reason})")
        })?;
        macro_rules! optional {
            ($name:literal) => {{
                let announced = interface::export($name).map_or(0, |f| f.feature);
                debug_assert!(announced != 0, "{} is optional", $name);
                if features & announced != 0 {
                    instance.get_typed_func(&mut *store, $name).ok()
                } else {
                    None
                }
            }};
        }
        Ok(Exports {
            instance,
            memory,
            abi_version: typed!("pacer_abi_version"),
            features: features_func,
            alloc: typed!("pacer_alloc"),
            dealloc: typed!("pacer_dealloc"),
            configure: typed!("pacer_configure"),
            last_error_ptr: typed!("pacer_last_error_ptr"),
            last_error_len: typed!("pacer_last_error_len"),
            try_acquire: typed!("pacer_try_acquire"),
            reserve: typed!("pacer_reserve"),
            available_milli: typed!("pacer_available_milli"),
            on_response: typed!("pacer_on_response"),
            next_delay: typed!("pacer_next_delay_ns"),
            retry_in: typed!("pacer_retry_in_ns"),
            jitter: typed!("pacer_jitter_ns"),
            pressure: typed!("pacer_pressure"),
            should_throttle: typed!("pacer_should_throttle"),
            pool_target: typed!("pacer_pool_target"),
            state_export: typed!("pacer_state_export"),
            state_ptr: typed!("pacer_state_ptr"),
            state_import: typed!("pacer_state_import"),
            replace: optional!("pacer_replace_ns"),
            on_response_sent: optional!("pacer_on_response_sent"),
            try_acquire_at: optional!("pacer_try_acquire_at"),
            reserve_at: optional!("pacer_reserve_at"),
            next_delay_at: optional!("pacer_next_delay_at"),
            cancel: optional!("pacer_cancel"),
            set_rate: optional!("pacer_set_rate"),
            pause: optional!("pacer_pause"),
            announce: optional!("pacer_announce"),
            rate_micro: optional!("pacer_rate_micro"),
        })
    }
}

/// `pacer_announce`'s arguments: limiter, limit, remaining, reset_ns, in_flight.
pub type AnnounceArgs = (i32, i64, i64, i64, i64);

/// A failed instantiation: the error, and the environment handed back.
pub(crate) type Failed = (HostError, Box<dyn Environment>);

/// A new store and instance with its exports bound; on failure the environment comes back
/// with the error.
pub(crate) fn instantiate(
    module: &PolicyModule,
    environment: Box<dyn Environment>,
) -> Result<(Store<HostState>, Exports), Failed> {
    let mut store = module.runtime.store(environment);
    let timeout = module.runtime.options.call_timeout;
    let bound = match module.pre.instantiate(&mut store) {
        Ok(instance) => Exports::bind(&mut store, instance).map_err(|e| one_line(&e, timeout)),
        Err(e) => Err(format!(
            "instantiating it failed (its memory, tables, data or start function): {}",
            one_line(&e, timeout)
        )),
    };
    match bound {
        Ok(exports) => Ok((store, exports)),
        Err(reason) => {
            let environment = std::mem::replace(&mut store.data_mut().environment, placeholder());
            Err((HostError::Incompatible(reason), environment))
        }
    }
}

/// Why a call into the module stopped, in one line (wasmtime's own text carries a backtrace).
pub(crate) fn one_line(error: &wasmtime::Error, timeout: Duration) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("no answer within {timeout:?}"),
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    }
}

/// Stands in for the environment while it moves between stores.
pub(crate) fn placeholder() -> Box<dyn Environment> {
    Box::new(ScriptedEnvironment::new())
}
