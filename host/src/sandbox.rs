//! The wasmtime wiring, in one place and in the order a host meets it:
//! 1. the engine (Cranelift, epoch interruption for call deadlines, optionally pooling);
//! 2. the epoch ticker that enforces those deadlines;
//! 3. the linker with the five imports, each reading the store's [`Environment`];
//! 4. loading a module: compile (or the cache), check its imports and exports against
//!    `pacer::interface`, pre-link it, and read its version and features;
//! 5. a store per instance, with its memory limit and call deadline;
//! 6. instantiation and the typed binding of every export.
//!
//! The [`crate::Policy`] handle on top keeps only the API and trap supervision.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, Instance, InstanceAllocationStrategy,
    InstancePre, Linker, Memory, Module, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder, TypedFunc, UpdateDeadline, ValType,
};

use pacer::interface::{self, Function, ValueType};

use crate::environment::{Environment, ScriptedEnvironment};
use crate::error::HostError;

/// How long one epoch tick is; call deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The most bytes a `log` import call may carry.
const MAX_LOG_BYTES: usize = 4096;

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
    pub cache_dir: Option<PathBuf>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            memory_limit_bytes: 16 << 20,
            call_timeout: Duration::from_millis(100),
            pooling: true,
            pool_instances: 64,
            cache_dir: None,
        }
    }
}

/// What the store of every instance carries: its limits, the import values, and the epoch
/// ticks seen by the call in progress.
pub struct HostState {
    limits: StoreLimits,
    pub(crate) environment: Box<dyn Environment>,
    /// Reset to 0 as each call starts; the call is interrupted once it passes `deadline_ticks`.
    pub(crate) ticks_in_call: u64,
    deadline_ticks: u64,
}

