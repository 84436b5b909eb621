"""strata: an embedded storage engine for vector collections, with Chroma's client API.

Code written for ``chromadb.PersistentClient`` runs on strata by changing the import::

    import strata
    client = strata.PersistentClient(path="./store")
    lines = client.get_or_create_collection("lines", metadata={"hnsw:space": "cosine"})
    lines.upsert(ids=["r1#1"], embeddings=[[0.1, 0.2, 0.3]], metadatas=[{"receipt_id": 1}])
    hits = lines.query(query_embeddings=[[0.1, 0.2, 0.3]], n_results=5, where={"receipt_id": 1})

Every write is durable when it returns; a reader (``read_only=True`` or
:func:`Reader`) works while another process is the writer. strata's own extras:
``Collection.versions / rollback / pin / unpin / compact``, ``query(..., exact=True)``,
``PersistentClient.gc / verify / ingest_inbox``, and :func:`write_delta` for producers.
"""

from __future__ import annotations

from . import errors
from ._client import Collection, PersistentClient, Reader
from ._producer import seal_delta, write_delta
from ._strata import __version__, verify
from .errors import (
    ChromaError,
    DuplicateIDError,
    InvalidArgumentError,
    NotFoundError,
    StrataError,
)

__all__ = [
    "PersistentClient",
    "Reader",
    "Collection",
    "write_delta",
    "seal_delta",
    "verify",
    "errors",
    "StrataError",
    "ChromaError",
    "NotFoundError",
    "InvalidArgumentError",
    "DuplicateIDError",
    "__version__",
]
