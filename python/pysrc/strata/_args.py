"""Normalisation and checks of Chroma-style arguments, before they reach the engine.

Chroma accepts a single id, document, metadata or embedding where a list is expected, and
lists or numpy arrays of float32 or float64 for embeddings; these helpers turn every
accepted form into one (lists of str, one C-contiguous float32 2-D array) and raise
``ValueError`` / ``TypeError`` with a message naming the argument for anything else.
"""

from __future__ import annotations

import json
import numbers
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from .errors import DuplicateIDError

#: What ``include`` may name, as in Chroma.
INCLUDE_ITEMS = ("documents", "embeddings", "metadatas", "distances", "uris", "data")

#: The largest ``n_results`` / ``limit`` passed on (bigger values mean "all").
MAX_COUNT = 2**62


def ids_list(ids: Any, what: str) -> List[str]:
    """``ids`` as a list of str (a single str is one id)."""
    if isinstance(ids, str):
        return [ids]
    if ids is None or isinstance(ids, (bytes, Mapping)) or not isinstance(ids, Sequence):
        raise ValueError(f"Expected IDs to be a list of str, got {ids!r} in {what}.")
    out = list(ids)
    for i in out:
        if not isinstance(i, str):
            raise ValueError(f"Expected ID to be a str, got {i!r} in {what}.")
    return out


def check_unique(ids: List[str], what: str) -> None:
    """Raise :class:`DuplicateIDError` if an id repeats."""
    if len(set(ids)) != len(ids):
        seen: set = set()
        dups = sorted({i for i in ids if i in seen or seen.add(i)})
        raise DuplicateIDError(
            f"Expected IDs to be unique, found duplicates of: {', '.join(dups)} in {what}."
        )


def embeddings_array(embeddings: Any, what: str, name: str = "embeddings") -> np.ndarray:
    """Embeddings as one C-contiguous float32 ``(n, dims)`` array, without a copy when the
    input already is one. A flat list of numbers or a 1-D array is one embedding. Values
    that are not finite (NaN, infinity, or beyond float32's range) are refused by the
    engine, with the row and element named."""
    if isinstance(embeddings, np.ndarray):
        if embeddings.dtype == np.float32 and embeddings.ndim == 2 and embeddings.flags.c_contiguous:
            return embeddings
        arr = embeddings
    else:
        if isinstance(embeddings, (str, bytes, Mapping)) or not isinstance(embeddings, Sequence):
            raise ValueError(
                f"Expected {name} to be a list of floats or ints, a list of lists, a numpy "
                f"array, or a list of numpy arrays, got {type(embeddings).__name__} in {what}."
            )
        if len(embeddings) == 0:
            raise ValueError(f"Expected {name} to be a non-empty list or numpy array in {what}.")
        first = embeddings[0]
        if isinstance(first, numbers.Number) and not isinstance(first, bool):
            embeddings = [embeddings]
        try:
            arr = np.asarray(embeddings)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name} are not a rectangular list of numbers ({e}) in {what}.") from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"Expected {name} to be 1-D or 2-D, got {arr.ndim} dimensions in {what}.")
    if arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise ValueError(
            f"Expected {name} to be a list of floats or ints, got values of type {arr.dtype} in {what}."
        )
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr, dtype=np.float32)


def str_list(values: Any, n: int, name: str, what: str) -> List[Optional[str]]:
    """Documents as a list of ``n`` str or None (a single str is one)."""
    if isinstance(values, str):
        values = [values]
    if isinstance(values, (bytes, Mapping)) or not isinstance(values, Sequence):
        raise ValueError(f"Expected {name} to be a list of str, got {values!r} in {what}.")
    out = list(values)
    for v in out:
        if v is not None and not isinstance(v, str):
            raise ValueError(f"Expected each of {name} to be a str, got {v!r} in {what}.")
    if len(out) != n:
        raise ValueError(f"Unequal lengths for fields: ids: {n}, {name}: {len(out)} in {what}.")
    return out


def metadata_list(values: Any, n: int, what: str) -> List[Optional[dict]]:
    """Metadatas as a list of ``n`` non-empty dicts or None (a single dict is one)."""
    if isinstance(values, Mapping):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"Expected metadatas to be a list of dicts, got {values!r} in {what}.")
    out = list(values)
    for m in out:
        if m is None:
            continue
        if not isinstance(m, Mapping):
            raise ValueError(f"Expected metadata to be a dict, got {m!r} in {what}.")
        if len(m) == 0:
            raise ValueError(
                f"Expected metadata to be a non-empty dict, got 0 metadata attributes in {what}."
            )
        for k, v in m.items():
            if isinstance(v, Mapping):
                raise ValueError(
                    f"Expected metadata value to be a str, int, float, bool, list, or None, "
                    f"got {v!r} which is a dict in {what}."
                )
    if len(out) != n:
        raise ValueError(f"Unequal lengths for fields: ids: {n}, metadatas: {len(out)} in {what}.")
    return [dict(m) if m is not None and not isinstance(m, dict) else m for m in out]


def filter_json(where: Any, name: str, what: str) -> Optional[str]:
    """A ``where`` / ``where_document`` dict as the JSON text the engine parses."""
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise ValueError(f"Expected {name} to be a dict, got {where!r} in {what}.")
    try:
        return json.dumps(where, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} holds a value strata cannot compare with ({e}) in {what}.") from None


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{v!r} of type {type(v).__name__}")


def include_flags(include: Any, allowed_distances: bool, what: str) -> List[str]:
    """``include`` checked against what strata stores."""
    if isinstance(include, str) or not isinstance(include, Sequence):
        raise ValueError(f"Expected include to be a list, got {include!r} in {what}.")
    out = list(include)
    for item in out:
        if item not in INCLUDE_ITEMS:
            raise ValueError(
                f"Expected include item to be one of {', '.join(INCLUDE_ITEMS)}, got {item} in {what}."
            )
        if item == "distances" and not allowed_distances:
            raise ValueError(f"Include item cannot be one of distances, got distances in {what}.")
        if item in ("uris", "data"):
            raise ValueError(f"strata stores no {item}; include documents, embeddings, metadatas or distances in {what}.")
    return out


def count_arg(v: Any, name: str, what: str, minimum: int) -> int:
    """A non-negative (or positive) int argument, capped at :data:`MAX_COUNT`."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"Expected {name} to be an int, got {v!r} in {what}.")
    v = int(v)
    if v < minimum:
        if name == "n_results":
            raise TypeError(
                f"Number of requested results {v}, cannot be negative, or zero. in {what}."
            )
        raise ValueError(f"Expected {name} to be at least {minimum}, got {v} in {what}.")
    return min(v, MAX_COUNT)
