#!/usr/bin/env python3
"""Checks the Architecture Invariant lines of ARCHITECTURE.md; CI fails when one breaks.

Each check has a name; ARCHITECTURE.md names the check after each invariant, and this
script fails when an invariant line names no known check, so the two cannot drift apart.

Usage: invariants.py [NAME ...]   (default: every check)
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# File-system access: the std items, and the crates that open or map files.
FS = re.compile(r"\bstd::fs\b|\bfs::[a-z_]+\(|\bFile::(open|create)\b|\bOpenOptions\b|\bmemmap2\b|\bMmap::map\b|\bfs4::")
# Any I/O beyond memory: files, sockets, processes, the environment, async runtimes.
IO = re.compile(FS.pattern + r"|\bstd::net\b|\bstd::process::Command\b|\bstd::env::var|\btokio\b|\bstd::io::stdin\b")


def production_lines(path):
    """The lines of a Rust file before its `#[cfg(test)] mod`, comments dropped (a test-only
    function elsewhere in the file still counts as production code here)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    end = next(
        (i for i, l in enumerate(lines[:-1])
         if l.startswith("#[cfg(test)]") and re.match(r"(pub(\([^)]*\))? )?mod ", lines[i + 1])),
        len(lines),
    )
    out = []
    for number, line in enumerate(lines[:end], 1):
        code = line.split("//")[0]
        if code.strip():
            out.append((number, code))
    return out


def rust_files(*dirs):
    for d in dirs:
        for dirpath, _, names in os.walk(os.path.join(ROOT, d)):
            for name in sorted(names):
                if name.endswith(".rs"):
                    yield os.path.join(dirpath, name)


def grep(pattern, dirs, what):
    problems = []
    for path in rust_files(*dirs):
        for number, code in production_lines(path):
            m = pattern.search(code)
            if m:
                rel = os.path.relpath(path, ROOT)
                problems.append(f"{rel}:{number}: {what}: `{m.group(0)}`")
    return problems


def check_fs_only_in_storage():
    """Only the storage layer touches the file system: engine/src and tools/pipeline/src do
    no file I/O of their own."""
    return grep(FS, ["engine/src", "tools/pipeline/src"], "file-system access outside engine/storage")


def check_formats_stream_no_io():
    """formats and stream are pure: no files, sockets, processes, environment or runtime."""
    return grep(IO, ["formats/src", "stream/src"], "I/O in a pure crate")


def tree(package, *flags):
    cmd = ["cargo", "tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none", *flags]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def forbid(package, names, flags=(), why=""):
    deps = tree(package, *flags)
    return [f"{package}{' ' + ' '.join(flags) if flags else ''} depends on {n}{why}" for n in names if n in deps]


def check_stream_lambda_light():
    """The stream Lambda links neither RocksDB nor clap nor the engine nor the Chroma reader nor the AWS SDK."""
    return forbid(
        "strata-pipeline",
        ["librocksdb-sys", "rocksdb", "clap", "strata-engine", "strata-chroma", "rusqlite", "aws-sdk-dynamodb", "aws-config"],
        ("--no-default-features",),
        " (the stream Lambda's build)",
    )


def check_layering():
    """Dependencies flow one way: formats at the bottom, engine and stream never on each other,
    the storage layer on no other strata crate and without RocksDB."""
    problems = []
    problems += forbid("strata-formats", ["strata-engine", "strata-stream", "strata-storage", "rocksdb"])
    problems += forbid("strata-storage", ["strata-engine", "strata-stream", "strata-formats", "rocksdb", "librocksdb-sys"])
    problems += forbid("strata-engine", ["strata-stream"])
    problems += forbid("strata-stream", ["strata-engine", "rocksdb", "librocksdb-sys", "strata-storage"])
    return problems


def check_msrv():
    """No dependency declares a rust-version newer than the workspace's (clippy's
    incompatible_msrv lint checks our own use of the standard library against it)."""
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
    )

    def version(s):
        parts = [int(x) for x in s.split(".")]
        return tuple(parts + [0] * (3 - len(parts)))

    ours = {p["name"]: p["rust_version"] for p in meta["packages"] if p["source"] is None}
    msrv = max(version(v) for v in ours.values() if v)
    return [
        f"{p['name']} {p['version']} needs Rust {p['rust_version']}, newer than the workspace's {'.'.join(map(str, msrv))}"
        for p in meta["packages"]
        if p.get("rust_version") and version(p["rust_version"]) > msrv
    ] + [f"{name} declares no rust-version" for name, v in ours.items() if not v]


