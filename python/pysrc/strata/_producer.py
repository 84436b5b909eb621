"""The producer API: seal a delta of upserts without opening the writer, and publish it
into a store's inbox (the writer registers it at its next ``ingest_inbox``) or write it
under a compaction run's prefix (``STORE/runs/{lines,words}/delta/{run_id}/``), as the
embedding producer does."""

from __future__ import annotations

import os
import time
from typing import Any, List, Optional, Sequence, Union

from . import _args
from ._strata import encode_delta, publish_inbox


def _seq_strings(seqs: Optional[Sequence[Union[int, str]]], n: int) -> Optional[List[str]]:
    if seqs is None:
        return None
    out = []
    for s in seqs:
        if isinstance(s, bool) or not isinstance(s, (int, str)):
            raise ValueError(f"Expected each seq to be an int or a decimal str, got {s!r}")
        out.append(str(s))
    return out


def seal_delta(
    collection: str,
    ids: Any,
    embeddings: Any = None,
    documents: Any = None,
    metadatas: Any = None,
    *,
    dims: Optional[int] = None,
    seqs: Optional[Sequence[Union[int, str]]] = None,
    producer: str = "python",
) -> bytes:
    """The bytes of a sealed strata delta file: one upsert per id. ``seqs`` (ints or
    decimal strings such as DynamoDB SequenceNumbers) order the records; without them they
    are 1, 2, … — right for a run delta, which the writer re-stamps with the run's seq."""
    what = "seal_delta"
    ids = _args.ids_list(ids, what)
    _args.check_unique(ids, what)
    emb = None if embeddings is None else _args.embeddings_array(embeddings, what)
    if dims is None:
        dims = 0 if emb is None else int(emb.shape[1])
    docs = None if documents is None else _args.str_list(documents, len(ids), "documents", what)
    metas = None if metadatas is None else _args.metadata_list(metadatas, len(ids), what)
    return encode_delta(collection, int(dims), ids, emb, docs, metas, _seq_strings(seqs, len(ids)), producer)


def write_delta(
    path: Union[str, "os.PathLike[str]"],
    collection: str,
    ids: Any,
    embeddings: Any = None,
    documents: Any = None,
    metadatas: Any = None,
    *,
    dims: Optional[int] = None,
    seqs: Optional[Sequence[Union[int, str]]] = None,
    producer: str = "python",
    inbox: bool = True,
) -> str:
    """Seal a delta (see :func:`seal_delta`) and put it where the writer will find it.

    ``inbox=True``: ``path`` is the store; the delta is published into ``path/inbox/`` (no
    lock, never replacing a file) and the relative path returned. The records keep their
    ``seqs``, which an inbox delta therefore needs. ``inbox=False``: ``path`` is a run's
    directory (``STORE/runs/lines/delta/{run_id}``); the file is written there atomically
    (temporary, fsync, link, directory fsync) and its path returned.
    """
    if inbox and seqs is None:
        raise ValueError(
            "an inbox delta needs seqs (its records keep them: pass the source's sequence "
            "numbers); run deltas (inbox=False) are re-stamped and need none"
        )
    data = seal_delta(collection, ids, embeddings, documents, metadatas, dims=dims, seqs=seqs, producer=producer)
    if inbox:
        return publish_inbox(os.fspath(path), producer, data)
    return _write_run_file(os.fspath(path), producer, data)


def _write_run_file(directory: str, producer: str, data: bytes) -> str:
    os.makedirs(directory, exist_ok=True)
    stamp = int(time.time() * 1000)
    tmp = os.path.join(directory, f".{producer}-{stamp}-{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        n = 0
        while True:
            dest = os.path.join(directory, f"{producer}-{stamp:013d}-{n:04d}.delta")
            try:
                os.link(tmp, dest)
                break
            except FileExistsError:
                n += 1
    finally:
        os.unlink(tmp)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return dest
