"""The record formats FileSource reads and how ``format="auto"`` picks one by extension."""

from __future__ import annotations

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

MAX_RECORD_BYTES = 16 << 20
"""The default ``max_record_bytes``: the longest line, CSV row or whole file a source turns
into one record (16 MiB); anything longer goes to the error policy instead of into memory."""
