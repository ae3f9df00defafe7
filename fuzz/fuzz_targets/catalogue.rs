//! The index reader (`cli/src/catalogue.rs`, what `pacer run` makes of `GET /index.json`) on
//! arbitrary bytes. The file is included by path, so the target builds without pacer-cli's
//! HTTP and Redis stacks.
//!
//! Invariants: no panic; every accepted entry has a plain name (not empty, no `/`, `\`, NUL,
//! no leading dot), unique across the index, and a sha256 of 64 lowercase hex digits; and
//! what `to_json` writes from them reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../cli/src/catalogue.rs"]
mod catalogue;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(entries) = catalogue::parse(text) else {
        return;
    };
    let mut names = std::collections::HashSet::new();
    for entry in &entries {
        let name = &entry.name;
        assert!(!name.is_empty() && !name.starts_with('.'), "{name:?}");
        assert!(!name.contains(['/', '\\', '\0']), "{name:?}");
        assert!(names.insert(name.as_str()), "{name:?} twice");
        assert_eq!(entry.sha256.len(), 64);
        assert!(
            entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    let again = catalogue::parse(&catalogue::to_json(&entries).to_string())
        .expect("what to_json writes parses");
    assert_eq!(again, entries);
});
