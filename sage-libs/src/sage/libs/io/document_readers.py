"""Turning a document file into text: plain text formats, HTML, and PDF through pypdf."""

from __future__ import annotations

import codecs
import importlib.util
from pathlib import Path

from sage.libs.io.errors import BadInputError, MissingExtraError
from sage.libs.io.html_text import html_to_text
from sage.libs.io.text_decoding import UTF8_NAMES

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".text"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
PDF_HINT = "pip install 'sage-libs[pdf]' (installs pypdf)"


def pdf_support() -> bool:
    """True when the optional PDF parser (pypdf) can be imported."""
    try:
        return importlib.util.find_spec("pypdf") is not None
    except (ImportError, ValueError):
        return False


def require_pdf_support(owner: str, path: Path) -> None:
    """Fail with the extra to install when ``path`` is a PDF and pypdf is missing."""
    if not pdf_support():
        raise MissingExtraError(f"{owner}: reading {path} needs the PDF extra; {PDF_HINT}")


def _decode(path: Path, data: bytes, encoding: str) -> str:
    # A UTF-8 byte-order mark at the start of the file is not text (utf-8-sig drops it).
    codec = "utf-8-sig" if codecs.lookup(encoding).name in UTF8_NAMES else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInputError(f"{path}:{line}: cannot decode the file as {encoding} ({exc}); "
                            "fix the file or pass encoding=") from exc


def _pdf_text(path: Path) -> str:
    import pypdf

    try:
        reader = pypdf.PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise BadInputError(f"{path}: cannot parse the PDF ({type(exc).__name__}: {exc})") from exc
    return "\n\n".join(page.strip() for page in pages if page.strip())


def read_document(path: Path, encoding: str = "utf-8") -> tuple[bytes, str]:
    """The file's bytes (for its content hash) and its text."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return data, _pdf_text(path)
    text = _decode(path, data, encoding)
    if suffix in HTML_SUFFIXES:
        return data, html_to_text(text)
    return data, text
