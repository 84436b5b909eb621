"""strata's exceptions, under the names Chroma users catch.

Every class derives from :class:`StrataError` (also exported as ``ChromaError``). The ones
for bad arguments and missing collections also derive from :class:`ValueError`, which is
what chromadb 0.x raised for them, so code written for either generation keeps working.
"""

from __future__ import annotations


class StrataError(Exception):
    """Base class of strata's errors (Chroma's ``ChromaError``)."""

    def message(self) -> str:
        """The error's message (Chroma's ``ChromaError.message()``)."""
        return str(self.args[0]) if self.args else ""

    @classmethod
    def name(cls) -> str:
        """The error's name (Chroma's ``ChromaError.name()``)."""
        return cls.__name__


ChromaError = StrataError


class InvalidArgumentError(StrataError, ValueError):
    """An argument strata cannot accept: wrong dimension, an empty id, a bad distance name."""


class InvalidDimensionException(InvalidArgumentError):
    """An embedding whose dimension differs from the collection's."""


class DuplicateIDError(InvalidArgumentError):
    """The same id appears twice in one write."""


class NotFoundError(StrataError, ValueError):
    """No collection (or retained version) of that name."""


class UniqueConstraintError(StrataError, ValueError):
    """A collection of that name exists already."""


class InternalError(StrataError):
    """Something failed inside strata (I/O, the manifest)."""


class WriterBusyError(StrataError):
    """Another process is the store's writer; open a reader (``read_only=True``) instead."""


class ReadOnlyError(StrataError):
    """A writing call on a client opened read-only."""


class CorruptionError(StrataError):
    """A file of the store is corrupt (``verify()`` names it)."""


__all__ = [
    "StrataError",
    "ChromaError",
    "InvalidArgumentError",
    "InvalidDimensionException",
    "DuplicateIDError",
    "NotFoundError",
    "UniqueConstraintError",
    "InternalError",
    "WriterBusyError",
    "ReadOnlyError",
    "CorruptionError",
]
