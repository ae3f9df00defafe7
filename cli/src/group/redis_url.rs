//! The `--shared` Redis URL: checked once, and shown everywhere (startup line, warnings,
//! errors, `Debug`) with its password replaced by `***`, so a secret given on the command line
//! never reaches a terminal, a log or a CI transcript.

use std::fmt;
use std::path::Path;

/// A Redis URL, `redis://[USER:PASSWORD@]HOST:PORT/[DB]` or `rediss://…` (TLS). Its `Display`
/// and `Debug` are `redis://USER:***@HOST:PORT/DB`: the password is never shown.
#[derive(Clone)]
pub struct RedisUrl {
    full: String,
    shown: String,
    tls: bool,
}

impl RedisUrl {
    /// Checks `url`'s form; the error names `--shared` and shows the URL redacted.
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let shown = redacted(url);
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        let tls = match scheme {
            Some("redis") => false,
            Some("rediss") => true,
            _ => {
                return Err(format!(
                    "--shared: expected redis://HOST:PORT/[DB] or rediss://HOST:PORT/[DB] \
                     (TLS), with USER:PASSWORD@ before HOST if Redis asks for one, got {shown:?}"
                ));
            }
        };
        if url.contains('#') {
            return Err(format!(
                "--shared: {shown:?} has a #fragment; #insecure (TLS without checking the \
                 certificate) is not supported: pass the server's CA with --redis-ca-cert"
            ));
        }
        let parsed = RedisUrl {
            full: url.to_string(),
            shown,
            tls,
        };
        // Parsed now so that a bad URL stops the run before anything starts.
        redis::Client::open(url).map_err(|e| parsed.not_a_url(&e))?;
        Ok(parsed)
    }

    /// Whether the connection is TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// A client for this URL, nothing connected. With TLS the server's certificate is checked
    /// against `ca_cert`'s PEM certificates only when given, else the platform's roots.
    pub fn client(&self, ca_cert: Option<&Path>) -> Result<redis::Client, String> {
        // rustls takes the process's default provider: ring, as for HTTPS (src/tls.rs).
        let _ = rustls::crypto::ring::default_provider().install_default();
        match ca_cert {
            None => redis::Client::open(self.full.as_str()).map_err(|e| self.not_a_url(&e)),
            Some(path) if !self.tls => Err(format!(
                "--redis-ca-cert {}: only for a rediss:// (TLS) URL, got {self}",
                path.display()
            )),
            Some(path) => {
                let named = |why: String| format!("--redis-ca-cert {}: {why}", path.display());
                let pem = std::fs::read(path).map_err(|e| named(e.to_string()))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(named("holds no PEM certificate".into()));
                }
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(self.full.as_str(), certificates)
                    .map_err(|e| named(self.scrub(&e.to_string())))
            }
        }
    }

    /// `text` with this URL's password (as written, and percent-decoded) replaced by `***`:
    /// for messages that come from elsewhere (the Redis client's errors).
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.secrets() {
            if !secret.is_empty() {
                text = text.replace(&secret, "***");
            }
        }
        text
    }

    fn secrets(&self) -> Vec<String> {
        let Some(userinfo) = userinfo(&self.full) else {
            return Vec::new();
        };
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        vec![password.to_string(), percent_decoded(password)]
    }

    fn not_a_url(&self, error: &redis::RedisError) -> String {
        format!(
            "--shared: {self:?} is not a Redis URL: {}",
            self.scrub(&error.to_string())
        )
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown, f)
    }
}

/// What comes before the last `@` after the scheme (a password may hold `/`, `?` or `@`
/// unencoded: anything before the host's `@` is treated as secret).
fn userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.rfind('@').map(|at| &rest[..at])
}

/// `url` with everything after the user name's `:` up to the host's `@` replaced by `***` (a
/// bare `USER@` is hidden whole: it may be a password written without its colon), and a
/// query or fragment shown as `?…` or `#…`.
fn redacted(url: &str) -> String {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (who, place) = match rest.rfind('@') {
        Some(at) => {
            let who = match rest[..at].split_once(':') {
                Some((user, _)) => format!("{user}:***@"),
                None => "***@".to_string(),
            };
            (who, &rest[at + 1..])
        }
        None => (String::new(), rest),
    };
    let place = match place.find(['?', '#']) {
        Some(cut) => format!("{}{}…", &place[..cut], &place[cut..=cut]),
        None => place.to_string(),
    };
    format!("{prefix}{who}{place}")
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("redis://:hunter2@h:1/0", "redis://:***@h:1/0"),
            ("rediss://pacer:hunter2@h:1/", "rediss://pacer:***@h:1/"),
            ("redis://hunter2@h:1/", "redis://***@h:1/"),
            ("redis://u:hun/ter2@h:1/", "redis://u:***@h:1/"),
            ("redis://u:hun@ter2@h:1/", "redis://u:***@h:1/"),
            ("redis://u:hunter2@h:1/?protocol=3", "redis://u:***@h:1/?…"),
            ("u:hunter2@h:1", "u:***@h:1"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }

    #[test]
    fn parsed_urls_hide_the_password_in_display_debug_errors_and_scrub() {
        let url = RedisUrl::parse("rediss://pacer:p%40ss%2Fw0rd@127.0.0.1:1/").expect("url");
        assert!(url.is_tls());
        for text in [
            url.to_string(),
            format!("{url:?}"),
            url.scrub("AUTH pacer p@ss/w0rd failed; p%40ss%2Fw0rd"),
        ] {
            assert!(!text.contains("w0rd"), "{text}");
        }
        for bad in [
            "http://u:hunter2@h:1/",
            "redis://u:hunter2@h:notaport/",
            "rediss://u:hunter2@h:1/#insecure",
        ] {
            let error = RedisUrl::parse(bad).expect_err(bad);
            assert!(error.starts_with("--shared"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        let error = RedisUrl::parse("redis://u:hunter2@h:1/")
            .expect("url")
            .client(Some(Path::new("/nonexistent")))
            .expect_err("a CA for plain redis://");
        assert!(
            error.contains("--redis-ca-cert") && !error.contains("hunter2"),
            "{error}"
        );
    }
}
