//! `Retry-After` (`cli/src/retry_after.rs`, included by path) on arbitrary values, clocks and
//! caps.
//!
//! Invariants: no panic, whatever the value or the wall clock; a wait is never above the cap;
//! delay-seconds are taken exactly (capped); a value that is neither form is ignored.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

#[path = "../../cli/src/retry_after.rs"]
mod retry_after;

use retry_after::RetryAfter;

fn run(u: &mut Unstructured) -> Result<()> {
    // Any wall clock SystemTime can hold: before 1970 too.
    let secs: i64 = u.arbitrary()?;
    let now = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    let Some(now) = now else { return Ok(()) };
    let now = now
        .checked_add(Duration::from_nanos(u.int_in_range(0..=999_999_999)?))
        .unwrap_or(now);
    let cap = Duration::from_secs(u.arbitrary::<u32>()?.into());
    let bytes = u.bytes(u.len())?;
    let Ok(value) = std::str::from_utf8(bytes) else {
        return Ok(());
    };
    let answer = retry_after::parse(value, now, cap);
    if let RetryAfter::Wait(wait) = answer {
        assert!(wait <= cap, "{value:?}: {wait:?} above the cap {cap:?}");
    }
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let secs = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        let expected = Duration::from_secs(secs).min(cap);
        assert_eq!(answer, RetryAfter::Wait(expected), "{value:?}");
    } else if httpdate::parse_http_date(trimmed).is_err() {
        assert_eq!(answer, RetryAfter::Ignored, "{value:?}");
    }
    Ok(())
}

fuzz_target!(|bytes: &[u8]| {
    let _ = run(&mut Unstructured::new(bytes));
});
