"""PolicyQA (SQuAD layout) as a knowledge base: one privacy policy per document and tenant,
paragraphs kept as the blocks the product parses, and the measures ``make bench-kb`` scores.

A retrieved chunk *covers* a paragraph when it holds at least ``COVER_SHARE`` of that
paragraph's text (whitespace-insensitive): a chunk holding a whole paragraph covers it, the
overlap tail of a neighbour (a sentence or two) does not, and a paragraph split over two
chunks is covered by each half.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from retriever.documents import Document, load_bytes

__all__ = [
    "Policy",
    "Question",
    "covered_paragraphs",
    "exact_match",
    "load_policyqa",
    "policy_document",
    "token_f1",
]

COVER_SHARE = 0.4
_SPACE = re.compile(r"\s+")
_ID_UNSAFE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    paragraph: int
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    title: str
    slug: str
    paragraphs: tuple[str, ...]
    questions: tuple[Question, ...]

    def same_question(self, question: Question) -> frozenset[int]:
        """Paragraphs annotated with the same question text (the annotators' other answers)."""
        return frozenset(q.paragraph for q in self.questions if q.text == question.text)


def load_policyqa(path: Path) -> list[Policy]:
    data = json.loads(path.read_text())["data"]
    policies = []
    for entry in data:
        paragraphs: list[str] = []
        questions: list[Question] = []
        for para in entry["paragraphs"]:
            index = len(paragraphs)
            paragraphs.append(_SPACE.sub(" ", para["context"]).strip())
            for qa in para["qas"]:
                answers = tuple(a["text"] for a in qa.get("answers", ()) if a["text"].strip())
                questions.append(Question(qa["id"], qa["question"], index, answers))
        slug = _ID_UNSAFE.sub("-", entry["title"].lower()).strip("-")
        policies.append(Policy(entry["title"], slug, tuple(paragraphs), tuple(questions)))
    return policies


def policy_document(policy: Policy) -> Document:
    """A policy as a customer's company would upload it: plain text, paragraphs separated by
    blank lines, readable by that tenant's customers."""
    return load_bytes(
        "\n\n".join(policy.paragraphs).encode(),
        name=f"{policy.slug}.txt",
        source_uri=f"policyqa:{policy.slug}",
        fmt="text",
        max_bytes=10_000_000,
        metadata={
            "doc_id": "privacy-policy",
            "title": f"{policy.title} privacy policy",
            "tenant": policy.slug,
            "allowed_roles": ["customer"],
            "min_level": "none",
            "classification": "public",
            "updated_at": "2020-01-01",
        },
    )


def _norm_space(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def covered_paragraphs(chunk_text: str, paragraphs: Sequence[str]) -> list[int]:
    """Paragraphs (in document order) of which ``chunk_text`` holds enough to count."""
    pieces = [_norm_space(p) for p in re.split(r"\n\s*\n", chunk_text) if p.strip()]
    out = []
    for index, paragraph in enumerate(paragraphs):
        held = sum(len(p) for p in pieces if p in paragraph)
        if paragraph and (paragraph in pieces or held >= COVER_SHARE * len(paragraph)):
            out.append(index)
    return out


# SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces.
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def token_f1(prediction: str, golds: Iterable[str]) -> float:
    """SQuAD token F1 of ``prediction`` against its best-matching gold answer."""
    pred = _squad_tokens(prediction)
    best = 0.0
    for gold in golds:
        ref = _squad_tokens(gold)
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def exact_match(prediction: str, golds: Iterable[str]) -> bool:
    pred = _squad_tokens(prediction)
    return any(pred == _squad_tokens(g) for g in golds)
