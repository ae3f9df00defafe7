//! Files that are either complete or absent: written under a name nothing else uses, created
//! without following a symlink, fsynced, renamed over their final name, and the directory
//! fsynced after, so that neither a crash nor a planted link leaves wrong bytes under a final
//! name.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens a new file at `path` for writing. It fails if anything is already there, a symlink
/// included: `O_CREAT | O_EXCL` never follows one, so the bytes cannot land elsewhere.
pub fn create_new(path: &Path) -> io::Result<File> {
    File::options().write(true).create_new(true).open(path)
}

/// [`create_new`] for tokio.
pub async fn create_new_async(path: &Path) -> io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
}

/// Makes the entries of `dir` (a rename into or out of it) survive a crash. Filesystems that
/// cannot sync a directory (EINVAL) and platforms that cannot open one are let be.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match File::open(dir)?.sync_all() {
            Err(e) if e.raw_os_error() == Some(22) => Ok(()),
            other => other,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Removes `path` if it is there (a file or a symlink, never what a symlink points to).
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
