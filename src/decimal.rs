//! Integers in messages, written in decimal through `write_str` alone.
//!
//! `{}` on an `i64`, `u64` or `i32` brings that type's `Display` and the formatter's padding
//! code into every wasm module that links the message, about 0.3 KB a type; the page's module
//! is held to a size budget. Messages wrap such integers in [`Decimal`]. (`usize` and `u32`
//! stay plain: the standard library's own panic messages keep theirs linked anyway.)

use core::fmt;

/// An integer that displays in decimal, with a leading `-` when negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    magnitude: u64,
}

impl From<u64> for Decimal {
    fn from(value: u64) -> Self {
        Decimal {
            negative: false,
            magnitude: value,
        }
    }
}

impl From<i64> for Decimal {
    fn from(value: i64) -> Self {
        Decimal {
            negative: value < 0,
            magnitude: value.unsigned_abs(),
        }
    }
}

impl From<i32> for Decimal {
    fn from(value: i32) -> Self {
        Decimal::from(i64::from(value))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 20 digits hold u64::MAX; one more for the sign.
        let mut text = [0u8; 21];
        let mut start = text.len();
        let mut rest = self.magnitude;
        loop {
            start -= 1;
            text[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if self.negative {
            start -= 1;
            text[start] = b'-';
        }
        f.write_str(core::str::from_utf8(&text[start..]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;
    use alloc::string::ToString;

    #[test]
    fn writes_what_display_writes() {
        for value in [0, 1, -1, 9, 10, -10, 99, 100, 12_345, i64::MIN, i64::MAX] {
            assert_eq!(Decimal::from(value).to_string(), value.to_string());
        }
        for value in [0, 7, u64::MAX, u64::MAX / 10, 10_000_000_000_000_000_000] {
            assert_eq!(Decimal::from(value).to_string(), value.to_string());
        }
        assert_eq!(Decimal::from(i32::MIN).to_string(), i32::MIN.to_string());
    }
}
