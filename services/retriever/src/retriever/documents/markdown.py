"""Markdown → blocks, through markdown-it-py (CommonMark plus tables).

Blocks keep their Markdown source (a table stays a table, a list a list) so the text a user
sees in a citation reads as written; headings become the section path of what follows them.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

from .model import Block, BlockKind, ParsedText

__all__ = ["parse_markdown"]

_BLOCK_KINDS: dict[str, BlockKind] = {
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "fence": "code",
    "code_block": "code",
    "blockquote_open": "quote",
    "html_block": "paragraph",
}

_md = MarkdownIt("commonmark").enable("table")


def parse_markdown(text: str) -> ParsedText:
    lines = text.splitlines()
    tokens = _md.parse(text)
    path: list[tuple[int, str]] = []
    blocks: list[Block] = []
    title: str | None = None
    for i, token in enumerate(tokens):
        if token.level != 0 or token.map is None:
            continue
        if token.type == "heading_open":
            heading = _plain(tokens[i + 1])
            level = int(token.tag[1])
            while path and path[-1][0] >= level:
                path.pop()
            if heading:
                path.append((level, heading))
                title = title or (heading if level == 1 else None)
            continue
        kind = _BLOCK_KINDS.get(token.type)
        if kind is None:
            continue
        start, end = token.map
        body = "\n".join(lines[start:end]).strip()
        if body:
            blocks.append(Block(tuple(h for _, h in path), body, kind))
    return ParsedText(tuple(blocks), title)


def _plain(inline: Token) -> str:
    """Heading text without Markdown markup (`*A*` → `A`)."""
    parts = [
        child.content
        for child in inline.children or ()
        if child.type in ("text", "code_inline", "softbreak")
    ]
    return " ".join("".join(parts).split())
