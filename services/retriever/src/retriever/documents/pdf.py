"""PDF → blocks, through pypdf.

The PDF's outline (bookmarks), when it has one, gives the section path of each page; otherwise
the page number does, so a citation still says where the passage is. Encrypted PDFs that need
a password, and files pypdf cannot read, are refused with a reason; nothing partial is indexed.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.generic import Destination

from .model import Block, DocumentError, ParsedText

__all__ = ["parse_pdf"]

_BLANK_LINES = re.compile(r"\n\s*\n")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")

# pypdf logs every recoverable oddity of a malformed file as a warning; the outcome (a clear
# DocumentError, or text) is what matters to the caller.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def parse_pdf(data: bytes) -> ParsedText:
    try:
        reader = PdfReader(io.BytesIO(data))
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except Exception as exc:  # pypdf raises many types on malformed input; all mean "unreadable"
        raise DocumentError(f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    if locked:
        raise DocumentError("PDF is encrypted and needs a password")
    try:
        outline = _outline_by_page(reader)
        blocks: list[Block] = []
        section: tuple[str, ...] = ()
        for number, page in enumerate(reader.pages):
            section = outline.get(number, section)
            path = section or (f"Page {number + 1}",)
            text = page.extract_text() or ""
            blocks.extend(Block(path, p) for p in _paragraphs(text))
        title = _title(reader)
    except Exception as exc:  # pypdf raises many types on malformed input; all mean "unreadable"
        raise DocumentError(f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    return ParsedText(tuple(blocks), title)


def _paragraphs(text: str) -> list[str]:
    text = _HYPHEN_BREAK.sub(r"\1\2", text.replace("\r\n", "\n"))
    out = []
    for para in _BLANK_LINES.split(text):
        joined = " ".join(line.strip() for line in para.splitlines() if line.strip())
        if joined:
            out.append(joined)
    return out


def _title(reader: PdfReader) -> str | None:
    meta = reader.metadata
    title = meta.title if meta is not None else None
    return str(title).strip() or None if title else None


def _outline_by_page(reader: PdfReader) -> dict[int, tuple[str, ...]]:
    """Page number → the outline path that starts on it (the last one, if several do)."""
    starts: dict[int, tuple[str, ...]] = {}

    def visit(items: list[Any], parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                visit(item, last)
            elif isinstance(item, Destination):
                page = reader.get_destination_page_number(item)
                last = (*parents, str(item.title).strip())
                if page is not None and page >= 0:
                    starts[page] = last

    try:
        visit(reader.outline, ())
    except Exception:  # a broken outline is no reason to refuse the text
        return {}
    return starts
