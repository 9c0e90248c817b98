#!/usr/bin/env python3
"""Split a folded-stack profile (inferno-collapse-perf output of `perf script`) into where the
time goes: JS (JIT code and V8 builtins), Node-API crossings, memcpy/memset, kernel (syscalls,
scheduling), GC, Atomics, the event loop (libuv), Rust work, other. Each sample goes to the
category of its leaf frame (self time), GC first if any frame is the collector's.
usage: classify.py FILE.folded[.gz] ..."""
import gzip
import re
import sys

GC = re.compile(r"Scavenge|MarkCompact|ConcurrentMarking|Sweeper|MarkingVisitor|IncrementalMarking|"
                r"MinorMC|GCTracer|Heap::Collect|Heap::PerformGarbage|MarkingWorklist|BodyDescriptorBase::Iterate")
CATS = [
    ("GC (collector threads and pauses)", None),
    ("memcpy / memset (libc)", re.compile(r"^__mem(move|cpy|set)")),
    ("kernel (syscalls, copies to/from sockets, scheduling)", re.compile(r"_\[k\]$")),
    ("Atomics", re.compile(r"Atomics")),
    ("write barrier (Builtins_RecordWrite)", re.compile(r"RecordWrite")),
    ("Node-API crossings (napi_*, v8impl, API callback, argument reads)",
     re.compile(r"^napi_|v8impl::|CallApiCallback|FunctionCallbackArguments|v8::Value::Is|v8::ArrayBuffer|"
                r"v8::TypedArray|ArrayBufferView|External::Value|NativeBorrowBarrier|v8::Number::Value|"
                r"JSTypedArray::GetBuffer|JSTypedArray::type|HandleScope|v8::Function::Call|"
                r"v8::internal::\(anonymous namespace\)::Invoke|napi::|^trunc$|v8::Context::|Realm::context")),
    ("Rust (storkit native work)", re.compile(r"^storkit_|^<storkit|crc32c|^core::|^alloc::")),
    ("libuv / Node event loop", re.compile(r"^uv_|^uv__|node::|^epoll_|__vdso|clock_gettime|processImmediate")),
    ("JS (JIT code, interpreter, V8 builtins and ICs)",
     re.compile(r"^JS:|^LazyCompile|^Builtins?[_:]|^BytecodeHandler|^Function:|^Stub:|^Eval:|^Script:")),
    ("V8 runtime (compiler, maps, other C++)", re.compile(r"^v8::|^std::")),
    ("libc other (malloc, free, ...)", re.compile(r"^(malloc|_int_|cfree|free|__libc|__errno|__tls)")),
]


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any(GC.search(f) for f in frames):
        return CATS[0][0]
    leaf = frames[-1]
    for name, rx in CATS[1:]:
        if rx.search(leaf):
            return name
    return "other"


def main() -> None:
    for path in sys.argv[1:]:
        tot = 0
        by: dict[str, int] = {}
        opener = gzip.open if path.endswith(".gz") else open
        for line in opener(path, "rt"):
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            c = classify(stack)
            by[c] = by.get(c, 0) + int(n)
            tot += int(n)
        print(f"{path}: total weight {tot} (sample periods)")
        for c, n in sorted(by.items(), key=lambda x: -x[1]):
            print(f"  {100 * n / tot:5.1f}%  {c}")


if __name__ == "__main__":
    main()
