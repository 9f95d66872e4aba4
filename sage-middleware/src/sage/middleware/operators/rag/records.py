"""Reading the fields the RAG operators need from a record, with errors that say what to do."""

from __future__ import annotations

from typing import Any

from sage.middleware.operators.rag.errors import RecordError


def describe(record: Any, number: int | None = None) -> str:
    """``record 17 (id "a.md#3")``: how error messages point at a record."""
    where = f"record {number}" if number is not None else "record"
    if isinstance(record, dict) and "id" in record:
        return f'{where} (id "{record["id"]}")'
    return where


def text_field(record: Any, field: str, label: str, hint: str, number: int | None = None) -> str:
    """The string ``record`` holds (a plain str) or holds under ``field`` (a dict)."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise RecordError(f"{label}: {describe(record, number)} is a {type(record).__name__}; expected a str "
                          f"or a dict with a {field!r} field")
    value = record.get(field)
    if value is None:
        raise RecordError(f'{label}: {describe(record, number)} has no "{field}" field; {hint}')
    if not isinstance(value, str):
        raise RecordError(f'{label}: {describe(record, number)} has a "{field}" of type '
                          f"{type(value).__name__}; expected a str")
    return value


def with_fields(record: Any, field: str, **fields: Any) -> dict[str, Any]:
    """A new dict: ``record`` (or ``{field: record}`` for a str) plus ``fields``."""
    base = {field: record} if isinstance(record, str) else dict(record)
    base.update(fields)
    return base
