//! A real `redis-server` (Debian's, `make redis`, built with TLS) for one test: on a free port,
//! in a temporary directory, with nothing saved; stopped when dropped. It can be stopped and
//! started again on the same port, empty, as a restart that loses the state. It may take extra
//! arguments (a password, ACL users), and serve TLS only, with a certificate made in the test.

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
    /// Arguments after the port, directory and persistence ones.
    extra: Vec<String>,
    /// Serving TLS only (on `port`), with a certificate for 127.0.0.1 and localhost.
    tls: bool,
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        Redis::start_with(&[], false)
    }

    /// Starts one on a free port with `extra` arguments (e.g. `--requirepass`, `--user`), on
    /// TLS only if `tls` (its CA is at [`Redis::ca_cert`]).
    pub fn start_with(extra: &[&str], tls: bool) -> Redis {
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
            extra: extra.iter().map(|a| a.to_string()).collect(),
            tls,
        };
        if tls {
            redis.make_certificates();
        }
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_cert(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA, and a certificate for 127.0.0.1 and localhost that it signed, in the directory.
    fn make_certificates(&self) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "pacer test Redis CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("server params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        let dir = self.dir.path();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("ca.pem");
        std::fs::write(dir.join("server.pem"), cert.pem()).expect("server.pem");
        std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("server.key");
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
        let port = self.port.to_string();
        let dir = self.dir.path();
        let listen: Vec<std::ffi::OsString> = if self.tls {
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.into(),
                "--tls-cert-file".into(),
                dir.join("server.pem").into(),
                "--tls-key-file".into(),
                dir.join("server.key").into(),
                "--tls-ca-cert-file".into(),
                dir.join("ca.pem").into(),
                "--tls-auth-clients".into(),
                "no".into(),
            ]
        } else {
            vec!["--port".into(), port.into()]
        };
        let child = Command::new(REDIS)
            .args(listen)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .args(&self.extra)
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
