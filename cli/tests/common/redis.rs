//! A real `redis-server` (Debian's, `make redis`) for one test: on a free port, in a temporary
//! directory, with nothing saved; stopped when dropped. It can be stopped and started again on
//! the same port, empty, as a restart that loses the state.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS: &str = "/usr/bin/redis-server";

/// Starts `pacer run --shared` against `origin`: one host of `group` on the Redis at
/// `redis_url`, at most `max_hosts` hosts, a lease of 1 s, the summary as JSON on stdout.
pub fn shared_host(
    origin: &str,
    redis_url: &str,
    group: &str,
    max_hosts: u32,
    config: &Path,
    out: &Path,
) -> Child {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["run", "--json", "--origin", origin, "--out"])
        .arg(out)
        .arg("--config")
        .arg(config)
        .args(["--shared", redis_url, "--group", group])
        .args(["--max-hosts", &max_hosts.to_string(), "--lease-ms", "1000"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer runs")
}

/// A running redis-server.
pub struct Redis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        assert!(
            Path::new(REDIS).is_file(),
            "{REDIS} is missing: `make redis` installs Debian's redis-server (make test does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Redis {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            port,
        };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it (as a crash would: its state is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(REDIS)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy to `port` on 127.0.0.1 that delivers every chunk `delay` after it arrived, each
/// way: a slow Redis. It serves until the test process ends; returns its own port.
pub fn slow_proxy(port: u16, delay: Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let own = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            for (mut from, mut to) in [
                (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                ),
                (server, client),
            ] {
                // Each chunk is delivered `delay` after it arrived, as a slow link would:
                // chunks in flight overlap, they do not queue behind each other's delay.
                let (sender, receiver) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16 << 10];
                    while let Ok(n) = from.read(&mut buffer) {
                        if n == 0 || sender.send((Instant::now(), buffer[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    while let Ok((arrived, bytes)) = receiver.recv() {
                        std::thread::sleep(
                            (arrived + delay).saturating_duration_since(Instant::now()),
                        );
                        if to.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    own
}
