"""The readable text of an HTML document: tags dropped, blocks separated by blank lines."""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = frozenset({
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "li", "ul",
    "ol", "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "br", "hr",
    "title", "dd", "dt", "figure", "figcaption",
})
HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg"})


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        if tag in BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        if tag in BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Text of ``html`` with paragraphs separated by one blank line and spaces collapsed."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    text = "".join(collector.parts)
    paragraphs = (re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v]*", "\n", re.sub(r"[ \t\r\f\v]+", " ", p)).strip()
                  for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)
