//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, turned into a delay the
//! policy can take. Absurd values never stall a run: a date in the past means "now", a delay
//! beyond the cap is cut to the cap, and a value that is neither form is ignored; each of
//! these logs one warning.

use std::time::{Duration, SystemTime};

/// What a `Retry-After` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Wait this long (already capped).
    Wait(Duration),
    /// No usable value: the policy's own backoff applies.
    Ignored,
}

/// Parses `value` as received at `now` (wall clock, for an HTTP-date), capped at `cap`.
pub fn parse(value: &str, now: SystemTime, cap: Duration) -> RetryAfter {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Delay-seconds; an absurdly long number of digits saturates and is capped below.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        match httpdate::parse_http_date(value) {
            Ok(date) => match date.duration_since(now) {
                Ok(delay) => delay,
                Err(_) => {
                    tracing::warn!("Retry-After {value:?} is in the past: retrying now");
                    Duration::ZERO
                }
            },
            Err(_) => {
                tracing::warn!(
                    "Retry-After {value:?} is neither seconds nor an HTTP-date: ignored"
                );
                return RetryAfter::Ignored;
            }
        }
    };
    if delay > cap {
        tracing::warn!(
            "Retry-After {value:?} asks for {} s: capped at {} s",
            delay.as_secs(),
            cap.as_secs()
        );
        return RetryAfter::Wait(cap);
    }
    RetryAfter::Wait(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(300);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_and_every_http_date_form() {
        let now = at(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse(" 120 ", now, CAP),
            RetryAfter::Wait(Duration::from_secs(120))
        );
        assert_eq!(parse("0", now, CAP), RetryAfter::Wait(Duration::ZERO));
        for date in [
            "Sun, 06 Nov 1994 08:51:37 GMT",
            "Sunday, 06-Nov-94 08:51:37 GMT",
            "Sun Nov  6 08:51:37 1994",
        ] {
            assert_eq!(
                parse(date, now, CAP),
                RetryAfter::Wait(Duration::from_secs(120)),
                "{date}"
            );
        }
    }

    #[test]
    fn absurd_values_are_capped_or_ignored_never_a_stall() {
        let now = at(784_111_777);
        assert_eq!(parse("86400", now, CAP), RetryAfter::Wait(CAP));
        assert_eq!(parse(&"9".repeat(40), now, CAP), RetryAfter::Wait(CAP));
        assert_eq!(
            parse("Fri, 01 Jan 2100 00:00:00 GMT", now, CAP),
            RetryAfter::Wait(CAP)
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT", now, CAP),
            RetryAfter::Wait(Duration::ZERO)
        );
        for junk in ["", "-5", "1.5", "soon", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse(junk, now, CAP), RetryAfter::Ignored, "{junk:?}");
        }
    }
}
