//! A capped pool of fixed-size byte buffers, sized by the policy's memory pressure.
//!
//! Idle buffers live in a lock-free bounded queue whose capacity is the hard cap (default 20),
//! so the cap holds under any concurrency. How many of those the pool actually keeps follows
//! the policy's `pool_target` (all at Low pressure, half at Medium, none at High): lowering the
//! target frees idle buffers at once, so rising pressure really returns memory.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_queue::ArrayQueue;

/// The guide's buffer size: 80 KiB.
pub const DEFAULT_BUFFER_SIZE_BYTES: usize = 81_920;
/// The guide's cap on idle buffers.
pub const DEFAULT_MAX_IDLE: usize = 20;

/// A pool of `buffer_size_bytes` buffers keeping at most `max_idle` of them idle.
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

struct Shared {
    buffer_size_bytes: usize,
    max_idle: usize,
    idle: ArrayQueue<Box<[u8]>>,
    target: AtomicUsize,
    hits: AtomicU64,
    allocations: AtomicU64,
    returns_dropped: AtomicU64,
    wrong_size: AtomicU64,
    trims: AtomicU64,
    high_water: AtomicUsize,
}

/// Counters since the pool was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Buffers rented.
    pub rents: u64,
    /// Rents served from an idle buffer.
    pub hits: u64,
    /// Rents that allocated a new buffer (`rents - hits`).
    pub allocations: u64,
    /// Returned buffers dropped because the pool was at its target.
    pub drops: u64,
    /// Buffers of the wrong size offered back and refused.
    pub wrong_size: u64,
    /// Idle buffers freed because the target fell.
    pub trims: u64,
    /// The most buffers ever idle at once.
    pub high_water: usize,
    /// Buffers idle now.
    pub idle: usize,
}

impl PoolStats {
    /// Share of rents served without allocating (0 when nothing was rented).
    pub fn hit_rate(&self) -> f64 {
        if self.rents == 0 {
            0.0
        } else {
            self.hits as f64 / self.rents as f64
        }
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::new(DEFAULT_BUFFER_SIZE_BYTES, DEFAULT_MAX_IDLE)
    }
}

impl BufferPool {
    /// A pool of `buffer_size_bytes` buffers (at least 1) with a hard cap of `max_idle` idle.
    pub fn new(buffer_size_bytes: usize, max_idle: usize) -> Self {
        BufferPool {
            shared: Arc::new(Shared {
                buffer_size_bytes: buffer_size_bytes.max(1),
                max_idle,
                // ArrayQueue needs a capacity of at least 1; a target of 0 keeps it empty.
                idle: ArrayQueue::new(max_idle.max(1)),
                target: AtomicUsize::new(max_idle),
                hits: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
                returns_dropped: AtomicU64::new(0),
                wrong_size: AtomicU64::new(0),
                trims: AtomicU64::new(0),
                high_water: AtomicUsize::new(0),
            }),
        }
    }

    /// The size of every buffer.
    pub fn buffer_size_bytes(&self) -> usize {
        self.shared.buffer_size_bytes
    }

    /// The hard cap on idle buffers.
    pub fn max_idle(&self) -> usize {
        self.shared.target_cap()
    }

    /// A buffer (idle if one is, else newly zeroed), returned to the pool when dropped.
    /// Its contents are whatever the last user left.
    pub fn rent(&self) -> PooledBuffer {
        // One counter per path (rents = hits + allocations): a single atomic add on a hit.
        let shared = &self.shared;
        let buffer = match shared.idle.pop() {
            Some(buffer) => {
                shared.hits.fetch_add(1, Relaxed);
                buffer
            }
            None => {
                shared.allocations.fetch_add(1, Relaxed);
                vec![0u8; shared.buffer_size_bytes].into_boxed_slice()
            }
        };
        PooledBuffer {
            buffer: Some(buffer),
            pool: Arc::clone(shared),
        }
    }

    /// Offers a buffer to the pool; one of another size is refused (and dropped).
    pub fn give_back(&self, buffer: Box<[u8]>) -> bool {
        self.shared.give_back(buffer)
    }

    /// Sets how many idle buffers to keep (capped at `max_idle`), freeing any above it now.
    /// Feed it the policy's `pool_target`.
    pub fn set_target(&self, idle: usize) {
        let shared = &self.shared;
        shared.target.store(idle.min(shared.target_cap()), Relaxed);
        while shared.idle.len() > shared.target.load(Relaxed) {
            match shared.idle.pop() {
                Some(buffer) => {
                    drop(buffer);
                    shared.trims.fetch_add(1, Relaxed);
                }
                None => break,
            }
        }
    }

    /// How many idle buffers the pool keeps now.
    pub fn target(&self) -> usize {
        self.shared.target.load(Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        let hits = s.hits.load(Relaxed);
        let allocations = s.allocations.load(Relaxed);
        PoolStats {
            rents: hits + allocations,
            hits,
            allocations,
            drops: s.returns_dropped.load(Relaxed),
            wrong_size: s.wrong_size.load(Relaxed),
            trims: s.trims.load(Relaxed),
            high_water: s.high_water.load(Relaxed),
            idle: s.idle.len(),
        }
    }
}

impl Shared {
    fn target_cap(&self) -> usize {
        self.max_idle
    }

    fn give_back(&self, buffer: Box<[u8]>) -> bool {
        if buffer.len() != self.buffer_size_bytes {
            self.wrong_size.fetch_add(1, Relaxed);
            return false;
        }
        // The queue's capacity is the hard cap; a target below it (pressure) may keep fewer.
        let target = self.target.load(Relaxed);
        let over_target = target < self.max_idle && self.idle.len() >= target;
        if over_target || self.idle.push(buffer).is_err() {
            self.returns_dropped.fetch_add(1, Relaxed);
            return false;
        }
        let idle = self.idle.len();
        if idle > self.high_water.load(Relaxed) {
            self.high_water.fetch_max(idle, Relaxed);
        }
        true
    }
}

/// A rented buffer; dropping it gives it back to its pool.
pub struct PooledBuffer {
    buffer: Option<Box<[u8]>>,
    pool: Arc<Shared>,
}

impl PooledBuffer {
    /// Keeps the buffer out of the pool for good.
    pub fn detach(mut self) -> Box<[u8]> {
        self.buffer.take().unwrap_or_default()
    }
}

impl Deref for PooledBuffer {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.buffer.as_deref().unwrap_or_default()
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buffer.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            self.pool.give_back(buffer);
        }
    }
}
