#!/usr/bin/env python3
"""Lists the longest functions of the workspace's production Rust code, and fails when one
runs over the limit without a reason.

A function counts as production code unless it sits in a `tests/`, `benches/`, `examples/`
or `fuzz/` folder or in the file's `#[cfg(test)] mod`. A reason is a comment line
starting with `// Long:` within the three lines above the function's signature.

Usage: fn_lengths.py [--limit N] [--top K] [ROOT]
"""
import argparse
import os
import re
import sys

SIGNATURE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
SKIP_DIRS = {"tests", "benches", "examples", "fuzz", "target", ".git", "python"}


def test_module_start(lines):
    """The index of the file's `#[cfg(test)] mod ...` (a test-only function does not count)."""
    for i, line in enumerate(lines[:-1]):
        if line.startswith("#[cfg(test)]") and re.match(r"(pub(\([^)]*\))? )?mod ", lines[i + 1]):
            return i
    return len(lines)


def functions(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    cut = test_module_start(lines)
    i = 0
    while i < cut:
        m = SIGNATURE.match(lines[i])
        if not m:
            i += 1
            continue
        start, depth, opened, j = i, 0, False, i
        while j < len(lines):
            code = re.sub(r"'(\\.|[^'\\])'", "''", lines[j])
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code).split("//")[0]
            if not opened and ";" in code and "{" not in code:
                break  # a declaration without a body (trait method)
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                break
            j += 1
        if opened:
            reason = any(l.strip().startswith("// Long:") for l in lines[max(0, start - 3):start])
            yield m.group(6), start + 1, j - start + 1, reason
        i = j + 1 if opened else i + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("root", nargs="?", default=".")
    args = ap.parse_args()
    found = []
    for dirpath, dirnames, filenames in os.walk(args.root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                for fn, line, length, reason in functions(path):
                    found.append((length, os.path.relpath(path, args.root), line, fn, reason))
    found.sort(reverse=True)
    for length, path, line, fn, reason in found[: args.top]:
        print(f"{length:5} {path}:{line} {fn}{'  (reason given)' if reason else ''}")
    over = [f for f in found if f[0] > args.limit and not f[4]]
    for length, path, line, fn, _ in over:
        print(f"error: {path}:{line} fn {fn} has {length} lines (limit {args.limit}) and no `// Long:` reason")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
