//! The policy hosted in wasmtime vs the native core vs governor, all on real clocks; then
//! instantiation (pooled or not) and loading (compile vs the cache).
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use pacer::{Config, LimiterConfig, MemoryReading};
use pacer_host::{Policy, PolicyModule, Runtime, SandboxOptions, SystemEnvironment};

/// One token per ns: every check is admitted on either side, whatever the call costs.
const CONFIG: &str =
    r#"{"seed":1,"limiters":[{"name":"bench","tokens_per_hour":3.6e12,"burst":1000000}]}"#;

fn module_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/pacer.wasm"))
        .expect("dist/pacer.wasm (run `make wasm`)")
}

fn runtime(pooling: bool, cache: bool) -> Runtime {
    let cache_dir =
        cache.then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache"));
    Runtime::new(SandboxOptions {
        pooling,
        cache_dir,
        ..SandboxOptions::default()
    })
    .expect("engine")
}

fn hosted(module: &PolicyModule) -> Policy {
    let mut policy = Policy::new(module, Box::new(SystemEnvironment::detect())).expect("instance");
    policy.configure(CONFIG).expect("config");
    policy
}

/// A raw instance of `module` on the real clock, configured with [`CONFIG`].
fn raw_instance(
    runtime: &Runtime,
    module: &PolicyModule,
) -> (wasmtime::Store<pacer_host::HostState>, wasmtime::Instance) {
    let mut store = pacer_host::raw::store(runtime, Box::new(SystemEnvironment::detect()));
    let instance = pacer_host::raw::instance_pre(module)
        .instantiate(&mut store)
        .expect("instance");
    let memory = instance.get_memory(&mut store, "memory").expect("memory");
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "pacer_alloc")
        .expect("export");
    let configure = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "pacer_configure")
        .expect("export");
    let len = CONFIG.len() as i32;
    pacer_host::raw::start_call(&mut store);
    let ptr = alloc.call(&mut store, len).expect("alloc");
    memory
        .write(&mut store, ptr as usize, CONFIG.as_bytes())
        .expect("write");
    pacer_host::raw::start_call(&mut store);
    assert_eq!(
        configure.call(&mut store, (ptr, len)).expect("configure"),
        0
    );
    (store, instance)
}

fn native() -> pacer::Policy {
    let mut limiter = LimiterConfig::new("bench", 3.6e12);
    limiter.burst = Some(1_000_000);
    let mut config = Config::new(vec![limiter]);
    config.seed = Some(1);
    pacer::Policy::new(config).expect("config")
}

