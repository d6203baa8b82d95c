"""Query hygiene before any model sees the text.

Control and format characters are removed and the text NFKC-normalised (full-width letters,
ligatures). What remains is refused, with a stable reason, when it is empty, too long, has
nothing searchable, or is mostly in a script the models were not trained on: an empty result
is honest there, where the nearest vectors of an unreadable query would be noise.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["CheckedQuery", "check_query"]

#: Scripts of the letters the default models read (English MiniLM; BM25 with English stems).
#: Greek is in because scientific and technical text uses its letters (TNF-α, β-blockers).
_SUPPORTED_SCRIPTS = frozenset({"LATIN", "GREEK"})


@dataclass(frozen=True)
class CheckedQuery:
    text: str
    rejected: str | None = None


def check_query(raw: str, *, max_chars: int, min_supported_share: float) -> CheckedQuery:
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") else ch for ch in text
    )
    text = " ".join(text.split())
    if not text:
        return CheckedQuery("", "empty_query")
    if len(text) > max_chars:
        return CheckedQuery(text, "query_too_long")
    letters = [ch for ch in text if ch.isalpha()]
    if not letters and not any(ch.isdigit() for ch in text):
        return CheckedQuery(text, "no_searchable_text")
    if letters:
        supported = sum(_script(ch) in _SUPPORTED_SCRIPTS for ch in letters)
        if supported / len(letters) < min_supported_share:
            return CheckedQuery(text, "unsupported_script")
    return CheckedQuery(text)


def _script(ch: str) -> str:
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
