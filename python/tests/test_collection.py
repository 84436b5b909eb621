"""Chroma's Collection methods on strata: every argument, return shapes and types."""

import numpy as np
import pytest

import strata
from strata.errors import DuplicateIDError, InvalidArgumentError, NotFoundError

from conftest import unit_rows


def test_get_all_is_flat_and_ordered_by_id(filled):
    r = filled.get()
    assert r["ids"] == ["a", "b", "c", "d", "e", "f"]
    assert r["included"] == ["metadatas", "documents"]
    assert r["embeddings"] is None and r["uris"] is None and r["data"] is None
    assert r["documents"] == ["hello world", "foo bar", "hello foo", None, "bar baz", "world"]
    assert r["metadatas"][0] == {"i": 1, "f": 0.5, "s": "x", "b": True, "l": [1, 2]}
    assert r["metadatas"][5] is None


def test_metadata_types_are_kept(filled):
    m = filled.get(ids=["a"])["metadatas"][0]
    assert type(m["i"]) is int and type(m["f"]) is float
    assert type(m["b"]) is bool and type(m["s"]) is str
    assert m["l"] == [1, 2] and all(type(x) is int for x in m["l"])
    assert filled.get(ids=["d"])["metadatas"][0]["tags"] == ["p", "q"]


def test_get_by_ids_with_include_embeddings(filled):
    r = filled.get(ids=["c", "a", "zz"], include=["embeddings", "documents"])
    assert r["ids"] == ["c", "a"]
    assert isinstance(r["embeddings"], np.ndarray)
    assert r["embeddings"].shape == (2, 3) and r["embeddings"].dtype == np.float32
    np.testing.assert_array_equal(r["embeddings"], [[0, 0, 1], [1, 0, 0]])
    assert r["metadatas"] is None
    assert r["documents"] == ["hello foo", "hello world"]


def test_get_single_id_string(filled):
    assert filled.get(ids="b")["ids"] == ["b"]


def test_get_where_operators(filled):
    assert filled.get(where={"i": {"$gte": 4}})["ids"] == ["d", "e"]
    assert filled.get(where={"s": "x"})["ids"] == ["a", "c"]
    assert filled.get(where={"b": True})["ids"] == ["a", "c", "e"]
    assert filled.get(where={"s": {"$in": ["y", "z"]}})["ids"] == ["b", "d", "e"]
    assert filled.get(where={"s": {"$nin": ["x"]}})["ids"] == ["b", "d", "e", "f"]
    assert filled.get(where={"$and": [{"b": True}, {"i": {"$lt": 3}}]})["ids"] == ["a"]
    assert filled.get(where={"$or": [{"i": 1}, {"i": 5}]})["ids"] == ["a", "e"]
    assert filled.get(where={"f": {"$gt": 2.0}})["ids"] == ["c", "d", "e"]
    assert filled.get(where={"i": {"$ne": 2}})["ids"] == ["a", "c", "d", "e", "f"]
    assert filled.get(where={"tags": {"$contains": "q"}})["ids"] == ["d"]


def test_get_where_with_ids(filled):
    assert filled.get(ids=["a", "b", "c"], where={"s": "x"})["ids"] == ["a", "c"]


def test_get_where_document(filled):
    assert filled.get(where_document={"$contains": "hello"})["ids"] == ["a", "c"]
    assert filled.get(where_document={"$not_contains": "hello"})["ids"] == ["b", "d", "e", "f"]
    both = {"$and": [{"$contains": "hello"}, {"$contains": "foo"}]}
    assert filled.get(where_document=both)["ids"] == ["c"]
    either = {"$or": [{"$contains": "baz"}, {"$contains": "world"}]}
    assert filled.get(where_document=either)["ids"] == ["a", "e", "f"]
    assert filled.get(where={"b": True}, where_document={"$contains": "o"})["ids"] == ["a", "c"]


def test_get_limit_offset(filled):
    assert filled.get(limit=2)["ids"] == ["a", "b"]
    assert filled.get(limit=2, offset=3)["ids"] == ["d", "e"]
    assert filled.get(offset=5)["ids"] == ["f"]
    assert filled.get(limit=0)["ids"] == []
    assert filled.get(where_document={"$contains": "o"}, limit=1, offset=1)["ids"] == ["b"]


def test_count_and_peek(filled):
    assert filled.count() == 6
    p = filled.peek(2)
    assert p["ids"] == ["a", "b"]
    assert p["embeddings"].shape == (2, 3)
    assert set(p["included"]) == {"metadatas", "documents", "embeddings"}


