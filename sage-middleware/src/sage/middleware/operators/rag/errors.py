"""Errors the RAG operators raise; each names the operator and how to fix the problem."""

from __future__ import annotations


class RagError(Exception):
    """Base class of the errors raised by ``sage.middleware.operators.rag``."""


class RecordError(RagError, ValueError):
    """A record lacks a field an operator needs, or holds the wrong kind of value."""


class EmbeddingMismatchError(RagError, ValueError):
    """A record's embedding comes from another model or dimension than its collection's."""


class CollectionNotFoundError(RagError, LookupError):
    """A Chroma collection to read from does not exist."""


class BackendUnavailableError(RagError, RuntimeError):
    """An embedding backend was chosen whose package or hardware is missing."""


class GenerationError(RagError, RuntimeError):
    """A chat-completion request still failed after its retries."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
