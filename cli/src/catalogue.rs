//! The catalogue's index format, `GET /index.json`: the one definition that the embedded
//! origin writes and the pipeline reads (any `--origin` server must serve it).
//!
//! ```json
//! { "files": [ { "name": "part-0.dat", "size": 100000, "sha256": "<64 hex digits>" } ] }
//! ```

use std::collections::HashMap;

use serde_json::{Value, json};

/// The largest index read, in bytes: a longer one is refused, not buffered.
pub const MAX_INDEX_BYTES: usize = 32 << 20;
/// The most entries an index may list.
pub const MAX_ENTRIES: usize = 100_000;
/// The longest name, in UTF-8 bytes: room under the file system's 255 for the suffix a
/// partial file adds.
pub const MAX_NAME_BYTES: usize = 200;

/// One file of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A plain file name: not empty, no `/`, `\`, control character or bidirectional
    /// override, not starting with a dot, at most [`MAX_NAME_BYTES`] long. Safe to print.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The content's sha256, 64 lowercase hex digits.
    pub sha256: String,
}

/// The index document listing `entries`.
pub fn to_json(entries: &[Entry]) -> Value {
    let files: Vec<_> = entries
        .iter()
        .map(|e| json!({ "name": e.name, "size": e.size, "sha256": e.sha256 }))
        .collect();
    json!({ "files": files })
}

/// Parses an index; the error names the entry and field that is wrong. Within the caps
/// above, and with sizes whose sum fits in a `u64`, so a caller may add them freely.
pub fn parse(json: &str) -> Result<Vec<Entry>, String> {
    if json.len() > MAX_INDEX_BYTES {
        return Err(format!(
            "index: {} bytes, more than the {MAX_INDEX_BYTES} a catalogue may have",
            json.len()
        ));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| format!("index is not JSON: {e}"))?;
    let files = value
        .get("files")
        .and_then(|f| f.as_array())
        .ok_or("index: expected an object with a \"files\" array")?;
    if files.len() > MAX_ENTRIES {
        return Err(format!(
            "index: {} files, more than the {MAX_ENTRIES} a catalogue may have",
            files.len()
        ));
    }
    let mut seen = HashMap::new();
    let mut total_bytes = 0u64;
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let name = file
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or(format!("files[{i}].name: missing or not a string"))?;
            if let Some(c) = name.chars().find(|&c| is_unprintable(c)) {
                // The name is never echoed raw: it could drive the terminal.
                return Err(format!(
                    "files[{i}].name: \"{}\" holds U+{:04X}, a control character",
                    name.escape_default(),
                    u32::from(c)
                ));
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "files[{i}].name: {} bytes long, more than {MAX_NAME_BYTES}",
                    name.len()
                ));
            }
            if !is_plain_name(name) {
                return Err(format!(
                    "files[{i}].name: {name:?} is not a plain file name"
                ));
            }
            if let Some(j) = seen.insert(name.to_string(), i) {
                return Err(format!("files[{i}].name: {name:?} repeats files[{j}]"));
            }
            let size = file
                .get("size")
                .and_then(|s| s.as_u64())
                .ok_or(format!("files[{i}].size: missing or not a whole number"))?;
            total_bytes = total_bytes.checked_add(size).ok_or(format!(
                "files[{i}].size: the sizes so far add up to more than {} bytes",
                u64::MAX
            ))?;
            let sha256 = file
                .get("sha256")
                .and_then(|s| s.as_str())
                .ok_or(format!("files[{i}].sha256: missing"))?;
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("files[{i}].sha256: not 64 hex digits"));
            }
            Ok(Entry {
                name: name.to_string(),
                size,
                sha256: sha256.to_ascii_lowercase(),
            })
        })
        .collect()
}

/// True for a character that must not reach a terminal: C0 and C1 controls (ESC starts an
/// ANSI sequence), DEL, and the bidirectional marks and overrides that reorder what is shown.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// True for a name that stays inside the output folder.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_origin_writes_the_pipeline_reads() {
        let entries = vec![Entry {
            name: "item-0000.bin".into(),
            size: 3,
            sha256: "ab".repeat(32),
        }];
        assert_eq!(parse(&to_json(&entries).to_string()), Ok(entries));
    }

    #[test]
    fn bad_entries_are_named() {
        let sha = "0".repeat(64);
        let cases = [
            ("[]", "expected an object"),
            (r#"{"files":[{"size":1}]}"#, "files[0].name"),
            (
                r#"{"files":[{"name":"../x","size":1}]}"#,
                "not a plain file name",
            ),
            (
                &format!(
                    r#"{{"files":[{{"name":"a","size":1,"sha256":"{sha}"}},{{"name":"a","size":1,"sha256":"{sha}"}}]}}"#
                ),
                "files[1].name: \"a\" repeats files[0]",
            ),
            (r#"{"files":[{"name":"a","size":-1}]}"#, "files[0].size"),
            (
                r#"{"files":[{"name":"a","size":1,"sha256":"xyz"}]}"#,
                "files[0].sha256",
            ),
        ];
        for (json, expected) in cases {
            let error = parse(json).expect_err(json);
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    fn index_of(names_and_sizes: &[(&str, u64)]) -> String {
        let entries: Vec<Entry> = names_and_sizes
            .iter()
            .map(|&(name, size)| Entry {
                name: name.into(),
                size,
                sha256: "0".repeat(64),
            })
            .collect();
        to_json(&entries).to_string()
    }

    #[test]
    fn names_that_could_drive_a_terminal_are_refused_without_being_echoed() {
        for name in [
            "a\u{1b}[2Jb",
            "bell\u{7}",
            "c\u{9b}31m",
            "tab\tx",
            "del\u{7f}",
            "x\u{202e}gpj.exe",
        ] {
            let error = parse(&index_of(&[("ok", 1), (name, 1)])).expect_err(name);
            assert!(error.starts_with("files[1].name: "), "{error}");
            assert!(error.contains("control character"), "{error}");
            assert!(!error.chars().any(is_unprintable), "echoed raw: {error:?}");
        }
        assert!(parse(&index_of(&[("caf\u{e9} #1 100% ?.bin", 1)])).is_ok());
    }

    #[test]
    fn counts_and_sizes_are_capped_by_name() {
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let error = parse(&index_of(&[(&long, 1)])).expect_err("long name");
        assert!(
            error.starts_with("files[0].name: 201 bytes long"),
            "{error}"
        );
        assert!(parse(&index_of(&[(&long[1..], 1)])).is_ok());

        let error = parse(&index_of(&[("a", u64::MAX), ("b", 1)])).expect_err("overflow");
        assert!(error.starts_with("files[1].size: the sizes"), "{error}");
        assert!(parse(&index_of(&[("a", u64::MAX - 1), ("b", 1)])).is_ok());

        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("f{i}")).collect();
        let many: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 0)).collect();
        let error = parse(&index_of(&many)).expect_err("too many");
        assert!(
            error.contains("100001 files, more than the 100000"),
            "{error}"
        );
        assert!(parse(&index_of(&many[1..])).is_ok());

        let huge = format!("{}{}", " ".repeat(MAX_INDEX_BYTES), r#"{"files":[]}"#);
        let error = parse(&huge).expect_err("too long");
        assert!(error.contains("more than the 33554432"), "{error}");
    }
}
