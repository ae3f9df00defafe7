//! `pacer serve`'s static server: MIME types browsers insist on, index pages, and nothing
//! outside its root.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use pacer_cli::site::{Site, content_type, resolve};

/// A raw HTTP/1.1 GET, so paths reach the server exactly as written (no client normalising).
fn get(url: &str, path: &str) -> (u16, String, Vec<u8>) {
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let status = head[9..12].parse().expect("a status code");
    (status, head, response[split + 4..].to_vec())
}

fn site_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temp dir");
    let write = |path: &str, bytes: &[u8]| {
        let file = root.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(file, bytes).expect("write");
    };
    write("index.html", b"<!doctype html><title>t</title>");
    write("js/main.js", b"export const x = 1;");
    write("pkg/pacer_www_bg.wasm", b"\0asm\x01\0\0\0");
    write("style.css", b"body{}");
    write("docs/index.html", b"docs");
    write(".secret", b"token");
    root
}

#[tokio::test]
async fn files_come_with_the_mime_types_browsers_require() {
    let root = site_root();
    let site = Site::start(root.path().to_path_buf(), 0)
        .await
        .expect("starts");
    let url = site.url();
    let checks = tokio::task::spawn_blocking(move || {
        for (path, mime, body) in [
            (
                "/",
                "text/html; charset=utf-8",
                &b"<!doctype html><title>t</title>"[..],
            ),
            (
                "/?clients=3&config=%7B%7D",
                "text/html; charset=utf-8",
                &b"<!doctype"[..],
            ),
            (
                "/js/main.js",
                "text/javascript; charset=utf-8",
                &b"export"[..],
            ),
            ("/pkg/pacer_www_bg.wasm", "application/wasm", &b"\0asm"[..]),
            ("/style.css", "text/css; charset=utf-8", &b"body"[..]),
            ("/docs/", "text/html; charset=utf-8", &b"docs"[..]),
        ] {
            let (status, head, bytes) = get(&url, path);
            assert_eq!(status, 200, "{path}: {head}");
            assert!(
                head.contains(&format!("content-type: {mime}")),
                "{path}: {head}"
            );
            assert!(head.contains("x-content-type-options: nosniff"), "{head}");
            assert!(bytes.starts_with(body), "{path}");
        }
    });
    checks.await.expect("checks pass");
}

#[tokio::test]
async fn nothing_outside_the_root_or_hidden_is_served() {
    let root = site_root();
    let outside = root.path().parent().expect("a parent").join("outside.txt");
    std::fs::write(&outside, "private").expect("write");
    let site = Site::start(root.path().to_path_buf(), 0)
        .await
        .expect("starts");
    let url = site.url();
    let checks = tokio::task::spawn_blocking(move || {
        for path in [
            "/../outside.txt",
            "/js/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/.secret",
            "/missing.js",
            "/js",
        ] {
            let (status, head, body) = get(&url, path);
            assert_eq!(status, 404, "{path}: {head}");
            assert!(!String::from_utf8_lossy(&body).contains("private"));
            assert!(!String::from_utf8_lossy(&body).contains("token"));
        }
    });
    checks.await.expect("checks pass");
    std::fs::remove_file(outside).ok();
}

#[test]
fn paths_resolve_inside_the_root_only() {
    let root = Path::new("/srv/www");
    assert_eq!(resolve(root, "/"), Some(root.join("index.html")));
    assert_eq!(resolve(root, "/a/b.js"), Some(root.join("a/b.js")));
    assert_eq!(resolve(root, "/a/"), Some(root.join("a/index.html")));
    assert_eq!(resolve(root, "/a/../b"), None);
    assert_eq!(resolve(root, "/.git/config"), None);
    assert_eq!(resolve(root, "/a%2fb"), None);
    assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
    assert_eq!(
        content_type(Path::new("x.mjs")),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(content_type(Path::new("x.bin")), "application/octet-stream");
}
