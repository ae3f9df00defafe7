//! `pacer run` against an https origin: the embedded origin behind a TLS front whose
//! certificate is made here, signed by a CA made here. Trusted through `--ca-cert` the run
//! downloads everything; untrusted it stops at once with an error naming the host.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pacer_cli::origin::{Origin, OriginOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA, and a certificate for `names` that it signed.
struct Certificates {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn certificates(names: &[&str]) -> Certificates {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "pacer test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    Certificates {
        ca_pem: ca_cert.pem(),
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// The embedded origin behind a TLS front on 127.0.0.1, which counts the connections made to it.
struct HttpsOrigin {
    url: String,
    connections: Arc<AtomicUsize>,
    _origin: Origin,
    _runtime: tokio::runtime::Runtime,
}

impl HttpsOrigin {
    fn start(certificates: &Certificates, files: usize) -> HttpsOrigin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio");
        let options = OriginOptions {
            files,
            file_size_bytes: 100_000,
            tokens_per_hour: 36_000.0,
            burst: 3,
            ..OriginOptions::default()
        };
        let origin = runtime
            .block_on(Origin::start(options, 0))
            .expect("origin starts");
        let upstream: SocketAddr = origin
            .url()
            .trim_start_matches("http://")
            .parse()
            .expect("origin address");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificates.leaf.clone()],
            certificates.leaf_key.clone_key(),
        )
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        HttpsOrigin {
            url,
            connections,
            _origin: origin,
            _runtime: runtime,
        }
    }
}

/// `pacer run --origin <origin> --out <dir>/out` with a quota the origin allows, plus `extra`.
fn pacer_run(origin: &str, dir: &Path, extra: &[&str]) -> Output {
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"limiters":[{"name":"origin","tokens_per_hour":36000,"burst":3}]}"#,
    )
    .expect("config written");
    Command::new(env!("CARGO_BIN_EXE_pacer"))
        .args(["run", "--json", "--origin", origin, "--out"])
        .arg(dir.join("out"))
        .arg("--config")
        .arg(&config)
        .args(extra)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("pacer runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// [`pacer_run`] trusting the CA of `certificates` through `--ca-cert`.
fn pacer_run_trusting(origin: &str, dir: &Path, certificates: &Certificates) -> Output {
    let ca: PathBuf = dir.join("ca.pem");
    std::fs::write(&ca, &certificates.ca_pem).expect("CA written");
    pacer_run(
        origin,
        dir,
        &["--ca-cert", ca.to_str().expect("utf-8 path")],
    )
}

#[test]
fn pacer_run_fetches_from_an_https_origin_whose_ca_it_is_given() {
    let certificates = certificates(&["127.0.0.1", "localhost"]);
    let origin = HttpsOrigin::start(&certificates, 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = pacer_run_trusting(&origin.url, dir.path(), &certificates);
    assert!(output.status.success(), "{}", text(&output));
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON summary");
    assert_eq!(summary["downloaded"], 4, "{summary}");
    assert_eq!(
        summary["failed"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );
    for index in 0..4 {
        let file = dir.path().join(format!("out/item-{index:04}.bin"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert_eq!(size, 100_000, "{}", file.display());
    }
    assert!(origin.connections.load(Ordering::SeqCst) >= 1);
}

#[test]
fn an_untrusted_certificate_stops_the_run_naming_the_host_without_retrying() {
    let certificates = certificates(&["127.0.0.1", "localhost"]);
    let origin = HttpsOrigin::start(&certificates, 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = pacer_run(&origin.url, dir.path(), &[]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    let host = origin.url.trim_start_matches("https://");
    assert!(
        said.contains(&format!("TLS with {host} failed")),
        "names the host: {said}"
    );
    assert!(said.contains("--ca-cert"), "says how to trust a CA: {said}");
    assert!(
        origin.connections.load(Ordering::SeqCst) <= 2,
        "no retries: {} connections",
        origin.connections.load(Ordering::SeqCst)
    );
    assert!(
        !dir.path().join("out/item-0000.bin").exists(),
        "nothing downloaded"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused_too() {
    // Signed by the CA the run trusts, but for another name: the name check fails.
    let certificates = certificates(&["pacer.invalid"]);
    let origin = HttpsOrigin::start(&certificates, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = pacer_run_trusting(&origin.url, dir.path(), &certificates);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    let host = origin.url.trim_start_matches("https://");
    assert!(said.contains(&format!("TLS with {host} failed")), "{said}");
    assert!(said.contains("not valid for name"), "{said}");
}

#[test]
fn a_bad_ca_file_or_scheme_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.pem");
    let output = pacer_run(
        "https://127.0.0.1:9",
        dir.path(),
        &["--ca-cert", missing.to_str().expect("utf-8 path")],
    );
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(&format!("--ca-cert {}", missing.display())),
        "{said}"
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("written");
    let output = pacer_run(
        "https://127.0.0.1:9",
        dir.path(),
        &["--ca-cert", not_pem.to_str().expect("utf-8 path")],
    );
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("holds no PEM certificate"), "{said}");

    let output = pacer_run("ftp://127.0.0.1:9", dir.path(), &[]);
    let said = text(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("--origin: the origin must start with http:// or https://"),
        "{said}"
    );
}
