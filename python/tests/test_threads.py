"""Threads: queries run while another thread writes (the GIL is released for both), and
every query sees a consistent snapshot."""

import threading

import numpy as np

from conftest import unit_rows


def test_queries_while_another_thread_writes(client):
    col = client.create_collection("busy")
    base = unit_rows(500, 24)
    col.add(ids=[f"b{i:03}" for i in range(500)], embeddings=base, metadatas=[{"batch": -1}] * 500)
    stop = threading.Event()
    errors = []
    seen_counts = []

    def writer():
        try:
            for b in range(20):
                rows = unit_rows(50, 24, seed=100 + b)
                col.upsert(ids=[f"w{b:02}-{i:02}" for i in range(50)], embeddings=rows,
                           metadatas=[{"batch": b}] * 50)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            stop.set()

    def reader(seed):
        q = unit_rows(4, 24, seed=seed)
        try:
            while not stop.is_set():
                r = col.query(query_embeddings=q, n_results=5)
                assert [len(x) for x in r["ids"]] == [5, 5, 5, 5]
                for d in r["distances"]:
                    assert d == sorted(d)
                n = col.count()
                assert 500 <= n <= 1500 and (n - 500) % 50 == 0
                seen_counts.append(n)
                g = col.get(where={"batch": -1}, include=[])
                assert len(g["ids"]) == 500
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert col.count() == 1500
    assert seen_counts, "the readers ran"
    # Final answers equal a fresh exact computation.
    everything = col.get(include=["embeddings"])
    q = unit_rows(1, 24, seed=5)[0]
    d = ((everything["embeddings"] - q) ** 2).sum(1)
    want = [everything["ids"][i] for i in np.argsort(d, kind="stable")[:5]]
    assert col.query(query_embeddings=q, n_results=5)["ids"][0] == want


def test_writes_from_several_threads_all_land(client):
    col = client.create_collection("many-writers")
    col.add(ids=["seed"], embeddings=[[0.0, 0.0]])

    def write(t):
        for i in range(20):
            col.add(ids=[f"t{t}-{i}"], embeddings=[[float(t), float(i)]])
            col.update(ids=["seed"], metadatas=[{f"t{t}": i}])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert col.count() == 81
    assert col.get(ids=["seed"])["metadatas"][0] == {"t0": 19, "t1": 19, "t2": 19, "t3": 19}
