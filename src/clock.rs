//! Time as the policy sees it: integer nanoseconds handed in by the host.

use core::sync::atomic::{AtomicU64, Ordering};

/// Nanoseconds on a monotonic clock with an arbitrary origin.
pub type Nanos = u64;

/// Nanoseconds in one millisecond.
pub const NANOS_PER_MS: u64 = 1_000_000;

/// A source of monotonic time. The core never reads one itself; hosts and tests do.
pub trait Clock {
    /// The current time in nanoseconds.
    fn now(&self) -> Nanos;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// A clock that moves only when told to, for tests (shareable across threads).
#[derive(Debug, Default)]
pub struct FakeClock {
    now: AtomicU64,
}

impl FakeClock {
    /// A fake clock reading `start` nanoseconds.
    pub fn new(start: Nanos) -> Self {
        FakeClock {
            now: AtomicU64::new(start),
        }
    }

    /// Moves the clock forward by `delta` nanoseconds (saturating); concurrent advances add up.
    #[inline]
    pub fn advance(&self, delta: Nanos) {
        // One atomic add, as cheap as governor's fake clock; an advance past the end of time
        // pins the clock there.
        let before = self.now.fetch_add(delta, Ordering::Relaxed);
        if before.checked_add(delta).is_none() {
            self.now.store(Nanos::MAX, Ordering::Relaxed);
        }
    }

    /// Sets the clock to `now`; tests may also move it backwards.
    pub fn set(&self, now: Nanos) {
        self.now.store(now, Ordering::Relaxed);
    }
}

impl Clock for FakeClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.now.load(Ordering::Relaxed)
    }
}

/// Keeps time from going back: each reading is raised to the highest seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HighWater {
    highest: Nanos,
}

impl HighWater {
    /// Returns `now`, or the highest earlier reading if `now` is lower.
    #[inline]
    pub fn observe(&mut self, now: Nanos) -> Nanos {
        self.highest = self.highest.max(now);
        self.highest
    }

    /// The highest reading seen so far.
    pub fn latest(&self) -> Nanos {
        self.highest
    }
}
