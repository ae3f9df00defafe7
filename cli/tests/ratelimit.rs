//! Announced quotas: the IETF draft's `RateLimit` / `RateLimit-Policy` and `X-RateLimit-*`,
//! well-formed, malformed and hostile. Bad values are errors naming the header; nothing
//! panics, and no announcement exceeds its own limit or a week.

use std::collections::HashMap;
use std::time::Duration;

use pacer_cli::ratelimit::{Announced, Source, parse};
use proptest::prelude::*;

const NOW: u64 = 1_764_547_200; // 2025-12-01T00:00:00Z

fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

fn read(pairs: &[(&str, &str)]) -> Result<Option<Announced>, String> {
    let map = headers(pairs);
    parse(|name| map.get(name).map(String::as_str), NOW)
}

#[test]
fn the_draft_s_examples() {
    let got = read(&[
        ("RateLimit-Policy", r#""default";q=100;w=10"#),
        ("RateLimit", r#""default";r=50;t=30"#),
    ]);
    assert_eq!(
        got,
        Ok(Some(Announced {
            limit: Some(100),
            window: Some(Duration::from_secs(10)),
            remaining: 50,
            reset: Duration::from_secs(30),
            source: Source::Draft,
        }))
    );
    // Two policies: the one with the least left per second binds (1000 over an hour is less
    // than 50 over a minute).
    let got = read(&[
        (
            "RateLimit-Policy",
            r#""permin";q=50;w=60, "perhr";q=1000;w=3600"#,
        ),
        ("RateLimit", r#""permin";r=50;t=60, "perhr";r=1000;t=3600"#),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!((got.limit, got.remaining), (Some(1000), 1000));
    // A partition key and a quota unit are read past; tokens name items too.
    let got = read(&[
        (
            "RateLimit-Policy",
            r#"peruser;q=100;w=60;pk=:cHsdsRa894==:;qu="requests""#,
        ),
        ("RateLimit", r#"peruser;r=7;t=3;pk=:cHsdsRa894==:"#),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!((got.remaining, got.reset), (7, Duration::from_secs(3)));
    // Without RateLimit-Policy: remaining and reset alone.
    let got = read(&[("RateLimit", r#""default";r=1;t=7"#)])
        .expect("ok")
        .expect("announced");
    assert_eq!((got.limit, got.remaining), (None, 1));
    // Without t, the policy's window stands for the reset.
    let got = read(&[
        ("RateLimit-Policy", r#""d";q=10;w=20"#),
        ("RateLimit", r#""d";r=4"#),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(got.reset, Duration::from_secs(20));
}

#[test]
fn x_ratelimit_with_a_delay_or_a_unix_time() {
    let got = read(&[
        ("X-RateLimit-Limit", "5000"),
        ("X-RateLimit-Remaining", "4987"),
        ("X-RateLimit-Reset", &(NOW + 1200).to_string()),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(
        (got.limit, got.remaining, got.reset, got.source),
        (Some(5000), 4987, Duration::from_secs(1200), Source::Legacy)
    );
    let got = read(&[("X-RateLimit-Remaining", "9"), ("X-RateLimit-Reset", "2.5")])
        .expect("ok")
        .expect("announced");
    assert_eq!(got.reset, Duration::from_millis(2500));
    // A reset already past means now.
    let got = read(&[
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", &(NOW - 5).to_string()),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(got.reset, Duration::ZERO);
    // The draft's fields win when both are there.
    let got = read(&[
        ("RateLimit", r#""a";r=3;t=4"#),
        ("X-RateLimit-Remaining", "100"),
        ("X-RateLimit-Reset", "1"),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(got.source, Source::Draft);
    assert_eq!(
        read(&[("X-RateLimit-Limit", "10")]),
        Ok(None),
        "not enough to use"
    );
    assert_eq!(read(&[]), Ok(None));
}

#[test]
fn malformed_values_are_errors_naming_the_header() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("RateLimit", "")], "RateLimit: empty"),
        (&[("RateLimit", r#""a";t=3"#)], "no r"),
        (&[("RateLimit", r#""a";r=-1;t=3"#)], "non-negative integer"),
        (&[("RateLimit", r#""a";r=1.5;t=3"#)], "non-negative integer"),
        (&[("RateLimit", r#""a";r="5";t=3"#)], "non-negative integer"),
        (
            &[("RateLimit", r#""a";r=1234567890123456;t=3"#)],
            "more than 15 digits",
        ),
        (&[("RateLimit", r#""a";r=10000000000000;t=3"#)], "beyond"),
        (
            &[("RateLimit", r#""a";r=1;t=99999999"#)],
            "more than a week",
        ),
        (&[("RateLimit", r#""a;r=1;t=3"#)], "closing quote"),
        (&[("RateLimit", r#"("a" "b");r=1;t=3"#)], "inner list"),
        (&[("RateLimit", r#""a";r=1;t=3,"#)], "trailing comma"),
        (&[("RateLimit", r#""a";r=1;t=3 "b""#)], "between items"),
        (&[("RateLimit", r#""a";R=1;t=3"#)], "parameter key"),
        (&[("RateLimit", r#"1;r=1;t=3"#)], "not a string or token"),
        (&[("RateLimit", r#""a";r=1"#)], "no t"),
        (
            &[
                ("RateLimit-Policy", r#""a";w=10"#),
                ("RateLimit", r#""a";r=1;t=3"#),
            ],
            "RateLimit-Policy: \"a\": no q",
        ),
        (
            &[
                ("RateLimit-Policy", "\"a\";q=10;w=0.5"),
                ("RateLimit", r#""a";r=1;t=3"#),
            ],
            "RateLimit-Policy",
        ),
        (
            &[("X-RateLimit-Remaining", "ten"), ("X-RateLimit-Reset", "3")],
            "X-RateLimit-Remaining",
        ),
        (
            &[("X-RateLimit-Remaining", "-1"), ("X-RateLimit-Reset", "3")],
            "X-RateLimit-Remaining",
        ),
        (
            &[
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "soon"),
            ],
            "X-RateLimit-Reset",
        ),
        (
            &[("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset", "inf")],
            "X-RateLimit-Reset",
        ),
        (
            &[
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "9999999"),
            ],
            "more than a week",
        ),
        (
            &[
                ("X-RateLimit-Limit", "1e3"),
                ("X-RateLimit-Remaining", "1"),
                ("X-RateLimit-Reset", "3"),
            ],
            "X-RateLimit-Limit",
        ),
    ];
    for (pairs, expected) in cases {
        match read(pairs) {
            Err(message) => assert!(message.contains(expected), "{pairs:?}: {message}"),
            other => panic!("{pairs:?} was accepted: {other:?}"),
        }
    }
}

#[test]
fn remaining_never_exceeds_a_known_limit() {
    let got = read(&[
        ("RateLimit-Policy", r#""a";q=10;w=60"#),
        ("RateLimit", r#""a";r=5000;t=60"#),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(got.remaining, 10);
    let got = read(&[
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Remaining", "5000"),
        ("X-RateLimit-Reset", "60"),
    ])
    .expect("ok")
    .expect("announced");
    assert_eq!(got.remaining, 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes at all: no panic, and whatever is accepted is within bounds.
    #[test]
    fn arbitrary_headers_never_panic_or_exceed_bounds(
        limits in "[ -~]{0,60}",
        policy in proptest::option::of("[ -~]{0,60}"),
        remaining in "[ -~]{0,12}",
        reset in "[ -~]{0,12}",
        structured in proptest::sample::select(vec![
            r#""a";r=%;t=%"#, r#"a;r=%, b;r=%;t=1"#, r#""a";r=%;t=%;pk=:%:"#,
        ]),
    ) {
        let shaped = structured.replacen('%', &remaining, 1).replacen('%', &reset, 1);
        for value in [limits.as_str(), shaped.as_str()] {
            let mut pairs = vec![("RateLimit", value)];
            if let Some(policy) = &policy {
                pairs.push(("RateLimit-Policy", policy.as_str()));
            }
            if let Ok(Some(got)) = read(&pairs) {
                prop_assert!(got.reset <= Duration::from_secs(7 * 24 * 3600));
                prop_assert!(got.limit.is_none_or(|l| got.remaining <= l));
            }
        }
        let legacy = [("X-RateLimit-Remaining", remaining.as_str()), ("X-RateLimit-Reset", reset.as_str())];
        if let Ok(Some(got)) = read(&legacy) {
            prop_assert!(got.reset <= Duration::from_secs(7 * 24 * 3600));
            prop_assert!(got.remaining <= 1_000_000_000_000);
        }
    }
}
