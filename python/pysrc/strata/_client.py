"""Chroma's client API on a strata store: :class:`PersistentClient` and :class:`Collection`.

A collection's dimension is fixed by its first write, as in Chroma: until then it exists
only as a row of the store's ``_strata_catalog`` collection (metadata-only), which also
keeps each collection's Chroma metadata, configuration and id. Collections created
outside Python (by the CLI or the compactor) are collections here too.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _args
from ._strata import Store
from .errors import InvalidArgumentError, NotFoundError, ReadOnlyError, UniqueConstraintError

#: The metadata-only collection holding the Chroma catalog.
CATALOG = "_strata_catalog"

_SPACES = ("l2", "cosine", "ip")
_QUANTIZATIONS = ("none", "i8", "1bit")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,62}[a-zA-Z0-9]$")
_ID_NAMESPACE = uuid.UUID("4c2f7a5e-4f0a-4d55-9a54-0d6b2c1e7f31")

Embeddings = Union[np.ndarray, Sequence[Sequence[float]], Sequence[float]]
Where = Dict[str, Any]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            "Validation error: name: Expected a name containing 3-64 characters from "
            "[a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. "
            f"Got: {name}"
        )
    return name


def _space_of(metadata: Optional[dict], configuration: Optional[dict]) -> str:
    space = None
    if configuration:
        hnsw = configuration.get("hnsw") or configuration.get("spann") or {}
        space = hnsw.get("space")
    if space is None and metadata:
        space = metadata.get("hnsw:space")
    space = space or "l2"
    if space not in _SPACES:
        raise InvalidArgumentError(f"unknown distance {space!r}; expected one of l2, cosine, ip")
    return space


def _quantization_of(configuration: Optional[dict]) -> str:
    q = ((configuration or {}).get("strata") or {}).get("quantization", "none")
    if q not in _QUANTIZATIONS:
        raise InvalidArgumentError(f"unknown quantization {q!r}; expected one of none, i8, 1bit")
    return q


class PersistentClient:
    """A strata store as a Chroma ``PersistentClient``.

    ``PersistentClient(path)`` opens the store as its writer (creating it if missing);
    ``PersistentClient(path, read_only=True)`` opens a reader, which works while another
    process is the writer and sees each of its commits. Chroma's ``settings``, ``tenant``
    and ``database`` are accepted and ignored.
    """

    def __init__(
        self,
        path: str = "./chroma",
        settings: Any = None,
        tenant: str = "default_tenant",
        database: str = "default_database",
        *,
        read_only: bool = False,
        verify_on_open: bool = True,
    ) -> None:
        self._store = Store(str(path), read_only=read_only, verify_on_open=verify_on_open)
        self._path = str(path)
        self._lock = threading.RLock()
        self.tenant = tenant
        self.database = database

    # ---- the catalog ----

    def _catalog(self) -> Dict[str, dict]:
        names = {c[0] for c in self._store.collections()}
        if CATALOG not in names:
            return {}
        ids, _, docs, _ = self._store.get(CATALOG, None, None, None, None, 0, False, True, False)
        out = {}
        for name, doc in zip(ids, docs):
            try:
                out[name] = json.loads(doc) if doc else {}
            except ValueError:
                out[name] = {}
        return out

    def _put_catalog(self, name: str, entry: dict) -> None:
        if CATALOG not in {c[0] for c in self._store.collections()}:
            self._store.create_collection(CATALOG, 0)
        self._store.write(CATALOG, "upsert", [name], None, [json.dumps(entry)], None)

    def _drop_catalog(self, name: str) -> None:
        if CATALOG in {c[0] for c in self._store.collections()}:
            self._store.delete(CATALOG, [name])

    def _engine_info(self) -> Dict[str, tuple]:
        return {c[0]: c for c in self._store.collections() if c[0] != CATALOG}

    def _entry(self, name: str) -> Optional[dict]:
        """The catalog entry of ``name`` (made up for a collection created outside
        Python), or None when there is no such collection."""
        engine = self._engine_info()
        entry = self._catalog().get(name)
        if entry is None and name in engine:
            _, _, metric, quant, created = engine[name]
            entry = {
                "id": str(uuid.uuid5(_ID_NAMESPACE, f"{name}:{created}")),
                "metadata": None,
                "configuration": {"hnsw": {"space": metric}},
                "space": metric,
                "quantization": quant,
            }
        return entry

    def _writable(self, what: str) -> None:
        if self._store.read_only:
            raise ReadOnlyError(f"{what} needs the writer: this client was opened read-only")

    # ---- Chroma's client API ----

    def heartbeat(self) -> int:
        """Nanoseconds since the epoch (the store is open and answering)."""
        self._store.collections()
        return time.time_ns()

    def get_version(self) -> str:
        """strata's version."""
        from . import __version__

        return __version__

    def create_collection(
        self,
        name: str,
        configuration: Optional[dict] = None,
        metadata: Optional[dict] = None,
        embedding_function: Any = None,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> "Collection":
        """Create a collection; distance from ``configuration={"hnsw": {"space": ...}}``
        or ``metadata={"hnsw:space": ...}`` (l2, cosine or ip; l2 by default). Its
        dimension is fixed by the first write. ``configuration={"strata":
        {"quantization": "i8"}}`` (or ``"1bit"``) makes its compactions build codes."""
        _check_name(name)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(f"Expected metadata to be a dict or None, got {metadata!r}")
        with self._lock:
            existing = self._entry(name)
            if existing is not None:
                if get_or_create:
                    return Collection(self, name, existing, embedding_function)
                raise UniqueConstraintError(f"Collection [{name}] already exists")
            self._writable("create_collection")
            space = _space_of(metadata, configuration)
            entry = {
                "id": str(uuid.uuid4()),
                "metadata": metadata or None,
                "configuration": {"hnsw": {"space": space}, **{k: v for k, v in (configuration or {}).items() if k != "hnsw"}},
                "space": space,
                "quantization": _quantization_of(configuration),
            }
            self._put_catalog(name, entry)
            return Collection(self, name, entry, embedding_function)

    def get_or_create_collection(
        self,
        name: str,
        configuration: Optional[dict] = None,
        metadata: Optional[dict] = None,
        embedding_function: Any = None,
        data_loader: Any = None,
    ) -> "Collection":
        """The collection of that name, created (as :meth:`create_collection`) if missing."""
        return self.create_collection(
            name, configuration, metadata, embedding_function, data_loader, get_or_create=True
        )

    def get_collection(
        self, name: str, embedding_function: Any = None, data_loader: Any = None
    ) -> "Collection":
        """The collection of that name; :class:`~strata.errors.NotFoundError` if none."""
        entry = self._entry(name)
        if entry is None:
            raise NotFoundError(f"Collection [{name}] does not exist")
        return Collection(self, name, entry, embedding_function)

    def list_collections(self, limit: Optional[int] = None, offset: Optional[int] = None) -> List["Collection"]:
        """Every collection, by name."""
        names = sorted(set(self._catalog()) | set(self._engine_info()))
        start = offset or 0
        names = names[start : start + limit if limit is not None else None]
        return [Collection(self, n, self._entry(n) or {}, None) for n in names]

    def count_collections(self) -> int:
        """How many collections there are."""
        return len(set(self._catalog()) | set(self._engine_info()))

    def delete_collection(self, name: str) -> None:
        """Delete a collection (its files go at the next :meth:`gc`)."""
        self._writable("delete_collection")
        with self._lock:
            if self._entry(name) is None:
                raise NotFoundError(f"Collection [{name}] does not exist")
            if name in self._engine_info():
                self._store.drop_collection(name)
            self._drop_catalog(name)

    # ---- strata's extras ----

    def gc(self) -> dict:
        """Retention and garbage collection: drops versions past retention (except the
        head and pins) and deletes files no retained version references."""
        return self._store.gc()

    def verify(self) -> dict:
        """Check every file's checksums and structure: ``{"ok", "files", "bytes",
        "problems": [(path, what), ...]}``."""
        return self._store.verify()

    def ingest_inbox(self) -> dict:
        """Register the sealed deltas producers published into the store's inbox."""
        return self._store.ingest_inbox()

    def close(self) -> None:
        """Close the store (the writer releases its lease). Later calls raise."""
        self._store.close()

    def __enter__(self) -> "PersistentClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def read_only(self) -> bool:
        """Whether this client was opened read-only."""
        return bool(self._store.read_only)

    @property
    def path(self) -> str:
        """The store's directory."""
        return self._path

    def __repr__(self) -> str:
        return f"PersistentClient(path={self._path!r}, read_only={self.read_only})"


def Reader(path: str, verify_on_open: bool = True) -> PersistentClient:
    """A read-only client of the store at ``path`` (works beside a writer in another process)."""
    return PersistentClient(path, read_only=True, verify_on_open=verify_on_open)


from ._collection import Collection  # noqa: E402  (Collection needs the client module)
