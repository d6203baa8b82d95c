"""Guardrail ports shared by the services.

- input: :class:`InputScreen` decides, before retrieval, whether a request is a prompt
  injection or jailbreak attempt (the retriever runs it on every ``ChatRequested``);
- output: :data:`Redactor` removes personal data and secrets from answers, logs and spans.

Implementations live beside this module (``injection``, ``pii``); services receive them
from their composition roots, and tests can pass fakes that satisfy the same protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared.contracts import GuardrailVerdict

__all__ = ["AllowAll", "InputScreen", "Redactor"]

#: Text in, the same text with personal data and secrets replaced by ``<TYPE>`` placeholders.
Redactor = Callable[[str], str]


class InputScreen(Protocol):
    def screen(self, text: str) -> GuardrailVerdict: ...


class AllowAll:
    """An input screen that blocks nothing (for tests of other stages)."""

    def screen(self, text: str) -> GuardrailVerdict:
        return GuardrailVerdict(stage="input", blocked=False, score=0.0, detector="allow-all")
