//! Prints a paced download schedule: three workers sharing the guide's natural pace (90 items
//! an hour, 3 at once), on a virtual clock, with a 429 + Retry-After partway through.
//!
//! Run with `make schedule` (or `cargo run --example schedule`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pacer::{Config, LimiterConfig, MemoryReading, Policy, Rng, Schedule};

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SECOND;
const WORKERS: u64 = 3;

fn main() -> Result<(), pacer::Error> {
    let mut downloads = LimiterConfig::new("downloads", 90.0);
    downloads.burst = Some(3);
    let mut config = Config::new(vec![downloads]);
    config.seed = Some(7);
    let mut policy = Policy::new(config.clone())?;
    let mut durations = Rng::from_seed(1);
    let memory = MemoryReading::new(2 << 30, 8 << 30);

    println!("pacer: natural pacing, {}", config.to_json());
    println!(
        "{:>9}  {:>6}  {:>5}  {:>10}",
        "starts", "worker", "item", "slept"
    );
    // Events in time order: (time, worker, item); item 0 = the worker asks for a slot,
    // otherwise its download of that item completes. The clock only moves forward.
    let mut events: BinaryHeap<Reverse<(u64, u64, u64)>> =
        (0..WORKERS).map(|worker| Reverse((0, worker, 0))).collect();
    let (mut items, mut throttled, mut slept_total, mut in_hour) = (0u64, 0u64, 0u64, 0u64);
    while let Some(Reverse((now, worker, item))) = events.pop() {
        if item > 0 {
            let (status, retry_after) = if item == 7 {
                (429, Some(60 * SECOND))
            } else {
                (200, None)
            };
            throttled += u64::from(status == 429);
            policy.on_response(now, 0, status, retry_after)?;
            events.push(Reverse((now, worker, 0)));
            continue;
        }
        if now >= HOUR {
            break;
        }
        let delay = match policy.next_delay(now, memory, 0, 1, 500_000_000)? {
            Schedule::Act { delay } => delay,
            Schedule::CircuitOpen { retry_in } => {
                events.push(Reverse((now + retry_in, worker, 0)));
                continue;
            }
        };
        let starts = now + delay;
        slept_total += delay;
        items += 1;
        in_hour += u64::from(starts < HOUR);
        let done = starts + durations.between(5 * SECOND, 15 * SECOND);
        if items <= 15 || items % 10 == 0 {
            let what = if items == 7 {
                "will get 429, Retry-After 60 s: the limiter pauses"
            } else {
                ""
            };
            println!(
                "{:>9}  {:>6}  {:>5}  {:>10}  {what}",
                clock(starts),
                worker,
                items,
                clock(delay)
            );
        }
        events.push(Reverse((done, worker, items)));
    }
    println!(
        "\n{in_hour} items started in the first hour (quota 90/h + 1.5 in the bucket at the \
         start), {throttled} throttled, workers slept {} in all",
        clock(slept_total)
    );
    Ok(())
}

/// `m:ss.mmm` for a nanosecond count.
fn clock(ns: u64) -> String {
    let ms = ns / 1_000_000;
    format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}
