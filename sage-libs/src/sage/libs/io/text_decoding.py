"""How the sources turn a file's bytes into text: the codec, the byte-order mark, the checks.

A UTF-8 byte-order mark (``EF BB BF``) written by Windows tools at the start of a file is not
text: with ``utf-8`` or ``utf-8-sig`` it is dropped there. Lines are decoded one by one or a
block at a time, so ``utf-8-sig`` decodes them as ``utf-8`` (a mark can only start a file).
"""

from __future__ import annotations

import codecs

import attrs

UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})


@attrs.frozen
class TextDecoding:
    """The codec that decodes a file's lines, and whether a UTF-8 mark starting it is dropped."""

    codec: str
    drops_bom: bool

    @classmethod
    def of(cls, owner: str, encoding: str, *, lines: bool = True) -> TextDecoding:
        """The decoding of ``encoding``; fails for an unknown encoding, or, when ``lines``,
        one where ``\\n`` is not the byte 0x0A (lines are split in bytes)."""
        try:
            name = codecs.lookup(encoding).name
        except (LookupError, TypeError) as exc:
            raise ValueError(f"{owner}: unknown encoding {encoding!r}") from exc
        codec = "utf-8" if name == "utf-8-sig" else name
        if lines and "\n".encode(codec) != b"\n":
            raise ValueError(
                f"{owner}: encoding {encoding!r} is not ASCII-compatible; line formats need one "
                "(utf-8, utf-8-sig, latin-1, cp1252, ...); convert the file or use "
                "format='whole_file'"
            )
        return cls(codec, name in UTF8_NAMES)

    def bom_length(self, start: bytes) -> int:
        """How many bytes at the start of a file (``start``: its first bytes) to drop."""
        return len(codecs.BOM_UTF8) if self.drops_bom and start.startswith(codecs.BOM_UTF8) else 0
