//! Floors for the property tests, and the environment switches that could lower one.
//!
//! Every budgeted property test states a floor (cases, sequences, groups) and fails below it,
//! so none can pass having checked nothing. A switch that would shrink a check (a count or a
//! time budget below its default, `PACER_BLESS`) is refused when `CI` is set: CI runs every
//! check in full. Shared by the core's tests and, through `#[path]`, the CLI's.
#![allow(dead_code)]

use proptest::test_runner::Config;

/// Whether this is CI's run: `CI` set and neither empty, `0` nor `false` (CI services set
/// `CI=true`; `.ci/run` sets it too).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Panics under CI, naming `switch`; `effect` says what it would do to the checks.
pub fn refuse_under_ci(switch: &str, effect: &str) {
    assert!(
        !under_ci(),
        "{switch} is set: {effect}; refused because CI is set (CI runs every check in full): \
         unset {switch}"
    );
}

/// A whole-number switch from the environment, `default` when unset. A value that is not a
/// whole number is an error naming the switch; a value below `default` would shrink the
/// check, and is refused under CI.
pub fn number(switch: &str, default: u64) -> u64 {
    let Some(raw) = std::env::var_os(switch) else {
        return default;
    };
    let text = raw.to_string_lossy();
    let value: u64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{switch}={text:?} is not a whole number"));
    if value < default {
        refuse_under_ci(
            switch,
            &format!("{value} is below its default of {default} and would shrink the check"),
        );
    }
    value
}

/// proptest's config for a test whose floor is `floor` cases. proptest runs until that many
/// cases pass (a rejected case does not count, and too many rejects fail the test), so the
/// floor holds if the count does. `PROPTEST_CASES` may raise the count but never lower it: a
/// lower value is refused under CI, and elsewhere ignored with a note.
pub fn cases(floor: u32) -> Config {
    let wanted = number("PROPTEST_CASES", u64::from(floor));
    if wanted < u64::from(floor) {
        eprintln!("PROPTEST_CASES={wanted} is below this test's floor; running {floor} cases");
    }
    Config::with_cases(u32::try_from(wanted.max(u64::from(floor))).unwrap_or(u32::MAX))
}
