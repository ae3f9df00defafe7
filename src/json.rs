//! A small JSON reader for configs and scenarios: RFC 8259 text into a [`Value`] tree, with
//! errors that say what was wrong and where (line and column).
//!
//! The policy module and the page read JSON only here; a general-purpose parser would cost
//! them several times its size. Nesting is limited to [`MAX_DEPTH`], so hostile input cannot
//! exhaust the stack. A number with a fraction or an exponent is exact (correctly rounded)
//! up to 15 significant digits and powers of ten up to 22, as configs write them; beyond that
//! it is within a few ulps.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, its fields in document order; a repeated key keeps its last value.
    Object(Map),
}

/// A JSON number: a non-negative integer that fits `u64` is kept exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer written without fraction or exponent, from 0 to 2^64 - 1.
    Unsigned(u64),
    /// Any other number.
    Float(f64),
}

/// A JSON object's fields, in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map(Vec<(String, Value)>);

impl Map {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The keys, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The fields, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn insert(&mut self, key: String, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl Value {
    /// The fields, if this is an object.
    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The number as a double, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(Number::Unsigned(n)) => Some(*n as f64),
            Value::Number(Number::Float(x)) => Some(*x),
            _ => None,
        }
    }

    /// The number, if it was written as an integer from 0 to 2^64 - 1.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(Number::Unsigned(n)) => Some(*n),
            _ => None,
        }
    }
}

/// `names` joined by ", ", for a reader's "expected one of …" messages (a loop: `join`'s generic
/// code weighs 0.5 KB in the page's wasm).
pub fn comma_list(names: &[&str]) -> String {
    let mut list = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            list.push_str(", ");
        }
        list.push_str(name);
    }
    list
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was wrong.
    pub message: &'static str,
    /// Line of the offending character, from 1.
    pub line: usize,
    /// Column of the offending character, from 1 (in characters).
    pub column: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut reader = Reader {
        text: text.as_bytes(),
        at: 0,
    };
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.at < reader.text.len() {
        return Err(reader.error("trailing characters"));
    }
    Ok(value)
}

struct Reader<'t> {
    text: &'t [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, message: &'static str) -> Error {
        let before = &self.text[..self.at.min(self.text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Error {
            message,
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            // Characters, not bytes: continuation bytes do not start one.
            column: 1 + before[line_start..]
                .iter()
                .filter(|&&b| b & 0xC0 != 0x80)
                .count(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, word: &[u8], value: Value) -> Result<Value, Error> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'n') => self.expect(b"null", Value::Null),
            Some(b't') => self.expect(b"true", Value::Bool(true)),
            Some(b'f') => self.expect(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.error("expected value")),
        }
    }

    /// After a value in a list: `true` at `close`, `false` after a comma.
    fn list_continues(&mut self, close: u8, what: &'static str) -> Result<bool, Error> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.at += 1;
                Ok(true)
            }
            None => Err(self.error("EOF while parsing a list")),
            Some(_) => Err(self.error(what)),
        }
    }

    /// At `[` or `{` at `depth`: steps in; `true` if `close` follows at once (an empty list).
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.at += 1;
        self.skip_whitespace();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        Ok(empty)
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        let mut items = Vec::new();
        if self.open(depth, b']')? {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            if self.list_continues(b']', "expected `,` or `]`")? {
                return Ok(Value::Array(items));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        let mut map = Map::default();
        if self.open(depth, b'}')? {
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("key must be a string")),
            }
            let key = self.string()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `:`")),
            }
            let value = self.value(depth)?;
            map.insert(key, value);
            if self.list_continues(b'}', "expected `,` or `}`")? {
                return Ok(Value::Object(map));
            }
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The input is a `&str` and the run stops only at ASCII bytes: whole characters.
            out.push_str(core::str::from_utf8(&self.text[start..self.at]).unwrap_or_default());
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => return Err(self.error("invalid escape")),
                    };
                    self.at += 1;
                    out.push(escaped);
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// After `\u`: four hex digits, and for a high surrogate the `\uXXXX` of its pair.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    return Err(self.error("unpaired surrogate in a string"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("unpaired surrogate in a string"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("unpaired surrogate in a string")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid escape"))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("invalid escape"))?;
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Number, Error> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        let int_digits = self.digits();
        if int_digits == 0 {
            return Err(self.error("invalid number"));
        }
        if int_digits > 1 && self.text[int_start] == b'0' {
            return Err(self.error("invalid number: leading zero"));
        }
        let int_end = self.at;
        let mut frac = (self.at, self.at);
        if self.peek() == Some(b'.') {
            self.at += 1;
            let from = self.at;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            frac = (from, self.at);
        }
        let mut exponent: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let sign = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    -1
                }
                Some(b'+') => {
                    self.at += 1;
                    1
                }
                _ => 1,
            };
            let from = self.at;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            for &b in &self.text[from..self.at] {
                exponent = (exponent * 10 + i64::from(b - b'0')).min(1 << 40);
            }
            exponent *= sign;
        }
        let integer_only = frac.0 == frac.1 && exponent == 0 && self.at == int_end;
        if integer_only && !negative {
            let mut n: u64 = 0;
            let fits = self.text[int_start..int_end].iter().try_for_each(|&b| {
                n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                Some(())
            });
            if fits.is_some() {
                return Ok(Number::Unsigned(n));
            }
        }
        let digits = self.text[int_start..int_end]
            .iter()
            .chain(&self.text[frac.0..frac.1]);
        let value = decimal_to_f64(digits, exponent - (frac.1 - frac.0) as i64);
        if !value.is_finite() {
            // JSON has no infinities: a number past the doubles is refused, not rounded.
            return Err(self.error("number out of range"));
        }
        Ok(Number::Float(if negative { -value } else { value }))
    }
}