def test_query_shapes_and_distances(filled):
    r = filled.query(query_embeddings=[[1, 0, 0]], n_results=3)
    assert r["ids"] == [["a", "d", "f"]]
    assert r["included"] == ["metadatas", "documents", "distances"]
    assert r["distances"][0] == pytest.approx([0.0, 1.0, 1.0])
    assert all(type(d) is float for d in r["distances"][0])
    assert r["documents"] == [["hello world", None, "world"]]
    assert r["metadatas"][0][0]["i"] == 1
    assert r["embeddings"] is None


def test_query_batch_2d_array(filled):
    q = np.array([[1, 0, 0], [0, 0, 1]], dtype=np.float64)
    r = filled.query(query_embeddings=q, n_results=1, include=["embeddings", "distances"])
    assert r["ids"] == [["a"], ["c"]]
    assert len(r["embeddings"]) == 2
    assert r["embeddings"][1].shape == (1, 3)
    np.testing.assert_array_equal(r["embeddings"][1], [[0, 0, 1]])
    assert r["documents"] is None and r["metadatas"] is None


def test_query_batch_equals_single_queries(client):
    col = client.create_collection("many")
    rows = unit_rows(300, 16)
    col.add(ids=[f"r{i:03}" for i in range(300)], embeddings=rows)
    qs = unit_rows(5, 16, seed=9)
    batch = col.query(query_embeddings=qs, n_results=7)
    for i in range(5):
        one = col.query(query_embeddings=qs[i], n_results=7)
        assert one["ids"][0] == batch["ids"][i]
        assert one["distances"][0] == pytest.approx(batch["distances"][i])


def test_query_one_dim_array_is_one_query(filled):
    r = filled.query(query_embeddings=np.array([0, 1, 0], dtype=np.float32), n_results=1)
    assert r["ids"] == [["b"]]


def test_query_n_results_beyond_count_returns_all(filled):
    r = filled.query(query_embeddings=[[1, 0, 0]], n_results=10**15)
    assert len(r["ids"][0]) == 6


def test_query_where_and_where_document(filled):
    r = filled.query(query_embeddings=[[1, 0, 0]], n_results=5, where={"b": True})
    assert r["ids"] == [["a", "c", "e"]]
    r = filled.query(query_embeddings=[[1, 0, 0]], n_results=5, where_document={"$contains": "o"})
    assert r["ids"][0][0] == "a" and set(r["ids"][0]) == {"a", "b", "c", "f"}
    r = filled.query(query_embeddings=[[0, 0, 1]], n_results=5, where={"s": "x"},
                     where_document={"$contains": "foo"})
    assert r["ids"] == [["c"]]


def test_query_restricted_to_ids(filled):
    r = filled.query(query_embeddings=[[1, 0, 0]], n_results=5, ids=["b", "c", "d"])
    assert r["ids"] == [["d", "b", "c"]]
    assert r["distances"][0] == pytest.approx([1.0, 2.0, 2.0])


def test_ties_are_broken_by_id(client):
    col = client.create_collection("ties")
    col.add(ids=["z", "m", "a"], embeddings=[[1, 0]] * 3)
    assert col.query(query_embeddings=[[1, 0]], n_results=2)["ids"] == [["a", "m"]]


@pytest.mark.parametrize("space,expect", [("l2", 2.0), ("cosine", 1.0), ("ip", 1.0)])
def test_spaces(client, space, expect):
    col = client.create_collection(f"sp-{space}", metadata={"hnsw:space": space})
    col.add(ids=["x"], embeddings=[[0, 1]])
    d = col.query(query_embeddings=[[1, 0]], n_results=1)["distances"][0][0]
    assert d == pytest.approx(expect)


def test_configuration_space(client):
    col = client.create_collection("conf", configuration={"hnsw": {"space": "cosine"}})
    assert col.configuration["hnsw"]["space"] == "cosine"
    col.add(ids=["x"], embeddings=[[2, 0]])
    # Distances are f32: a cosine kernel's rounding at an identical direction is ~1e-7
    # (simsimd's AVX2 path, a reciprocal square root refined once, gives 4.5e-8 here).
    d = col.query(query_embeddings=[[1, 0]], n_results=1)["distances"][0][0]
    assert d == pytest.approx(0.0, abs=1e-6)


