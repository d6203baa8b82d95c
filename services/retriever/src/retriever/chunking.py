"""Structure-aware chunking of Markdown-like text.

Chunks follow the document's structure: a heading starts a new section (its path of
headings travels with each chunk), blank lines separate blocks (paragraphs, lists, tables),
and blocks are packed into chunks up to ``max_chars`` without splitting a block unless the
block alone is too long (then it is split on sentences). Consecutive chunks of a section
share ``overlap_chars`` of trailing text so a fact spanning a boundary stays findable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Chunk", "chunk_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass(frozen=True)
class Chunk:
    section_path: tuple[str, ...]
    text: str
    position: int


def chunk_markdown(text: str, *, max_chars: int = 1200, overlap_chars: int = 200) -> list[Chunk]:
    sections = _sections(text)
    chunks: list[Chunk] = []
    for path, blocks in sections:
        pieces: list[str] = []
        for block in blocks:
            pieces.extend(_split_long(block, max_chars))
        current = ""
        for piece in pieces:
            candidate = f"{current}\n\n{piece}" if current else piece
            if len(candidate) <= max_chars:
                current = candidate
                continue
            chunks.append(Chunk(path, current, len(chunks)))
            tail = _tail(current, overlap_chars)
            current = (
                f"{tail}\n\n{piece}" if tail and len(tail) + len(piece) + 2 <= max_chars else piece
            )
        if current.strip():
            chunks.append(Chunk(path, current, len(chunks)))
    return chunks


def _sections(text: str) -> list[tuple[tuple[str, ...], list[str]]]:
    path: list[tuple[int, str]] = []
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    block: list[str] = []
    blocks: list[str] = []
    in_fence = False

    def flush_block() -> None:
        if block and any(line.strip() for line in block):
            blocks.append("\n".join(block).strip())
        block.clear()

    def flush_section() -> None:
        flush_block()
        if blocks:
            sections.append((tuple(title for _, title in path), list(blocks)))
        blocks.clear()

    for line in text.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            block.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            flush_section()
            level = len(heading.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading.group(2).strip()))
        elif not line.strip() and not in_fence:
            flush_block()
        else:
            block.append(line)
    flush_section()
    return sections


def _split_long(block: str, max_chars: int) -> list[str]:
    if len(block) <= max_chars:
        return [block]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        while len(sentence) > max_chars:  # a "sentence" without punctuation: hard cut on a space
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        candidate = f"{current} {sentence}".strip()
        if len(candidate) > max_chars and current:
            out.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def _tail(text: str, overlap_chars: int) -> str:
    if overlap_chars <= 0:
        return ""
    sentences = _SENTENCE_END.split(text)
    tail = ""
    for sentence in reversed(sentences):
        if len(tail) + len(sentence) + 1 > overlap_chars:
            break
        tail = f"{sentence} {tail}".strip()
    return tail
