"""ConsoleSink: one record a line on standard output, safe from parallel instances."""

from __future__ import annotations

import json
from typing import Any

from sage.kernel.api import SinkFunction
from sage.libs.io.console_output import write_block

CONSOLE_FORMATS = ("auto", "json", "repr")
_JSON_TYPES = (dict, list, tuple, int, float, bool, type(None))


def _json(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


def format_record(record: Any, format: str) -> str:
    """The one-line text ``ConsoleSink`` prints for ``record``."""
    if format == "repr":
        return repr(record)
    if format == "json":
        return _json(record)
    if isinstance(record, str):
        return record if "\n" not in record and "\r" not in record else _json(record)
    if isinstance(record, _JSON_TYPES):
        return _json(record)
    return repr(record)


class ConsoleSink(SinkFunction):
    """Prints each record on one line.

    ``auto``: strings as they are (JSON-quoted when they hold a line break), dicts, lists and
    numbers as JSON, anything else as ``repr``; ``json``: everything as JSON (``str()`` for
    what JSON cannot hold); ``repr``: Python's ``repr``. ``prefix`` starts every line.
    """

    def __init__(self, format: str = "auto", *, prefix: str = "", flush: bool = True) -> None:
        if format not in CONSOLE_FORMATS:
            raise ValueError(f"ConsoleSink: format must be one of {', '.join(CONSOLE_FORMATS)}; "
                             f"got {format!r}")
        self.format = format
        self.prefix = prefix
        self.flush = flush

    def sink(self, record: Any) -> None:
        write_block(f"{self.prefix}{format_record(record, self.format)}\n", self.flush)