/// A wasmtime engine set up for pacer modules, with the imports linked.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    options: SandboxOptions,
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
    /// Starts the deadline of the next call (cheap: a plain write).
    #[inline]
    pub(crate) fn start_call(&mut self) {
        self.ticks_in_call = 0;
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
        let weak = engine.weak();
        thread::Builder::new()
            .name("pacer-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
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
        let version = exports
            .abi_version
            .call(&mut store, ())
            .map_err(|e| HostError::Incompatible(format!("pacer_abi_version trapped: {e:#}")))?;
        if version != interface::ABI_VERSION {
            return Err(HostError::Incompatible(format!(
                "pacer_abi_version() returned {version}; this host speaks version {}",
                interface::ABI_VERSION
            )));
        }
        let features = exports
            .features
            .call(&mut store, ())
            .map_err(|e| HostError::Incompatible(format!("pacer_features trapped: {e:#}")))?;
        check_features(&module.info.exports, features)?;
        module.info.abi_version = version;
        module.info.features = features;
        Ok(module)
    }

    fn compile(&self, bytes: &[u8]) -> Result<(Module, bool), HostError> {
        let compile =
            || Module::new(&self.engine, bytes).map_err(|e| HostError::NotWasm(format!("{e:#}")));
        let Some(dir) = &self.options.cache_dir else {
            return Ok((compile()?, false));
        };
        let mut key = Sha256::new();
        key.update(bytes);
        std::hash::Hash::hash(
            &self.engine.precompile_compatibility_hash(),
            &mut HashWriter(&mut key),
        );
        let path = dir.join(format!("{:x}.cwasm", key.finalize()));
        if path.is_file() {
            // SAFETY: the file is one this host serialized into its own cache directory, keyed by
            // the module's hash and this engine's compatibility hash, and written atomically.
            if let Ok(module) = unsafe { Module::deserialize_file(&self.engine, &path) } {
                return Ok((module, true));
            }
        }
        let module = compile()?;
        // A cache that cannot be written only costs the next load a compile.
        let cached = module
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|serialized| {
                write_atomically(dir, &path, &serialized).map_err(|e| e.to_string())
            });
        if let Err(error) = cached {
            tracing::warn!(path = %path.display(), %error, "could not cache the compiled module");
        }
        Ok((module, false))
    }

    /// Step 5: a store with this runtime's memory limit and call deadline. Before each call,
    /// start its deadline with [`HostState::start_call`]. Public only with feature `raw`, for
    /// benchmarks and conformance tools; [`crate::Policy`] does this for you.
    pub(crate) fn store(&self, environment: Box<dyn Environment>) -> Store<HostState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.options.memory_limit_bytes)
            .instances(1)
            .build();
        let ticks = self.options.call_timeout.as_nanos() / EPOCH_TICK.as_nanos();
        let deadline_ticks = u64::try_from(ticks).unwrap_or(u64::MAX).max(1);
        let state = HostState {
            limits,
            environment,
            ticks_in_call: 0,
            deadline_ticks,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        // Rather than set a deadline before every call (an atomic read of the engine's epoch),
        // count the ticks a call sees: the callback runs at most once per tick while wasm runs.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            state.ticks_in_call += 1;
            Ok(if state.ticks_in_call > state.deadline_ticks {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store
    }
}

/// Feeds `Hash` output into a SHA-256.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

fn link_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("pacer", "now_ns", |mut caller: Caller<'_, HostState>| {
        caller.data_mut().environment.now_ns()
    })?;
    linker.func_wrap(
        "pacer",
        "memory_used",
        |mut caller: Caller<'_, HostState>| {
            let used = caller.data_mut().environment.memory().used;
            used.and_then(|u| i64::try_from(u).ok()).unwrap_or(-1)
        },
    )?;
    linker.func_wrap(
        "pacer",
        "memory_limit",
        |mut caller: Caller<'_, HostState>| {
            let limit = caller.data_mut().environment.memory().limit;
            limit.and_then(|l| i64::try_from(l).ok()).unwrap_or(0)
        },
    )?;
    linker.func_wrap("pacer", "random_fill", |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        caller.data_mut().environment.random_fill(&mut bytes);
        let written = caller
            .get_export("memory")
            .and_then(|m| m.into_memory())
            .map(|memory| memory.write(&mut caller, ptr as u32 as usize, &bytes).is_ok());
        if written != Some(true) {
            tracing::warn!(target: "pacer::module", ptr, len, "random_fill outside module memory");
        }
    })?;
    linker.func_wrap(
        "pacer",
        "log",
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let len = usize::try_from(len).unwrap_or(0).min(MAX_LOG_BYTES);
            let mut bytes = vec![0u8; len];
            let read = caller
                .get_export("memory")
                .and_then(|m| m.into_memory())
                .map(|memory| {
                    memory
                        .read(&caller, ptr as u32 as usize, &mut bytes)
                        .is_ok()
                });
            let message = if read == Some(true) {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                format!("(log message outside module memory: ptr {ptr}, len {len})")
            };
            match level {
                0 => tracing::error!(target: "pacer::module", "{message}"),
                1 => tracing::warn!(target: "pacer::module", "{message}"),
                2 => tracing::info!(target: "pacer::module", "{message}"),
                _ => tracing::debug!(target: "pacer::module", "{message}"),
            }
        },
    )?;
    Ok(())
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
        let features = features_func.call(&mut *store, ())?;
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
    let bound = module
        .pre
        .instantiate(&mut store)
        .and_then(|instance| Exports::bind(&mut store, instance));
    match bound {
        Ok(exports) => Ok((store, exports)),
        Err(error) => {
            let environment = std::mem::replace(&mut store.data_mut().environment, placeholder());
            Err((
                HostError::Incompatible(format!("instantiation failed: {error:#}")),
                environment,
            ))
        }
    }
}

/// Stands in for the environment while it moves between stores.
pub(crate) fn placeholder() -> Box<dyn Environment> {
    Box::new(ScriptedEnvironment::new())
}
