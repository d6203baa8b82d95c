"""Output guardrail: every ``[n]`` points at a retrieved chunk that supports its sentence.

Models cite chunks by their 1-based position in the context they were given. The check walks
the answer sentence by sentence: a marker outside the retrieved chunks, or whose chunk does
not support the sentence, is removed; a sentence left without a supporting citation is
dropped (the answer is *downgraded*); if nothing cited survives, the answer is *refused*.
Markers are then renumbered 1..k in order of appearance and turned into citations.

Support is lexical and cheap (microseconds): most of the sentence's content words appear in
the chunk, and every number in the sentence appears in the chunk or in the question. A
number the chunk does not hold is the commonest hallucination in support answers (a 10-year
warranty instead of 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.contracts import Citation, RetrievedChunk

from .models.extractive import REFUSAL_TEXT, citation_for
from .text import content_terms, numbers

__all__ = ["CitationReport", "check_citations"]

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
# Sentence ends: after . ! ? (and any markers that follow), before a capital or digit.
_SPLIT = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z0-9\"“(])")
SUPPORT_SHARE = 0.6


@dataclass(frozen=True)
class CitationReport:
    text: str
    citations: tuple[Citation, ...]
    verdict: Literal["ok", "uncited", "downgraded", "refused"]
    sentences: int
    dropped: int
    invalid_markers: int
    unsupported_markers: int


def supports(chunk: RetrievedChunk, sentence: str, question: str = "") -> bool:
    terms = set(content_terms(sentence))
    source = f"{chunk.title} {' '.join(chunk.section_path)} {chunk.text}"
    if terms:
        known = set(content_terms(source))
        if len(terms & known) / len(terms) < SUPPORT_SHARE:
            return False
    return numbers(sentence) <= numbers(source) | numbers(question)


def check_citations(
    text: str, chunks: Sequence[RetrievedChunk], *, question: str = ""
) -> CitationReport:
    kept: list[str] = []
    markers: dict[int, int] = {}  # chunk position -> new marker
    cited_sentences = dropped = invalid = unsupported = 0
    sentences = [s for s in _SPLIT.split(text.strip()) if s.strip()]
    for sentence in sentences:
        cited = [int(n) for group in _MARKER.findall(sentence) for n in group.split(",")]
        bare = _MARKER.sub("", sentence).strip()
        if not cited:
            kept.append(bare)
            continue
        good: list[int] = []
        for position in dict.fromkeys(cited):
            if not 1 <= position <= len(chunks):
                invalid += 1
            elif supports(chunks[position - 1], bare, question):
                good.append(position)
            else:
                unsupported += 1
        if not good:
            dropped += 1
            continue
        cited_sentences += 1
        for position in good:
            markers.setdefault(position, len(markers) + 1)
        kept.append(f"{bare} " + " ".join(f"[{markers[p]}]" for p in good))
    citations = tuple(citation_for(chunks[p - 1], m) for p, m in markers.items())
    if cited_sentences == 0 and dropped:
        verdict: Literal["ok", "uncited", "downgraded", "refused"] = "refused"
        answer = REFUSAL_TEXT
    else:
        answer = " ".join(kept)
        if dropped or invalid or unsupported:
            verdict = "downgraded"
        else:
            verdict = "ok" if citations else "uncited"
    return CitationReport(answer, citations, verdict, len(sentences), dropped, invalid, unsupported)
