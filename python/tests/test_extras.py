"""strata's extras from Python: versions, rollback, pins, compaction, GC, verify, exact
queries, and the producer API (inbox and run deltas)."""

import os

import numpy as np
import pytest

import strata
from strata.errors import NotFoundError

from conftest import unit_rows


def test_versions_rollback_pins(client):
    col = client.create_collection("vers")
    col.add(ids=["a"], embeddings=[[1, 0]])
    v1 = col.head()
    col.add(ids=["b"], embeddings=[[0, 1]])
    vs = col.versions()
    assert vs[0]["version"] == col.head() and vs[0]["parent"] == v1
    assert [v["version"] for v in vs] == sorted((v["version"] for v in vs), reverse=True)
    assert vs[0]["head"] and vs[0]["rows"] == 2 and vs[-1]["note"] == "create"
    back = col.rollback(v1)
    assert back["head"] and back["note"] == f"rollback to {v1}"
    assert col.get()["ids"] == ["a"]
    col.pin(v1)
    assert col.pins() == [v1]
    assert [v["pinned"] for v in col.versions() if v["version"] == v1] == [True]
    col.unpin(v1)
    assert col.pins() == []
    with pytest.raises(NotFoundError):
        col.rollback(10**9)
    with pytest.raises(strata.InvalidArgumentError):
        col.unpin(v1)


def test_compact_gc_verify(client):
    col = client.create_collection("comp")
    for i in range(5):
        col.add(ids=[f"r{i}"], embeddings=[[float(i), 1.0]])
    report = col.compact()
    assert report["deltas_folded"] == 5 and report["rows_out"] == 5
    assert col.versions()[0]["segments"] == 1
    assert col.count() == 5
    assert col.query(query_embeddings=[[3.0, 1.0]], n_results=1)["ids"] == [["r3"]]
    g = client.gc()
    assert set(g) == {"versions_dropped", "files_deleted", "bytes_freed", "files_in_grace"}
    v = client.verify()
    assert v["ok"] and v["problems"] == [] and v["files"] > 0
    assert strata.verify(client.path)["ok"]


def test_verify_names_a_corrupt_file(client):
    col = client.create_collection("corrupt")
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    col.compact()
    seg_dir = os.path.join(client.path, "segments")
    seg = os.path.join(seg_dir, sorted(os.listdir(seg_dir))[0])
    os.chmod(seg, 0o644)
    with open(seg, "r+b") as f:  # in place: the writer has the file mapped
        f.seek(os.path.getsize(seg) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    v = strata.verify(client.path)
    assert not v["ok"] and any(os.path.basename(seg) in p for p, _ in v["problems"])


def test_exact_query_on_a_quantized_collection(client):
    col = client.create_collection("quant", configuration={"strata": {"quantization": "i8"}})
    rows = unit_rows(2000, 32)
    ids = [f"r{i:04}" for i in range(2000)]
    col.add(ids=ids, embeddings=rows)
    col.compact()
    q = unit_rows(3, 32, seed=3)
    exact = col.query(query_embeddings=q, n_results=10, exact=True)
    d = ((rows[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    for i in range(3):
        want = [ids[j] for j in np.argsort(d[i], kind="stable")[:10]]
        assert exact["ids"][i] == want
    approx = col.query(query_embeddings=q, n_results=10)
    assert all(len(a) == 10 for a in approx["ids"])


def test_write_delta_into_the_inbox(client):
    col = client.create_collection("inboxed")
    col.add(ids=["old"], embeddings=[[0.0, 1.0]])
    path = strata.write_delta(
        client.path, "inboxed", ids=["p1", "p2"],
        embeddings=np.array([[1, 0], [1, 1]], dtype=np.float32),
        metadatas=[{"src": "producer"}, None], documents=["one", "two"],
        seqs=[10**30, "1000000000000000000000000000001"], producer="embedder",
    )
    assert path.startswith("inbox/embedder-") and path.endswith(".delta")
    report = client.ingest_inbox()
    assert [(r[1], r[2]) for r in report["ingested"]] == [("inboxed", 2)]
    assert client.ingest_inbox()["already"] == 1
    r = col.get(include=["metadatas", "documents"])
    assert r["ids"] == ["old", "p1", "p2"]
    assert r["metadatas"][1] == {"src": "producer"} and r["documents"][2] == "two"


def test_write_delta_needs_seqs_for_the_inbox(client):
    with pytest.raises(ValueError, match="seqs"):
        strata.write_delta(client.path, "x1x", ids=["a"], embeddings=[[1.0]])
    with pytest.raises(ValueError):
        strata.write_delta(client.path, "x1x", ids=["a"], embeddings=[[1.0]], seqs=["12x"])
    with pytest.raises(strata.InvalidArgumentError):
        strata.write_delta(client.path, "x1x", ids=["a"], embeddings=[[1.0]], seqs=[1], dims=3)


def test_write_delta_under_a_run_prefix(client, tmp_path):
    run = tmp_path / "runs" / "lines" / "delta" / "run-1"
    f = strata.write_delta(str(run), "lines", ids=["l1"], embeddings=[[0.5, 0.5]], inbox=False)
    assert os.path.dirname(f) == str(run) and f.endswith(".delta")
    assert os.listdir(run) == [os.path.basename(f)]
    sealed = open(f, "rb").read()
    # The file is a sealed delta the writer accepts: publish the same bytes into the inbox.
    from strata._strata import publish_inbox

    client.create_collection("lines").add(ids=["x"], embeddings=[[0.0, 0.0]])
    publish_inbox(client.path, "runcopy", sealed)
    assert client.ingest_inbox()["ingested"][0][1:3] == ("lines", 1)
    assert "l1" in client.get_collection("lines").get()["ids"]
