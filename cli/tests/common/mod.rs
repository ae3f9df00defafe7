//! Helpers shared by the CLI's test files: the host's, and a scripted origin.
#![allow(dead_code)]

// The module helpers are the host's own.
#[path = "../../../host/tests/common/mod.rs"]
mod host;
#[allow(unused_imports)]
pub use host::{module_path, real_module, runtime};
pub mod redis;
// Floors for the property tests, and the CI refusals: the core's own.
#[path = "../../../tests/common/floors.rs"]
pub mod floors;

/// A tiny HTTP origin for tests whose answers a script decides: `/index.json` lists `files`
/// empty files; each `/files/<name>` request is answered by `answer(n)` (n counts file
/// requests from 0) with `(status, extra header lines)`. It records when each file request came.
pub struct ScriptedOrigin {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// When each file request arrived.
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
}

impl ScriptedOrigin {
    /// Starts serving on a free port, in a thread that lives as long as the test process.
    pub fn start(
        files: usize,
        answer: impl Fn(usize) -> (u16, String) + Send + 'static,
    ) -> ScriptedOrigin {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&requests);
        // sha256 of the empty file.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let index = format!(
            r#"{{"files":[{}]}}"#,
            (0..files)
                .map(|i| format!(r#"{{"name":"f{i}","size":0,"sha256":"{empty}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(n) if n > 2 => {}
                        _ => break,
                    }
                }
                let (status, extra, body) = if path == "/index.json" {
                    (200, String::new(), index.clone())
                } else {
                    let mut log = log.lock().expect("log");
                    let n = log.len();
                    log.push(std::time::Instant::now());
                    let (status, extra) = answer(n);
                    (status, extra, String::new())
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = reader.get_mut().write_all(response.as_bytes());
            }
        });
        ScriptedOrigin { url, requests }
    }
}

/// Python's own static file server on `dir` (a real server nobody here wrote; it
/// percent-decodes each path), killed on drop.
pub struct StaticServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl StaticServer {
    /// Starts serving `dir` on a free port.
    pub fn start(dir: &std::path::Path) -> StaticServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (the test needs it)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_string();
        StaticServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
