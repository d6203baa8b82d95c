"""Message contracts of the five topics."""

from .base import Event, derive_event_id, new_event_id, utcnow
from .codec import EVENT_OF_TOPIC, DecodeError, decode, register_upcaster
from .events import (
    MAX_MESSAGE_CHARS,
    AuditOutcome,
    AuditRecorded,
    ChatRequested,
    Citation,
    ContextRetrieved,
    Decision,
    DraftDecided,
    DraftKind,
    DraftProduced,
    ExecutionResult,
    ProposedAction,
    RetrievalStats,
    RetrievedChunk,
    RiskLevel,
    Signoff,
)
from .topics import DLQ_SUFFIX, Topic, dead_letter_topic

__all__ = [
    "DLQ_SUFFIX",
    "EVENT_OF_TOPIC",
    "MAX_MESSAGE_CHARS",
    "AuditOutcome",
    "AuditRecorded",
    "ChatRequested",
    "Citation",
    "ContextRetrieved",
    "Decision",
    "DecodeError",
    "DraftDecided",
    "DraftKind",
    "DraftProduced",
    "Event",
    "ExecutionResult",
    "ProposedAction",
    "RetrievalStats",
    "RetrievedChunk",
    "RiskLevel",
    "Signoff",
    "Topic",
    "dead_letter_topic",
    "decode",
    "derive_event_id",
    "new_event_id",
    "register_upcaster",
    "utcnow",
]
