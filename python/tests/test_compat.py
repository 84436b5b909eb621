"""Compatibility: the same scenarios against chromadb and strata, results compared.

Each scenario is a function of a client (``chromadb.PersistentClient`` or
``strata.PersistentClient``) returning plain data: ids, documents, metadatas, distances
rounded, embeddings as rounded lists, and raised exceptions as a kind (``invalid``,
``value``, ``type``, ``duplicate``, ``notfound``, ``exists``). The test runs every scenario
on both and requires equal results. Skipped (with the reason printed) where chromadb is
not installed, as in CI; run it with chromadb's environment::

    /var/tmp/chroma-venv/bin/pip install target/wheels/strata-*.whl
    /var/tmp/chroma-venv/bin/python -m pytest python/tests/test_compat.py -v
"""

import os

import numpy as np
import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
chromadb = pytest.importorskip(
    "chromadb",
    reason="chromadb is not installed here: the compatibility suite runs where it is "
    "(e.g. /var/tmp/chroma-venv)",
)

import strata  # noqa: E402


def kind(e):
    """A raised exception as a kind both clients can be compared by."""
    name = type(e).__name__
    msg = str(e)
    if name == "DuplicateIDError":
        return "duplicate"
    if name == "NotFoundError":
        return "notfound"
    if name == "UniqueConstraintError" or "already exists" in msg:
        return "exists"
    if name in ("InvalidArgumentError", "InvalidDimensionException"):
        return "invalid"
    if isinstance(e, TypeError):
        return "type"
    if isinstance(e, ValueError):
        return "value"
    return name


def outcome(f):
    try:
        return ("ok", f())
    except Exception as e:  # noqa: BLE001 - the kind is what is compared
        return ("error", kind(e))


def rounded(x):
    if isinstance(x, np.ndarray):
        return rounded(x.tolist())
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in sorted(x.items())}
    if isinstance(x, float):
        return round(x, 4)
    return x


def norm(result):
    """A get/query result without the keys that hold nothing."""
    return rounded({k: v for k, v in result.items() if v is not None and k != "included"})


def rows(n, dims, seed):
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)


def filled(client, space="l2", n=40, dims=8):
    col = client.create_collection(f"col-{space}", metadata={"hnsw:space": space})
    ids = [f"id{i:03}" for i in range(n)]
    col.add(
        ids=ids,
        embeddings=rows(n, dims, 1),
        metadatas=[
            {"i": i, "f": i / 4, "s": "abc"[i % 3], "b": i % 2 == 0, "l": [i, i + 1]}
            for i in range(n)
        ],
        documents=[f"doc {i} {'even' if i % 2 == 0 else 'odd'} word{i % 5}" for i in range(n)],
    )
    return col


# ---- scenarios ----


def s_get_everything(c):
    col = filled(c)
    return norm(col.get(include=["metadatas", "documents", "embeddings"]))


def s_get_by_ids(c):
    col = filled(c)
    r = col.get(ids=["id005", "id001", "nope", "id030"])
    return sorted(zip(r["ids"], r["documents"], [rounded(m) for m in r["metadatas"]]))


def s_where_operators(c):
    col = filled(c)
    wheres = [
        {"i": 3}, {"i": {"$eq": 3}}, {"i": {"$ne": 3}}, {"i": {"$gt": 30}}, {"i": {"$gte": 30}},
        {"i": {"$lt": 3}}, {"i": {"$lte": 3}}, {"f": {"$gt": 2.5}}, {"s": {"$in": ["a", "c"]}},
        {"s": {"$nin": ["a"]}}, {"b": True}, {"b": {"$ne": True}},
        {"$and": [{"s": "b"}, {"i": {"$lt": 20}}]}, {"$or": [{"i": 1}, {"s": "c"}]},
        {"l": {"$contains": 7}},
    ]
    return [col.get(where=w, include=[])["ids"] for w in wheres]


def s_where_document(c):
    col = filled(c)
    docs = [
        {"$contains": "even"}, {"$not_contains": "even"}, {"$contains": "word3"},
        {"$and": [{"$contains": "odd"}, {"$contains": "word1"}]},
        {"$or": [{"$contains": "doc 1 "}, {"$contains": "doc 2 "}]},
    ]
    out = [col.get(where_document=d, include=[])["ids"] for d in docs]
    out.append(col.get(where={"s": "a"}, where_document={"$contains": "even"}, include=[])["ids"])
    return out


def s_limit_offset(c):
    col = filled(c)
    return [col.get(limit=l, offset=o, include=[])["ids"] for l, o in [(5, 0), (5, 10), (3, 38), (10, 50)]] + [
        col.get(where={"b": True}, limit=4, offset=2, include=[])["ids"]
    ]


def s_query_exact(c, space):
    col = filled(c, space=space)
    r = col.query(query_embeddings=rows(3, 8, 2), n_results=5, include=["distances", "metadatas", "documents"])
    return norm(r)


def s_query_l2(c):
    return s_query_exact(c, "l2")


def s_query_cosine(c):
    return s_query_exact(c, "cosine")


def s_query_ip(c):
    return s_query_exact(c, "ip")


def s_query_where(c):
    col = filled(c)
    q = rows(2, 8, 3)
    a = col.query(query_embeddings=q, n_results=4, where={"s": "b"}, include=["distances"])
    b = col.query(query_embeddings=q, n_results=4, where_document={"$contains": "odd"}, include=["distances"])
    d = col.query(query_embeddings=q, n_results=3, where={"i": {"$lt": 10}},
                  where_document={"$contains": "even"}, include=["distances"])
    return [norm(a), norm(b), norm(d)]


