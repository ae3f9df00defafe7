//! The policy's state between runs: its snapshot, saved atomically beside the downloads with
//! the wall-clock time of saving, so a restart honours a pause or an open circuit still in
//! force (less the time that passed).
//!
//! Layout: `"PACERRUN"`, the wall-clock time of saving (`u64` ms since the Unix epoch, LE),
//! then the module's snapshot (which carries its own version and checksum).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 8] = b"PACERRUN";
/// The file's name inside the output folder.
pub const FILE_NAME: &str = ".pacer-state";

/// The state file of an output folder.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Writes `snapshot` to `path` atomically: a temporary file, fsync, rename.
pub fn save(path: &Path, snapshot: &[u8]) -> std::io::Result<()> {
    let saved_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&saved_ms.to_le_bytes())?;
    file.write_all(snapshot)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
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
        assert!(
            !path.with_extension("tmp").exists(),
            "no temporary left behind"
        );
        std::fs::write(&path, b"garbage").expect("written");
        assert!(
            load(&path)
                .expect_err("refused")
                .contains("not a pacer state file")
        );
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }
}
