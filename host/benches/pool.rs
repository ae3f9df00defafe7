//! Renting and returning a pooled 81,920-byte buffer vs allocating a fresh zeroed one.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pacer_host::BufferPool;
use pacer_host::pool::DEFAULT_BUFFER_SIZE_BYTES;

fn buffers(c: &mut Criterion) {
    let mut group = c.benchmark_group("buffer_81920");
    let pool = BufferPool::default();
    drop(pool.rent());
    group.bench_function("pool_rent_return", |b| {
        b.iter(|| {
            let mut buffer = pool.rent();
            buffer[0] = 1;
            black_box(&buffer);
        })
    });
    group.bench_function("fresh_zeroed_alloc", |b| {
        b.iter(|| {
            let mut buffer = vec![0u8; DEFAULT_BUFFER_SIZE_BYTES].into_boxed_slice();
            buffer[0] = 1;
            black_box(&buffer);
        })
    });
    group.finish();
}

criterion_group!(benches, buffers);
criterion_main!(benches);
