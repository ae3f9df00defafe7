//! What a simulation found: summary figures, series over time, histograms.

use serde::Serialize;

/// The headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests in the arrival trace.
    pub requests: u64,
    /// `next_delay` calls made (first asks, retries after 429/503, asks while the circuit was open).
    pub decisions: u64,
    /// Requests the origin served (200).
    pub admitted: u64,
    /// 429 answers from the origin.
    pub rejected_429: u64,
    /// 503 answers from the origin (the outage).
    pub failed_503: u64,
    /// `next_delay` answers of "circuit open".
    pub refused_circuit: u64,
    /// Requests not yet served at the end.
    pub waiting_at_end: u64,
    /// Median wait from arrival to being served, ms.
    pub wait_p50_ms: f64,
    /// 99th percentile of that wait, ms.
    pub wait_p99_ms: f64,
    /// Longest such wait, ms.
    pub wait_max_ms: f64,
    /// Requests offered per hour.
    pub offered_per_hour: f64,
    /// Requests served per hour.
    pub achieved_per_hour: f64,
    /// The quota of the limiters the clients use, tokens per hour (summed).
    pub quota_per_hour: f64,
    /// `achieved_per_hour / quota_per_hour`.
    pub achieved_vs_quota: f64,
}

/// Gauges and counts sampled every `interval_s` (each count covers the interval before `t_s`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Seconds covered by each count.
    pub interval_s: f64,
    /// Sample times, seconds.
    pub t_s: Vec<f64>,
    /// Tokens available in limiter 0 (negative in debt).
    pub tokens: Vec<f64>,
    /// Requests served in the interval.
    pub admitted: Vec<u64>,
    /// 429s in the interval.
    pub rejected: Vec<u64>,
    /// 503s in the interval.
    pub failed: Vec<u64>,
    /// Circuit refusals in the interval.
    pub refused: Vec<u64>,
    /// Requests arrived but not yet served.
    pub waiting: Vec<u64>,
    /// Pressure level: 0 Low, 1 Medium, 2 High.
    pub pressure: Vec<i32>,
    /// `pacer_pool_target(pool.max_buffers)`.
    pub pool_target: Vec<i32>,
    /// Memory in use, fraction of the limit (`null` = unknown).
    pub memory: Vec<Option<f64>>,
    /// Limiter 0's rate, tokens a second (`None`: the module cannot say).
    pub rate_per_s: Vec<Option<f64>>,
}

/// Counts of values falling between consecutive edges (the last bucket is open-ended).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// Lower edge of each bucket, ms.
    pub edges_ms: Vec<f64>,
    /// Values in each bucket.
    pub counts: Vec<u64>,
}

/// Draws of `pacer_jitter_ns` at a few utilizations, binned alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JitterDraws {
    /// The base of every draw, ms.
    pub base_ms: f64,
    /// The utilizations drawn at (0..=1).
    pub utilization: Vec<f64>,
    /// Lower edge of each bucket, ms (shared by all utilizations).
    pub edges_ms: Vec<f64>,
    /// Counts per utilization, per bucket.
    pub counts: Vec<Vec<u64>>,
}

/// Everything a run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Headline figures.
    pub summary: Summary,
    /// Over time.
    pub series: Series,
    /// Wait from arrival to being served.
    pub wait_histogram: Histogram,
    /// The jitter strategy's distribution.
    pub jitter: JitterDraws,
}

/// Waits binned by powers of two: `[0, 1)` ms, `[1, 2)`, `[2, 4)`, …
pub fn log2_histogram(waits_ns: &[u64]) -> Histogram {
    let mut counts: Vec<u64> = vec![0];
    for &wait in waits_ns {
        let ms = wait / 1_000_000;
        let bucket = if ms == 0 {
            0
        } else {
            1 + (63 - ms.leading_zeros()) as usize
        };
        if counts.len() <= bucket {
            counts.resize(bucket + 1, 0);
        }
        counts[bucket] += 1;
    }
    let edges_ms = (0..counts.len())
        .map(|b| {
            if b == 0 {
                0.0
            } else {
                (1u64 << (b - 1)) as f64
            }
        })
        .collect();
    Histogram { edges_ms, counts }
}

/// `buckets` equal buckets from 0 to the largest of all `samples_ns`, one count row per sample set.
pub fn linear_histograms(samples_ns: &[Vec<u64>], buckets: usize) -> (Vec<f64>, Vec<Vec<u64>>) {
    // Each set's maximum, then theirs: a flattening iterator weighs on the browser's module.
    let max = samples_ns
        .iter()
        .map(|set| set.iter().copied().max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    // Width in ns, at least 1 ms total span so a zero-jitter strategy still draws one bar.
    let width = (max / buckets as u64 + 1).max(1_000_000 / buckets as u64);
    let edges = (0..buckets)
        .map(|b| (b as u64 * width) as f64 / 1e6)
        .collect();
    let counts = samples_ns
        .iter()
        .map(|set| {
            let mut row = vec![0u64; buckets];
            for &sample in set {
                row[((sample / width) as usize).min(buckets - 1)] += 1;
            }
            row
        })
        .collect();
    (edges, counts)
}

/// The nearest-rank percentile `p` (0..=1) of `values_ns`, in ms; 0 when empty. Reorders
/// the values (a radix selection in linear time, not a sort).
pub fn percentile_ms(values_ns: &mut [u64], p: f64) -> f64 {
    if values_ns.is_empty() {
        return 0.0;
    }
    let rank = libm::ceil(p * values_ns.len() as f64) as usize;
    let k = rank.clamp(1, values_ns.len()) - 1;
    crate::select::nth_smallest(values_ns, k).map_or(0.0, |v| v as f64 / 1e6)
}
