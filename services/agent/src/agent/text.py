"""Tokenising, stemming and sentence splitting shared by the offline model and the checks."""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

__all__ = ["content_terms", "split_sentences"]

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


def split_sentences(text: str) -> list[str]:
    """Sentences and list items; Markdown table rows and list markers are cleaned."""
    out = []
    for part in _SENTENCE.split(text):
        line = _LIST_MARK.sub("", part.strip()).strip()
        if line.startswith("|"):
            line = " ".join(
                cell.strip() for cell in line.strip("|").split("|") if cell.strip(" -:")
            )
        if len(line) >= 12 and not set(line) <= set("-|: "):
            out.append(line)
    return out
