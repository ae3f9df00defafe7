//! Quotas a server announces, read from its response headers:
//!
//! - `RateLimit` and `RateLimit-Policy`, as draft-ietf-httpapi-ratelimit-headers-10 (September
//!   2025) defines them: Lists of Items (RFC 9651 structured fields), e.g.
//!   `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=50;t=30`;
//! - `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, as GitHub and many
//!   others send them; the reset is seconds from now, or a Unix time (GitHub's), which is
//!   turned into a delay here, so the policy's clock stays monotonic.
//!
//! A malformed or hostile value is an error naming the header and what is wrong; the caller
//! logs it and ignores the headers. Nothing here can stall a limiter or open it wide: counts
//! are bounded, resets beyond a week are refused, and `remaining` never exceeds a known limit.

use std::time::Duration;

/// What a response announced about the quota that applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Announced {
    /// Quota units the policy allows per window, if announced.
    pub limit: Option<u64>,
    /// The policy's window, if announced.
    pub window: Option<Duration>,
    /// Units left until the reset.
    pub remaining: u64,
    /// Time until more quota is made available.
    pub reset: Duration,
    /// Which headers it came from.
    pub source: Source,
}

/// The header style an announcement came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `RateLimit` (with `RateLimit-Policy` where sent), the IETF draft's.
    Draft,
    /// `X-RateLimit-*`.
    Legacy,
}

/// The largest count accepted (a quota of a trillion units).
const MAX_COUNT: u64 = 1_000_000_000_000;
/// The longest reset or window accepted: a week.
const MAX_SECONDS: u64 = 7 * 24 * 3600;
/// A reset at or above this is a Unix time, not a delay (2001-09-09).
const UNIX_TIME_FROM: u64 = 1_000_000_000;

/// Reads the announcement in a response's headers. `header(name)` returns a header's value
/// (names in lower case; several lines of one header joined with ", "); `now_unix` is the
/// wall clock in Unix seconds, for a reset given as a Unix time. `Ok(None)`: none announced.
/// The draft's fields win over `X-RateLimit-*` when a response has both.
pub fn parse<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    now_unix: u64,
) -> Result<Option<Announced>, String> {
    if let Some(limits) = header("ratelimit") {
        return draft(limits, header("ratelimit-policy")).map(Some);
    }
    legacy(&header, now_unix)
}

