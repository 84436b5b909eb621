"""Python-level benchmark: strata next to chromadb, same data, same run.

    python python/bench/bench.py [--rows 10000] [--dims 384] [--rust PATH]

Measures, for each client (chromadb only where it is installed): add and upsert throughput
(batches of 1000), single-query latency (median of one-at-a-time queries, n_results=10,
Chroma's default include), a batch of 64 queries in one call, and a filtered query
(`image_id` and `receipt_id`, 25 rows selected). Then the binding's overhead: the same
single queries on the same compacted store through Python (a read-only client) and through
the engine in Rust (`examples/query_latency.rs`, built with `cargo build --release
--example query_latency` unless --rust names the binary). Every figure is from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
import strata  # noqa: E402

try:
    import chromadb  # noqa: E402
except ImportError:
    chromadb = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data(rows, dims, seed=7):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, dims)).astype(np.float32)
    x = centers[rng.integers(0, 64, rows)] + 0.3 * rng.standard_normal((rows, dims)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [f"IMAGE#{i // 100:06d}#RECEIPT#{(i // 25) % 4:05d}#LINE#{i % 25:05d}" for i in range(rows)]
    metas = [{"image_id": f"img{i // 100:06d}", "receipt_id": (i // 25) % 4, "line_id": i % 25} for i in range(rows)]
    docs = [f"line {i}" for i in range(rows)]
    return ids, x, metas, docs


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def median_ms(f, args_list):
    for a in args_list[:5]:
        f(a)
    times = []
    for a in args_list:
        t, _ = timed(lambda: f(a))
        times.append(t * 1e3)
    return statistics.median(times)


def bench_client(name, client, ids, x, metas, docs, queries, compact):
    col = client.create_collection("bench")
    n = len(ids)
    t_add, _ = timed(lambda: [col.add(ids=ids[i:i + 1000], embeddings=x[i:i + 1000], metadatas=metas[i:i + 1000],
                                      documents=docs[i:i + 1000]) for i in range(0, n, 1000)])
    t_up, _ = timed(lambda: [col.upsert(ids=ids[i:i + 1000], embeddings=x[i:i + 1000], metadatas=metas[i:i + 1000],
                                        documents=docs[i:i + 1000]) for i in range(0, n, 1000)])
    if compact:
        col.compact()
    single = median_ms(lambda q: col.query(query_embeddings=q[None, :], n_results=10), list(queries))
    batch = queries[:64]
    t_batch = min(timed(lambda: col.query(query_embeddings=batch, n_results=10))[0] for _ in range(3)) * 1e3
    where = {"$and": [{"image_id": "img000042"}, {"receipt_id": 1}]}
    filtered = median_ms(lambda q: col.query(query_embeddings=q[None, :], n_results=10, where=where), list(queries))
    return {
        "client": name,
        "add rows/s": n / t_add,
        "upsert rows/s": n / t_up,
        "query ms (median)": single,
        "batch of 64 ms": t_batch,
        "filtered query ms (median)": filtered,
    }


def rust_binary(path):
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/strata-target")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "query_latency"], cwd=ROOT, check=True)
    return os.path.join(target, "release", "examples", "query_latency")


def overhead(store, queries, dims, rust, where, rounds=3):
    """Median single-query latency in Rust and through Python, on the same store and
    queries; the two alternate for `rounds` rounds and each side keeps its best round (the
    machine is shared: the best round is the least disturbed one)."""
    qfile = os.path.join(store, "..", "queries.f32")
    queries.astype("<f4").tofile(qfile)
    cmd = [rust, store, "bench", qfile, str(dims), "10"] + ([json.dumps(where)] if where else [])
    reader = strata.PersistentClient(store, read_only=True)
    col = reader.get_collection("bench")
    rust_best, py_best = float("inf"), float("inf")
    for _ in range(rounds):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rust_best = min(rust_best, float(out.strip().split("median_us=")[1]))
        for q in queries[:10]:
            col.query(query_embeddings=q[None, :], n_results=10, where=where)
        times = []
        for _ in range(5):
            for q in queries:
                t = time.perf_counter()
                col.query(query_embeddings=q[None, :], n_results=10, where=where)
                times.append((time.perf_counter() - t) * 1e6)
        py_best = min(py_best, statistics.median(times))
    reader.close()
    return rust_best, py_best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rust", help="path of the built query_latency example")
    args = ap.parse_args()
    ids, x, metas, docs = data(args.rows, args.dims)
    queries = data(args.queries, args.dims, seed=11)[1]
    tmp = tempfile.mkdtemp(prefix="strata-bench-")
    results = []
    try:
        s = strata.PersistentClient(os.path.join(tmp, "strata"))
        results.append(bench_client("strata", s, ids, x, metas, docs, queries, compact=True))
        s.close()
        if chromadb is not None:
            c = chromadb.PersistentClient(os.path.join(tmp, "chroma"))
            results.append(bench_client(f"chromadb {chromadb.__version__}", c, ids, x, metas, docs, queries, compact=False))
        else:
            print("chromadb is not installed: strata only", file=sys.stderr)
        keys = list(results[0])
        print(f"{args.rows} rows x {args.dims} dims, unit-norm, 64 clusters; n_results=10")
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for r in results:
            print("| " + " | ".join(r[k] if isinstance(r[k], str) else f"{r[k]:,.3f}" if r[k] < 100 else f"{r[k]:,.0f}" for k in keys) + " |")
        rust = rust_binary(args.rust)
        print("\nbinding overhead (same store, same queries, read-only; median of 5 x queries, best of 3 alternating rounds):")
        for label, where in [("unfiltered", None), ("filtered", {"$and": [{"image_id": "img000042"}, {"receipt_id": 1}]})]:
            r_us, p_us = overhead(os.path.join(tmp, "strata"), queries, args.dims, rust, where)
            print(f"  {label}: Rust {r_us:.1f} us, Python {p_us:.1f} us, overhead {p_us - r_us:+.1f} us ({(p_us / r_us - 1) * 100:+.1f} %)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
