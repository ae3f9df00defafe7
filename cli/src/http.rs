//! The HTTP side of `pacer run` against an origin it does not control: every wait has a
//! deadline, redirects stay where the user pointed the run, and catalogue names reach the wire
//! percent-encoded.
//!
//! A stall (an origin that accepts and never answers, stops mid-body, or trickles) ends as a
//! timeout error, which the pipeline reports to the policy as a transport failure (status 0)
//! and retries like any other: never a hang.

use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy as RedirectPolicy};

use crate::tls;

/// How long to wait before the connection is made (not a flag: 5 s, as before).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `--read-timeout-ms`: the longest silence between bytes (and before the headers).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--request-timeout-ms`: one attempt's whole deadline, connect to last body byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest either timeout may be set to: a day (a deadline is never "none").
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Redirects followed in one request at most.
pub const MAX_REDIRECTS: usize = 10;

/// Which redirects an origin may send the run along (`--redirects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirects {
    /// None: a 3xx is refused.
    None,
    /// Only to the origin itself: the same scheme, host and port (the default).
    #[default]
    SameOrigin,
    /// To any host, but never from https down to plain http.
    AnyHost,
    /// Anywhere, https to http included.
    Insecure,
}

impl Redirects {
    /// Why `to` is refused when a request that went through `chain` (the URL first asked
    /// for, then each redirect so far) was sent there, or `None` to follow it.
    pub fn refusal(self, chain: &[Url], to: &Url) -> Option<String> {
        let from = chain.first()?;
        let downgrade = to.scheme() != "https" && chain.iter().any(|u| u.scheme() == "https");
        let why = match self {
            Redirects::None => "redirects are not followed",
            Redirects::SameOrigin if from.origin() != to.origin() => "not the origin",
            Redirects::SameOrigin | Redirects::AnyHost if downgrade => "from https to plain http",
            Redirects::SameOrigin | Redirects::AnyHost | Redirects::Insecure => return None,
        };
        Some(format!(
            "the origin redirected {from} to {to}: {why} (--redirects {})",
            self.flag()
        ))
    }

    /// The `--redirects` value naming this rule.
    pub fn flag(self) -> &'static str {
        match self {
            Redirects::None => "none",
            Redirects::SameOrigin => "same-origin",
            Redirects::AnyHost => "any-host",
            Redirects::Insecure => "insecure",
        }
    }
}

/// The client's deadlines and redirect rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// The longest silence between bytes, and before the response's headers.
    pub read_timeout: Duration,
    /// One attempt's whole deadline, from connecting to the body's last byte.
    pub request_timeout: Duration,
    /// Which redirects are followed.
    pub redirects: Redirects,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            read_timeout: DEFAULT_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            redirects: Redirects::SameOrigin,
        }
    }
}

impl HttpOptions {
    /// Both timeouts from 1 ms to a day; the error names the flag.
    pub fn check(&self) -> Result<(), String> {
        for (flag, value) in [
            ("--read-timeout-ms", self.read_timeout),
            ("--request-timeout-ms", self.request_timeout),
        ] {
            if value < Duration::from_millis(1) || value > MAX_TIMEOUT {
                return Err(format!(
                    "{flag}: must be from 1 to {} (a day), got {}",
                    MAX_TIMEOUT.as_millis(),
                    value.as_millis()
                ));
            }
        }
        Ok(())
    }
}

/// A redirect the rule refused; found again in the request's error to stop the run.
#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedirectRefused {}

/// The origin's URL, parsed: `http://…` or `https://…` with a host.
pub fn origin_url(origin: &str) -> Result<Url, String> {
    tls::is_https(origin)?;
    let url = Url::parse(origin).map_err(|e| format!("{origin:?} is not a URL: {e}"))?;
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{origin:?} has no host"));
    }
    Ok(url)
}

/// The client for `origin`: TLS as [`tls::client`] sets it up, with `options`' deadlines and
/// redirect rule.
pub fn client(
    origin: &Url,
    ca_cert: Option<&Path>,
    options: &HttpOptions,
) -> Result<reqwest::Client, String> {
    let rule = options.redirects;
    let redirects = RedirectPolicy::custom(move |attempt: Attempt| {
        // previous() starts with the URL first asked for.
        let hops = attempt.previous().len();
        let refusal = rule.refusal(attempt.previous(), attempt.url()).or_else(|| {
            (hops > MAX_REDIRECTS).then(|| {
                format!(
                    "the origin redirected more than {MAX_REDIRECTS} times, last to {}",
                    attempt.url()
                )
            })
        });
        match refusal {
            Some(why) => attempt.error(RedirectRefused(why)),
            None => attempt.follow(),
        }
    });
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(options.read_timeout)
        .timeout(options.request_timeout)
        .redirect(redirects);
    tls::client(builder, origin.scheme() == "https", ca_cert)
}

