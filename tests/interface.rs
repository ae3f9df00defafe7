//! ABI v1's facts have one owner, `pacer::interface`: the page's list is generated from it and
//! held to it here, the feature bits add up, and every error maps to its status code.

mod common;

use std::path::Path;

use pacer::interface::{self, EXPORTS, FEATURES, IMPORTS, Status};

#[test]
fn the_page_list_is_the_core_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/js/abi-table.js");
    let expected = interface::js_table();
    if std::env::var_os("PACER_BLESS").is_some() {
        common::floors::refuse_under_ci(
            "PACER_BLESS",
            "it rewrites www/js/abi-table.js instead of checking it",
        );
        std::fs::write(&path, &expected).expect("write www/js/abi-table.js");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} drifted from src/interface.rs: run `PACER_BLESS=1 cargo test --test interface`",
        path.display()
    );
}

#[test]
fn features_announce_exactly_the_optional_exports() {
    let announced = EXPORTS
        .iter()
        .filter(|export| !export.is_required())
        .fold(0, |bits, export| bits | export.feature);
    assert_eq!(announced, FEATURES);
    for export in EXPORTS.iter().filter(|e| !e.is_required()) {
        assert_eq!(
            export.feature.count_ones(),
            1,
            "{}: one bit each",
            export.name
        );
    }
    let mut names: Vec<_> = EXPORTS.iter().chain(IMPORTS).map(|f| f.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        EXPORTS.len() + IMPORTS.len(),
        "names are unique"
    );
}

#[test]
fn status_codes_are_the_contract_s() {
    let codes: Vec<i32> = Status::ALL.iter().map(|s| s.code()).collect();
    assert_eq!(codes, [0, -1, -2, -3, -4, -5, -6, -7]);
    for status in Status::ALL {
        assert_eq!(Status::of(status.code().into()), Some(status));
    }
    assert_eq!(Status::of(12_345), Some(Status::Ok), "a wait is a success");
    assert_eq!(Status::of(-8), None);
    assert_eq!(
        interface::export("pacer_next_delay_ns").map(|e| e.signature()),
        Some("(i32, i32, i64) -> (i64)".to_string())
    );
}
