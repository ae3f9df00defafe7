//! The buffer pool: reuse, the hard cap under many threads, wrong sizes, and retention that
//! follows the policy's memory pressure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use pacer_host::{BufferPool, Policy, ScriptedEnvironment};

mod common;

#[test]
fn a_returned_buffer_is_rented_again() {
    let pool = BufferPool::default();
    assert_eq!(pool.buffer_size_bytes(), 81_920);
    let mut first = pool.rent();
    first[0] = 42;
    drop(first);
    let second = pool.rent();
    assert_eq!(second[0], 42, "the same buffer came back");
    let stats = pool.stats();
    assert_eq!((stats.rents, stats.hits, stats.allocations), (2, 1, 1));
}

#[test]
fn buffers_of_the_wrong_size_never_enter() {
    let pool = BufferPool::new(1024, 4);
    assert!(!pool.give_back(vec![0; 1023].into_boxed_slice()));
    assert!(!pool.give_back(vec![0; 1025].into_boxed_slice()));
    assert!(pool.give_back(vec![0; 1024].into_boxed_slice()));
    let stats = pool.stats();
    assert_eq!((stats.wrong_size, stats.idle), (2, 1));
    assert_eq!(pool.rent().len(), 1024);
}

#[test]
fn the_idle_cap_holds_under_many_threads() {
    let pool = BufferPool::new(4096, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pool, stop) = (pool.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut most = 0;
            while !stop.load(Ordering::Relaxed) {
                most = most.max(pool.stats().idle);
            }
            most
        })
    };
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || {
                for round in 0..2_000 {
                    let held: Vec<_> = (0..1 + (i + round) % 6).map(|_| pool.rent()).collect();
                    drop(held);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    stop.store(true, Ordering::Relaxed);
    let most_seen = watcher.join().expect("watcher");
    let stats = pool.stats();
    assert!(
        most_seen <= 20 && stats.high_water <= 20 && stats.idle <= 20,
        "{stats:?}, seen {most_seen}"
    );
    assert!(
        stats.hits > stats.allocations,
        "the pool is reused: {stats:?}"
    );
    assert_eq!(stats.rents, stats.hits + stats.allocations);
}

#[test]
fn lowering_the_target_frees_idle_buffers_now() {
    let pool = BufferPool::new(512, 20);
    let held: Vec<_> = (0..20).map(|_| pool.rent()).collect();
    drop(held);
    assert_eq!(pool.stats().idle, 20);
    pool.set_target(10);
    assert_eq!((pool.stats().idle, pool.stats().trims), (10, 10));
    pool.set_target(0);
    assert_eq!(pool.stats().idle, 0);
    drop(pool.rent());
    assert_eq!(pool.stats().idle, 0, "at target 0 nothing is kept");
    pool.set_target(500);
    assert_eq!(pool.target(), 20, "never above the hard cap");
}

#[test]
fn retention_follows_the_policys_memory_pressure() {
    let runtime = common::runtime();
    let module = common::real_module(&runtime);
    let environment = ScriptedEnvironment::new();
    let mut policy = Policy::new(&module, Box::new(environment.clone())).expect("instance");
    let pool = BufferPool::default();
    let held: Vec<_> = (0..20).map(|_| pool.rent()).collect();
    drop(held);
    let mut retained = Vec::new();
    for used in [100, 750, 900, 500] {
        environment.update(|s| (s.memory_used, s.memory_limit) = (used, 1000));
        pool.set_target(policy.pool_target(20).expect("target") as usize);
        retained.push(pool.stats().idle);
    }
    // Low keeps 20; Medium half (10); High none; back to Low the pool may refill to 20.
    assert_eq!(retained, [20, 10, 0, 0]);
    assert_eq!(pool.target(), 20);
}
