"""Text clean-up operators that work on strings or on dicts with a text field."""

from __future__ import annotations

import re
from typing import Any

from sage.kernel.api import FilterFunction, MapFunction


def _text(record: Any, field: str) -> str:
    return record[field] if isinstance(record, dict) else record


class NormalizeWhitespace(MapFunction):
    """Collapses runs of whitespace to one space and strips the ends."""

    def __init__(self, field: str = "text") -> None:
        self.field = field

    def map(self, record: Any) -> Any:
        cleaned = " ".join(_text(record, self.field).split())
        return {**record, self.field: cleaned} if isinstance(record, dict) else cleaned


class MatchFilter(FilterFunction):
    """Keeps records whose text matches a regular expression (or, with invert, does not)."""

    def __init__(self, pattern: str, field: str = "text", invert: bool = False) -> None:
        self.pattern = pattern
        self.field = field
        self.invert = invert
        self._regex = re.compile(pattern)  # compiled patterns copy and pickle fine

    def filter(self, record: Any) -> bool:
        return (self._regex.search(_text(record, self.field)) is None) == self.invert
