//! One bucket per key (host, account...), with bounded memory.

use core::hash::Hash;

use hashbrown::HashMap;

use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::{Decision, Limiter};
use crate::quota::Quota;

/// Token buckets keyed by `K`, all with the same quota.
///
/// Memory stays bounded in two ways. A bucket that has refilled to full, with no pause in
/// force, is *idle* and may be evicted: a fresh bucket starts at the quota's initial fill, which
/// is never more than full, so eviction grants nothing extra. And at most `max_keys` buckets
/// exist: a new key arriving when all are in use first evicts the idle ones; if none is idle,
/// the call fails with [`Error::KeyLimit`] rather than forget a bucket that is still limiting.
#[derive(Debug, Clone)]
pub struct KeyedLimiter<K> {
    quota: Quota,
    max_keys: usize,
    buckets: HashMap<K, Limiter>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// Buckets of `quota`, at most `max_keys` of them at once.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        KeyedLimiter {
            quota,
            max_keys,
            buckets: HashMap::new(),
        }
    }

    /// [`Limiter::try_acquire`] on `key`'s bucket.
    pub fn try_acquire(&mut self, key: &K, now: Nanos, cost: u32) -> Result<Decision, Error> {
        self.bucket(key, now)?.try_acquire(now, cost)
    }

    /// The quota new keys start with.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Every bucket at `quota` from `now` on, each keeping its tokens ([`Limiter::set_quota`]);
    /// new keys start with it too.
    pub fn set_quota(&mut self, now: Nanos, quota: Quota) {
        self.quota = quota;
        for bucket in self.buckets.values_mut() {
            bucket.set_quota(now, quota);
        }
    }

    /// [`Limiter::reserve`] on `key`'s bucket.
    pub fn reserve(&mut self, key: &K, now: Nanos, cost: u32) -> Result<Nanos, Error> {
        self.bucket(key, now)?.reserve(now, cost)
    }

    /// Tokens available to `key` now × 1000 (a key never seen holds the initial fill).
    pub fn available_milli(&self, key: &K, now: Nanos) -> i64 {
        match self.buckets.get(key) {
            Some(bucket) => bucket.available_milli(now),
            None => Limiter::new(self.quota, now).available_milli(now),
        }
    }

    /// The bucket for `key`, if one is kept.
    pub fn get(&self, key: &K) -> Option<&Limiter> {
        self.buckets.get(key)
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no bucket is kept.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Evicts every idle bucket (full and unpaused); returns how many went.
    pub fn evict_idle(&mut self, now: Nanos) -> usize {
        let before = self.buckets.len();
        self.buckets.retain(|_, bucket| !bucket.is_idle(now));
        before - self.buckets.len()
    }

    fn bucket(&mut self, key: &K, now: Nanos) -> Result<&mut Limiter, Error> {
        if !self.buckets.contains_key(key) {
            if self.buckets.len() >= self.max_keys {
                self.evict_idle(now);
            }
            if self.buckets.len() >= self.max_keys {
                return Err(Error::KeyLimit {
                    max_keys: self.max_keys,
                });
            }
            self.buckets
                .insert(key.clone(), Limiter::new(self.quota, now));
        }
        // The key is present: it was there or was just inserted.
        self.buckets.get_mut(key).ok_or(Error::KeyLimit {
            max_keys: self.max_keys,
        })
    }
}
