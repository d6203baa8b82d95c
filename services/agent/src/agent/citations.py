"""Output guardrail: every ``[n]`` points at a retrieved chunk that supports its sentence.

Models cite chunks by their 1-based position in the context they were given. The check walks
the answer sentence by sentence: a marker outside the retrieved chunks, or whose chunk does
not support the sentence, is removed; a sentence left without a supporting citation is
dropped (the answer is *downgraded*). With ``strict=True`` (generative models) an uncited
sentence must be backed by a tool result, unless it is short connective text. If nothing of
substance survives, the answer is *refused*. Markers are then renumbered 1..k in order of
appearance and turned into citations.

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
from .text import content_terms, numbers, passages

__all__ = ["CitationReport", "check_citations"]

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
# Sentence ends: after . ! ? (and any markers that follow), before a capital or digit.
_SPLIT = re.compile(r"(?<=[.!?\]])\s+(?=[A-Z0-9\"“(])")
SUPPORT_SHARE = 0.6
#: Uncited sentences with at most this many content words make no checkable claim.
CONNECTIVE_TERMS = 3


@dataclass(frozen=True)
class CitationReport:
    text: str
    citations: tuple[Citation, ...]
    verdict: Literal["ok", "uncited", "downgraded", "refused"]
    sentences: int
    dropped: int
    invalid_markers: int
    unsupported_markers: int
    #: Markers the check kept (a sentence's each supporting chunk counts once).
    supported_markers: int = 0


def supports(chunk: RetrievedChunk, sentence: str, question: str = "") -> bool:
    """Whether the chunk's own statements back the sentence.

    Only the chunk's quotable passages count as evidence: a quoted customer submission or an
    injected instruction inside a document is not the company saying so.
    """
    quotable = " ".join(f"{' '.join(p.headings)} {p.text}" for p in passages(chunk.text))
    return backed_by(f"{chunk.title} {' '.join(chunk.section_path)} {quotable}", sentence, question)


def backed_by(source: str, sentence: str, question: str = "") -> bool:
    terms = set(content_terms(sentence))
    if terms:
        known = set(content_terms(source))
        if len(terms & known) / len(terms) < SUPPORT_SHARE:
            return False
    return numbers(sentence) <= numbers(source) | numbers(question)


def check_citations(
    text: str,
    chunks: Sequence[RetrievedChunk],
    *,
    question: str = "",
    evidence: Sequence[str] = (),
    strict: bool = False,
) -> CitationReport:
    kept: list[str] = []
    markers: dict[int, int] = {}  # chunk position -> new marker
    substantive = dropped = invalid = unsupported = supported = 0
    facts = " ".join(evidence)
    sentences = [s for s in _SPLIT.split(text.strip()) if s.strip()]
    for sentence in sentences:
        cited = [int(n) for group in _MARKER.findall(sentence) for n in group.split(",")]
        bare = _MARKER.sub("", sentence).strip()
        if not cited:
            claims = len(set(content_terms(bare))) > CONNECTIVE_TERMS
            if claims and facts and backed_by(facts, bare, question):
                substantive += 1
            elif claims and strict:
                dropped += 1
                continue
            elif claims:
                substantive += 1
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
        substantive += 1
        supported += len(good)
        for position in good:
            markers.setdefault(position, len(markers) + 1)
        kept.append(f"{bare} " + " ".join(f"[{markers[p]}]" for p in good))
    citations = tuple(citation_for(chunks[p - 1], m) for p, m in markers.items())
    if substantive == 0 and dropped:
        verdict: Literal["ok", "uncited", "downgraded", "refused"] = "refused"
        answer = REFUSAL_TEXT
    else:
        answer = " ".join(kept)
        if dropped or invalid or unsupported:
            verdict = "downgraded"
        else:
            verdict = "ok" if citations else "uncited"
    return CitationReport(
        answer, citations, verdict, len(sentences), dropped, invalid, unsupported, supported
    )
