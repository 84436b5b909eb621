"""Make the import benchmark's Chroma persist directory (not run in CI).

A `words`-like collection of N records x D dims (default 100 000 x 1536, l2) with the
receipt word metadata of seed §3.3 (identity, geometry, neighbours, labels), written by real
chromadb (1.5.x) through `PersistentClient`, in batches, so that most vectors end up in the
HNSW files and the last batch's operations stay in the log.

    /var/tmp/chroma-venv/bin/python tools/chroma/bench/make_bench_dir.py /var/tmp/chroma-bench [N] [D]
"""

import os
import shutil
import sys
import time
import uuid

import chromadb
import numpy as np

LABELS = ["MERCHANT_NAME", "DATE", "TIME", "PRODUCT_NAME", "LINE_TOTAL", "SUBTOTAL", "TAX", "GRAND_TOTAL"]
WORDS = ["TOTAL", "MILK", "2.99", "VISA", "THANK", "YOU", "STORE", "#1234", "12/01/2025", "QTY"]


def metadata(rng, image_id, receipt, line, word, text):
    md = {
        "image_id": image_id,
        "receipt_id": receipt,
        "line_id": line,
        "word_id": word,
        "source": "openai_embedding_batch",
        "text": text,
        "x": float(rng.random()),
        "y": float(rng.random()),
        "width": float(rng.random() * 0.2),
        "height": float(rng.random() * 0.05),
        "confidence": float(0.5 + rng.random() / 2),
        "left": WORDS[rng.integers(len(WORDS))],
        "right": "<EDGE>",
        "merchant_name": "Sprouts Farmers Market",
        "label_status": "unvalidated",
    }
    if rng.random() < 0.3:
        md["label_status"] = "validated"
        md["valid_labels_array"] = sorted({LABELS[i] for i in rng.integers(len(LABELS), size=2)})
        md["label_validated_at"] = "2025-12-01T10:00:00+00:00"
    elif rng.random() < 0.2:
        md["label_status"] = "auto_suggested"
        md["label_confidence"] = float(rng.random())
        md["label_proposed_by"] = "llm"
    return md


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    dims = int(sys.argv[3]) if len(sys.argv) > 3 else 1536
    if os.path.exists(path):
        shutil.rmtree(path)
    rng = np.random.default_rng(12)
    client = chromadb.PersistentClient(path=path)
    col = client.create_collection("words", metadata={"hnsw:space": "l2"})
    batch = min(5000, client.get_max_batch_size())
    start = time.time()
    i = 0
    receipt = 0
    while i < n:
        ids, docs, mds = [], [], []
        m = min(batch, n - i)
        while len(ids) < m:
            receipt += 1
            image_id = str(uuid.UUID(int=int(rng.integers(1 << 62)) << 64 | receipt))
            for line in range(1, 11):
                for word in range(1, 6):
                    if len(ids) == m:
                        break
                    text = WORDS[rng.integers(len(WORDS))]
                    ids.append(f"IMAGE#{image_id}#RECEIPT#{receipt:05d}#LINE#{line:05d}#WORD#{word:05d}")
                    docs.append(text)
                    mds.append(metadata(rng, image_id, receipt, line, word, text))
        emb = rng.standard_normal((m, dims), dtype=np.float32)
        col.add(ids=ids, embeddings=emb, documents=docs, metadatas=mds)
        i += m
        print(f"{i} records, {time.time() - start:.0f} s", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