def test_float64_lists_and_int_embeddings(client):
    col = client.create_collection("kinds")
    col.add(ids=["f64"], embeddings=np.array([[0.25, 0.5]], dtype=np.float64))
    col.add(ids=["ints"], embeddings=[[1, 2]])
    col.add(ids=["flat"], embeddings=[3.0, 4.0])
    col.add(ids=["arrs"], embeddings=[np.array([5, 6], dtype=np.float32)])
    e = col.get(include=["embeddings"])
    assert e["ids"] == ["arrs", "f64", "flat", "ints"]
    np.testing.assert_array_equal(e["embeddings"], [[5, 6], [0.25, 0.5], [3, 4], [1, 2]])


def test_non_contiguous_array_is_accepted(client):
    col = client.create_collection("strided")
    big = unit_rows(4, 6)
    col.add(ids=list("abcd"), embeddings=big[:, ::2])
    np.testing.assert_allclose(col.get(include=["embeddings"])["embeddings"], big[:, ::2])


def test_add_leaves_existing_ids_alone(filled):
    filled.add(ids=["a", "new"], embeddings=[[9, 9, 9], [0, 0, 2]], metadatas=[{"i": 99}, {"i": 7}])
    r = filled.get(ids=["a", "new"], include=["metadatas", "embeddings"])
    assert r["metadatas"][0]["i"] == 1
    np.testing.assert_array_equal(r["embeddings"][0], [1, 0, 0])
    assert r["metadatas"][1] == {"i": 7}
    assert filled.count() == 7


def test_upsert_adds_and_merges(filled):
    filled.upsert(ids=["a", "g"], embeddings=[[0, 0, 5], [5, 0, 0]], metadatas=[{"k": 1, "i": None}, {"k": 2}])
    r = filled.get(ids=["a", "g"], include=["metadatas", "embeddings", "documents"])
    assert r["metadatas"][0] == {"f": 0.5, "s": "x", "b": True, "l": [1, 2], "k": 1}
    assert r["documents"] == ["hello world", None]
    np.testing.assert_array_equal(r["embeddings"], [[0, 0, 5], [5, 0, 0]])


def test_update_merges_metadata_and_none_deletes(filled):
    filled.update(ids=["b", "missing"], metadatas=[{"i": None, "new": "v"}, {"x": 1}])
    assert filled.get(ids=["b"])["metadatas"] == [{"f": 1.5, "s": "y", "b": False, "new": "v"}]
    assert filled.get(ids=["missing"])["ids"] == []


def test_update_document_and_embedding(filled):
    filled.update(ids=["c"], documents=["changed"], embeddings=[[7, 7, 7]])
    r = filled.get(ids=["c"], include=["documents", "embeddings", "metadatas"])
    assert r["documents"] == ["changed"]
    np.testing.assert_array_equal(r["embeddings"], [[7, 7, 7]])
    assert r["metadatas"][0]["i"] == 3


def test_delete_by_ids_where_and_document(filled):
    assert filled.delete(ids=["a", "zz"]) == {"deleted": 1}
    assert filled.delete(where={"s": "y"}) == {"deleted": 2}
    assert filled.delete(where_document={"$contains": "world"}) == {"deleted": 1}
    assert filled.get()["ids"] == ["c", "d"]
    assert filled.delete(ids=["c", "d"], where={"i": 4}) == {"deleted": 1}
    assert filled.get()["ids"] == ["c"]


def test_delete_needs_an_argument(filled):
    with pytest.raises(ValueError):
        filled.delete()


def test_modify_metadata_and_rename_of_an_empty_collection(client):
    col = client.create_collection("before", metadata={"a": 1})
    col.modify(metadata={"b": 2})
    assert client.get_collection("before").metadata == {"b": 2}
    col.modify(name="after")
    assert col.name == "after"
    assert [c.name for c in client.list_collections()] == ["after"]
    col.add(ids=["x"], embeddings=[[1.0]])
    with pytest.raises(InvalidArgumentError):
        col.modify(name="again")


def test_dimension_is_fixed_by_the_first_write(client):
    col = client.create_collection("dims")
    col.add(ids=["a"], embeddings=[[1, 2, 3, 4]])
    with pytest.raises(InvalidArgumentError, match="dimension of 4, got 2"):
        col.add(ids=["b"], embeddings=[[1, 2]])
    with pytest.raises(InvalidArgumentError, match="dimension of 4, got 3"):
        col.query(query_embeddings=[[1, 2, 3]])
    assert col.count() == 1


