//! A module's shape, checked cheaply before it is compiled: an untrusted module must not buy
//! the host unbounded compile time or memory. One pass of wasmparser's reader over the
//! sections, no validation (the compiler validates); each bound names what it limits.

use wasmparser::{Parser, Payload};

use crate::error::HostError;

/// Functions a module may define: ABI v1 needs about forty; `dist/pacer.wasm` has a few hundred.
pub const MAX_FUNCTIONS: u64 = 10_000;
/// Bytes of one function body: compile time grows faster than linearly within a function.
pub const MAX_FUNCTION_BODY_BYTES: usize = 128 << 10;
/// Locals one function may declare (wasmparser's own limit is 50,000).
pub const MAX_FUNCTION_LOCALS: u64 = 5_000;
/// Entries of one table, as declared (each costs the host a pointer at instantiation).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000;
/// Tables a module may declare.
pub const MAX_TABLES: u64 = 4;
/// Memories: ABI v1 modules have one, `memory`.
pub const MAX_MEMORIES: u64 = 1;
/// Globals a module may declare.
pub const MAX_GLOBALS: u64 = 10_000;

/// Checks `bytes` (at most `max_module_bytes` of them) against the bounds above, and its
/// memory's declared size against `memory_limit_bytes`.
pub fn check(
    bytes: &[u8],
    max_module_bytes: usize,
    memory_limit_bytes: usize,
) -> Result<(), HostError> {
    if bytes.len() > max_module_bytes {
        return Err(HostError::Incompatible(format!(
            "it is {} bytes; this host loads modules of at most {max_module_bytes} bytes \
             (SandboxOptions::max_module_bytes)",
            bytes.len()
        )));
    }
    let malformed = |e: wasmparser::BinaryReaderError| HostError::NotWasm(e.to_string());
    let too_many = |what: &str, count: u64, max: u64| {
        HostError::Incompatible(format!(
            "it declares {count} {what}; this host allows at most {max}"
        ))
    };
    let (mut tables, mut memories) = (0u64, 0u64);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::FunctionSection(reader) if u64::from(reader.count()) > MAX_FUNCTIONS => {
                return Err(too_many("functions", reader.count().into(), MAX_FUNCTIONS));
            }
            Payload::GlobalSection(reader) if u64::from(reader.count()) > MAX_GLOBALS => {
                return Err(too_many("globals", reader.count().into(), MAX_GLOBALS));
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(malformed)?;
                    tables += 1;
                    // Growth at run time is capped by the store (`table_elements`).
                    if table.ty.initial > MAX_TABLE_ELEMENTS {
                        return Err(too_many(
                            "table elements",
                            table.ty.initial,
                            MAX_TABLE_ELEMENTS,
                        ));
                    }
                }
                if tables > MAX_TABLES {
                    return Err(too_many("tables", tables, MAX_TABLES));
                }
            }
            Payload::MemorySection(reader) => {
                memories += u64::from(reader.count());
                if memories > MAX_MEMORIES {
                    return Err(too_many("memories", memories, MAX_MEMORIES));
                }
                for memory in reader {
                    let memory = memory.map_err(malformed)?;
                    let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                    let bytes = memory.initial.saturating_mul(page);
                    if bytes > memory_limit_bytes as u64 {
                        return Err(HostError::Incompatible(format!(
                            "its memory starts at {} pages ({bytes} bytes); this host allows at \
                             most {memory_limit_bytes} bytes (SandboxOptions::memory_limit_bytes)",
                            memory.initial
                        )));
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len();
                if size > MAX_FUNCTION_BODY_BYTES {
                    return Err(HostError::Incompatible(format!(
                        "a function body is {size} bytes; this host allows at most \
                         {MAX_FUNCTION_BODY_BYTES}"
                    )));
                }
                let mut locals = 0u64;
                for group in body.get_locals_reader().map_err(malformed)? {
                    let (count, _) = group.map_err(malformed)?;
                    locals = locals.saturating_add(u64::from(count));
                }
                if locals > MAX_FUNCTION_LOCALS {
                    return Err(too_many(
                        "locals in one function",
                        locals,
                        MAX_FUNCTION_LOCALS,
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
