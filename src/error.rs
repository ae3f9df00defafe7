//! Errors: what can never succeed. "Wait 340 ms" is a [`Decision`](crate::Decision), not an error.

use alloc::string::String;
use core::fmt;

use crate::decimal::Decimal;
use crate::interface::Status;

/// A failure that retrying cannot fix: bad input, unknown limiter, impossible cost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A call that needs a configuration came before the first successful configure.
    NotConfigured,
    /// The configuration is invalid; the message names the field.
    Config(ConfigError),
    /// No limiter has this index.
    UnknownLimiter {
        /// The index asked for (as passed, so a negative one reads as it was given).
        index: i64,
        /// How many limiters the configuration has.
        count: usize,
    },
    /// The cost can never be admitted because it exceeds the bucket's capacity.
    CostExceedsBurst {
        /// The cost asked for.
        cost: u64,
        /// The limiter's burst.
        burst: u32,
    },
    /// An argument is outside its documented range.
    BadArgument {
        /// The argument's name.
        name: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// A state snapshot was refused; nothing changed.
    BadSnapshot(&'static str),
    /// A keyed limiter is at its key bound and none of its buckets may be evicted.
    KeyLimit {
        /// The configured bound.
        max_keys: usize,
    },
    /// No entropy source could seed the random generator (configure a `seed` instead).
    Entropy,
}

impl Error {
    /// The ABI v1 error code for this error (always negative).
    pub fn code(&self) -> i32 {
        self.status().code()
    }

    /// The ABI v1 status for this error.
    pub fn status(&self) -> Status {
        match self {
            Error::NotConfigured => Status::NotConfigured,
            Error::Config(_) | Error::Entropy => Status::BadConfig,
            Error::UnknownLimiter { .. } => Status::UnknownLimiter,
            Error::CostExceedsBurst { .. } => Status::CostExceedsBurst,
            Error::BadArgument { .. } | Error::KeyLimit { .. } => Status::BadArgument,
            Error::BadSnapshot(_) => Status::BadSnapshot,
        }
    }

    pub(crate) fn bad_argument(name: &'static str, reason: &'static str) -> Self {
        Error::BadArgument { name, reason }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConfigured => f.write_str("not configured: call configure first"),
            Error::Config(e) => e.fmt(f),
            Error::UnknownLimiter { index, count } => {
                let index = Decimal::from(*index);
                write!(f, "limiter: no limiter {index} (the config has {count})")
            }
            Error::CostExceedsBurst { cost, burst } => {
                let cost = Decimal::from(*cost);
                write!(
                    f,
                    "cost: {cost} exceeds the burst of {burst} and can never be admitted"
                )
            }
            Error::BadArgument { name, reason } => write!(f, "{name}: {reason}"),
            Error::BadSnapshot(reason) => write!(f, "snapshot: {reason}"),
            Error::KeyLimit { max_keys } => {
                write!(f, "key: all {max_keys} keys are in use and none is idle")
            }
            Error::Entropy => f.write_str("seed: no entropy source; set a seed in the config"),
        }
    }
}

impl core::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// An invalid configuration value, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is, e.g. `limiters[0].burst`; empty for the document as a whole.
    pub path: String,
    /// What is wrong, e.g. `must be at least 1`.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl core::error::Error for ConfigError {}