def test_empty_collection_reads(client):
    col = client.create_collection("empty")
    assert col.count() == 0
    assert col.get()["ids"] == []
    r = col.query(query_embeddings=[[1, 0], [0, 1]], n_results=3)
    assert r["ids"] == [[], []] and r["distances"] == [[], []]
    assert col.peek()["ids"] == []


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(ids=["a", "a"], embeddings=[[1, 0, 0]] * 2), DuplicateIDError),
        (dict(ids=[""], embeddings=[[1, 0, 0]]), InvalidArgumentError),
        (dict(ids=[1], embeddings=[[1, 0, 0]]), ValueError),
        (dict(ids=[], embeddings=[]), ValueError),
        (dict(ids=["n"], embeddings=[[float("nan"), 0, 0]]), InvalidArgumentError),
        (dict(ids=["n"], embeddings=[[float("inf"), 0, 0]]), InvalidArgumentError),
        (dict(ids=["n"], embeddings=[[1e300, 0, 0]]), InvalidArgumentError),
        (dict(ids=["n"], embeddings=[["a", "b", "c"]]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0], [1, 0]]), ValueError),
        (dict(ids=["n", "m"], embeddings=[[1, 0, 0]]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0]]), InvalidArgumentError),
        (dict(ids=["n"], embeddings=np.zeros((1, 3, 1))), ValueError),
        (dict(ids=["n"], embeddings="abc"), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": {"a": 1}}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": None}]), TypeError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": object()}]), TypeError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": [1, "a"]}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": []}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": 2**70}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{"x": float("nan")}]), ValueError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], metadatas=[{1: 1}]), TypeError),
        (dict(ids=["n"], embeddings=[[1, 0, 0]], documents=[5]), ValueError),
        (dict(ids=["n"], documents=["no embedding"]), ValueError),
    ],
)
def test_bad_writes_raise_and_write_nothing(filled, kwargs, exc):
    with pytest.raises(exc):
        filled.add(**kwargs)
    assert filled.count() == 6


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(query_embeddings=[[1, 0, 0]], n_results=0), TypeError),
        (dict(query_embeddings=[[1, 0, 0]], n_results=-3), TypeError),
        (dict(query_embeddings=[[1, 0, 0]], n_results=2.5), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], n_results="3"), ValueError),
        (dict(query_embeddings=[[float("nan"), 0, 0]]), InvalidArgumentError),
        (dict(query_embeddings=[[1, 0]]), InvalidArgumentError),
        (dict(query_embeddings=[]), ValueError),
        (dict(), ValueError),
        (dict(query_texts=["needs an embedding function"]), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where={"i": {"$foo": 1}}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where={}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where={"i": {"$in": []}}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where="i = 1"), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where={"i": {"$gt": "x"}}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where_document={"$regex": "a"}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], where_document={"$contains": 1}), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], include=["uris"]), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], include=["nope"]), ValueError),
        (dict(query_embeddings=[[1, 0, 0]], include="documents"), ValueError),
    ],
)
def test_bad_queries_raise(filled, kwargs, exc):
    with pytest.raises(exc):
        filled.query(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(include=["distances"]), dict(limit=-1), dict(offset=-1), dict(limit=1.5), dict(ids=[3])],
)
def test_bad_gets_raise_value_error(filled, kwargs):
    with pytest.raises(ValueError):
        filled.get(**kwargs)


def test_deep_filter_is_refused_not_a_crash(filled):
    w = {"i": 1}
    for _ in range(200):
        w = {"$and": [w]}
    with pytest.raises(ValueError, match="where"):
        filled.get(where=w)
    d = {"$contains": "a"}
    for _ in range(200):
        d = {"$or": [d]}
    with pytest.raises(ValueError, match="where_document"):
        filled.get(where_document=d)


def test_dropped_collection_raises_not_found(client, filled):
    client.delete_collection("things")
    with pytest.raises(NotFoundError):
        filled.count()
    with pytest.raises(NotFoundError):
        filled.query(query_embeddings=[[1, 0, 0]])


def test_embedding_function_is_used_when_given(client):
    def ef(texts):
        return [[float(len(t)), 1.0] for t in texts]

    col = client.create_collection("with-ef", embedding_function=ef)
    col.add(ids=["a", "b"], documents=["xx", "xxxxx"])
    assert col.query(query_texts=["xxxx"], n_results=1)["ids"] == [["b"]]
