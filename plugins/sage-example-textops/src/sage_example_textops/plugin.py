"""Registers the text operators under the names pipeline files use."""

from __future__ import annotations

from typing import Any

from sage.kernel.hookspecs import hookimpl

from sage_example_textops.operators import MatchFilter, NormalizeWhitespace


@hookimpl
def sage_operators() -> dict[str, Any]:
    return {"normalize_whitespace": NormalizeWhitespace, "match": MatchFilter}
