//! Shared limits: a decision on a host of a group (local, as alone), sixteen hosts deciding at
//! once in one process, and the renewal's round trip to a real redis-server, which is what one
//! decision would cost if each went to Redis.
#![allow(missing_docs)]

#[path = "../tests/common/redis.rs"]
#[allow(dead_code)]
mod redis_server;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pacer_cli::group::{RENEW_SCRIPT, local_config};
use pacer_host::{Policy, PolicyModule, Runtime, SandboxOptions, SystemEnvironment};

/// One token per ns: every decision is admitted, whatever it costs.
const CONFIG: &str =
    r#"{"seed":1,"limiters":[{"name":"bench","tokens_per_hour":3.6e12,"burst":1000000}]}"#;
const HOSTS: usize = 16;

fn module() -> PolicyModule {
    let runtime = Runtime::new(SandboxOptions {
        cache_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache")),
        ..SandboxOptions::default()
    })
    .expect("engine");
    runtime
        .load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/pacer.wasm"))
        .expect("dist/pacer.wasm (run `make wasm`)")
}

/// A host alone, or a host of a group of `HOSTS` running at its share (set by `set_rate`).
fn host(module: &PolicyModule, shared: bool) -> Policy {
    let mut policy = Policy::new(module, Box::new(SystemEnvironment::detect())).expect("instance");
    if shared {
        let local = local_config(CONFIG, HOSTS as u32, Duration::from_secs(2)).expect("config");
        policy.configure(&local).expect("config");
        policy.set_rate(0, 3.6e12 / HOSTS as f64).expect("share");
    } else {
        policy.configure(CONFIG).expect("config");
    }
    policy
}

fn decisions(c: &mut Criterion) {
    let module = module();
    let mut group = c.benchmark_group("group");
    let mut alone = host(&module, false);
    group.bench_function("decision_alone", |b| {
        b.iter(|| black_box(alone.try_acquire(black_box(0), black_box(1))))
    });
    let mut shared = host(&module, true);
    group.bench_function("decision_shared", |b| {
        b.iter(|| black_box(shared.try_acquire(black_box(0), black_box(1))))
    });
    // Sixteen hosts in one process, each on its own thread with its own instance: the time per
    // decision of all of them together (decisions/s in aggregate = 1 / this).
    group.bench_function("sixteen_hosts_aggregate", |b| {
        b.iter_custom(|iters| {
            let per_host = iters.div_ceil(HOSTS as u64);
            let hosts: Vec<Policy> = (0..HOSTS).map(|_| host(&module, true)).collect();
            let start = Instant::now();
            std::thread::scope(|scope| {
                for mut policy in hosts {
                    scope.spawn(move || {
                        for _ in 0..per_host {
                            let _ = black_box(policy.try_acquire(0, 1).expect("decision"));
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_host * HOSTS as u64) as f64)
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let server = redis_server::Redis::start();
    let mut connection = redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("redis");
    let script = redis::Script::new(RENEW_SCRIPT);
    let mut group = c.benchmark_group("group");
    // One renewal, as a host makes every quarter lease: the cost each decision would pay if it
    // went to Redis (the per-decision ceiling is 1 / this, per connection).
    group.bench_function("renewal_round_trip", |b| {
        b.iter(|| {
            let answer: (String, i64, i64) = script
                .key("pacer:{bench}:l:members")
                .key("pacer:{bench}:l:identity")
                .key("pacer:{bench}:l:contact")
                .key("pacer:{bench}:l:pause")
                .arg("host")
                .arg("bench")
                .arg(3600.0)
                .arg(3600.0)
                .arg(3600.0)
                .arg(2000)
                .arg(0)
                .invoke(&mut connection)
                .expect("renewal");
            black_box(answer)
        })
    });
    group.finish();
}

criterion_group!(benches, decisions, round_trip);
criterion_main!(benches);
