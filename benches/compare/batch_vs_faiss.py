"""Exact batch search, strata next to faiss's IndexFlatL2, same data, same run.

    python benches/compare/batch_vs_faiss.py [--rows 100000] [--dims 384] [--queries 1000]
        [--strata target/release/strata]

(in the project's venv after `make python`, with `pip install faiss-cpu`). Measures 1000
exact k=10 queries over 100k × 384 (l2) three ways: faiss `IndexFlatL2.search` on the array
in memory (index build excluded), strata in-process through the Python package (one
`query` call with the 2-D array, `exact=True`, ids only; store open excluded), and the
`strata` CLI (`query --npy --exact --json`: process start, store open, search and
printing). Prints seconds and the ratios against faiss, and how many of strata's ids equal
faiss's (ties and float rounding can swap equal-distance neighbours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
import faiss  # noqa: E402
import strata  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dims", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    target = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/strata-target")
    p.add_argument("--strata", default=os.path.join(target, "release", "strata"))
    a = p.parse_args()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((a.rows, a.dims)).astype(np.float32)
    q = rng.standard_normal((a.queries, a.dims)).astype(np.float32)
    print(f"faiss {faiss.__version__}, {os.cpu_count()} cpus, faiss threads {faiss.omp_get_max_threads()}")

    index = faiss.IndexFlatL2(a.dims)
    index.add(x)
    t = time.perf_counter()
    _, fi = index.search(q, a.k)
    t_faiss = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "store")
        client = strata.PersistentClient(path=path)
        col = client.create_collection("vectors", configuration={"hnsw": {"space": "l2"}})
        ids = [f"r{i:07d}" for i in range(a.rows)]
        for s in range(0, a.rows, 10_000):
            col.add(ids=ids[s : s + 10_000], embeddings=x[s : s + 10_000])
        col.compact()
        del col, client
        reader = strata.PersistentClient(path=path, read_only=True)
        col = reader.get_collection("vectors")
        col.query(query_embeddings=q[:2], n_results=a.k, include=[], exact=True)
        t = time.perf_counter()
        res = col.query(query_embeddings=q, n_results=a.k, include=[], exact=True)
        t_inproc = time.perf_counter() - t
        del col, reader

        qfile = os.path.join(d, "q.npy")
        np.save(qfile, q)
        cmd = [a.strata, "--store", path, "--json", "query", "vectors", "--npy", qfile,
               "--k", str(a.k), "--exact", "--include", "ids"]
        subprocess.run(cmd, check=True, capture_output=True)  # page cache warm, as faiss's array is
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        t_cli = time.perf_counter() - t
        cli_ids = [[r["id"] for r in json.loads(line)["results"]] for line in out.splitlines()]

    want = [[f"r{j:07d}" for j in row] for row in fi]
    same_inproc = sum(a_ == b_ for a_, b_ in zip(res["ids"], want))
    same_cli = sum(a_ == b_ for a_, b_ in zip(cli_ids, want))
    print(f"{a.queries} exact k={a.k} queries over {a.rows} x {a.dims} (l2)")
    print(f"  faiss IndexFlatL2.search     {t_faiss:8.3f} s")
    print(f"  strata in-process (Python)   {t_inproc:8.3f} s   faiss/strata {t_faiss / t_inproc:5.2f}")
    print(f"  strata CLI (process + open)  {t_cli:8.3f} s   faiss/strata {t_faiss / t_cli:5.2f}")
    print(f"  queries whose ids equal faiss's: in-process {same_inproc}/{a.queries}, CLI {same_cli}/{a.queries}")


if __name__ == "__main__":
    main()
