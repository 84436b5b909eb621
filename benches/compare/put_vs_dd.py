"""Durable ingest: `strata put` next to `dd ... conv=fdatasync` writing as many bytes, same
filesystem, same run.

    python benches/compare/put_vs_dd.py [--rows 100000] [--dims 1536] [--runs 3]
        [--dir /var/tmp] [--strata target/release/strata]

(in the project's venv: numpy). Writes the input files once — `vectors.npy` (rows × dims
float32), `ids.txt`, `meta.jsonl` (10 metadata keys per row: strings, ints, floats, a bool)
and `documents.jsonl` (one JSON string per row) — then, `--runs` times: creates a fresh
store, times `strata put words --npy ... --ids ... --metadata ... --documents ...` (process
start, reading and checking the input, encoding, the delta's write and fsync, the commit),
and times `dd if=/dev/zero of=FILE bs=1M count=N conv=fdatasync` for the size of the delta
the put wrote. Prints the medians and the ratio (strata's bytes/s ÷ dd's bytes/s); the
aim is ≥ 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

LABELS = ["MERCHANT_NAME", "DATE", "TOTAL", "TAX", "LINE_TOTAL", "PRODUCT_NAME"]


def write_inputs(d: str, rows: int, dims: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((rows, dims)).astype(np.float32)
    np.save(os.path.join(d, "vectors.npy"), x)
    with open(os.path.join(d, "ids.txt"), "w") as f:
        for i in range(rows):
            f.write(f"IMAGE#{i // 500:06d}#RECEIPT#{i % 500:05d}#WORD#{i:08d}\n")
    with open(os.path.join(d, "meta.jsonl"), "w") as f, open(
        os.path.join(d, "documents.jsonl"), "w"
    ) as g:
        for i in range(rows):
            meta = {
                "image_id": f"{i // 500:06d}-4c2a-9f0e-{i % 97:04d}",
                "receipt_id": i % 500,
                "line_id": i % 40,
                "word_id": i % 12,
                "confidence": round(0.5 + (i % 50) / 100, 3),
                "x": round((i % 1000) / 1000, 4),
                "y": round((i % 733) / 733, 4),
                "label_status": "validated" if i % 3 else "pending",
                "label": LABELS[i % len(LABELS)],
                "is_noise": i % 17 == 0,
            }
            f.write(json.dumps(meta) + "\n")
            g.write(json.dumps(f"word {i} of receipt {i % 500}: 12.99") + "\n")


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dims", type=int, default=1536)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dir", default="/var/tmp")
    target = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/strata-target")
    p.add_argument("--strata", default=os.path.join(target, "release", "strata"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        write_inputs(d, a.rows, a.dims)
        inputs = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{a.rows} rows × {a.dims}, inputs {inputs / 1e6:.0f} MB in {d}")
        puts, dds, sizes = [], [], []
        for run in range(a.runs):
            store = os.path.join(d, "store")
            shutil.rmtree(store, ignore_errors=True)
            s = [a.strata, "--store", store]
            subprocess.run(
                s + ["create", "words", "--dims", str(a.dims), "--metric", "cosine"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            # Written and flushed before the timed runs: the put and dd find the same state.
            subprocess.run(["sync"], check=True)
            put = timed(
                s
                + ["put", "words", "--npy", os.path.join(d, "vectors.npy")]
                + ["--ids", os.path.join(d, "ids.txt")]
                + ["--metadata", os.path.join(d, "meta.jsonl")]
                + ["--documents", os.path.join(d, "documents.jsonl")]
            )
            deltas = os.path.join(store, "deltas")
            size = sum(os.path.getsize(os.path.join(deltas, f)) for f in os.listdir(deltas))
            out = os.path.join(d, "dd.bin")
            subprocess.run(["sync"], check=True)
            mib = -(-size // (1 << 20))
            dd = timed(
                ["dd", "if=/dev/zero", f"of={out}", "bs=1M", f"count={mib}", "conv=fdatasync"]
            )
            dd_bytes = mib << 20
            os.remove(out)
            puts.append(put)
            dds.append(dd * size / dd_bytes)
            sizes.append(size)
            print(
                f"run {run + 1}: put {put:.3f} s ({size / put / 1e6:.0f} MB/s), "
                f"dd {dd:.3f} s for {dd_bytes / 1e6:.0f} MB ({dd_bytes / dd / 1e6:.0f} MB/s)"
            )
        put, dd, size = statistics.median(puts), statistics.median(dds), sizes[0]
        print(
            f"median: strata put {put:.3f} s = {size / put / 1e6:.0f} MB/s, "
            f"{a.rows / put:,.0f} vectors/s; dd {size / dd / 1e6:.0f} MB/s; "
            f"strata ÷ dd = {dd / put:.2f} (aim ≥ 0.5)"
        )


if __name__ == "__main__":
    main()
