//! The catalogue's index format, `GET /index.json`: the one definition that the embedded
//! origin writes and the pipeline reads (any `--origin` server must serve it).
//!
//! ```json
//! { "files": [ { "name": "part-0.dat", "size": 100000, "sha256": "<64 hex digits>" } ] }
//! ```

use std::collections::HashMap;

use serde_json::{Value, json};

/// One file of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A plain file name: not empty, no `/`, `\` or NUL, not starting with a dot.
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

/// Parses an index; the error names the entry and field that is wrong.
pub fn parse(json: &str) -> Result<Vec<Entry>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("index is not JSON: {e}"))?;
    let files = value
        .get("files")
        .and_then(|f| f.as_array())
        .ok_or("index: expected an object with a \"files\" array")?;
    let mut seen = HashMap::new();
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let name = file
                .get("name")
                .and_then(|n| n.as_str())
                .ok_or(format!("files[{i}].name: missing or not a string"))?;
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
}
