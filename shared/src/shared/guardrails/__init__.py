"""Guardrail ports shared by the services, and their default implementations.

- input: :class:`InputScreen` decides, before retrieval, whether a request is a prompt
  injection or jailbreak attempt (the retriever runs it on every ``ChatRequested``);
  :func:`default_input_screen` builds the measured detector (``shared.guardrails.injection``);
- context: :class:`DocumentScreen` flags instructions planted in documents, retrieved chunks
  and tool results (indirect injection; ``shared.guardrails.documents``); the retriever runs
  it at ingest and on every retrieved chunk, and quotes or withholds what it flags;
- output: :data:`Redactor` removes personal data and secrets from answers, logs and spans;
  :func:`default_redactor` is the validated-pattern redactor (``shared.guardrails.pii``) every
  service installs on its logs and spans by default.

Services receive these from their composition roots, and tests can pass fakes that satisfy
the same protocols.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from shared.contracts import GuardrailVerdict

from .documents import ChunkVerdict, DocumentScreen, FlaggedContext, default_document_screen
from .injection import InjectionDetector, InjectionScreen
from .pii import PII_TYPES, SECRET_TYPES, PIIRedactor, Span

__all__ = [
    "OUTPUT_ENTITIES",
    "AllowAll",
    "ChunkVerdict",
    "DocumentScreen",
    "FlaggedContext",
    "InjectionDetector",
    "InjectionScreen",
    "InputScreen",
    "OutputRedactor",
    "PIIRedactor",
    "Redactor",
    "Span",
    "default_document_screen",
    "default_input_screen",
    "default_redactor",
    "redact",
]

#: Text in, the same text with personal data and secrets replaced by ``<TYPE>`` placeholders.
Redactor = Callable[[str], str]

#: What answers, logs and spans lose: secrets and the personal data that identifies or pays.
#: Dates, ages, titles, postcodes and domain names stay: answers and logs need them
#: ("within 14 days", "example.com is down") and they identify no one alone.
OUTPUT_ENTITIES: tuple[str, ...] = (
    *SECRET_TYPES,
    *(t for t in PII_TYPES if t in {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"}),
    *(t for t in PII_TYPES if t in {"IP_ADDRESS", "US_SSN", "US_DRIVER_LICENSE"}),
)


#: Detected so they win overlaps (an ISO timestamp is not a phone number), then kept as is.
_DETECTED_NOT_REDACTED: tuple[str, ...] = ("DATE_TIME", "ZIP_CODE")


class OutputRedactor(PIIRedactor):
    """Redacts :data:`OUTPUT_ENTITIES` only, but lets dates and postcodes claim their text
    first, so their digits are not mistaken for phone numbers."""

    def __init__(self) -> None:
        super().__init__((*OUTPUT_ENTITIES, *_DETECTED_NOT_REDACTED))

    def find(self, text: str) -> list[Span]:
        return [s for s in super().find(text) if s.type not in _DETECTED_NOT_REDACTED]


class InputScreen(Protocol):
    def screen(self, text: str) -> GuardrailVerdict: ...


class AllowAll:
    """An input screen that blocks nothing (for tests of other stages)."""

    def screen(self, text: str) -> GuardrailVerdict:
        return GuardrailVerdict(stage="input", blocked=False, score=0.0, detector="allow-all")


@lru_cache(maxsize=1)
def default_input_screen() -> InjectionScreen:
    """The measured prompt-injection detector (rules + character n-grams, logistic
    regression; ``make bench-guardrails`` for its numbers), loaded once per process."""
    return InjectionScreen(InjectionDetector.load())


@lru_cache(maxsize=1)
def default_redactor() -> OutputRedactor:
    """The process-wide output redactor, warmed up (phone metadata loads once, ~50 ms)."""
    redactor = OutputRedactor()
    redactor.warmup()
    return redactor


# Every entity in OUTPUT_ENTITIES holds a digit or an @, or sits next to one of these words:
# a string with none of them cannot match, and most log lines and span attributes are such.
_MAYBE_SENSITIVE = re.compile(r"[0-9@]|pass|secret|token|key|bearer|auth|cred|BEGIN", re.IGNORECASE)

# Request, event and trace ids are on every span: UUIDs identify no one.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def redact(text: str) -> str:
    """The default :data:`Redactor` for logs and spans, with a fast path for plain text."""
    if len(text) < 6 or not _MAYBE_SENSITIVE.search(text) or _UUID.fullmatch(text):
        return text
    return default_redactor().redact(text)
