//! Helpers shared by the host's test files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pacer_host::{PolicyModule, Runtime, SandboxOptions};

/// The real module; `make wasm` (and so `make test`) builds it first.
pub fn module_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/pacer.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run `make wasm` (make test does)",
        path.display()
    );
    path
}

/// An engine with a compile cache shared by all host tests: the module compiles once.
pub fn runtime() -> Runtime {
    let cache_dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("pacer-cache"));
    Runtime::new(SandboxOptions {
        cache_dir,
        ..SandboxOptions::default()
    })
    .expect("engine")
}

/// The real module, loaded and checked on `runtime`.
pub fn real_module(runtime: &Runtime) -> PolicyModule {
    runtime
        .load_file(&module_path())
        .expect("dist/pacer.wasm loads")
}
