//! The compiled-module cache. An artifact is native code that `Module::deserialize` maps
//! executable and runs, so the cache is trusted only as far as the user's own files: its
//! directory must belong to the user running the host and be writable by no one else, and an
//! artifact is used only if its header matches the module's hash, this engine (wasmtime's
//! version and settings) and its own payload's hash. Anything else is recompiled, not run.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// The start of every artifact: the format, so another file named `*.cwasm` is never read.
const MAGIC: &[u8] = b"pacer-cwasm v1\n";
/// Magic, then three SHA-256s: the module, the engine, the payload.
const HEADER_BYTES: usize = MAGIC.len() + 3 * 32;

/// A cache directory that passed the ownership check.
pub(crate) struct Cache {
    dir: PathBuf,
    engine_id: [u8; 32],
}

impl Cache {
    /// Opens (creating, owner-only) `dir` if it can be trusted; else says why not.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Cache, String> {
        if !dir.exists() {
            create_private(dir).map_err(|e| format!("cannot create it: {e}"))?;
        }
        let meta = fs::metadata(dir).map_err(|e| e.to_string())?;
        if !meta.is_dir() {
            return Err("it is not a directory".into());
        }
        trusted(&meta)?;
        let mut id = Sha256::new();
        std::hash::Hash::hash(
            &engine.precompile_compatibility_hash(),
            &mut HashWriter(&mut id),
        );
        Ok(Cache {
            dir: dir.to_path_buf(),
            engine_id: id.finalize().into(),
        })
    }

    /// The artifact for `bytes`, if one is there, trusted, and made by this engine from these
    /// very bytes. A bad one is reported and left to be overwritten.
    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Module> {
        let module_id: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(&module_id);
        let artifact = match self.read(&path) {
            Ok(Some(artifact)) => artifact,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "compiled module not used; recompiling");
                return None;
            }
        };
        let payload = match self.verify(&artifact, &module_id) {
            Ok(payload) => payload,
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "compiled module not used; recompiling");
                return None;
            }
        };
        // SAFETY: the file is owned by this user in a directory only this user can write, and
        // its header binds it to these module bytes, this engine and this exact payload.
        unsafe { Module::deserialize(engine, payload) }.ok()
    }

    /// Saves `module`, compiled from `bytes`, atomically; a failure only costs a compile later.
    pub(crate) fn store(&self, bytes: &[u8], module: &Module) {
        let module_id: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(&module_id);
        let saved = module
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|payload| {
                let mut artifact = Vec::with_capacity(HEADER_BYTES + payload.len());
                artifact.extend_from_slice(MAGIC);
                artifact.extend_from_slice(&module_id);
                artifact.extend_from_slice(&self.engine_id);
                artifact.extend_from_slice(&Sha256::digest(&payload));
                artifact.extend_from_slice(&payload);
                write_atomically(&path, &artifact).map_err(|e| e.to_string())
            });
        if let Err(error) = saved {
            tracing::warn!(path = %path.display(), %error, "could not cache the compiled module");
        }
    }

    fn path(&self, module_id: &[u8; 32]) -> PathBuf {
        let mut key = Sha256::new();
        key.update(module_id);
        key.update(self.engine_id);
        self.dir.join(format!("{:x}.cwasm", key.finalize()))
    }

    /// The artifact's bytes, read from the handle that was checked (no swap in between).
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, String> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        trusted(&meta)?;
        let mut artifact = Vec::new();
        file.read_to_end(&mut artifact).map_err(|e| e.to_string())?;
        Ok(Some(artifact))
    }

    fn verify<'a>(&self, artifact: &'a [u8], module_id: &[u8; 32]) -> Result<&'a [u8], String> {
        let header = artifact
            .get(..HEADER_BYTES)
            .ok_or("shorter than its header")?;
        let (magic, rest) = header.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err("not a pacer artifact (wrong magic)".into());
        }
        let (module, rest) = rest.split_at(32);
        let (engine, payload_hash) = rest.split_at(32);
        if module != module_id {
            return Err("compiled from another module".into());
        }
        if engine != self.engine_id {
            return Err("compiled by another wasmtime version or engine settings".into());
        }
        let payload = &artifact[HEADER_BYTES..];
        if Sha256::digest(payload).as_slice() != payload_hash {
            return Err("its payload does not match its hash (corrupt)".into());
        }
        Ok(payload)
    }
}

/// Owned by the user running the host and writable by no one else.
fn trusted(meta: &fs::Metadata) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(format!(
                "owned by uid {}, not by this user (uid {me})",
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

fn create_private(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a temporary file readable by this user only, then renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&temporary, path)
}

/// Feeds `Hash` output into a SHA-256.
struct HashWriter<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
