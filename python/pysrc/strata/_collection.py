"""A collection with Chroma's methods (add, upsert, update, delete, get, query, count, peek,
modify) and strata's extras (versions, rollback, pins, compact, exact queries)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from . import _args
from .errors import InvalidArgumentError, NotFoundError

if TYPE_CHECKING:
    from ._client import Embeddings, PersistentClient, Where

_GET_DEFAULT = ("metadatas", "documents")
_QUERY_DEFAULT = ("metadatas", "documents", "distances")


class Collection:
    """One collection of a :class:`~strata.PersistentClient` (Chroma's ``Collection``)."""

    def __init__(self, client: "PersistentClient", name: str, entry: dict, embedding_function: Any) -> None:
        self._client = client
        self._store = client._store
        self._name = name
        self._entry = entry
        self._embedding_function = embedding_function
        self._created = False

    # ---- attributes ----

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._name

    @property
    def id(self) -> uuid.UUID:
        """The collection's id (kept in the store's catalog)."""
        return uuid.UUID(self._entry.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, self._name)))

    @property
    def metadata(self) -> Optional[dict]:
        """The collection's metadata, as given at creation or by :meth:`modify`."""
        m = self._entry.get("metadata")
        return dict(m) if m else None

    @property
    def configuration(self) -> dict:
        """The collection's configuration: ``{"hnsw": {"space": ...}, ...}``."""
        return dict(self._entry.get("configuration") or {"hnsw": {"space": self._space}})

    @property
    def _space(self) -> str:
        return self._entry.get("space", "l2")

    def __repr__(self) -> str:
        return f"Collection(name={self._name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collection) and other._name == self._name and other._client is self._client

    def __hash__(self) -> int:
        return hash(self._name)

    # ---- helpers ----

    def _exists(self) -> bool:
        """Whether the engine collection exists (it does after the first write; once seen,
        remembered: a later drop makes the engine raise NotFoundError)."""
        if not self._created:
            self._created = any(c[0] == self._name for c in self._store.collections())
        return self._created

    def _check_alive(self) -> None:
        if self._client._entry(self._name) is None:
            raise NotFoundError(f"Collection [{self._name}] does not exist.")

    def _ensure(self, dims: int) -> None:
        """Create the engine collection at the first write, with its dimension."""
        if not self._exists():
            self._check_alive()
            self._store.create_collection(
                self._name, dims, self._space, self._entry.get("quantization", "none")
            )

    def _embed(self, documents: Optional[List[Optional[str]]], what: str) -> np.ndarray:
        if self._embedding_function is None or documents is None or any(d is None for d in documents):
            raise ValueError(
                f"strata computes no embeddings: pass embeddings, or give the collection an "
                f"embedding_function and documents, in {what}."
            )
        return _args.embeddings_array(self._embedding_function(documents), what)

    def _rows(self, what, ids, embeddings, documents, metadatas, need_embeddings):
        ids = _args.ids_list(ids, what)
        if not ids:
            raise ValueError(f"Expected IDs to be a non-empty list in {what}.")
        _args.check_unique(ids, what)
        docs = None if documents is None else _args.str_list(documents, len(ids), "documents", what)
        metas = None if metadatas is None else _args.metadata_list(metadatas, len(ids), what)
        if embeddings is not None:
            emb = _args.embeddings_array(embeddings, what)
        elif need_embeddings:
            emb = self._embed(docs, what)
        else:
            emb = None
        if emb is not None and emb.shape[0] != len(ids):
            raise ValueError(f"Unequal lengths for fields: ids: {len(ids)}, embeddings: {emb.shape[0]} in {what}.")
        return ids, emb, docs, metas

    def _write(self, mode: str, ids, embeddings, documents, metadatas, what: str) -> None:
        need = mode != "update" and not (self._exists() and self._store.dims(self._name) == 0)
        ids, emb, docs, metas = self._rows(what, ids, embeddings, documents, metadatas, need)
        if mode == "update" and documents is not None and embeddings is None and self._embedding_function is not None:
            emb = self._embed(docs, what)
        if emb is not None:
            self._ensure(int(emb.shape[1]))
        elif not self._exists():
            if mode == "update":
                return
            self._ensure(0)
        self._store.write(self._name, mode, ids, emb, docs, metas)

    # ---- Chroma's writes ----

    def add(
        self,
        ids: Any,
        embeddings: "Optional[Embeddings]" = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add records; ids that exist already are left as they are (as Chroma does).
        ``embeddings``: a list of lists or a numpy array (float32 used without a copy)."""
        self._write("add", ids, embeddings, documents, metadatas, "add")

    def upsert(
        self,
        ids: Any,
        embeddings: "Optional[Embeddings]" = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Add new records and update existing ones (metadata merged, None deletes a key)."""
        self._write("upsert", ids, embeddings, documents, metadatas, "upsert")

    def update(
        self,
        ids: Any,
        embeddings: "Optional[Embeddings]" = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Update existing records (missing ids are skipped): metadata keys are merged and a
        None value deletes a key; a given embedding or document replaces the old one."""
        self._write("update", ids, embeddings, documents, metadatas, "update")

    def delete(
        self,
        ids: Any = None,
        where: "Optional[Where]" = None,
        where_document: "Optional[Where]" = None,
    ) -> Dict[str, int]:
        """Delete the records ``ids`` names and the filters select; ``{"deleted": n}``."""
        what = "delete"
        if ids is None and where is None and where_document is None:
            raise ValueError("At least one of ids, where, or where_document must be provided in delete.")
        ids = None if ids is None else _args.ids_list(ids, what)
        w = _args.filter_json(where, "where", what)
        wd = _args.filter_json(where_document, "where_document", what)
        if not self._exists():
            self._check_alive()
            return {"deleted": 0}
        return {"deleted": self._store.delete(self._name, ids, w, wd)}

    # ---- Chroma's reads ----

    def count(self) -> int:
        """Number of records."""
        if not self._exists():
            self._check_alive()
            return 0
        return self._store.count(self._name)

    def get(
        self,
        ids: Any = None,
        where: "Optional[Where]" = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        where_document: "Optional[Where]" = None,
        include: Any = _GET_DEFAULT,
    ) -> Dict[str, Any]:
        """Records by ids and/or filters (by id order without ids), paged by ``limit`` and
        ``offset``: Chroma's ``GetResult`` with flat lists (embeddings one float32 array)."""
        what = "get"
        inc = _args.include_flags(include, False, what)
        ids = None if ids is None else _args.ids_list(ids, what)
        w = _args.filter_json(where, "where", what)
        wd = _args.filter_json(where_document, "where_document", what)
        lim = None if limit is None else _args.count_arg(limit, "limit", what, 0)
        off = 0 if offset is None else _args.count_arg(offset, "offset", what, 0)
        if self._exists():
            rid, emb, docs, metas = self._store.get(
                self._name, ids, w, wd, lim, off,
                "embeddings" in inc, "documents" in inc, "metadatas" in inc,
            )
        else:
            self._check_alive()
            rid, docs, metas = [], [], []
            emb = np.zeros((0, 0), dtype=np.float32)
        return {
            "ids": rid,
            "embeddings": emb if "embeddings" in inc else None,
            "documents": docs if "documents" in inc else None,
            "uris": None,
            "included": inc,
            "data": None,
            "metadatas": metas if "metadatas" in inc else None,
        }

    def peek(self, limit: int = 10) -> Dict[str, Any]:
        """The first ``limit`` records (by id), with embeddings."""
        return self.get(limit=limit, include=["metadatas", "documents", "embeddings"])

    def query(
        self,
        query_embeddings: "Optional[Embeddings]" = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: "Optional[Where]" = None,
        where_document: "Optional[Where]" = None,
        include: Any = _QUERY_DEFAULT,
        *,
        exact: bool = False,
    ) -> Dict[str, Any]:
        """The ``n_results`` nearest records to each query embedding (a 2-D array is a
        batch, searched in one call), among those ``where`` / ``where_document`` / ``ids``
        select: Chroma's ``QueryResult`` with one list per query. Ties are broken by id.
        ``exact=True`` skips the quantized first pass of an i8 / 1-bit collection."""
        what = "query"
        inc = _args.include_flags(include, True, what)
        k = _args.count_arg(n_results, "n_results", what, 1)
        if query_embeddings is not None:
            q = _args.embeddings_array(query_embeddings, what, "query_embeddings")
        elif query_texts is not None:
            q = self._embed(_args.str_list(query_texts, len(_args.ids_list(query_texts, what)), "query_texts", what), what)
        else:
            raise ValueError("At least one of one of embeddings, documents, images, uris must be provided in query.")
        ids = None if ids is None else _args.ids_list(ids, what)
        w = _args.filter_json(where, "where", what)
        wd = _args.filter_json(where_document, "where_document", what)
        if self._exists():
            results = self._store.query(
                self._name, q, k, w, wd, ids,
                "embeddings" in inc, "documents" in inc, "metadatas" in inc, bool(exact),
            )
        else:
            self._check_alive()
            empty = np.zeros((0, q.shape[1]), dtype=np.float32)
            results = [([], [], empty, [], []) for _ in range(q.shape[0])]
        return {
            "ids": [r[0] for r in results],
            "embeddings": [r[2] for r in results] if "embeddings" in inc else None,
            "documents": [r[3] for r in results] if "documents" in inc else None,
            "uris": None,
            "included": inc,
            "data": None,
            "metadatas": [r[4] for r in results] if "metadatas" in inc else None,
            "distances": [r[1] for r in results] if "distances" in inc else None,
        }

    def modify(
        self,
        name: Optional[str] = None,
        metadata: Optional[dict] = None,
        configuration: Optional[dict] = None,
    ) -> None:
        """Replace the collection's metadata, or rename a collection that has no records
        yet (strata cannot rename one holding data). The distance cannot change."""
        self._client._writable("modify")
        with self._client._lock:
            self._check_alive()
            entry = dict(self._client._entry(self._name) or self._entry)
            if metadata is not None:
                if not isinstance(metadata, dict):
                    raise ValueError(f"Expected metadata to be a dict, got {metadata!r}")
                if "hnsw:space" in metadata and metadata["hnsw:space"] != entry.get("space", "l2"):
                    raise InvalidArgumentError("the distance of a collection cannot change")
                entry["metadata"] = metadata or None
            if configuration is not None:
                space = ((configuration.get("hnsw") or {}).get("space"))
                if space is not None and space != entry.get("space", "l2"):
                    raise InvalidArgumentError("the distance of a collection cannot change")
            if name is not None and name != self._name:
                from ._client import _check_name

                _check_name(name)
                if self._exists():
                    raise InvalidArgumentError(
                        f"strata cannot rename collection {self._name!r}: it holds records"
                    )
                if self._client._entry(name) is not None:
                    raise InvalidArgumentError(f"Collection [{name}] already exists")
                self._client._put_catalog(name, entry)
                self._client._drop_catalog(self._name)
                self._name = name
            else:
                self._client._put_catalog(self._name, entry)
            self._entry = entry

    # ---- strata's extras ----

    def versions(self) -> List[dict]:
        """Retained versions, newest first: ``{"version", "parent", "created_ms", "rows",
        "bytes", "segments", "deltas", "head", "pinned", "note", ...}``."""
        if not self._exists():
            self._check_alive()
            return []
        return self._store.versions(self._name)

    def head(self) -> int:
        """The version the collection shows now."""
        return self._store.head(self._name)

    def rollback(self, version: int) -> dict:
        """Make a retained version the head again (as a new version; history is kept)."""
        return self._store.rollback(self._name, int(version))

    def pin(self, version: int) -> None:
        """Keep a version through retention and GC until it is unpinned."""
        self._store.pin(self._name, int(version))

    def unpin(self, version: int) -> None:
        """Release a pinned version."""
        self._store.unpin(self._name, int(version))

    def pins(self) -> List[int]:
        """Pinned versions."""
        return self._store.pins(self._name)

    def compact(self, full: bool = True) -> dict:
        """Fold deltas into segments now (``full``) or only if the policy says so."""
        return self._store.compact(self._name, full)
