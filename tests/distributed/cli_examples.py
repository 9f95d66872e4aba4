"""The example ``--json`` outputs docs/cli.md shows, for the tests that compare them with what
the commands print."""

from __future__ import annotations

import json

from tests.docs_blocks import blocks


def documented(command: str) -> dict:
    """The example output docs/cli.md shows for ``sage job COMMAND ... --json``."""
    (code,) = [b.code for b in blocks("cli.md") if b.language == "text"
               and b.code.startswith(f"$ sage job {command} ") and "--json\n{" in b.code]
    return json.loads(code.split("\n", 1)[1])
