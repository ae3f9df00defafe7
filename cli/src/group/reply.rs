//! A renewal's answer, read as hostile: whatever Redis (or something posing as it) sends, the
//! host gets a grant in `[0, rate]` and a pause in `[0, longest pause]`, and a complaint to
//! warn about, never a panic. Any client of the group's Redis can write the keys the script
//! reads; the script repairs what it can (`renew.lua`) and this is the host's own check.

use std::time::Duration;

use redis::Value;

/// The script's flags (`renew.lua`, its reply's third element).
pub(super) mod flags {
    /// The group (re)formed within a lease: no host may raise its rate above what it runs at.
    pub const SETTLING: i64 = 1;
    /// Keys of the wrong type, or records that could not have been written by a host, were
    /// discarded.
    pub const REPAIRED: i64 = 2;
    /// A pause longer than the longest the policy could publish was cut to it.
    pub const PAUSE_CUT: i64 = 4;
    /// The group already has `--max-hosts` live hosts: this one is not a member.
    pub const FULL: i64 = 8;
}

/// A renewal's answer, made safe.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Renewal {
    /// Tokens an hour, in `[0, total]`.
    pub grant: f64,
    /// At most the longest pause.
    pub pause: Duration,
    /// [`flags`].
    pub flags: i64,
    /// What was wrong with the answer, by kind (each is warned about once a run).
    pub complaints: Vec<(&'static str, String)>,
}

/// Reads `value` as `{grant (text), pause_ms, flags}`; an answer of another shape is an error
/// (the host treats it as no answer: it keeps its grant until its lease ends, then falls back).
pub(super) fn renewal(
    value: &Value,
    total: f64,
    longest_pause: Duration,
) -> Result<Renewal, String> {
    let Value::Array(items) = value else {
        return Err(format!("expected 3 values, got {}", describe(value)));
    };
    let [grant, pause_ms, flags] = items.as_slice() else {
        return Err(format!("expected 3 values, got {}", items.len()));
    };
    let mut complaints = Vec::new();
    let grant = match number(grant) {
        Some(grant) if grant.is_finite() && (0.0..=total).contains(&grant) => grant,
        Some(grant) if grant > total => {
            complaints.push((
                "grant",
                format!("a grant of {grant}/h, above the limiter's {total}/h: cut to it"),
            ));
            total
        }
        _ => {
            complaints.push((
                "grant",
                format!("a grant of {}: taken as none", describe(grant)),
            ));
            0.0
        }
    };
    let longest_ms = u64::try_from(longest_pause.as_millis()).unwrap_or(u64::MAX);
    let pause_ms = match number(pause_ms) {
        Some(ms) if (0.0..=longest_ms as f64).contains(&ms) => ms as u64,
        Some(ms) if ms > longest_ms as f64 => {
            complaints.push((
                "pause",
                format!(
                    "a pause of {ms} ms, above the policy's longest ({longest_ms} ms): cut to it"
                ),
            ));
            longest_ms
        }
        _ => {
            complaints.push((
                "pause",
                format!("a pause of {}: ignored", describe(pause_ms)),
            ));
            0
        }
    };
    let flags = match flags {
        Value::Int(bits) if (0..16).contains(bits) => *bits,
        other => {
            complaints.push(("flags", format!("flags {}: ignored", describe(other))));
            0
        }
    };
    Ok(Renewal {
        grant,
        pause: Duration::from_millis(pause_ms),
        flags,
        complaints,
    })
}

/// A number sent as an integer, a double or text (`NaN`, `inf` and the like parse, and are
/// refused by the caller's range check).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(n) => Some(*n as f64),
        Value::Double(x) => Some(*x),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        Value::SimpleString(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A short, printable description of a value (never more than 40 characters of its text).
fn describe(value: &Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::BulkString(bytes) => {
            let text: String = String::from_utf8_lossy(bytes)
                .chars()
                .take(40)
                .flat_map(char::escape_debug)
                .collect();
            format!("\"{text}\"")
        }
        Value::Nil => "nil".into(),
        Value::Array(items) => format!("an array of {}", items.len()),
        _ => "a value of another type".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(grant: Value, pause: Value, flags: Value) -> Value {
        Value::Array(vec![grant, pause, flags])
    }

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn hostile_answers_become_safe_values() {
        let longest = Duration::from_secs(5);
        let read = |v: &Value| renewal(v, 3600.0, longest);
        let fine = read(&answer(text("1800"), Value::Int(250), Value::Int(1))).expect("ok");
        assert_eq!(
            (fine.grant, fine.pause, fine.flags, fine.complaints.len()),
            (1800.0, Duration::from_millis(250), 1, 0)
        );
        for (grant, expected) in [
            ("NaN", 0.0),
            ("nan", 0.0),
            ("-5", 0.0),
            ("inf", 3600.0),
            ("1e308", 3600.0),
            ("", 0.0),
            ("\u{1b}[31m", 0.0),
        ] {
            let made = read(&answer(text(grant), Value::Int(0), Value::Int(0))).expect("ok");
            assert_eq!(made.grant, expected, "{grant:?}");
            assert_eq!(made.complaints.len(), 1, "{grant:?}");
            assert!(
                !made.complaints[0].1.contains('\u{1b}'),
                "{:?}",
                made.complaints
            );
        }
        for (pause, expected) in [
            (Value::Int(-1), 0),
            (Value::Int(i64::MAX), 5_000),
            (text("86400000"), 5_000),
            (Value::Nil, 0),
        ] {
            let made = read(&answer(text("0"), pause.clone(), Value::Int(0))).expect("ok");
            assert_eq!(made.pause, Duration::from_millis(expected), "{pause:?}");
        }
        let odd = read(&answer(text("0"), Value::Int(0), Value::Int(-3))).expect("ok");
        assert_eq!((odd.flags, odd.complaints.len()), (0, 1));
        for shape in [
            Value::Nil,
            text("1800"),
            Value::Array(vec![text("1")]),
            Value::Array(vec![Value::Nil; 4]),
        ] {
            assert!(read(&shape).is_err(), "{shape:?}");
        }
    }
}
