"""A Python host for the pacer policy module (ABI v1, ABI.md), on PyPI's wasmtime.

Run: make python-example (or: python3 embed.py ../../dist/pacer.wasm in a venv with
requirements.txt). It links the five imports to a clock this script moves, configures one
limiter, and checks a few decisions against the contract; it exits non-zero on a mismatch.
"""

import json
import os
import sys

from wasmtime import Engine, FuncType, Linker, Module, Store, ValType

SECOND = 1_000_000_000
now = [1_000 * SECOND]  # the host's clock, in ns; the module only reads it
i32, i64 = ValType.i32(), ValType.i64()

engine = Engine()
store = Store(engine)
module = Module.from_file(engine, sys.argv[1] if len(sys.argv) > 1 else "dist/pacer.wasm")
linker = Linker(engine)
linker.define_func("pacer", "now_ns", FuncType([], [i64]), lambda: now[0])
linker.define_func("pacer", "memory_used", FuncType([], [i64]), lambda: -1)  # unknown
linker.define_func("pacer", "memory_limit", FuncType([], [i64]), lambda: 0)


def random_fill(caller, ptr, length):
    caller["memory"].write(caller, os.urandom(length), ptr)


def log(caller, level, ptr, length):
    text = bytes(caller["memory"].read(caller, ptr, ptr + length)).decode("utf-8", "replace")
    print(f"pacer[{level}] {text}")


linker.define_func("pacer", "random_fill", FuncType([i32, i32], []), random_fill, access_caller=True)
linker.define_func("pacer", "log", FuncType([i32, i32, i32], []), log, access_caller=True)
pacer = linker.instantiate(store, module).exports(store)
memory = pacer["memory"]


def call(name, *args):
    return pacer[name](store, *args)


def configure(config):
    data = json.dumps(config).encode()
    ptr = call("pacer_alloc", len(data))
    memory.write(store, data, ptr)
    code = call("pacer_configure", ptr, len(data))
    call("pacer_dealloc", ptr, len(data))
    if code != 0:
        start = call("pacer_last_error_ptr")
        message = bytes(memory.read(store, start, start + call("pacer_last_error_len")))
        raise ValueError(f"pacer_configure: {code}: {message.decode()}")


def expect(what, got, wanted):
    print(f"{what}: {got}")
    if got != wanted:
        sys.exit(f"{what}: expected {wanted}, got {got}")


expect("abi version", call("pacer_abi_version"), 1)
try:
    configure({"limiters": [{"name": "api", "tokens_per_hour": 3600, "burst": 0}]})
    sys.exit("a burst of 0 was accepted")
except ValueError as error:
    print(f"refused as it should be: {error}")
# One a second, burst 2, full; no jitter, so every answer is exact.
configure({"limiters": [{"name": "api", "tokens_per_hour": 3600, "burst": 2, "initial": 1}],
           "jitter": {"strategy": "none"}})
expect("try_acquire", call("pacer_try_acquire", 0, 1), 0)
expect("next_delay", call("pacer_next_delay_ns", 0, 1, 0), 0)
expect("next_delay, bucket empty", call("pacer_next_delay_ns", 0, 1, 0), SECOND)
expect("on_response 429, Retry-After 5 s", call("pacer_on_response", 0, 429, 5000), 0)
expect("try_acquire while paused", call("pacer_try_acquire", 0, 1), 5 * SECOND)
now[0] += 5 * SECOND
expect("try_acquire after the pause", call("pacer_try_acquire", 0, 1), 0)
expect("unknown limiter", call("pacer_try_acquire", 9, 1), -3)
print("the Python host agrees with the contract")