/// `digits · 10^exponent`. Exact when the significant digits fit 2^53 and the power of ten
/// is at most 22 (each is then a double, and one multiply or divide rounds once).
fn decimal_to_f64<'d>(digits: impl Iterator<Item = &'d u8>, mut exponent: i64) -> f64 {
    let mut mantissa: u64 = 0;
    for &b in digits {
        if mantissa < (u64::MAX - 9) / 10 {
            mantissa = mantissa * 10 + u64::from(b - b'0');
        } else {
            // Further digits cannot change the first 19: they only scale.
            exponent += 1;
        }
    }
    if mantissa == 0 {
        return 0.0;
    }
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let m = mantissa as f64;
    if mantissa <= 1 << 53 && exponent.unsigned_abs() <= 22 {
        let scale = POW10[exponent.unsigned_abs() as usize];
        return if exponent < 0 { m / scale } else { m * scale };
    }
    // Rare in configs: very long mantissas or large powers. Scale in steps of 10^22.
    let mut value = m;
    let mut rest = exponent.clamp(-400, 400);
    while rest > 0 {
        let step = rest.min(22);
        value *= POW10[step as usize];
        rest -= step;
    }
    while rest < 0 {
        let step = (-rest).min(22);
        value /= POW10[step as usize];
        rest += step;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn reads_every_kind_of_value() {
        let value =
            parse(r#" {"a": [1, -2, 0.5, 1e3, true, false, null], "b": "x\n\u00e9\ud83d\ude00"} "#)
                .expect("valid");
        let map = value.as_object().expect("object");
        let a = map.get("a").and_then(Value::as_array).expect("array");
        assert_eq!(a[0].as_u64(), Some(1));
        assert_eq!(a[1].as_f64(), Some(-2.0));
        assert_eq!(a[1].as_u64(), None);
        assert_eq!(a[2].as_f64(), Some(0.5));
        assert_eq!(a[3].as_f64(), Some(1000.0));
        assert_eq!(a[3].as_u64(), None, "an exponent makes it a float");
        assert_eq!(a[4], Value::Bool(true));
        assert_eq!(a[6], Value::Null);
        assert_eq!(map.get("b").and_then(Value::as_str), Some("x\né😀"));
        assert_eq!(
            parse("18446744073709551615").expect("max").as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(
            parse("18446744073709551616").expect("past max").as_f64(),
            Some(18446744073709551616.0)
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        for (text, message, line, column) in [
            ("", "EOF while parsing a value", 1, 1),
            ("{", "EOF while parsing an object", 1, 2),
            ("[1,]", "expected value", 1, 4),
            ("{\n  \"a\" 1}", "expected `:`", 2, 7),
            ("{\"a\":1 \"b\":2}", "expected `,` or `}`", 1, 8),
            ("[1 2]", "expected `,` or `]`", 1, 4),
            ("01", "invalid number: leading zero", 1, 3),
            ("1.", "invalid number", 1, 3),
            ("-", "invalid number", 1, 2),
            ("\"a\\x\"", "invalid escape", 1, 4),
            ("\"\u{1}\"", "control character in a string", 1, 2),
            ("\"\\ud800\"", "unpaired surrogate in a string", 1, 8),
            ("{1:2}", "key must be a string", 1, 2),
            ("1 2", "trailing characters", 1, 3),
            ("tru", "expected value", 1, 1),
            ("\"é", "EOF while parsing a string", 1, 3),
            ("[1e309]", "number out of range", 1, 7),
            ("-1e400", "number out of range", 1, 7),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(
                (error.message, error.line, error.column),
                (message, line, column),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("[").expect_err("eof").to_string(),
            "EOF while parsing a value at line 1 column 2"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        let error = parse(&deep(MAX_DEPTH + 1)).expect_err("too deep");
        assert_eq!(error.message, "nested too deeply");
        // Far deeper than any stack would survive unbounded.
        assert!(parse(&deep(1_000_000)).is_err());
    }

    #[test]
    fn decimals_round_like_the_standard_library() {
        // Up to 15 significant digits and powers of ten up to 22: the same bits as std.
        for text in [
            "0.1",
            "0.3",
            "2.5e-3",
            "123.456",
            "1e22",
            "3600.0",
            "0.07",
            "1e-7",
            "-0.0",
            "0.000001",
            "86400000.5",
            "123456789012345e-22",
            "9007199254740993",
        ] {
            let ours = parse(text).expect(text).as_f64().expect("a number");
            let std: f64 = text.parse().expect("std parses it");
            assert_eq!(ours.to_bits(), std.to_bits(), "{text}");
        }
        // Beyond: within a few ulps.
        for text in [
            "4.9406564584124654e-324",
            "1.7976931348623157e308",
            "1e308",
            "12345678901234567890123",
            "1e-300",
            "0.1234567890123456789",
        ] {
            let ours = parse(text).expect(text).as_f64().expect("a number");
            let std: f64 = text.parse().expect("std parses it");
            let ulps = (ours.to_bits() as i64 - std.to_bits() as i64).unsigned_abs();
            assert!(ulps <= 4 || ours == std, "{text}: {ours} vs {std}");
        }
        // Repeated keys keep the last value.
        let map = parse(r#"{"a":1,"a":2}"#).expect("valid");
        assert_eq!(
            map.as_object()
                .and_then(|m| m.get("a"))
                .and_then(Value::as_u64),
            Some(2)
        );
    }
}
