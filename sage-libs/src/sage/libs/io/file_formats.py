"""The record formats FileSource reads and how ``format="auto"`` picks one by extension."""

from __future__ import annotations

import codecs
from pathlib import Path

FORMATS = ("auto", "lines", "jsonl", "csv", "whole_file")
"""``lines``: one str per line; ``jsonl``: one JSON value per line; ``csv``: one dict per row
(the first row is the header); ``whole_file``: the file's text as one str."""

BY_EXTENSION = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}
SPLITTABLE = frozenset({"lines", "jsonl"})


def format_of(path: Path, format: str) -> str:
    """The concrete format of ``path``: ``format`` unless it is ``auto``."""
    if format != "auto":
        return format
    return BY_EXTENSION.get(path.suffix.lower(), "lines")


def check_encoding(owner: str, encoding: str, format: str) -> None:
    """Fail at build time for an unknown encoding, or one where ``\\n`` is not the byte 0x0A
    when lines are split in bytes."""
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ValueError(f"{owner}: unknown encoding {encoding!r}") from exc
    if format != "whole_file" and "\n".encode(encoding) != b"\n":
        raise ValueError(
            f"{owner}: encoding {encoding!r} is not ASCII-compatible; line formats need one "
            "(utf-8, latin-1, cp1252, ...); convert the file or use format='whole_file'"
        )
