"""The offline extractive model: answers only with sentences taken from retrieved chunks.

It is deterministic and needs no network. Each sentence of each retrieved chunk is scored by
how much of the question's content (stemmed, stop words removed, weighted by rarity across the
retrieved chunks) it covers; the best sentences become the answer, each cited as ``[n]``. When
no sentence covers enough of the question, it refuses plainly instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.contracts import Citation, RetrievedChunk

from ..text import content_terms, split_sentences

__all__ = ["REFUSAL_TEXT", "Answer", "ExtractiveModel"]

REFUSAL_TEXT = (
    "I could not find an answer to that in the documents available to you, so I will not "
    "guess. Try rephrasing, or ask a colleague with access to more documents."
)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    grounded: bool


@dataclass(frozen=True)
class _Scored:
    coverage: float
    chunk_rank: int
    sentence: str
    chunk: RetrievedChunk


class ExtractiveModel:
    name = "extractive-v1"

    def __init__(self, *, max_sentences: int = 3, min_relevance: float = 0.34) -> None:
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance

    def answer(self, question: str, chunks: Sequence[RetrievedChunk]) -> Answer:
        query = list(dict.fromkeys(content_terms(question)))
        if not query or not chunks:
            return Answer(REFUSAL_TEXT, (), grounded=False)
        weights = self._weights(query, chunks)
        total = sum(weights.values())
        scored: list[_Scored] = []
        for rank, chunk in enumerate(chunks):
            context = set(content_terms(" ".join((chunk.title, *chunk.section_path))))
            for sentence in split_sentences(chunk.text):
                terms = set(content_terms(sentence))
                # Heading words count at half weight: they say what the sentence is about.
                covered = sum(w for t, w in weights.items() if t in terms)
                covered += 0.5 * sum(
                    w for t, w in weights.items() if t in context and t not in terms
                )
                scored.append(_Scored(covered / total, rank, sentence, chunk))
        best = sorted(scored, key=lambda s: (-s.coverage, s.chunk_rank))
        chosen: list[_Scored] = []
        seen_text: set[str] = set()
        for item in best:
            if item.coverage < self.min_relevance or len(chosen) >= self.max_sentences:
                break
            key = item.sentence.lower()
            if key in seen_text:
                continue
            # Sentences other than the first must be nearly as good: no padding with noise.
            if chosen and item.coverage < 0.6 * chosen[0].coverage:
                break
            seen_text.add(key)
            chosen.append(item)
        if not chosen:
            return Answer(REFUSAL_TEXT, (), grounded=False)
        return self._compose(chosen)

    @staticmethod
    def _weights(query: list[str], chunks: Sequence[RetrievedChunk]) -> dict[str, float]:
        docs = [
            set(content_terms(f"{c.title} {' '.join(c.section_path)} {c.text}")) for c in chunks
        ]
        n = len(docs)
        return {t: math.log(1 + (n + 1) / (1 + sum(t in d for d in docs))) for t in query}

    @staticmethod
    def _compose(chosen: list[_Scored]) -> Answer:
        markers: dict[str, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for item in chosen:
            chunk = item.chunk
            if chunk.chunk_id not in markers:
                markers[chunk.chunk_id] = len(markers) + 1
                citations.append(
                    Citation(
                        marker=markers[chunk.chunk_id],
                        chunk_id=chunk.chunk_id,
                        doc_id=chunk.doc_id,
                        title=chunk.title,
                        source_uri=chunk.source_uri,
                        section=" › ".join(chunk.section_path),
                    )
                )
            sentence = item.sentence.rstrip()
            if sentence[-1] not in ".!?":
                sentence += "."
            parts.append(f"{sentence} [{markers[chunk.chunk_id]}]")
        return Answer(" ".join(parts), tuple(citations), grounded=True)
