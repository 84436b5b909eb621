"""Type stubs of strata's native module (the Rust half; see strata._client for the API)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_F32 = npt.NDArray[np.float32]
_Meta = Optional[Dict[str, Any]]

class Store:
    """An opened store: the writer, or a reader with ``read_only=True``."""

    def __init__(
        self,
        path: Union[str, PathLike[str]],
        read_only: bool = False,
        verify_on_open: bool = True,
        holder: Optional[str] = None,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    def close(self) -> None: ...
    def collections(self) -> List[Tuple[str, int, str, str, int]]: ...
    def create_collection(self, name: str, dims: int, metric: str = "l2", quantization: str = "none") -> None: ...
    def drop_collection(self, name: str) -> None: ...
    def write(
        self,
        collection: str,
        mode: str,
        ids: List[str],
        embeddings: Optional[_F32] = None,
        documents: Optional[List[Optional[str]]] = None,
        metadatas: Optional[List[_Meta]] = None,
    ) -> int: ...
    def delete(
        self,
        collection: str,
        ids: Optional[List[str]] = None,
        where: Optional[str] = None,
        where_document: Optional[str] = None,
    ) -> int: ...
    def get(
        self,
        collection: str,
        ids: Optional[List[str]] = None,
        where: Optional[str] = None,
        where_document: Optional[str] = None,
        limit: Optional[int] = None,
        offset: int = 0,
        embeddings: bool = False,
        documents: bool = True,
        metadatas: bool = True,
    ) -> Tuple[List[str], Optional[_F32], Optional[List[Optional[str]]], Optional[List[_Meta]]]: ...
    def count(self, collection: str) -> int: ...
    def query(
        self,
        collection: str,
        queries: _F32,
        n_results: int,
        where: Optional[str] = None,
        where_document: Optional[str] = None,
        ids: Optional[List[str]] = None,
        embeddings: bool = False,
        documents: bool = True,
        metadatas: bool = True,
        exact: bool = False,
    ) -> List[Tuple[List[str], List[float], Optional[_F32], Optional[List[Optional[str]]], Optional[List[_Meta]]]]: ...
    def dims(self, collection: str) -> int: ...
    def versions(self, collection: str) -> List[Dict[str, Any]]: ...
    def head(self, collection: str) -> int: ...
    def rollback(self, collection: str, version: int) -> Dict[str, Any]: ...
    def pin(self, collection: str, version: int) -> None: ...
    def unpin(self, collection: str, version: int) -> None: ...
    def pins(self, collection: str) -> List[int]: ...
    def compact(self, collection: str, full: bool = True) -> Dict[str, Any]: ...
    def gc(self) -> Dict[str, Any]: ...
    def ingest_inbox(self) -> Dict[str, Any]: ...
    def verify(self) -> Dict[str, Any]: ...

def encode_delta(
    collection: str,
    dims: int,
    ids: List[str],
    embeddings: Optional[_F32] = None,
    documents: Optional[List[Optional[str]]] = None,
    metadatas: Optional[List[_Meta]] = None,
    seqs: Optional[List[str]] = None,
    producer: str = "python",
) -> bytes: ...
def publish_inbox(store: Union[str, PathLike[str]], producer: str, data: bytes) -> str: ...
def verify(path: Union[str, PathLike[str]]) -> Dict[str, Any]: ...
