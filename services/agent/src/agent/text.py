"""Tokenising, stemming and sentence splitting shared by the offline model and the checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from shared.tables import is_table_line, is_table_rule, row_cells, row_sentence

__all__ = ["Passage", "content_terms", "numbers", "passages", "split_sentences"]

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_stemmer = snowballstemmer.stemmer("english")

# Function words and the words every support question carries; they say nothing about topic.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "please",
        "hi",
        "hello",
        "thanks",
        "thank",
        "help",
        "need",
        "want",
        "like",
        "know",
        "tell",
        "get",
        "got",
        "let",
        "us",
        "im",
        "i'm",
        "i’d",
        "i'd",
        "can't",
        "cannot",
        "dont",
        "don't",
        "doesn't",
        "isn't",
        "also",
        "may",
        "might",
        "must",
        "shall",
        "yes",
        "ok",
        "okay",
    ]
)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def content_terms(text: str) -> list[str]:
    """Stemmed content words, in order."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def numbers(text: str) -> set[str]:
    """Numbers as written (``5.90``, ``16:00``, ``2,000``): facts a sentence must not invent."""
    return set(_NUMBER.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of plain text; list markers and emphasis are removed."""
    out = []
    for part in _SENTENCE.split(text):
        line = _EMPHASIS.sub("", _LIST_MARK.sub("", part.strip())).strip()
        if len(line) >= 3 and not set(line) <= set("-|: "):
            out.append(line)
    return out


@dataclass(frozen=True)
class Passage:
    """A sentence (or table row) a model may quote, with the headings it sits under."""

    text: str
    headings: tuple[str, ...]


# Text that addresses an assistant rather than a customer: never quoted, never evidence.
_ADDRESSED_TO_MODEL = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions|rules|prompt)\b"
    r"|\bsystem (message|prompt)\b|\byou are now\b|\b(admin|developer|god) mode\b"
    r"|\bassistant reading this\b",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EMPHASIS = re.compile(r"\*\*|__|`")
# A sentence shorter than this ("No.", "Yes, free.") says little alone: it is joined to the next.
_MIN_ALONE = 25


def passages(text: str) -> list[Passage]:
    """Quotable units of a Markdown chunk.

    Headings inside the chunk become context of what follows them (an FAQ's question is the
    heading of its answer). Table rows are spelled out with their column names, so a row reads
    as a sentence. Block quotes are skipped: they quote someone else (a customer submission,
    an e-mail) and are not the company's answer, which is also where injected instructions hide;
    so is any sentence that addresses an assistant. A lead-in ending with ``:`` is joined to
    the item after it.
    """
    out: list[Passage] = []
    headings: list[str] = []
    header: list[str] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line)
        if heading:
            pending = _flush(out, pending, headings)
            headings = [*headings[: len(heading.group(1)) - 1], _EMPHASIS.sub("", heading.group(2))]
            header = None
            continue
        if not line or line.startswith(">"):
            if not line:
                header = None
            continue
        if is_table_line(line):
            if is_table_rule(line):
                continue
            cells = row_cells(line)
            if header is None:
                header = cells
                continue
            pending = _flush(out, pending, headings)
            out.append(Passage(row_sentence(header, cells), tuple(headings)))
            continue
        header = None
        for sentence in split_sentences(line):
            joined = f"{pending} {sentence}".strip() if pending else sentence
            if len(joined) < _MIN_ALONE or joined.endswith(":"):
                pending = joined
                continue
            pending = ""
            out.append(Passage(joined, tuple(headings)))
    _flush(out, pending, headings)
    return [p for p in out if not _ADDRESSED_TO_MODEL.search(p.text)]


def _flush(out: list[Passage], pending: str, headings: list[str]) -> str:
    if len(pending) >= 12:
        out.append(Passage(pending.rstrip(":"), tuple(headings)))
    return ""
