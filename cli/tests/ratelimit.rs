//! Announced quotas: the IETF draft's `RateLimit` / `RateLimit-Policy` and `X-RateLimit-*`,
//! well-formed, malformed and hostile. Bad values are errors naming the header; nothing
//! panics, and no announcement exceeds its own limit or a week.

use std::collections::HashMap;
use std::time::Duration;

use pacer_cli::ratelimit::{Announced, Source, parse};
use proptest::prelude::*;

mod common;

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
    #![proptest_config(common::floors::cases(2000))]

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

/// The parser's bounds, as its module states them.
const MAX_COUNT: u64 = 1_000_000_000_000;
const WEEK: u64 = 7 * 24 * 3600;

/// What a generated number is, so the outcome can be foretold.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Digits only, at most 15 of them (leading zeros included): this value.
    Int(u64),
    /// `Int`'s digits with a space or tab around them.
    Spaced(u64),
    /// Digits with a dot: a Decimal to the draft, seconds to `X-RateLimit-Reset`.
    Fraction,
    /// Negative, overflowing (more than 15 digits, past u64), or not a number at all.
    Refused,
}

/// A number as a careless or hostile server writes one: mostly plain, and zero, leading
/// zeros, the bounds and one past them, fractions, negatives, u64's and i64's edges and past
/// them, whitespace, exponents, signs, a quoted number, two values joined as duplicates are.
fn number() -> impl Strategy<Value = (String, Kind)> {
    let int = |n: u64| (n.to_string(), Kind::Int(n));
    prop_oneof![
        16 => prop_oneof![
            3 => 0u64..=100,
            2 => 0u64..=100_000,
            1 => (MAX_COUNT - 2)..=(MAX_COUNT + 2),
            1 => (WEEK - 2)..=(WEEK + 2),
        ]
        .prop_map(int),
        1 => Just(int(0)),
        1 => (0u64..100_000, 1usize..8)
            .prop_map(|(n, zeros)| (format!("{}{n}", "0".repeat(zeros)), Kind::Int(n))),
        1 => (0u64..1_000, prop::sample::select(vec![" ", "\t"]), any::<bool>()).prop_map(
            |(n, space, before)| {
                let text = if before { format!("{space}{n}") } else { format!("{n}{space}") };
                (text, Kind::Spaced(n))
            }
        ),
        1 => prop::sample::select(vec!["1.5", "0.0", "2.", ".5", "10.125", "3.14159", "1.0"])
            .prop_map(|t| (t.to_string(), Kind::Fraction)),
        2 => prop::sample::select(vec![
            "-1", "-5", "-9223372036854775808", "1000000000000000", "9223372036854775807",
            "9223372036854775808", "18446744073709551615", "18446744073709551616",
            "99999999999999999999999", "", "1e3", "+5", "0x1f", "inf", "NaN", "\"5\"", "5,7",
            "5, 7", "?1", "\u{ff15}",
        ])
        .prop_map(|t| (t.to_string(), Kind::Refused)),
    ]
}

/// A reset: a number, or a Unix time around `NOW` (from a past one to two weeks ahead).
fn reset_number() -> impl Strategy<Value = (String, Kind)> {
    prop_oneof![
        3 => number(),
        1 => ((NOW - 1_000)..(NOW + 2 * WEEK)).prop_map(|t| (t.to_string(), Kind::Int(t))),
    ]
}

/// What a field must do: be read as this value, be refused, or either (not foretold).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Value(u64),
    Refused,
    Either,
}

fn draft_int(kind: Kind, max: u64) -> Expect {
    match kind {
        Kind::Int(n) if n <= max => Expect::Value(n),
        // A space inside a parameter breaks the list, one at the very end does not.
        Kind::Spaced(_) => Expect::Either,
        _ => Expect::Refused,
    }
}

fn legacy_count(kind: Kind) -> Expect {
    match kind {
        Kind::Int(n) | Kind::Spaced(n) if n <= MAX_COUNT => Expect::Value(n),
        _ => Expect::Refused,
    }
}

fn legacy_reset(kind: Kind) -> Expect {
    match kind {
        Kind::Int(n) | Kind::Spaced(n) => {
            // From 1e9 on, a Unix time; one already past means now.
            let delay = if n >= 1_000_000_000 {
                n.saturating_sub(NOW)
            } else {
                n
            };
            if delay <= WEEK {
                Expect::Value(delay)
            } else {
                Expect::Refused
            }
        }
        Kind::Fraction => Expect::Either,
        Kind::Refused => Expect::Refused,
    }
}

