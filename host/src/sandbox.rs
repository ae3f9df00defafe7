//! The wasmtime wiring, in one place: engine, limits, the five imports, loading and checking a
//! module against ABI v1, and cheap instances from an `InstancePre`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, InstanceAllocationStrategy, InstancePre, Linker,
    Module, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline,
    ValType,
};

use crate::environment::Environment;
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
    pub fn start_call(&mut self) {
        self.ticks_in_call = 0;
    }
}

impl PolicyModule {
    /// The pre-linked module: `instance_pre().instantiate(&mut runtime.store(..))` is the
    /// cheapest way to a raw instance.
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
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

/// The imports a module may use, with their types (params, results).
const IMPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("now_ns", &[], &[ValType::I64]),
    ("memory_used", &[], &[ValType::I64]),
    ("memory_limit", &[], &[ValType::I64]),
    ("random_fill", &[ValType::I32, ValType::I32], &[]),
    ("log", &[ValType::I32, ValType::I32, ValType::I32], &[]),
];

/// The exports ABI v1 requires, with their types.
pub(crate) const EXPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("pacer_abi_version", &[], &[ValType::I32]),
    ("pacer_features", &[], &[ValType::I32]),
    ("pacer_alloc", &[ValType::I32], &[ValType::I32]),
    ("pacer_dealloc", &[ValType::I32, ValType::I32], &[]),
    (
        "pacer_configure",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
    ("pacer_last_error_ptr", &[], &[ValType::I32]),
    ("pacer_last_error_len", &[], &[ValType::I32]),
    (
        "pacer_try_acquire",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    (
        "pacer_reserve",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    ),
    ("pacer_available_milli", &[ValType::I32], &[ValType::I64]),
    (
        "pacer_on_response",
        &[ValType::I32, ValType::I32, ValType::I64],
        &[ValType::I32],
    ),
    (
        "pacer_next_delay_ns",
        &[ValType::I32, ValType::I32, ValType::I64],
        &[ValType::I64],
    ),
    ("pacer_retry_in_ns", &[ValType::I32], &[ValType::I64]),
    (
        "pacer_jitter_ns",
        &[ValType::I64, ValType::I32],
        &[ValType::I64],
    ),
    ("pacer_pressure", &[], &[ValType::I32]),
    ("pacer_should_throttle", &[], &[ValType::I32]),
    ("pacer_pool_target", &[ValType::I32], &[ValType::I32]),
    ("pacer_state_export", &[], &[ValType::I32]),
    ("pacer_state_ptr", &[], &[ValType::I32]),
    (
        "pacer_state_import",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
    ),
];

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
        // 4. A probe instance reads the version, so a wrong module fails here, not mid-job.
        let mut probe = crate::Policy::new(&module, Box::new(crate::ScriptedEnvironment::new()))?;
        let version = probe.call_raw("pacer_abi_version", &[])?;
        if version != 1 {
            return Err(HostError::Incompatible(format!(
                "pacer_abi_version() returned {version}; this host speaks version 1"
            )));
        }
        module.info.abi_version = 1;
        module.info.features = i32::try_from(probe.call_raw("pacer_features", &[])?).unwrap_or(0);
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

    /// A store with this runtime's memory limit and call deadline (for hosts that drive raw
    /// instances; [`crate::Policy`] does this for you). Before each call, start its deadline
    /// with [`HostState::start_call`].
    pub fn store(&self, environment: Box<dyn Environment>) -> Store<HostState> {
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

fn matches(ty: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: Vec<ValType>, b: &[ValType]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
    };
    same(ty.params().collect(), params) && same(ty.results().collect(), results)
}

fn check_imports(module: &Module) -> Result<Vec<String>, HostError> {
    let allowed = IMPORTS
        .iter()
        .map(|(name, ..)| format!("pacer.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut names = Vec::new();
    for import in module.imports() {
        let name = format!("{}.{}", import.module(), import.name());
        let expected = IMPORTS
            .iter()
            .find(|(n, ..)| import.module() == "pacer" && *n == import.name());
        let Some((_, params, results)) = expected else {
            return Err(HostError::Incompatible(format!(
                "it imports `{name}`, which the host does not provide (a policy module may import only {allowed})"
            )));
        };
        match import.ty() {
            ExternType::Func(ty) if matches(&ty, params, results) => names.push(name),
            ExternType::Func(ty) => {
                return Err(HostError::Incompatible(format!(
                    "import `{name}` has type {}",
                    signature(&ty)
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

fn check_exports(module: &Module) -> Result<Vec<String>, HostError> {
    let exports: Vec<_> = module
        .exports()
        .map(|e| (e.name().to_string(), e.ty()))
        .collect();
    if !exports
        .iter()
        .any(|(name, ty)| name == "memory" && matches!(ty, ExternType::Memory(_)))
    {
        return Err(HostError::Incompatible(
            "it does not export its `memory`".into(),
        ));
    }
    for (name, params, results) in EXPORTS {
        match exports.iter().find(|(n, _)| n == name).map(|(_, ty)| ty) {
            None => {
                return Err(HostError::Incompatible(format!(
                    "it does not export `{name}`"
                )));
            }
            Some(ExternType::Func(ty)) if matches(ty, params, results) => {}
            Some(ExternType::Func(ty)) => {
                let expected = signature(&FuncType::new(
                    module.engine(),
                    params.iter().cloned(),
                    results.iter().cloned(),
                ));
                return Err(HostError::Incompatible(format!(
                    "export `{name}` has type {}, expected {expected}",
                    signature(ty)
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
