//! One policy instance shared by many tasks, and waiting for a slot with `.await`.
//!
//! Tasks share one instance behind a lock, held only for the length of a call (never across
//! an `.await`): several instances would each have their own bucket, splitting it and
//! multiplying the rate.

use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(feature = "tokio")]
use std::time::Duration;

#[cfg(feature = "tokio")]
use pacer::Schedule;

#[cfg(feature = "tokio")]
use crate::error::HostError;
use crate::policy::Policy;

/// A [`Policy`] many threads and tasks can share: clone it freely, every clone is the same
/// instance.
#[derive(Clone)]
pub struct SharedPolicy {
    policy: Arc<Mutex<Policy>>,
}

impl SharedPolicy {
    /// Shares `policy`.
    pub fn new(policy: Policy) -> Self {
        SharedPolicy {
            policy: Arc::new(Mutex::new(policy)),
        }
    }

    /// The instance, for one call or a few; do not hold it across an `.await`. A task that
    /// panicked while holding it leaves it usable: the module's state is never half-written
    /// by the host (a trapped call is rolled back by the handle).
    pub fn lock(&self) -> MutexGuard<'_, Policy> {
        self.policy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `cost` tokens of `limiter` may be used, then returns: it sleeps through
    /// `next_delay`'s delay, and while the circuit is open it waits `retry_in` and asks again.
    ///
    /// Cancellation-safe: if the future is dropped while it sleeps towards its slot, the slot
    /// is handed back where that keeps FIFO (it is still the limiter's newest reservation,
    /// `pacer_cancel_ns`); otherwise its tokens stay spent, so the limiter errs slow, never
    /// fast. Errors (an unknown limiter, a cost above burst, a trapped module) are returned.
    #[cfg(feature = "tokio")]
    pub async fn acquire(&self, limiter: u32, cost: u32) -> Result<(), HostError> {
        loop {
            // One reading of the clock, under the lock: the slot matures at now + delay exactly.
            let (now, schedule) = {
                let mut policy = self.lock();
                let now = policy.now_ns();
                (
                    now,
                    policy.next_delay_at(now, limiter, cost, Duration::ZERO)?,
                )
            };
            match schedule {
                Schedule::Act { delay } => {
                    if delay == 0 {
                        return Ok(());
                    }
                    let due_at = now.saturating_add(saturating_i64(delay));
                    let mut slot = HeldSlot {
                        shared: self,
                        limiter,
                        cost,
                        due_at,
                        armed: true,
                    };
                    tokio::time::sleep(Duration::from_nanos(delay)).await;
                    slot.armed = false;
                    return Ok(());
                }
                Schedule::CircuitOpen { retry_in } => {
                    tokio::time::sleep(Duration::from_nanos(retry_in.max(1_000_000))).await;
                }
            }
        }
    }
}

#[cfg(feature = "tokio")]
fn saturating_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// A reserved slot an `acquire` future sleeps towards; dropped early, it is handed back.
#[cfg(feature = "tokio")]
struct HeldSlot<'a> {
    shared: &'a SharedPolicy,
    limiter: u32,
    cost: u32,
    /// When the slot matures, on the environment's clock.
    due_at: i64,
    armed: bool,
}

#[cfg(feature = "tokio")]
impl Drop for HeldSlot<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut policy = self.shared.lock();
        if let Err(error) = policy.cancel(self.limiter, self.cost, self.due_at) {
            tracing::warn!(%error, "could not hand back a dropped slot");
        }
    }
}
