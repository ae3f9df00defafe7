//! The hosted decision's shape in the real `dist/pacer.wasm`: `pacer_try_acquire_at` runs the
//! whole decision in its own body and calls nothing but the error recorder.
//!
//! Each call inside the module costs a hosted decision a few ns (a wasm call's prologue, stack
//! and epoch checks). An unrelated change once moved the decision behind an outlined closure
//! and an eager error's drop, and `raw_fixed_time` went from 27 to 45 ns
//! (`cargo bench -p pacer-host --bench hosted`); the benchmark measures, this test holds the
//! shape.

use std::collections::HashMap;
use std::fs;

use wasmparser::{ExternalKind, Operator, Parser, Payload, TypeRef};

mod common;

/// Every call each function makes, by function index (imports first, as wasm numbers them).
struct Calls {
    imports: Vec<String>,
    exports: HashMap<String, u32>,
    /// Callees of each defined function, in order.
    callees: Vec<Vec<u32>>,
}

fn read(bytes: &[u8]) -> Calls {
    let mut calls = Calls {
        imports: Vec::new(),
        exports: HashMap::new(),
        callees: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("dist/pacer.wasm parses") {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.expect("import");
                    if matches!(import.ty, TypeRef::Func(_)) {
                        calls
                            .imports
                            .push(format!("{}.{}", import.module, import.name));
                    }
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.expect("export");
                    if export.kind == ExternalKind::Func {
                        calls.exports.insert(export.name.to_string(), export.index);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut callees = Vec::new();
                let mut operators = body.get_operators_reader().expect("body");
                while !operators.eof() {
                    match operators.read().expect("operator") {
                        Operator::Call { function_index } => callees.push(function_index),
                        Operator::CallIndirect { .. } => callees.push(u32::MAX),
                        _ => {}
                    }
                }
                calls.callees.push(callees);
            }
            _ => {}
        }
    }
    calls
}

impl Calls {
    fn of_export(&self, name: &str) -> &[u32] {
        let index = self.exports[name] as usize;
        &self.callees[index - self.imports.len()]
    }

    fn name(&self, index: u32) -> String {
        match self.imports.get(index as usize) {
            Some(import) => import.clone(),
            None => format!("function {index}"),
        }
    }
}

#[test]
fn the_decision_export_calls_only_its_error_recorder() {
    let bytes = fs::read(common::module_path()).expect("dist/pacer.wasm (run `make wasm`)");
    let calls = read(&bytes);
    let at = calls.of_export("pacer_try_acquire_at");
    assert!(
        at.len() <= 1,
        "pacer_try_acquire_at makes {} calls ({:?}); the decision belongs inline, with one \
         out-of-line call for a failure",
        at.len(),
        at.iter().map(|i| calls.name(*i)).collect::<Vec<_>>()
    );
    // The same decision with the clock read through the import: that import, and the same
    // error recorder.
    let import = calls.of_export("pacer_try_acquire");
    let now_ns = calls
        .imports
        .iter()
        .position(|i| i == "pacer.now_ns")
        .expect("the module imports now_ns") as u32;
    assert!(import.contains(&now_ns), "pacer_try_acquire reads now_ns");
    assert!(
        import.len() <= 2,
        "pacer_try_acquire makes {} calls ({:?})",
        import.len(),
        import.iter().map(|i| calls.name(*i)).collect::<Vec<_>>()
    );
}
