"""HTML → blocks, through Beautiful Soup.

Headings (h1-h6) open sections; paragraphs, lists, tables, preformatted text and quotes become
blocks; containers (div, section, article, ...) are walked into; scripts, styles and page chrome
(nav, header, footer, aside) are dropped, since their text is not knowledge.
"""

from __future__ import annotations

from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag

from .model import Block, BlockKind, ParsedText

__all__ = ["parse_html"]

_DROP = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS: dict[str, BlockKind] = {
    "p": "paragraph",
    "ul": "list",
    "ol": "list",
    "dl": "list",
    "table": "table",
    "pre": "code",
    "blockquote": "quote",
}


def parse_html(html: str) -> ParsedText:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP):
        tag.decompose()
    title_tag = soup.find("title")
    title = _text(title_tag) if isinstance(title_tag, Tag) else None
    root = soup.body or soup
    walker = _Walker()
    walker.walk(root)
    first_h1 = next((h for level, h in walker.headings if level == 1), None)
    return ParsedText(tuple(walker.blocks), title or first_h1)


class _Walker:
    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                # Loose text directly inside a container is a paragraph of its own.
                if type(child) is NavigableString and child.strip():
                    self._emit(" ".join(child.split()), "paragraph")
                continue
            if not isinstance(child, Tag) or child.name == "title":
                continue
            if child.name in _HEADINGS:
                self._heading(_HEADINGS[child.name], _text(child))
            elif child.name in _BLOCKS:
                self._emit(_block_text(child), _BLOCKS[child.name])
            else:
                self.walk(child)

    def _heading(self, level: int, text: str) -> None:
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        if text:
            self.path.append((level, text))
            self.headings.append((level, text))

    def _emit(self, text: str, kind: BlockKind) -> None:
        if text.strip():
            self.blocks.append(Block(tuple(h for _, h in self.path), text.strip(), kind))


def _text(tag: Tag) -> str:
    return " ".join(tag.get_text(" ", strip=True).split())


def _block_text(tag: Tag) -> str:
    if tag.name in ("ul", "ol"):
        items = tag.find_all("li", recursive=False)
        return "\n".join(f"- {_text(li)}" for li in items if _text(li))
    if tag.name == "table":
        rows = []
        for tr in tag.find_all("tr"):
            cells = [_text(c) for c in tr.find_all(["th", "td"])]
            if any(cells):
                rows.append(" | ".join(cells))
        return "\n".join(rows)
    if tag.name == "pre":
        return tag.get_text()
    return _text(tag)
