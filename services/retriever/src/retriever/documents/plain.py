"""Plain text → blocks: paragraphs are separated by blank lines; there are no headings."""

from __future__ import annotations

import re

from .model import Block, ParsedText

__all__ = ["parse_plain"]

_BLANK_LINES = re.compile(r"\n\s*\n")


def parse_plain(text: str) -> ParsedText:
    paragraphs = (p.strip() for p in _BLANK_LINES.split(text.replace("\r\n", "\n")))
    return ParsedText(tuple(Block((), p) for p in paragraphs if p))
