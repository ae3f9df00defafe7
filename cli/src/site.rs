//! `pacer serve`: the browser simulator's files over HTTP on loopback.
//!
//! Browsers load WebAssembly and ES modules only over HTTP and only with the right MIME
//! types (`application/wasm`, `text/javascript`), so `file://` will not do. A static
//! server, nothing more: no directory listings, no dotfiles, no path outside the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::loopback::LoopbackServer;

/// A running site server; stops when dropped.
#[derive(Debug)]
pub struct Site {
    server: LoopbackServer,
}

impl Site {
    /// Serves `root` on 127.0.0.1:`port` (`0` = any free port), from the current tokio runtime.
    pub async fn start(root: PathBuf, port: u16) -> std::io::Result<Site> {
        let app = Router::new()
            .fallback(serve_file)
            .with_state(Arc::new(root));
        let server = LoopbackServer::start(app, port, "site").await?;
        Ok(Site { server })
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.server.address())
    }
}

/// The MIME type browsers need for a file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `path` names, or `None` if it tries to leave the root or to
/// reach a hidden file. A path ending in `/` means its `index.html`.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    let mut file = root.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        if part.starts_with('.') || part.contains('\\') || part.contains('%') {
            return None;
        }
        file.push(part);
    }
    if relative.is_empty() || relative.ends_with('/') {
        file.push("index.html");
    }
    Some(file)
}

async fn serve_file(State(root): State<Arc<PathBuf>>, uri: Uri) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            format!("not found: {}\n", uri.path()),
        )
    };
    let Some(file) = resolve(&root, uri.path()) else {
        return not_found().into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                // Rebuilt files show up on reload.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            ) =>
        {
            not_found().into_response()
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {}: {e}\n", uri.path()),
            )
                .into_response()
        }
    }
}