fn decisions(c: &mut Criterion) {
    let runtime = runtime(true, true);
    let module = runtime.load(&module_bytes()).expect("module");
    let clock = quanta::Clock::new();
    let origin = clock.now();
    let now = || clock.now().duration_since(origin).as_nanos() as u64;

    let mut group = c.benchmark_group("try_acquire_real_clock");
    group.bench_function("hosted_wasm", |b| {
        let mut policy = hosted(&module);
        b.iter(|| black_box(policy.try_acquire(0, black_box(1))))
    });
    // The floor of any hosted decision: one typed call into wasm that does nothing.
    group.bench_function("hosted_empty_call", |b| {
        let mut store = pacer_host::raw::store(&runtime, Box::new(SystemEnvironment::detect()));
        let instance = pacer_host::raw::instance_pre(&module)
            .instantiate(&mut store)
            .expect("instance");
        let version = instance
            .get_typed_func::<(), i32>(&mut store, "pacer_abi_version")
            .expect("export");
        b.iter(|| {
            pacer_host::raw::start_call(&mut store);
            black_box(version.call(&mut store, ()))
        })
    });
    // The parts of a hosted decision: the host's clock read, and the typed call that takes
    // the time as an argument (`pacer_try_acquire_at`) on a raw instance.
    group.bench_function("host_clock_read", |b| {
        let mut environment = SystemEnvironment::detect();
        b.iter(|| black_box(pacer_host::Environment::now_ns(&mut environment)))
    });
    group.bench_function("quanta_clock_read", |b| b.iter(|| black_box(now())));
    group.bench_function("native_fixed_time", |b| {
        let mut policy = native();
        let mut t = 0u64;
        b.iter(|| {
            t += 10;
            black_box(policy.try_acquire(t, 0, black_box(1)))
        })
    });
    group.bench_function("raw_try_acquire_at", |b| {
        let (mut store, instance) = raw_instance(&runtime, &module);
        let try_acquire_at = instance
            .get_typed_func::<(i64, i32, i32), i64>(&mut store, "pacer_try_acquire_at")
            .expect("export");
        let mut environment = SystemEnvironment::detect();
        b.iter(|| {
            pacer_host::raw::start_call(&mut store);
            let now = pacer_host::Environment::now_ns(&mut environment);
            black_box(try_acquire_at.call(&mut store, (now, 0, black_box(1))))
        })
    });
    // The decision alone inside wasm: the time passed in, no clock read (against
    // `native_fixed_time`).
    group.bench_function("raw_fixed_time", |b| {
        let (mut store, instance) = raw_instance(&runtime, &module);
        let try_acquire_at = instance
            .get_typed_func::<(i64, i32, i32), i64>(&mut store, "pacer_try_acquire_at")
            .expect("export");
        let mut t = 0i64;
        b.iter(|| {
            t += 10;
            pacer_host::raw::start_call(&mut store);
            black_box(try_acquire_at.call(&mut store, (t, 0, black_box(1))))
        })
    });
    // The same decision with the clock read through the `now_ns` import instead.
    group.bench_function("raw_try_acquire_import", |b| {
        let (mut store, instance) = raw_instance(&runtime, &module);
        let try_acquire = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "pacer_try_acquire")
            .expect("export");
        b.iter(|| {
            pacer_host::raw::start_call(&mut store);
            black_box(try_acquire.call(&mut store, (0, black_box(1))))
        })
    });
    group.bench_function("native", |b| {
        let mut policy = native();
        b.iter(|| black_box(policy.try_acquire(now(), 0, black_box(1))))
    });
    group.bench_function("governor", |b| {
        let rate = NonZeroU32::new(1_000_000_000).expect("non-zero");
        let limiter = RateLimiter::direct(
            GovernorQuota::per_second(rate)
                .allow_burst(NonZeroU32::new(1_000_000).expect("non-zero")),
        );
        b.iter(|| black_box(limiter.check()))
    });
    group.finish();

    // The automatic checkpoint a hosted policy takes every 256 decisions (amortized into
    // `hosted_wasm` above): one snapshot of a configured, used instance.
    let mut group = c.benchmark_group("state");
    group.bench_function("hosted_snapshot", |b| {
        let mut policy = hosted(&module);
        let _ = policy.try_acquire(0, 1).expect("decision");
        b.iter(|| black_box(policy.snapshot().expect("snapshot")))
    });
    group.finish();

    let mut group = c.benchmark_group("next_delay_real_clock");
    group.bench_function("hosted_wasm", |b| {
        let mut policy = hosted(&module);
        b.iter(|| black_box(policy.next_delay(0, 1, black_box(Duration::ZERO))))
    });
    group.bench_function("native", |b| {
        let mut policy = native();
        let memory = MemoryReading::new(1 << 30, 4 << 30);
        b.iter(|| black_box(policy.next_delay(now(), memory, 0, 1, black_box(0))))
    });
    group.finish();
}

/// One instance shared by 16 threads (as tokio tasks share it): the time per decision with the
/// lock contended, beside one thread alone on the same handle.
fn contention(c: &mut Criterion) {
    let runtime = runtime(true, true);
    let module = runtime.load(&module_bytes()).expect("module");
    let mut group = c.benchmark_group("shared_try_acquire");
    for threads in [1u64, 16] {
        group.bench_function(format!("{threads}_threads"), |b| {
            let shared = pacer_host::SharedPolicy::new(hosted(&module));
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(threads);
                let started = std::time::Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..threads {
                        let shared = shared.clone();
                        scope.spawn(move || {
                            for _ in 0..per_thread {
                                let _ =
                                    black_box(shared.lock().try_acquire(0, 1).expect("decision"));
                            }
                        });
                    }
                });
                // Per decision: all threads' decisions over the wall-clock time they took.
                started
                    .elapsed()
                    .mul_f64(iters as f64 / (per_thread * threads) as f64)
            })
        });
    }
    group.finish();
}

fn instantiation(c: &mut Criterion) {
    let bytes = module_bytes();
    let mut group = c.benchmark_group("instantiate");
    for (name, pooling) in [("pooled", true), ("on_demand", false)] {
        let runtime = runtime(pooling, true);
        let module = runtime.load(&bytes).expect("module");
        group.bench_function(format!("{name}_instance_pre"), |b| {
            b.iter(|| {
                let mut store = pacer_host::raw::store(
                    &runtime,
                    Box::new(pacer_host::ScriptedEnvironment::new()),
                );
                black_box(
                    pacer_host::raw::instance_pre(&module)
                        .instantiate(&mut store)
                        .expect("instance"),
                );
            })
        });
        group.bench_function(format!("{name}_policy_handle"), |b| {
            b.iter(|| {
                black_box(
                    Policy::new(&module, Box::new(pacer_host::ScriptedEnvironment::new()))
                        .expect("instance"),
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("load_module");
    group.sample_size(10);
    let uncached = runtime(true, false);
    group.bench_function("compile_and_check", |b| {
        b.iter(|| black_box(uncached.load(&bytes).expect("module")))
    });
    let cached = runtime(true, true);
    cached.load(&bytes).expect("warms the cache");
    group.bench_function("from_cache_and_check", |b| {
        b.iter(|| black_box(cached.load(&bytes).expect("module")))
    });
    group.finish();
}

criterion_group!(benches, decisions, contention, instantiation);
criterion_main!(benches);
