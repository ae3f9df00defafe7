//! Phase announcements for the chaos test (`cli/tests/chaos.rs`), off unless asked for.
//!
//! With `PACER_PHASE_PAUSE=<phase>:<ms>` in its environment, `pacer run` writes
//! `pacer-phase <phase> <what>` to stderr each time it reaches `<phase>`, then stays in it for
//! `<ms>`, so that a test can `kill -9` it exactly there: mid-stream, before an fsync, before a
//! rename, before the directory's fsync, mid-way through writing the state file, or before
//! renaming it. Without the variable, [`reached`] does nothing.

use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable: `<phase>:<milliseconds>`.
pub const ENV: &str = "PACER_PHASE_PAUSE";

/// A point in writing a file where a crash must leave nothing wrong behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Part of a body is in its partial file.
    Stream,
    /// A verified partial file is about to be fsynced.
    Fsync,
    /// A verified, fsynced partial file is about to be renamed to its final name.
    Rename,
    /// The rename is done; the directories are about to be fsynced.
    DirSync,
    /// The state file's temporary holds its header but not yet the snapshot.
    StateWrite,
    /// The state file's temporary is complete and fsynced, not yet renamed.
    StateRename,
}

impl Phase {
    /// The phase's name in [`ENV`] and in the announcement.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Stream => "stream",
            Phase::Fsync => "fsync",
            Phase::Rename => "rename",
            Phase::DirSync => "dir-sync",
            Phase::StateWrite => "state-write",
            Phase::StateRename => "state-rename",
        }
    }
}

fn pause_for(phase: Phase) -> Option<Duration> {
    static SETTING: OnceLock<Option<(String, Duration)>> = OnceLock::new();
    let (name, pause) = SETTING
        .get_or_init(|| {
            let value = std::env::var(ENV).ok()?;
            let (name, ms) = value.split_once(':')?;
            Some((name.to_string(), Duration::from_millis(ms.parse().ok()?)))
        })
        .as_ref()?;
    (name == phase.name()).then_some(*pause)
}

/// Announces `phase` (about `what`) and pauses in it, when [`ENV`] asks for it.
pub fn reached(phase: Phase, what: &str) {
    if let Some(pause) = pause_for(phase) {
        eprintln!("pacer-phase {} {what}", phase.name());
        std::thread::sleep(pause);
    }
}

/// [`reached`] for async code: the pause does not hold a runtime thread.
pub async fn reached_async(phase: Phase, what: &str) {
    if let Some(pause) = pause_for(phase) {
        eprintln!("pacer-phase {} {what}", phase.name());
        tokio::time::sleep(pause).await;
    }
}
