"""Structure-following chunking of parsed documents.

Chunks never cross a section boundary (the heading path travels with each chunk). Within a
section, whole blocks (paragraphs, lists, tables, code) are packed up to ``max_chars``; a block
that alone is too long is split on line breaks, then on sentences, then on spaces. Consecutive
chunks of one section share up to ``overlap_chars`` of trailing text, so a fact that straddles
a boundary is still found whole in one of them.

With ``paragraph_chars`` set, a block at least that long is a chunk of its own (split only if
it exceeds ``max_chars``), and only shorter blocks (a one-line lead-in, a short note) are packed
with their neighbours: a policy's paragraph answers one question, and packing five of them
into one vector blurs the one a question is about (measured in docs/rag-pipeline.md).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .documents import Block

__all__ = ["Chunk", "chunk_blocks"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    section_path: tuple[str, ...]
    text: str
    position: int


def chunk_blocks(
    blocks: Sequence[Block],
    *,
    max_chars: int = 1200,
    overlap_chars: int = 200,
    paragraph_chars: int = 0,
) -> list[Chunk]:
    if max_chars < 50 or not 0 <= overlap_chars < max_chars // 2:
        raise ValueError("need max_chars >= 50 and 0 <= overlap_chars < max_chars / 2")
    chunks: list[Chunk] = []
    for path, section in itertools.groupby(blocks, key=lambda b: b.section_path):
        for group in _groups(list(section), paragraph_chars):
            for text in _pack(group, max_chars, overlap_chars):
                chunks.append(Chunk(path, text, len(chunks)))
    return chunks


def _groups(section: list[Block], paragraph_chars: int) -> list[list[Block]]:
    """Runs of blocks packed together: all of them, or with ``paragraph_chars`` each long
    block alone and the short ones between them with the long block that follows (a lead-in
    belongs to what it introduces), trailing short ones with the last long block."""
    if paragraph_chars <= 0:
        return [section]
    groups: list[list[Block]] = []
    pending: list[Block] = []
    for block in section:
        pending.append(block)
        if len(block.text) >= paragraph_chars:
            groups.append(pending)
            pending = []
    if pending:
        if groups and sum(len(b.text) for b in pending) < paragraph_chars:
            groups[-1].extend(pending)
        else:
            groups.append(pending)
    return groups


def _pack(section: Iterable[Block], max_chars: int, overlap_chars: int) -> Iterable[str]:
    current = ""
    # Pieces of a split block leave room for the overlap, so it is never squeezed out.
    piece_chars = max_chars - overlap_chars - 2
    for block in section:
        pieces = [block.text] if len(block.text) <= max_chars else _split(block.text, piece_chars)
        for piece in pieces:
            candidate = f"{current}\n\n{piece}" if current else piece
            if len(candidate) <= max_chars:
                current = candidate
                continue
            yield current
            tail = _tail(current, overlap_chars)
            current = (
                f"{tail}\n\n{piece}" if tail and len(tail) + len(piece) + 2 <= max_chars else piece
            )
    if current.strip():
        yield current


def _split(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars``, cut at the largest unit that fits: lines, sentences,
    then words (a hard cut only for a "word" longer than the limit)."""
    if len(text) <= max_chars:
        return [text]
    for separator, units in (("\n", text.split("\n")), (" ", _SENTENCE_END.split(text))):
        if len(units) > 1:
            return _merge([p for u in units for p in _split(u, max_chars)], separator, max_chars)
    words = text.split(" ")
    if len(words) > 1:
        return _merge([p for w in words for p in _split(w, max_chars)], " ", max_chars)
    return [text[i : i + max_chars] for i in range(0, len(text), max_chars)]


def _merge(units: list[str], separator: str, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for unit in units:
        if not unit.strip():
            continue
        candidate = f"{current}{separator}{unit}" if current else unit
        if len(candidate) > max_chars:
            out.append(current)
            current = unit
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def _tail(text: str, overlap_chars: int) -> str:
    """The last whole sentences (or lines) of ``text`` that fit in ``overlap_chars``."""
    if overlap_chars <= 0:
        return ""
    units = [u for u in re.split(r"\n+|(?<=[.!?])\s+", text) if u.strip()]
    tail = ""
    for unit in reversed(units):
        candidate = f"{unit} {tail}".strip()
        if len(candidate) > overlap_chars:
            break
        tail = candidate
    return tail