/// `GET <origin>/<path…>`, each part of `path` percent-encoded as one path segment (a `/`,
/// `%`, `#`, `?`, space or non-ASCII character in a name stays part of the name).
pub fn url(origin: &Url, path: &[&str]) -> Url {
    let mut url = origin.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(path);
    }
    url
}

/// What went wrong with a request, for the user and the policy: a stall names the deadline
/// and the flag that sets it; anything else is the error's chain.
pub fn describe(error: &reqwest::Error, elapsed: Duration, options: &HttpOptions) -> String {
    if error.is_timeout() {
        // reqwest says "timed out" for both deadlines: the time spent tells them apart.
        if elapsed + Duration::from_millis(50) >= options.request_timeout {
            return format!(
                "timed out: the attempt passed its {} ms deadline (--request-timeout-ms)",
                options.request_timeout.as_millis()
            );
        }
        return format!(
            "timed out: no byte for {} ms (--read-timeout-ms)",
            options.read_timeout.as_millis()
        );
    }
    tls::chain(error)
}

/// When `error` is a redirect the rule refused: why, naming the flag.
pub fn refused_redirect(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(refused) = error.downcast_ref::<RedirectRefused>() {
            return Some(refused.0.clone());
        }
        next = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_of(text: &str) -> Url {
        Url::parse(text).expect("URL")
    }

    #[test]
    fn names_are_one_percent_encoded_segment() {
        let origin = url_of("http://127.0.0.1:8080/base/");
        assert_eq!(
            url(&origin, &["files", "a b%c#d?e/f\u{e9}"]).as_str(),
            "http://127.0.0.1:8080/base/files/a%20b%25c%23d%3Fe%2Ff%C3%A9"
        );
        let bare = url_of("https://example.com");
        assert_eq!(
            url(&bare, &["index.json"]).as_str(),
            "https://example.com/index.json"
        );
    }

    #[test]
    fn each_rule_refuses_what_it_says() {
        let https = url_of("https://a.example/files/x");
        let cases = [
            ("https://a.example/other/x", [true, true, true, true]),
            ("https://a.example:8443/x", [false, false, true, true]),
            ("https://b.example/x", [false, false, true, true]),
            ("http://a.example/x", [false, false, false, true]),
            ("http://b.example/x", [false, false, false, true]),
        ];
        for (to, followed) in cases {
            for (rule, expected) in [
                Redirects::None,
                Redirects::SameOrigin,
                Redirects::AnyHost,
                Redirects::Insecure,
            ]
            .into_iter()
            .zip(followed)
            {
                let expected = expected && rule != Redirects::None;
                let refusal = rule.refusal(std::slice::from_ref(&https), &url_of(to));
                assert_eq!(refusal.is_none(), expected, "{rule:?} {to}: {refusal:?}");
                if let Some(why) = refusal {
                    assert!(why.contains(rule.flag()), "{why}");
                }
            }
        }
        // A downgrade anywhere along the chain counts, not just from the first URL.
        let chain = [url_of("http://a.example/x"), url_of("https://b.example/x")];
        let to = url_of("http://c.example/x");
        assert!(Redirects::AnyHost.refusal(&chain, &to).is_some());
        assert!(Redirects::Insecure.refusal(&chain, &to).is_none());
    }

    #[test]
    fn timeouts_are_bounded_by_name() {
        let mut options = HttpOptions::default();
        assert_eq!(options.check(), Ok(()));
        options.read_timeout = Duration::ZERO;
        assert!(
            options
                .check()
                .expect_err("0")
                .starts_with("--read-timeout-ms")
        );
        options.read_timeout = DEFAULT_READ_TIMEOUT;
        options.request_timeout = MAX_TIMEOUT + Duration::from_millis(1);
        assert!(
            options
                .check()
                .expect_err("too long")
                .starts_with("--request-timeout-ms")
        );
    }
}
