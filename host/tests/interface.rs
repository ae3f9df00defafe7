//! The core's export table (`pacer::interface`) against the module `make wasm` built: every
//! export it lists is there with its exact signature, the module exports nothing else of
//! pacer's, `pacer_features` announces exactly the optional ones, and the host binds them.

mod common;

use common::{module_path, real_module, runtime};
use pacer::interface::{self, FEATURES, ValueType};
use pacer_host::{Policy, ScriptedEnvironment};
use wasmtime::{Engine, ExternType, Module, ValType};

fn value_type(ty: &ValType) -> ValueType {
    match ty {
        ValType::I32 => ValueType::I32,
        ValType::I64 => ValueType::I64,
        other => panic!("a {other} crosses the ABI"),
    }
}

#[test]
fn the_table_is_what_the_module_exports() {
    let module = Module::from_file(&Engine::default(), module_path()).expect("module compiles");
    let mut seen = Vec::new();
    for export in module.exports() {
        let name = export.name();
        let ExternType::Func(ty) = export.ty() else {
            continue;
        };
        if !name.starts_with("pacer_") {
            continue;
        }
        let listed = interface::export(name)
            .unwrap_or_else(|| panic!("the module exports `{name}`, which the table lacks"));
        let params: Vec<_> = ty.params().map(|t| value_type(&t)).collect();
        let results: Vec<_> = ty.results().map(|t| value_type(&t)).collect();
        assert_eq!(params, listed.params, "{name}'s parameters");
        assert_eq!(results, listed.results, "{name}'s results");
        seen.push(name.to_string());
    }
    for listed in interface::EXPORTS {
        assert!(
            seen.iter().any(|name| name == listed.name),
            "the table lists `{}`, which the module lacks",
            listed.name
        );
    }
    let mut imports: Vec<_> = module
        .imports()
        .map(|i| (i.module().to_string(), i.name().to_string()))
        .collect();
    let mut listed: Vec<_> = interface::IMPORTS
        .iter()
        .map(|f| (interface::IMPORT_MODULE.to_string(), f.name.to_string()))
        .collect();
    imports.sort();
    listed.sort();
    assert_eq!(imports, listed);
}

#[test]
fn the_host_sees_every_feature_the_core_announces() {
    let runtime = runtime();
    let module = real_module(&runtime);
    assert_eq!(module.info.abi_version, interface::ABI_VERSION);
    assert_eq!(module.info.features, FEATURES);
    // The optional exports are bound and used: a cancel through the handle hands back.
    let mut policy = Policy::new(&module, Box::new(ScriptedEnvironment::new())).expect("instance");
    policy
        .configure(r#"{"limiters":[{"name":"a","tokens_per_hour":3600,"burst":1,"initial":1}]}"#)
        .expect("config");
    assert_eq!(
        policy.limiter_index("a"),
        Some(0),
        "an embedder's lookup by name"
    );
    assert_eq!(policy.limiter_index("b"), None);
    assert_eq!(policy.reserve(0, 1).expect("reserve"), 0);
    let due_in = policy.reserve(0, 1).expect("reserve");
    assert_eq!(due_in, 1_000_000_000);
    let due_at = policy.now_ns() + 1_000_000_000;
    assert!(
        !policy.cancel(0, 1, due_at - 1).expect("cancel"),
        "not that slot"
    );
    assert!(policy.cancel(0, 1, due_at).expect("cancel"));
    assert_eq!(
        policy.reserve(0, 1).expect("reserve"),
        due_in,
        "the slot is free again"
    );
}
