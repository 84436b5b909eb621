"""PersistentClient: collections, names, errors, reopening, a reader beside a writer."""

import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

import strata
from strata.errors import (
    InvalidArgumentError,
    NotFoundError,
    ReadOnlyError,
    UniqueConstraintError,
    WriterBusyError,
)


def test_heartbeat_and_version(client):
    assert isinstance(client.heartbeat(), int) and client.heartbeat() > 0
    assert client.get_version() == strata.__version__


def test_create_get_list_count_delete(client):
    a = client.create_collection("alpha", metadata={"owner": "me", "n": 3})
    assert a.name == "alpha" and isinstance(a.id, uuid.UUID)
    assert a.metadata == {"owner": "me", "n": 3}
    assert a.configuration["hnsw"]["space"] == "l2"
    b = client.get_or_create_collection("beta", metadata={"hnsw:space": "cosine"})
    assert b.configuration["hnsw"]["space"] == "cosine"
    assert client.get_or_create_collection("alpha").id == a.id
    assert client.get_collection("alpha").metadata == {"owner": "me", "n": 3}
    assert [c.name for c in client.list_collections()] == ["alpha", "beta"]
    assert [c.name for c in client.list_collections(limit=1, offset=1)] == ["beta"]
    assert client.count_collections() == 2
    client.delete_collection("alpha")
    assert [c.name for c in client.list_collections()] == ["beta"]


def test_collection_errors(client):
    client.create_collection("exists")
    with pytest.raises(UniqueConstraintError, match="already exists"):
        client.create_collection("exists")
    with pytest.raises(NotFoundError, match="does not exist"):
        client.get_collection("nope")
    with pytest.raises(NotFoundError):
        client.delete_collection("nope")
    for bad in ["a", "a b", "-ab", "x" * 65, "_strata_catalog", 5]:
        with pytest.raises(InvalidArgumentError):
            client.create_collection(bad)
    with pytest.raises(InvalidArgumentError):
        client.create_collection("badspace", metadata={"hnsw:space": "manhattan"})
    with pytest.raises(InvalidArgumentError):
        client.create_collection("badspace", configuration={"hnsw": {"space": "foo"}})


def test_errors_are_also_value_errors(client):
    with pytest.raises(ValueError):
        client.get_collection("nope")
    assert issubclass(strata.NotFoundError, strata.ChromaError)


def test_dropped_then_recreated_with_other_dims(client):
    c = client.create_collection("again")
    c.add(ids=["a"], embeddings=[[1, 2, 3]])
    client.delete_collection("again")
    c = client.create_collection("again")
    c.add(ids=["a"], embeddings=[[1, 2]])
    assert c.get(include=["embeddings"])["embeddings"].shape == (1, 2)


def test_reopen_keeps_everything(store_path):
    c = strata.PersistentClient(path=store_path)
    col = c.create_collection("keep", metadata={"m": True}, configuration={"hnsw": {"space": "ip"}})
    cid = col.id
    col.add(ids=["a", "b"], embeddings=[[1, 0], [0, 1]], metadatas=[{"k": 1}, {"k": 2.5}], documents=["x", None])
    c.create_collection("pending")
    c.close()
    c = strata.PersistentClient(path=store_path)
    col = c.get_collection("keep")
    assert col.id == cid and col.metadata == {"m": True}
    assert col.configuration["hnsw"]["space"] == "ip"
    r = col.get(include=["metadatas", "documents", "embeddings"])
    assert r["ids"] == ["a", "b"] and r["metadatas"] == [{"k": 1}, {"k": 2.5}]
    assert r["documents"] == ["x", None]
    assert col.query(query_embeddings=[[1, 0]], n_results=1)["distances"][0][0] == pytest.approx(0.0)
    assert [x.name for x in c.list_collections()] == ["keep", "pending"]
    c.close()


def test_closed_client_raises(store_path):
    c = strata.PersistentClient(path=store_path)
    col = c.create_collection("x1x")
    c.close()
    with pytest.raises(strata.StrataError, match="closed"):
        col.count()


def test_collections_created_outside_python_are_visible(store_path):
    from strata._strata import Store

    s = Store(store_path)
    s.create_collection("lines", 2, "cosine")
    s.write("lines", "add", ["l1"], np.array([[1, 0]], dtype=np.float32), ["TOTAL"], None)
    s.close()
    c = strata.PersistentClient(path=store_path)
    col = c.get_collection("lines")
    assert col.configuration["hnsw"]["space"] == "cosine"
    assert col.get()["documents"] == ["TOTAL"]
    c.close()


WRITER = textwrap.dedent(
    """
    import sys, strata
    c = strata.PersistentClient(path=sys.argv[1])
    col = c.get_or_create_collection("shared")
    col.add(ids=["w1"], embeddings=[[1.0, 0.0]], metadatas=[{"n": 1}])
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        col.upsert(ids=[f"w{n}"], embeddings=[[1.0, float(n)]], metadatas=[{"n": n}])
        print("wrote", n, flush=True)
    c.close()
    """
)


def test_reader_beside_a_writer_in_another_process(store_path):
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert p.stdout.readline().strip() == "ready"
        with pytest.raises(WriterBusyError):
            strata.PersistentClient(path=store_path)
        reader = strata.PersistentClient(path=store_path, read_only=True)
        assert reader.read_only
        col = reader.get_collection("shared")
        assert col.get()["ids"] == ["w1"]
        for n in (2, 3):
            p.stdin.write(f"{n}\n")
            p.stdin.flush()
            assert p.stdout.readline().split() == ["wrote", str(n)]
            assert col.count() == n
        assert col.get(where={"n": 3})["ids"] == ["w3"]
        assert col.query(query_embeddings=[[1.0, 3.0]], n_results=1)["ids"] == [["w3"]]
        with pytest.raises(ReadOnlyError):
            col.add(ids=["r"], embeddings=[[0.0, 1.0]])
        with pytest.raises(ReadOnlyError):
            reader.create_collection("fromreader")
        with pytest.raises(ReadOnlyError):
            col.compact()
        assert strata.Reader(store_path).get_collection("shared").count() == 3
    finally:
        p.stdin.close()
        assert p.wait(timeout=60) == 0
