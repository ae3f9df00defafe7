//! The k-th smallest of many `u64`s, by radix: exact, linear, and a few hundred bytes of wasm
//! (`select_nth_unstable` costs the page about 3 KB).
//!
//! Each round looks only at the bits where the remaining values still differ (their OR and AND
//! say which), counts them by the top 8 of those bits, keeps the bucket holding rank `k`, and
//! moves its values to the front. Values that agree on every bit are the answer.

/// Bits per round: 256 counters, so a round's counting stays in cache.
const DIGIT_BITS: u32 = 8;

/// The value of rank `k` (0-based) in `values`, as if they were sorted; `None` when `k` is
/// out of range. Reorders `values`, keeping every one: selections may follow on the same slice.
pub fn nth_smallest(values: &mut [u64], mut k: usize) -> Option<u64> {
    if k >= values.len() {
        return None;
    }
    let mut live = values;
    let (mut or, mut and) = spread(live);
    while or != and {
        // The lowest bit of the digit: the top differing bit's position less DIGIT_BITS - 1.
        let top = u64::BITS - 1 - (or ^ and).leading_zeros();
        let shift = top.saturating_sub(DIGIT_BITS - 1);
        let digit = |v: u64| ((v >> shift) & ((1 << DIGIT_BITS) - 1)) as usize;
        let mut counts = [0usize; 1 << DIGIT_BITS];
        for &v in live.iter() {
            counts[digit(v)] += 1;
        }
        let mut bucket = 0;
        while k >= counts[bucket] {
            k -= counts[bucket];
            bucket += 1;
        }
        // Keep the bucket's values, at the front, noting where they still differ.
        let mut kept = 0;
        (or, and) = (0, u64::MAX);
        for i in 0..live.len() {
            let v = live[i];
            if digit(v) == bucket {
                // A swap, not a copy: the slice stays a permutation of the values, so later
                // selections (the p99 after the p50) and the histogram see them all.
                live.swap(i, kept);
                kept += 1;
                or |= v;
                and &= v;
            }
        }
        live = &mut live[..kept];
    }
    Some(or)
}

/// The OR and AND of `values`: equal exactly when every value is the same.
fn spread(values: &[u64]) -> (u64, u64) {
    values
        .iter()
        .fold((0, u64::MAX), |(or, and), &v| (or | v, and & v))
}

#[cfg(test)]
mod tests {
    use super::nth_smallest;

    /// A small deterministic generator (xorshift), so the cases need no dependency.
    fn values(seed: u64, n: usize, mask: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x & mask
            })
            .collect()
    }

    #[test]
    fn every_rank_matches_a_sort() {
        for (seed, n, mask) in [
            (1, 1, u64::MAX),
            (2, 2, 1),
            (3, 257, 0xff),
            (4, 1000, u64::MAX),
            (5, 1000, 0xf0f0),
            (6, 513, 7),
            (7, 300, 1 << 40 | 3),
        ] {
            let original = values(seed, n, mask);
            let mut sorted = original.clone();
            sorted.sort_unstable();
            for (k, expected) in sorted.iter().enumerate() {
                let mut work = original.clone();
                assert_eq!(
                    nth_smallest(&mut work, k),
                    Some(*expected),
                    "seed {seed} k {k}"
                );
            }
        }
    }

    #[test]
    fn extremes_and_duplicates() {
        let mut all_equal = vec![42u64; 100];
        assert_eq!(nth_smallest(&mut all_equal, 99), Some(42));
        let mut edges = vec![u64::MAX, 0, u64::MAX, 0, 1 << 63];
        assert_eq!(nth_smallest(&mut edges.clone(), 0), Some(0));
        assert_eq!(nth_smallest(&mut edges.clone(), 2), Some(1 << 63));
        assert_eq!(nth_smallest(&mut edges, 4), Some(u64::MAX));
        let mut mostly_zero: Vec<u64> = (0..1000).map(|i| u64::from(i == 500) * 7).collect();
        assert_eq!(nth_smallest(&mut mostly_zero.clone(), 998), Some(0));
        assert_eq!(nth_smallest(&mut mostly_zero, 999), Some(7));
    }

    /// The scorecard takes the p50, then the p99, then a histogram of the same waits.
    #[test]
    fn selections_in_sequence_see_every_value() {
        let original = values(9, 5000, u64::MAX >> 20);
        let mut sorted = original.clone();
        sorted.sort_unstable();
        let mut work = original;
        for k in [2499, 4949, 0, 4999, 1234] {
            assert_eq!(nth_smallest(&mut work, k), Some(sorted[k]), "k {k}");
        }
        let mut left = work;
        left.sort_unstable();
        assert_eq!(left, sorted, "a permutation of the values");
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(nth_smallest(&mut [], 0), None);
        assert_eq!(nth_smallest(&mut [1, 2], 2), None);
    }
}
