"""The code blocks of README.md and docs/*.md, for the tests that run them.

The convention the pages follow: a fence's info string names the language (```` ```python ````,
``bash``, ``yaml``, ``toml``); ``fragment`` after it (```` ```python fragment ````) marks a
block that is part of a larger program or needs machines a test cannot have, and is not run.
A fence without a language (or ``text``, ``mermaid``) shows output or a picture.
Every other block is run by a test: ``PAGE_TESTS`` in tests/test_docs_blocks.py says which.
"""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OUTPUT_LANGUAGES = frozenset({"", "text", "mermaid"})
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)


@attrs.frozen
class Block:
    """One fenced block: where it is, its language, whether it is a fragment, its code."""

    page: str
    line: int
    language: str
    fragment: bool
    code: str

    @property
    def runnable(self) -> bool:
        return self.language not in OUTPUT_LANGUAGES and not self.fragment

    def run(self, namespace: dict) -> None:
        """Execute a python block in ``namespace``; a traceback names the page and line."""
        exec(compile("\n" * (self.line) + self.code, self.page, "exec"), namespace)


def page_path(name: str) -> Path:
    return REPO / name if name == "README.md" else REPO / "docs" / name


def blocks(name: str) -> list[Block]:
    """Every fenced block of ``name`` (``README.md`` or a page of docs/), in order."""
    text = page_path(name).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        words = match["info"].split()
        indent = len(match["indent"])
        code = textwrap.dedent(match["code"]) if indent else match["code"]
        found.append(Block(name, text.count("\n", 0, match.start()) + 1, words[0] if words else "",
                           "fragment" in words[1:], code))
    return found


def runnable(name: str, language: str = "python") -> list[Block]:
    """The blocks of ``name`` in ``language`` that are not fragments."""
    return [b for b in blocks(name) if b.language == language and not b.fragment]


def run_blocks(blocks_: list[Block]) -> tuple[dict, str]:
    """Run python blocks in order in one namespace; the namespace and what they printed.

    Standard output is redirected rather than captured with ``capsys``: SAGE's log stream is
    bound once per process, and must not be a capture that a test closes.
    """
    namespace: dict = {"__name__": "docs"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks_:
            block.run(namespace)
    return namespace, out.getvalue()