/// `RateLimit` (and `RateLimit-Policy`): the most binding service limit, the one with the
/// least remaining per second until its reset.
fn draft(limits: &str, policies: Option<&str>) -> Result<Announced, String> {
    let limits = list(limits).map_err(|why| format!("RateLimit: {why}"))?;
    let policies = match policies {
        Some(text) => list(text).map_err(|why| format!("RateLimit-Policy: {why}"))?,
        None => Vec::new(),
    };
    let mut best: Option<(f64, Announced)> = None;
    for item in &limits {
        let at = |why: &str| format!("RateLimit: {:?}: {why}", item.name);
        let remaining = item
            .count("r")
            .map_err(|why| at(&why))?
            .ok_or_else(|| at("no r"))?;
        let policy = policies.iter().find(|p| p.name == item.name);
        let (limit, window) = match policy {
            Some(policy) => {
                let at = |why: &str| format!("RateLimit-Policy: {:?}: {why}", policy.name);
                let quota = policy.count("q").map_err(|why| at(&why))?;
                let quota = quota.ok_or_else(|| at("no q"))?;
                let window = policy.seconds("w").map_err(|why| at(&why))?;
                (Some(quota), window)
            }
            None => (None, None),
        };
        // Without t, the quota comes back within the policy's window at the latest.
        let reset = match item.seconds("t").map_err(|why| at(&why))? {
            Some(reset) => reset,
            None => window.ok_or_else(|| at("no t, and no policy window to stand for it"))?,
        };
        let remaining = limit.map_or(remaining, |limit| remaining.min(limit));
        let per_second = remaining as f64 / reset.as_secs_f64().max(1.0);
        let announced = Announced {
            limit,
            window,
            remaining,
            reset,
            source: Source::Draft,
        };
        if best.as_ref().is_none_or(|(rate, _)| per_second < *rate) {
            best = Some((per_second, announced));
        }
    }
    best.map(|(_, announced)| announced)
        .ok_or_else(|| "RateLimit: no service limit in it".to_string())
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset`: all three, or `-Remaining` and `-Reset`.
fn legacy<'a>(
    header: &impl Fn(&str) -> Option<&'a str>,
    now_unix: u64,
) -> Result<Option<Announced>, String> {
    let (Some(remaining), Some(reset)) =
        (header("x-ratelimit-remaining"), header("x-ratelimit-reset"))
    else {
        return Ok(None);
    };
    let count = |name: &str, text: &str| {
        let text = text.trim();
        let value = text
            .parse::<u64>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{name}: {text:?} is not a whole number"))?;
        if value > MAX_COUNT {
            return Err(format!("{name}: {value} is beyond {MAX_COUNT}"));
        }
        Ok(value)
    };
    let remaining = count("X-RateLimit-Remaining", remaining)?;
    let limit = header("x-ratelimit-limit")
        .map(|text| count("X-RateLimit-Limit", text))
        .transpose()?;
    let reset_text = reset.trim();
    let reset: f64 = reset_text
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r >= 0.0)
        .filter(|_| reset_text.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .ok_or_else(|| format!("X-RateLimit-Reset: {reset_text:?} is not a number of seconds"))?;
    let delay = if reset >= UNIX_TIME_FROM as f64 {
        // A Unix time: the delay until then (one already past means now).
        (reset - now_unix as f64).max(0.0)
    } else {
        reset
    };
    if delay > MAX_SECONDS as f64 {
        return Err(format!(
            "X-RateLimit-Reset: {reset_text:?} is more than a week away"
        ));
    }
    Ok(Some(Announced {
        limit,
        window: None,
        remaining: limit.map_or(remaining, |limit| remaining.min(limit)),
        reset: Duration::from_secs_f64(delay),
        source: Source::Legacy,
    }))
}

/// One Item of a List: its identifier and its parameters.
#[derive(Debug)]
struct Item {
    name: String,
    params: Vec<(String, Bare)>,
}

/// The bare item kinds RFC 9651 defines (of which these fields use integers and strings).
#[derive(Debug, Clone, PartialEq)]
enum Bare {
    Integer(i64),
    Decimal(f64),
    String(String),
    Token(String),
    Bytes(String),
    Boolean(bool),
}

impl Item {
    /// The last value of parameter `key` (a later duplicate overrides, as RFC 9651 says).
    fn param(&self, key: &str) -> Option<&Bare> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// A non-negative Integer parameter, at most [`MAX_COUNT`].
    fn count(&self, key: &str) -> Result<Option<u64>, String> {
        match self.param(key) {
            None => Ok(None),
            Some(Bare::Integer(n)) if *n >= 0 && (*n as u64) <= MAX_COUNT => Ok(Some(*n as u64)),
            Some(Bare::Integer(n)) if *n >= 0 => Err(format!("{key}={n} is beyond {MAX_COUNT}")),
            Some(other) => Err(format!(
                "{key} must be a non-negative integer, got {other:?}"
            )),
        }
    }

    /// A non-negative Integer parameter in seconds, at most a week.
    fn seconds(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.param(key) {
            None => Ok(None),
            Some(Bare::Integer(n)) if *n >= 0 && (*n as u64) <= MAX_SECONDS => {
                Ok(Some(Duration::from_secs(*n as u64)))
            }
            Some(Bare::Integer(n)) if *n >= 0 => Err(format!("{key}={n} s is more than a week")),
            Some(other) => Err(format!(
                "{key} must be a non-negative integer, got {other:?}"
            )),
        }
    }
}

/// Parses a List of Items (RFC 9651 §4.2.1); inner lists are not allowed in these fields.
fn list(text: &str) -> Result<Vec<Item>, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut items = Vec::new();
    parser.skip(b" \t");
    while parser.peek().is_some() {
        if items.len() == 64 {
            return Err("more than 64 items".to_string());
        }
        items.push(parser.item()?);
        parser.skip(b" \t");
        match parser.next() {
            None => break,
            Some(b',') => {
                parser.skip(b" \t");
                if parser.peek().is_none() {
                    return Err("a trailing comma".to_string());
                }
            }
            Some(other) => return Err(parser.unexpected(other, "',' between items")),
        }
    }
    if items.is_empty() {
        return Err("empty".to_string());
    }
    Ok(items)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek();
        self.at += usize::from(byte.is_some());
        byte
    }

    fn skip(&mut self, set: &[u8]) {
        while self.peek().is_some_and(|b| set.contains(&b)) {
            self.at += 1;
        }
    }

    fn unexpected(&self, byte: u8, wanted: &str) -> String {
        format!(
            "{:?} at byte {} where {wanted} belongs",
            char::from(byte),
            self.at.saturating_sub(1)
        )
    }

    fn item(&mut self) -> Result<Item, String> {
        if self.peek() == Some(b'(') {
            return Err("an inner list, which this field does not take".to_string());
        }
        let name = match self.bare()? {
            Bare::String(name) | Bare::Token(name) => name,
            other => return Err(format!("an item named by {other:?}, not a string or token")),
        };
        let mut params = Vec::new();
        while self.peek() == Some(b';') {
            self.at += 1;
            self.skip(b" ");
            let key = self.key()?;
            let value = if self.peek() == Some(b'=') {
                self.at += 1;
                self.bare()?
            } else {
                Bare::Boolean(true)
            };
            if params.len() == 32 {
                return Err("more than 32 parameters".to_string());
            }
            params.push((key, value));
        }
        Ok(Item { name, params })
    }

    fn key(&mut self) -> Result<String, String> {
        let start = self.at;
        match self.next() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => {}
            Some(b) => return Err(self.unexpected(b, "a parameter key")),
            None => return Err("the end where a parameter key belongs".to_string()),
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
        {
            self.at += 1;
        }
        Ok(String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
    }

    fn bare(&mut self) -> Result<Bare, String> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.byte_sequence(),
            Some(b'?') => {
                self.at += 1;
                match self.next() {
                    Some(b'0') => Ok(Bare::Boolean(false)),
                    Some(b'1') => Ok(Bare::Boolean(true)),
                    Some(b) => Err(self.unexpected(b, "?0 or ?1")),
                    None => Err("the end where ?0 or ?1 belongs".to_string()),
                }
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                let start = self.at;
                self.at += 1;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
                {
                    self.at += 1;
                }
                Ok(Bare::Token(
                    String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned(),
                ))
            }
            Some(b) => {
                self.at += 1;
                Err(self.unexpected(b, "a value"))
            }
            None => Err("the end where a value belongs".to_string()),
        }
    }

    /// An Integer (at most 15 digits) or a Decimal (12 digits, a dot, at most 3).
    fn number(&mut self) -> Result<Bare, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let whole = self.at - digits;
        if whole == 0 {
            return Err("a '-' without digits".to_string());
        }
        let text =
            |from: usize, to: usize| String::from_utf8_lossy(&self.bytes[from..to]).into_owned();
        if self.peek() != Some(b'.') {
            if whole > 15 {
                return Err(format!("{} has more than 15 digits", text(start, self.at)));
            }
            return text(start, self.at)
                .parse()
                .map(Bare::Integer)
                .map_err(|e| e.to_string());
        }
        self.at += 1;
        let fraction = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        if whole > 12 || self.at == fraction || self.at - fraction > 3 {
            return Err(format!("{} is not a decimal", text(start, self.at)));
        }
        text(start, self.at)
            .parse()
            .map(Bare::Decimal)
            .map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<Bare, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("a string without its closing quote".to_string()),
                Some(b'"') => return Ok(Bare::String(out)),
                Some(b'\\') => match self.next() {
                    Some(b @ (b'"' | b'\\')) => out.push(char::from(b)),
                    _ => return Err("a backslash before neither '\"' nor '\\'".to_string()),
                },
                Some(b @ 0x20..=0x7e) => out.push(char::from(b)),
                Some(b) => return Err(format!("byte {b:#04x} inside a string")),
            }
        }
    }

    fn byte_sequence(&mut self) -> Result<Bare, String> {
        self.at += 1;
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            self.at += 1;
        }
        if self.next() != Some(b':') {
            return Err("a byte sequence without its closing ':'".to_string());
        }
        Ok(Bare::Bytes(
            String::from_utf8_lossy(&self.bytes[start..self.at - 1]).into_owned(),
        ))
    }
}