/// Refused if any field is; else either if any field is; else every field's value.
fn combine(fields: &[Expect]) -> Result<Option<Vec<u64>>, ()> {
    if fields.contains(&Expect::Refused) {
        return Err(());
    }
    Ok(fields
        .iter()
        .map(|f| match f {
            Expect::Value(n) => Some(*n),
            _ => None,
        })
        .collect())
}

/// Near-valid headers of either style, with what parsing them must give: `Err(())` refused,
/// `Ok(None)` not foretold, `Ok(Some(a))` exactly `a`.
#[derive(Debug, Clone)]
struct Shaped {
    pairs: Vec<(&'static str, String)>,
    expect: Result<Option<Announced>, ()>,
    draft: bool,
}

/// `RateLimit` with one or two service limits (the first named as a token or a string, a
/// decoy `r` before the real one, a partition key), with or without a `RateLimit-Policy` for
/// it (or for another name), with or without `t` where a policy window stands for it.
fn draft_headers() -> impl Strategy<Value = Shaped> {
    (
        (number(), number(), any::<bool>(), prop::bool::weighted(0.8)),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec!["-5", "1.5", "\"x\"", "7", "tok"]),
        ),
        prop::option::of((number(), number(), prop::bool::weighted(0.8))),
        prop::option::weighted(0.25, (number(), number())),
        any::<bool>(),
    )
        .prop_map(|((r, t, quoted, has_t), decoy, policy, second, pk)| {
            let name = if quoted { "\"default\"" } else { "default" };
            let decoy = decoy.map_or(String::new(), |d| format!(";r={d}"));
            let key = if pk { ";pk=:cHsdsRa894==:" } else { "" };
            let t_param = if has_t {
                format!(";t={}", t.0)
            } else {
                String::new()
            };
            let mut limits = format!("{name}{decoy};r={}{t_param}{key}", r.0);
            if let Some((r2, t2)) = &second {
                limits += &format!(", other;r={};t={}", r2.0, t2.0);
            }
            let mut pairs = vec![("RateLimit", limits)];
            // The policy: for this name, or (one time in three) for another.
            let mut fields = vec![draft_int(r.1, MAX_COUNT)];
            let mut matched = None;
            let mut unforeseeable = false;
            if let Some((q, w, same)) = &policy {
                let policy_name = if *same { name } else { "elsewhere" };
                pairs.push((
                    "RateLimit-Policy",
                    format!("{policy_name};q={};w={}", q.0, w.0),
                ));
                if *same {
                    let (q, w) = (draft_int(q.1, MAX_COUNT), draft_int(w.1, WEEK));
                    fields.extend([q, w]);
                    matched = Some((q, w));
                } else {
                    // Read as a list but not used: only its syntax matters.
                    let plain = |k: Kind| matches!(k, Kind::Int(_));
                    unforeseeable = !plain(q.1) || !plain(w.1);
                }
            }
            let t_expect = if has_t {
                draft_int(t.1, WEEK)
            } else {
                // Without t, the policy's window stands for it; without one, refused.
                match matched {
                    Some((_, w)) => w,
                    None => Expect::Refused,
                }
            };
            fields.push(t_expect);
            if let Some((r2, t2)) = &second {
                fields.extend([draft_int(r2.1, MAX_COUNT), draft_int(t2.1, WEEK)]);
            }
            let expect = match combine(&fields) {
                Err(()) if !unforeseeable => Err(()),
                Ok(Some(values)) if !unforeseeable => {
                    let (limit, window) = match matched {
                        Some(_) => (Some(values[1]), Some(Duration::from_secs(values[2]))),
                        None => (None, None),
                    };
                    // t (or the window standing for it) follows r, and q and w if matched.
                    let reset = Duration::from_secs(values[if matched.is_some() { 3 } else { 1 }]);
                    let first = Announced {
                        limit,
                        window,
                        remaining: limit.map_or(values[0], |l| values[0].min(l)),
                        reset,
                        source: Source::Draft,
                    };
                    // Two limits: the one with the least left per second binds.
                    let binding = match second {
                        Some(_) => {
                            let n = values.len();
                            let other = Announced {
                                limit: None,
                                window: None,
                                remaining: values[n - 2],
                                reset: Duration::from_secs(values[n - 1]),
                                source: Source::Draft,
                            };
                            let rate =
                                |a: &Announced| a.remaining as f64 / a.reset.as_secs_f64().max(1.0);
                            if rate(&other) < rate(&first) {
                                other
                            } else {
                                first
                            }
                        }
                        None => first,
                    };
                    Ok(Some(binding))
                }
                _ => Ok(None),
            };
            Shaped {
                pairs,
                expect,
                draft: true,
            }
        })
}

