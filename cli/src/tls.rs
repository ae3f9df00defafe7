//! HTTPS for `pacer run`: the HTTP client for an origin, with rustls on ring, the platform's
//! root certificates and any private CA the user names; and a TLS failure told apart from a
//! transient one, so a certificate nobody trusts ends the run instead of being retried.

use std::path::Path;

use rustls::CertificateError;

/// Whether `origin` is `https://…` (or `http://…`); anything else is refused by name.
pub fn is_https(origin: &str) -> Result<bool, String> {
    match origin.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => Ok(true),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => Ok(false),
        _ => Err(format!(
            "the origin must start with http:// or https://, got {origin:?}"
        )),
    }
}

/// The client `builder` (its timeouts and redirect rule set by [`crate::http`]) finished for
/// an origin. An https one is verified against the platform's roots plus the PEM certificates
/// in `ca_cert`; a plain http one needs no roots, so it works on a machine without any.
pub fn client(
    builder: reqwest::ClientBuilder,
    https: bool,
    ca_cert: Option<&Path>,
) -> Result<reqwest::Client, String> {
    // reqwest takes the process's default provider; the first call installs ring's (a later
    // call, or an embedder's own choice, finds one there and leaves it).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let extra_roots = match ca_cert {
        Some(path) => read_certificates(path)?,
        None => Vec::new(),
    };
    let builder = if https {
        builder.tls_certs_merge(extra_roots)
    } else {
        builder.tls_certs_only(extra_roots)
    };
    builder.build().map_err(|error| {
        let why = chain(&error);
        if why.contains("No CA certificates") {
            "no root certificates on this machine to check an https origin against: install \
             the ca-certificates package, or pass --ca-cert FILE"
                .to_string()
        } else {
            format!("HTTP client: {why}")
        }
    })
}

/// The certificates in the PEM file at `path`; an error names the file.
fn read_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let named = |why: String| format!("--ca-cert {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| named(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| named(format!("not a PEM certificate bundle: {}", chain(&e))))?;
    if certificates.is_empty() {
        return Err(named("holds no PEM certificate".into()));
    }
    Ok(certificates)
}

/// When `error` is a TLS failure talking to `url`, what to tell the user: it names the host,
/// and for an untrusted certificate says how to trust a private CA. A TLS failure does not
/// heal on retry, so the caller stops instead.
pub fn failure(url: &str, error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let tls = tls_error(error)?;
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(443)))
        })
        .unwrap_or_else(|| url.to_string());
    let hint = match tls {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            "; no CA this machine trusts signed its certificate (for a private CA, pass --ca-cert FILE)"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "; reach it by a name its certificate lists",
        _ => "",
    };
    Some(format!("TLS with {host} failed: {tls}{hint}"))
}

/// The rustls error somewhere in `error`'s chain. An `io::Error` hides the error it wraps
/// from `source()`, so those are opened by hand.
fn tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| tls_error(inner))
        {
            return Some(tls);
        }
        next = error.source();
    }
    None
}

/// `error` and its sources, joined: reqwest's own message alone rarely says what failed.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = source.source();
    }
    text
}
