"""Shared fixtures of the strata Python tests: a fresh store per test and small data."""

import numpy as np
import pytest

import strata


@pytest.fixture
def client(tmp_path):
    c = strata.PersistentClient(path=str(tmp_path / "store"))
    yield c
    try:
        c.close()
    except strata.StrataError:
        pass


@pytest.fixture
def store_path(tmp_path):
    return str(tmp_path / "store")


def unit_rows(n, dims, seed=7):
    """n deterministic float32 rows."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dims)).astype(np.float32)


@pytest.fixture
def filled(client):
    """A collection of 6 records in 3-d with every metadata type."""
    col = client.create_collection("things")
    col.add(
        ids=["a", "b", "c", "d", "e", "f"],
        embeddings=[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]],
        metadatas=[
            {"i": 1, "f": 0.5, "s": "x", "b": True, "l": [1, 2]},
            {"i": 2, "f": 1.5, "s": "y", "b": False},
            {"i": 3, "f": 2.5, "s": "x", "b": True},
            {"i": 4, "f": 3.5, "s": "z", "b": False, "tags": ["p", "q"]},
            {"i": 5, "f": 4.5, "s": "y", "b": True},
            None,
        ],
        documents=["hello world", "foo bar", "hello foo", None, "bar baz", "world"],
    )
    return col
