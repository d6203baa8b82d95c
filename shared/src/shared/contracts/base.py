"""The envelope every message on every topic shares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Event", "derive_event_id", "new_event_id", "utcnow"]

# Namespace for ids derived from other ids. Deterministic derivation makes stateless
# consumers idempotent for free: a redelivered input yields the same output event_id, and
# the stateful consumers downstream drop it as a duplicate.
_DERIVED_NAMESPACE = uuid.UUID("6f1c3a52-2b55-4f7e-9a57-0c3b1d2f9e10")


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()


def derive_event_id(source: uuid.UUID | str, purpose: str) -> uuid.UUID:
    """The id of the event produced from ``source`` for ``purpose``; same inputs, same id."""
    return uuid.uuid5(_DERIVED_NAMESPACE, f"{source}:{purpose}")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of all topic messages.

    Frozen, so a handler cannot mutate what it received; ``extra="ignore"``, so a newer
    producer can add fields without breaking older consumers (changes are additive; a
    breaking change bumps ``schema_version`` and registers an upcaster).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    #: Current schema version of the concrete event; older versions are upcast on read.
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(
        default_factory=new_event_id,
        description="Unique id of this message; consumers use it to drop redeliveries.",
    )
    schema_version: int = Field(
        default=1, ge=1, description="Version of this event's schema, for upcasting."
    )
    request_id: uuid.UUID = Field(
        description="Id of the saga (one chat request) this message belongs to; the Kafka key."
    )
    tenant_id: str = Field(
        min_length=1, max_length=64, description="Tenant whose data this message concerns."
    )
    occurred_at: datetime = Field(
        default_factory=utcnow, description="When the producer created this message (UTC)."
    )

    @classmethod
    def schema_name(cls) -> str:
        return cls.__name__

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
