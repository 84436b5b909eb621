"""The receipts system's typical calls, on strata through Chroma's API.

The code is what the system's Python writes against ``chromadb.PersistentClient``; only the
import changed. Run it (after ``make python``)::

    /var/tmp/strata-venv/bin/python examples/python/receipts.py [STORE_DIR]

It stores two receipts' lines and words with unit-norm embeddings (Chroma's default
squared-L2 distance, so similarity = 1 - d/2 = cosine similarity), queries a receipt's
words, upserts a receipt's lines, updates labels, deletes a receipt, and reads the store
with a read-only client.
"""

import sys
import tempfile
import zlib

import numpy as np

import strata as chromadb  # the one changed line: was `import chromadb`

DIMS = 64
IMAGE = "3f0c2a8e-7d41-4c55-9b8a-2a6f0e9d1c17"


def embed(texts):
    """Stand-in for the OpenAI embedding call: deterministic unit vectors."""
    out = []
    for t in texts:
        rng = np.random.default_rng(zlib.crc32(t.encode()))
        v = rng.standard_normal(DIMS).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def line_id(receipt_id, line):
    return f"IMAGE#{IMAGE}#RECEIPT#{receipt_id:05d}#LINE#{line:05d}"


def word_id(receipt_id, line, word):
    return f"{line_id(receipt_id, line)}#WORD#{word:05d}"


RECEIPTS = {
    1: [["WHOLE", "FOODS", "MARKET"], ["BANANAS", "0.79"], ["TOTAL", "12.99"]],
    2: [["TRADER", "JOE'S"], ["COFFEE", "8.99"], ["SUBTOTAL", "8.99"], ["TOTAL", "9.71"]],
}


def upsert_receipt_lines(lines, receipt_id):
    """The embedding producer's upsert of one receipt's lines."""
    rows = RECEIPTS[receipt_id]
    texts = [" ".join(r) for r in rows]
    lines.upsert(
        ids=[line_id(receipt_id, i + 1) for i in range(len(rows))],
        embeddings=embed(texts),
        documents=texts,
        metadatas=[
            {"image_id": IMAGE, "receipt_id": receipt_id, "line_id": i + 1, "text": t,
             "merchant_name": "Whole Foods" if receipt_id == 1 else "Trader Joe's"}
            for i, t in enumerate(texts)
        ],
    )


def upsert_receipt_words(words, receipt_id):
    ids, texts, metas = [], [], []
    for li, row in enumerate(RECEIPTS[receipt_id], start=1):
        for wi, w in enumerate(row, start=1):
            ids.append(word_id(receipt_id, li, wi))
            texts.append(w)
            metas.append({"image_id": IMAGE, "receipt_id": receipt_id, "line_id": li,
                          "word_id": wi, "text": w, "label_status": "unvalidated"})
    words.upsert(ids=ids, embeddings=embed(texts), documents=texts, metadatas=metas)


def similar_words_in_receipt(words, text, receipt_id, n=3):
    """The label evaluator's query: a receipt's words nearest to a text, with similarity."""
    r = words.query(
        query_embeddings=embed([text]),
        n_results=n,
        where={"$and": [{"image_id": IMAGE}, {"receipt_id": receipt_id}]},
        include=["metadatas", "distances"],
    )
    return [(m["text"], round(max(0.0, 1 - d / 2), 3))
            for m, d in zip(r["metadatas"][0], r["distances"][0])]


def delete_receipt(collection, receipt_id):
    """A RECEIPT removal: every row of the receipt, by a metadata filter."""
    collection.delete(where={"$and": [{"image_id": IMAGE}, {"receipt_id": receipt_id}]})


def main(path):
    client = chromadb.PersistentClient(path=path)
    lines = client.get_or_create_collection("lines")
    words = client.get_or_create_collection("words")
    for rid in RECEIPTS:
        upsert_receipt_lines(lines, rid)
        upsert_receipt_words(words, rid)
    print("lines", lines.count(), "words", words.count())
    print("receipt 2, near 'TOTAL':", similar_words_in_receipt(words, "TOTAL", 2))

    # Label validation: set a label flag, delete a key with None.
    total = word_id(2, 4, 1)
    words.update(ids=[total], metadatas=[{"label_GRAND_TOTAL": True, "label_status": None}])
    print("labelled:", words.get(ids=[total])["metadatas"][0])
    print("validated grand totals:", words.get(where={"label_GRAND_TOTAL": True}, include=[])["ids"])

    # Re-upserting a receipt's lines is idempotent; deleting a receipt removes its rows.
    upsert_receipt_lines(lines, 1)
    delete_receipt(lines, 1)
    delete_receipt(words, 1)
    print("after deleting receipt 1: lines", lines.count(), "words", words.count())

    # A reader (another process, in the system: the MCP server) sees every commit.
    reader = chromadb.PersistentClient(path=path, read_only=True)
    print("reader sees", reader.get_collection("lines").count(), "lines")

    # strata's extras: versions, compaction, verification.
    print("lines versions:", [v["version"] for v in lines.versions()][-3:])
    lines.compact()
    words.compact()
    print("verify:", client.verify()["ok"])
    client.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="strata-receipts-"))
