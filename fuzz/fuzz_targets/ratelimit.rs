//! The RateLimit / X-RateLimit header parser (`cli/src/ratelimit.rs`, included by path) on
//! arbitrary headers and wall clocks.
//!
//! The input: the wall clock (Unix seconds), a byte saying which of the five headers are
//! present, then their values separated by newlines: `RateLimit`, `RateLimit-Policy`,
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
//!
//! Invariants: no panic; nothing announced beyond the parser's bounds (counts at most 10^12,
//! resets and windows at most a week), `remaining` never above a known limit; the draft's
//! fields win when present; nothing is announced without `RateLimit`, or without both
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "../../cli/src/ratelimit.rs"]
mod ratelimit;

use ratelimit::Source;

const NAMES: [&str; 5] = [
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];
const MAX_COUNT: u64 = 1_000_000_000_000;
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn run(u: &mut Unstructured) -> Result<()> {
    let now_unix: u64 = u.arbitrary()?;
    let present: u8 = u.arbitrary()?;
    let Ok(text) = std::str::from_utf8(u.bytes(u.len())?) else {
        return Ok(());
    };
    let mut values = text.split('\n');
    let headers: Vec<Option<&str>> = (0..NAMES.len())
        .map(|i| {
            let value = values.next().unwrap_or("");
            (present & (1 << i) != 0).then_some(value)
        })
        .collect();
    let header = |name: &str| {
        let i = NAMES.iter().position(|n| *n == name)?;
        headers[i]
    };
    let result = ratelimit::parse(header, now_unix);
    if let Err(why) = &result {
        assert!(
            why.contains("RateLimit"),
            "an error not naming its header: {why}"
        );
    }
    let Ok(announced) = result else {
        return Ok(());
    };
    let draft = headers[0].is_some();
    let legacy = headers[3].is_some() && headers[4].is_some();
    let Some(a) = announced else {
        assert!(
            !draft && !legacy,
            "headers present, nothing announced: {headers:?}"
        );
        return Ok(());
    };
    assert!(draft || legacy, "announced from nothing: {headers:?}");
    let expected = if draft { Source::Draft } else { Source::Legacy };
    assert_eq!(a.source, expected, "{headers:?}");
    assert!(a.remaining <= MAX_COUNT, "{a:?} from {headers:?}");
    if let Some(limit) = a.limit {
        assert!(limit <= MAX_COUNT, "{a:?} from {headers:?}");
        assert!(a.remaining <= limit, "{a:?} from {headers:?}");
    }
    assert!(a.reset <= WEEK, "{a:?} from {headers:?}");
    assert!(a.window.is_none_or(|w| w <= WEEK), "{a:?} from {headers:?}");
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let _ = run(&mut Unstructured::new(bytes));
});
