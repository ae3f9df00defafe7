//! Host errors: each says what failed and how to fix it.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong loading or driving a policy module.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly module wasmtime can compile.
    NotWasm(String),
    /// The module is WebAssembly but does not implement ABI v1 (imports, exports, version).
    Incompatible(String),
    /// The module returned an error code; `message` is its `pacer_last_error`.
    Policy {
        /// The ABI error code (negative).
        code: i32,
        /// The module's message, naming the offending field or argument.
        message: String,
    },
    /// The module trapped or ran out of time; the instance was replaced and the last good
    /// snapshot restored.
    Trapped {
        /// The export that was running.
        call: &'static str,
        /// Why it stopped.
        reason: String,
    },
    /// The wasmtime engine or store could not be set up.
    Engine(String),
    /// The module trapped and could not be brought back (its restart, config or snapshot
    /// failed too, or it trapped again in the same call): the policy answers every later call
    /// with this error at once. Make a new [`crate::Policy`], or fix the module.
    Broken {
        /// The export that failed last.
        call: &'static str,
        /// What happened, in one line.
        reason: String,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            HostError::NotWasm(why) => write!(f, "not a WebAssembly module: {why}"),
            HostError::Incompatible(why) => write!(f, "not a pacer ABI v1 module: {why}"),
            HostError::Policy { code, message } if message.is_empty() => {
                write!(f, "policy error {code} (the module gave no message)")
            }
            HostError::Policy { code, message } => write!(f, "policy error {code}: {message}"),
            HostError::Trapped { call, reason } => {
                write!(
                    f,
                    "the policy module failed in {call} ({reason}); it was restarted from its last snapshot"
                )
            }
            HostError::Engine(why) => write!(f, "wasmtime: {why}"),
            HostError::Broken { reason, .. } => {
                write!(f, "the policy module is out of service: {reason}")
            }
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl HostError {
    /// The ABI error code when the module itself refused the call.
    pub fn code(&self) -> Option<i32> {
        match self {
            HostError::Policy { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<pacer::Error> for HostError {
    /// The core's own error, with its ABI code and message: what the module would have said.
    fn from(error: pacer::Error) -> Self {
        HostError::Policy {
            code: error.code(),
            message: error.to_string(),
        }
    }
}
