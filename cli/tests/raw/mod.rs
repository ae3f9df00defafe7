//! A raw HTTP/1.1 origin for tests that need an origin to misbehave at the byte level (stall,
//! trickle, redirect, lie about sizes): each connection in its own thread, answered by a
//! handler that writes whatever bytes it likes. Plain TCP or TLS, on 127.0.0.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A connection a handler answers on.
pub trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// Answers one request: its path, and the connection to write the answer to.
pub type Handler = dyn Fn(&str, &mut dyn Conn) + Send + Sync;

/// A running raw origin; its threads live as long as the test process.
pub struct RawOrigin {
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    /// The path of every request, in order of arrival.
    pub paths: Arc<Mutex<Vec<String>>>,
}

impl RawOrigin {
    /// Plain HTTP.
    pub fn start(handler: impl Fn(&str, &mut dyn Conn) + Send + Sync + 'static) -> RawOrigin {
        Self::serve(None, Arc::new(handler))
    }

    /// HTTPS with `config`'s certificate.
    pub fn start_tls(
        config: rustls::ServerConfig,
        handler: impl Fn(&str, &mut dyn Conn) + Send + Sync + 'static,
    ) -> RawOrigin {
        Self::serve(Some(Arc::new(config)), Arc::new(handler))
    }

    fn serve(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().expect("address"));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&paths);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, log, tls) = (Arc::clone(&handler), Arc::clone(&log), tls.clone());
                std::thread::spawn(move || {
                    // No connection outlives a test by much, whatever its handler does.
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(120)));
                    match tls {
                        None => answer(stream, &*handler, &log),
                        Some(config) => {
                            let Ok(session) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            answer(rustls::StreamOwned::new(session, stream), &*handler, &log);
                        }
                    }
                });
            }
        });
        RawOrigin { url, paths }
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.paths
            .lock()
            .expect("paths")
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }
}

/// Reads one request's head, logs its path and hands the connection to the handler.
fn answer<S: Read + Write>(stream: S, handler: &Handler, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(n) if n > 2 => {}
            _ => break,
        }
    }
    log.lock().expect("log").push(path.clone());
    let mut stream = reader.into_inner();
    handler(&path, &mut stream);
    let _ = stream.flush();
}

/// Writes a whole response with a `content-length` and `connection: close`.
pub fn respond(conn: &mut dyn Conn, status: u16, extra_headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

/// Holds the connection open, saying nothing, until the client gives up and closes it.
pub fn hold(conn: &mut dyn Conn) {
    let mut sink = [0u8; 256];
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

/// An index listing `files` as (name, bytes).
pub fn index(files: &[(&str, &[u8])]) -> String {
    use sha2::Digest;
    let entries: Vec<String> = files
        .iter()
        .map(|(name, bytes)| {
            serde_json::json!({
                "name": name,
                "size": bytes.len(),
                "sha256": format!("{:x}", sha2::Sha256::digest(bytes)),
            })
            .to_string()
        })
        .collect();
    format!(r#"{{"files":[{}]}}"#, entries.join(","))
}