def check_module_docs():
    """Every module starts with a `//!` comment saying its job."""
    problems = []
    dirs = [d for d in ["src", "formats/src", "engine/src", "engine/storage/src", "stream/src", "tools", "python/src"] if os.path.isdir(os.path.join(ROOT, d))]
    for path in rust_files(*dirs):
        rel = os.path.relpath(path, ROOT)
        if "/tests/" in rel or "/benches/" in rel or "/examples/" in rel:
            continue
        with open(path, encoding="utf-8") as f:
            first = next((l for l in f if l.strip() and not l.startswith("#!")), "")
        if not first.startswith("//!"):
            problems.append(f"{rel}: the module does not start with a `//!` doc comment")
    return problems


def check_function_length():
    """No production function runs over 100 lines without a `// Long:` reason above it."""
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, ".ci", "fn_lengths.py"), "--top", "0", ROOT],
        capture_output=True, text=True,
    )
    return [l for l in out.stdout.splitlines() if l.startswith("error:")]


def check_no_import_cycles():
    """engine/src's modules import each other without a cycle (a module's `crate::x` and
    `super::x` paths, comments and test modules left out)."""
    src = os.path.join(ROOT, "engine", "src")
    graph = {}
    for path in rust_files("engine/src"):
        rel = os.path.relpath(path, src)
        module = rel.split(os.sep)[0].removesuffix(".rs")
        code = " ".join(c for _, c in production_lines(path))
        deps = set(re.findall(r"\bcrate::([a-z_]+)", code))
        if os.sep not in rel:
            deps |= set(re.findall(r"\bsuper::([a-z_]+)", code))
        graph.setdefault(module, set()).update(d for d in deps if d != module)
    modules = set(graph)
    state = {}
    cycles = []

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m] & modules):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [])
    return [f"import cycle in engine/src: {c}" for c in cycles]


def check_failpoints_test_only():
    """Failpoints cost nothing outside tests: the `fail` crate is linked only under the
    `failpoints` feature, and production code reaches it only through `failpoint!` or code
    under `#[cfg(feature = "failpoints")]`."""
    problems = []
    problems += forbid("strata-engine", ["fail"], why=" (failpoints outside the `failpoints` feature)")
    problems += forbid("strata-storage", ["fail"], why=" (failpoints outside the `failpoints` feature)")
    for path in rust_files("engine/src", "engine/storage/src"):
        if path.endswith("failpoints.rs"):
            continue
        lines = production_lines(path)
        for i, (number, code) in enumerate(lines):
            if re.search(r"(?<![\w$:])fail::", code):
                window = "\n".join(c for _, c in lines[max(0, i - 2):i])
                if 'cfg(feature = "failpoints")' not in window:
                    problems.append(f"{os.path.relpath(path, ROOT)}:{number}: `fail::` outside `#[cfg(feature = \"failpoints\")]`")
    return problems


CHECKS = {
    "failpoints-test-only": check_failpoints_test_only,
    "no-import-cycles": check_no_import_cycles,
    "fs-only-in-storage": check_fs_only_in_storage,
    "formats-stream-no-io": check_formats_stream_no_io,
    "stream-lambda-light": check_stream_lambda_light,
    "layering": check_layering,
    "msrv": check_msrv,
    "module-docs": check_module_docs,
    "function-length": check_function_length,
}


def documented_checks():
    """Each Architecture Invariant item of ARCHITECTURE.md (a list item that may run over
    several lines) and the check it cites as `(check: NAME)`."""
    with open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8") as f:
        text = f.read()
    items = re.findall(r"^- \*\*Architecture Invariant:\*\*.*?(?=^- |^\s*$|\Z)", text, re.M | re.S)
    names = [re.search(r"\(check: `?([a-z-]+)`?\)", item) for item in items]
    return [" ".join(item.split()) for item in items], names


def main():
    lines, names = documented_checks()
    failed = False
    for line, m in zip(lines, names):
        if not m or m.group(1) not in CHECKS:
            print(f"ARCHITECTURE.md: invariant without a known check: {line.strip()[:120]}")
            failed = True
    cited = {m.group(1) for m in names if m}
    for name in CHECKS:
        if name not in cited:
            print(f"check {name} is cited by no Architecture Invariant line of ARCHITECTURE.md")
            failed = True
    for name in sys.argv[1:] or CHECKS:
        problems = CHECKS[name]()
        print(f"{'ok  ' if not problems else 'FAIL'} {name}: {CHECKS[name].__doc__.split(chr(10))[0]}")
        for p in problems:
            print(f"     {p}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
