"""Topic names and which event each carries."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DLQ_SUFFIX", "Topic", "dead_letter_topic"]

DLQ_SUFFIX = ".dlq"


class Topic(StrEnum):
    """The five topics of the saga (without the deployment's optional prefix)."""

    REQUEST = "request"
    RETRIEVED = "retrieved"
    DRAFT = "draft"
    APPROVED = "approved"
    AUDIT = "audit"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"