/// `X-RateLimit-Remaining` and `-Reset`, with or without `-Limit`.
fn legacy_headers() -> impl Strategy<Value = Shaped> {
    (number(), reset_number(), prop::option::of(number())).prop_map(|(r, t, limit)| {
        let mut pairs = vec![
            ("X-RateLimit-Remaining", r.0.clone()),
            ("X-RateLimit-Reset", t.0.clone()),
        ];
        let mut fields = vec![legacy_count(r.1), legacy_reset(t.1)];
        if let Some(limit) = &limit {
            pairs.push(("X-RateLimit-Limit", limit.0.clone()));
            fields.push(legacy_count(limit.1));
        }
        let expect = match combine(&fields) {
            Err(()) => Err(()),
            Ok(Some(values)) => {
                let limit = values.get(2).copied();
                Ok(Some(Announced {
                    limit,
                    window: None,
                    remaining: limit.map_or(values[0], |l| values[0].min(l)),
                    reset: Duration::from_secs(values[1]),
                    source: Source::Legacy,
                }))
            }
            Ok(None) => Ok(None),
        };
        Shaped {
            pairs,
            expect,
            draft: false,
        }
    })
}

/// Cases of each style, and the least share of them that must be accepted, refused and
/// foretold exactly, so the bounds are checked on values the parser really returns.
const SHAPED_CASES: u32 = 4000;
const MIN_ACCEPTED: f64 = 0.25;
const MIN_REFUSED: f64 = 0.15;
const MIN_FORETOLD: f64 = 0.8;

/// Near-valid headers of both styles: right shape, hostile numbers. Whatever is accepted is
/// within bounds; where every field is plain or plainly wrong, the outcome is exactly the one
/// foretold; and enough of them are accepted that the bounds are really exercised.
#[test]
fn near_valid_headers_are_read_exactly_or_refused_and_stay_in_bounds() {
    use std::cell::Cell;
    // (cases, accepted, refused, foretold) per style: draft, legacy.
    let tally = [Cell::new([0u32; 4]), Cell::new([0u32; 4])];
    let mut runner = proptest::test_runner::TestRunner::new(common::floors::cases(SHAPED_CASES));
    let result = runner.run(&prop_oneof![draft_headers(), legacy_headers()], |shaped| {
        let pairs: Vec<(&str, &str)> = shaped.pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = read(&pairs);
        match &shaped.expect {
            Err(()) => prop_assert!(got.is_err(), "{pairs:?} was accepted: {got:?}"),
            Ok(Some(expected)) => {
                prop_assert_eq!(&got, &Ok(Some(expected.clone())), "{:?}", pairs)
            }
            Ok(None) => {}
        }
        if let Ok(Some(got)) = &got {
            prop_assert!(got.reset <= Duration::from_secs(WEEK), "{got:?}");
            prop_assert!(
                got.window.is_none_or(|w| w <= Duration::from_secs(WEEK)),
                "{got:?}"
            );
            prop_assert!(got.remaining <= MAX_COUNT, "{got:?}");
            prop_assert!(
                got.limit
                    .is_none_or(|l| l <= MAX_COUNT && got.remaining <= l),
                "{got:?}"
            );
        }
        let cell = &tally[usize::from(!shaped.draft)];
        let mut counts = cell.get();
        counts[0] += 1;
        counts[1] += u32::from(matches!(got, Ok(Some(_))));
        counts[2] += u32::from(got.is_err());
        counts[3] += u32::from(shaped.expect != Ok(None));
        cell.set(counts);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    for (style, cell) in ["RateLimit", "X-RateLimit-*"].iter().zip(&tally) {
        let [cases, accepted, refused, foretold] = cell.get();
        println!(
            "{style}: {cases} cases, {accepted} accepted, {refused} refused, {foretold} foretold"
        );
    }
    for (style, cell) in ["RateLimit", "X-RateLimit-*"].iter().zip(&tally) {
        let [cases, accepted, refused, foretold] = cell.get();
        let share = |n: u32| f64::from(n) / f64::from(cases.max(1));
        assert!(
            cases >= SHAPED_CASES / 3,
            "{style}: only {cases} of {SHAPED_CASES} cases"
        );
        assert!(
            share(accepted) >= MIN_ACCEPTED,
            "{style}: {accepted} of {cases} accepted, below the floor of {MIN_ACCEPTED}"
        );
        assert!(
            share(refused) >= MIN_REFUSED,
            "{style}: {refused} of {cases} refused, below the floor of {MIN_REFUSED}"
        );
        assert!(
            share(foretold) >= MIN_FORETOLD,
            "{style}: {foretold} of {cases} foretold, below the floor of {MIN_FORETOLD}"
        );
    }
}