def s_query_embeddings_returned(c):
    col = filled(c)
    r = col.query(query_embeddings=rows(2, 8, 4), n_results=2, include=["embeddings"])
    return [len(r["embeddings"]), [e.shape for e in r["embeddings"]], rounded(r["embeddings"])]


def s_query_more_than_count(c):
    col = filled(c, n=7)
    return norm(col.query(query_embeddings=rows(1, 8, 5), n_results=50, include=["distances"]))


def s_upsert_merges(c):
    col = filled(c, n=5)
    col.upsert(ids=["id001", "new"], embeddings=rows(2, 8, 6), metadatas=[{"k": 1}, {"k": 2}])
    col.upsert(ids=["id002"], embeddings=rows(1, 8, 7), documents=["replaced"])
    return norm(col.get(include=["metadatas", "documents", "embeddings"]))


def s_update(c):
    col = filled(c, n=5)
    col.update(ids=["id001", "missing"], metadatas=[{"s": "changed", "extra": True}, {"x": 1}])
    col.update(ids=["id002"], embeddings=rows(1, 8, 8), documents=["new doc"])
    return norm(col.get(include=["metadatas", "documents", "embeddings"]))


def s_delete(c):
    col = filled(c, n=10)
    col.delete(ids=["id001", "nope"])
    col.delete(where={"s": "b"})
    col.delete(where_document={"$contains": "word0"})
    return [col.count(), col.get(include=[])["ids"]]


def s_add_existing_is_left_alone(c):
    col = filled(c, n=3)
    col.add(ids=["id000", "id100"], embeddings=rows(2, 8, 9), metadatas=[{"x": 1}, {"x": 2}])
    return norm(col.get(include=["metadatas", "embeddings"]))


def s_peek_count(c):
    col = filled(c, n=12)
    return [col.count(), norm(col.peek(3))]


def s_metadata_types(c):
    col = c.create_collection("types")
    meta = {"int": 7, "neg": -3, "float": 2.5, "whole": 3.0, "t": True, "f": False, "s": "str",
            "ints": [1, 2], "strs": ["a", "b"], "floats": [0.5, 1.5], "bools": [True, False]}
    col.add(ids=["x"], embeddings=[[1.0, 2.0]], metadatas=[meta])
    m = col.get()["metadatas"][0]
    return sorted((k, type(v).__name__, v) for k, v in m.items())


def s_collections(c):
    c.create_collection("one", metadata={"a": 1})
    c.get_or_create_collection("two", metadata={"hnsw:space": "cosine"})
    c.get_or_create_collection("one")
    col = c.get_collection("one")
    col.modify(metadata={"b": 2})
    out = [sorted(x.name for x in c.list_collections()), c.get_collection("one").metadata,
           c.get_collection("two").configuration["hnsw"]["space"], c.count_collections()]
    c.delete_collection("two")
    out.append(sorted(x.name for x in c.list_collections()))
    return out


def s_errors(c):
    col = filled(c, n=3)
    cases = [
        lambda: col.add(ids=["d", "d"], embeddings=rows(2, 8, 1)),
        lambda: col.add(ids=["w"], embeddings=rows(1, 4, 1)),
        lambda: col.query(query_embeddings=rows(1, 4, 1)),
        lambda: col.add(ids=["n"], embeddings=[[float("nan")] * 8]),
        lambda: col.add(ids=[""], embeddings=rows(1, 8, 1)),
        lambda: col.add(ids=["m"], embeddings=rows(1, 8, 1), metadatas=[{}]),
        lambda: col.add(ids=["m"], embeddings=rows(1, 8, 1), metadatas=[{"x": {"y": 1}}]),
        lambda: col.add(ids=["m", "n"], embeddings=rows(1, 8, 1)),
        lambda: col.add(ids=[5], embeddings=rows(1, 8, 1)),
        lambda: col.query(query_embeddings=rows(1, 8, 1), n_results=0),
        lambda: col.query(query_embeddings=rows(1, 8, 1), n_results=1.5),
        lambda: col.query(n_results=1),
        lambda: col.get(where={"i": {"$foo": 1}}),
        lambda: col.get(where={"i": {"$in": []}}),
        lambda: col.get(where={}),
        lambda: col.get(include=["distances"]),
        lambda: col.get(include=["bogus"]),
        lambda: col.delete(),
        lambda: c.get_collection("missing"),
        lambda: c.delete_collection("missing"),
        lambda: c.create_collection("col-l2"),
        lambda: c.create_collection("x"),
        lambda: c.create_collection("bad", configuration={"hnsw": {"space": "foo"}}),
    ]
    return [o[1] if o[0] == "error" else "ok" for o in map(outcome, cases)]


SCENARIOS = {name[2:]: f for name, f in sorted(globals().items()) if name.startswith("s_") and name != "s_query_exact"}


@pytest.fixture(params=["chromadb", "strata"])
def any_client(request, tmp_path):
    path = str(tmp_path / request.param)
    if request.param == "chromadb":
        yield chromadb.PersistentClient(path=path)
    else:
        c = strata.PersistentClient(path=path)
        yield c
        c.close()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_runs_on_each_client(any_client, scenario):
    """Every scenario runs to completion on both clients."""
    SCENARIOS[scenario](any_client)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_results_as_chromadb(tmp_path, scenario):
    """chromadb and strata give the same results."""
    chroma = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    ours = strata.PersistentClient(path=str(tmp_path / "strata"))
    try:
        want = outcome(lambda: SCENARIOS[scenario](chroma))
        got = outcome(lambda: SCENARIOS[scenario](ours))
    finally:
        ours.close()
    assert got == want
