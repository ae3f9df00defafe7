//! The policy's state between runs: its snapshot, saved atomically beside the downloads with
//! the wall-clock time of saving, so a restart honours a pause or an open circuit still in
//! force (less the time that passed).
//!
//! Saves go through one [`Writer`] per run, each into a temporary file of its own.
//!
//! Layout: `"PACERRUN"`, the wall-clock time of saving (`u64` ms since the Unix epoch, LE),
//! then the module's snapshot (which carries its own version and checksum).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::durable;
use crate::phase::{self, Phase};

const MAGIC: &[u8; 8] = b"PACERRUN";
/// The file's name inside the output folder.
pub const FILE_NAME: &str = ".pacer-state";

/// The state file of an output folder.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `snapshot` to `path` atomically: a temporary file of its own (so that saves from
/// other processes cannot collide with it), fsync, rename, then the directory's fsync.
pub fn save(path: &Path, snapshot: &[u8]) -> std::io::Result<()> {
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let saved_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let tmp = temporary(
        path,
        &format!("{}-{}", std::process::id(), SAVES.fetch_add(1, Relaxed)),
    );
    let written = (|| {
        let mut file = durable::create_new(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&saved_ms.to_le_bytes())?;
        phase::reached(Phase::StateWrite, &tmp.display().to_string());
        file.write_all(snapshot)?;
        file.sync_all()?;
        drop(file);
        phase::reached(Phase::StateRename, &tmp.display().to_string());
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = durable::remove_if_present(&tmp);
    }
    written?;
    durable::sync_dir(parent(path))
}

/// The one writer of a state file for a run: saves from many workers take turns, so none can
/// remove another's temporary, and each lands in the order its snapshot was taken.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    turn: Mutex<()>,
}

/// A writer's turn: take the snapshot while holding it, then [`Turn::save`].
pub struct Turn<'a> {
    path: &'a Path,
    _held: MutexGuard<'a, ()>,
}

impl Writer {
    /// The writer of `path`.
    pub fn new(path: PathBuf) -> Self {
        Writer {
            path,
            turn: Mutex::new(()),
        }
    }

    /// The state file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for this writer's turn.
    pub fn turn(&self) -> Turn<'_> {
        Turn {
            path: &self.path,
            // A save that panicked left no state behind the lock: take it anyway.
            _held: self
                .turn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    /// Saves `snapshot` in its turn.
    pub fn save(&self, snapshot: &[u8]) -> std::io::Result<()> {
        self.turn().save(snapshot)
    }
}

impl Turn<'_> {
    /// Saves `snapshot` (see [`save`]).
    pub fn save(&self, snapshot: &[u8]) -> std::io::Result<()> {
        save(self.path, snapshot)
    }
}

/// Removes the temporaries a killed run left beside `path` (and the single `.tmp` of earlier
/// versions). Call it before a run starts saving: it cannot tell a live save's from a dead
/// one's.
pub fn clear_temporaries(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!("{name}.tmp");
    let Ok(entries) = std::fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = durable::remove_if_present(&entry.path());
        }
    }
}

/// `<path>.tmp-<unique>`.
fn temporary(path: &Path, unique: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{unique}"));
    path.with_file_name(name)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A saved snapshot and how long ago it was saved (0 if the clock went back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The module's snapshot.
    pub snapshot: Vec<u8>,
    /// Time since saving.
    pub age: Duration,
}

/// Reads `path`: `Ok(None)` when there is none, `Err` naming what is wrong with one that is
/// not a state file.
pub fn load(path: &Path) -> Result<Option<Saved>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let header = MAGIC.len() + 8;
    if bytes.len() < header || !bytes.starts_with(MAGIC) {
        return Err(format!("{}: not a pacer state file", path.display()));
    }
    let mut saved_ms = [0u8; 8];
    saved_ms.copy_from_slice(&bytes[MAGIC.len()..header]);
    let saved = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(saved_ms));
    let age = SystemTime::now().duration_since(saved).unwrap_or_default();
    Ok(Some(Saved {
        snapshot: bytes[header..].to_vec(),
        age,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clear_errors() {
        let dir = std::env::temp_dir().join(format!("pacer-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = path_in(&dir);
        assert_eq!(load(&path), Ok(None));
        save(&path, b"snapshot").expect("saved");
        let saved = load(&path).expect("readable").expect("present");
        assert_eq!(saved.snapshot, b"snapshot");
        assert!(saved.age < Duration::from_secs(60));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary left behind");
        std::fs::write(&path, b"garbage").expect("written");
        assert!(
            load(&path)
                .expect_err("refused")
                .contains("not a pacer state file")
        );
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }
}
