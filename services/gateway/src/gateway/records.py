"""What the gateway's store hands out: a request's row and its timeline steps, typed and frozen.

Callers read attributes, not dictionary keys, so a renamed column fails in mypy instead of at
run time, and no caller can change a record it was given.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.contracts import derive_event_id

from .status import SETTLED, RequestStatus

__all__ = [
    "TIMEOUT_ACTION",
    "Admission",
    "AdmissionKind",
    "RequestRecord",
    "Step",
    "TimedOut",
    "public_details",
    "timeout_audit_id",
]


@dataclass(frozen=True)
class RequestRecord:
    request_id: uuid.UUID
    tenant_id: str
    #: None only for a row the status projection created from a service's step before the
    #: gateway's own row (the actor is filled in when a step names it).
    user_id: str | None
    status: RequestStatus
    trace_id: str | None
    #: The answer or the action's outcome once settled (``status.result_of``), or the timeout.
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None = None
    message_sha256: str | None = None
    #: Which attempt of its Idempotency-Key this request is (1 without a key).
    attempt: int = 1
    #: When the broker took the request (None: not yet, or the publish failed).
    published_at: datetime | None = None
    #: Until when one caller holds the right to publish this attempt.
    publish_claimed_until: datetime | None = None
    #: Where the saga stalled, for a request that timed out.
    stalled_at: str | None = None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RequestRecord:
        return cls(
            request_id=row["request_id"],
            tenant_id=row["tenant_id"],
            user_id=row["user_id"],
            status=RequestStatus(row["status"]),
            trace_id=row["trace_id"],
            result=row["result"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            idempotency_key=row["idempotency_key"],
            message_sha256=row["message_sha256"],
            attempt=int(row["attempt"]),
            published_at=row["published_at"],
            publish_claimed_until=row["publish_claimed_until"],
            stalled_at=row["stalled_at"],
        )


@dataclass(frozen=True)
class Step:
    """One step of a request's saga as its caller may see it (details already filtered)."""

    event_id: uuid.UUID
    at: datetime
    service: str
    action: str
    outcome: str
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Step:
        return cls(
            event_id=row["event_id"],
            at=row["at"],
            service=row["service"],
            action=row["action"],
            outcome=row["outcome"],
            details=row["details"],
        )


TIMEOUT_ACTION = "request.timed_out"


def timeout_audit_id(request_id: uuid.UUID) -> uuid.UUID:
    """The id of a request's timeout audit record (what ``EventBus.audit`` derives from
    ``dedupe_key=str(request_id)``): the timeline row written with the status change and the
    record coming back through the audit topic are one row, and a re-published record stays
    one audit row."""
    return derive_event_id(str(request_id), f"audit:gateway:{TIMEOUT_ACTION}")


class AdmissionKind(StrEnum):
    #: A new attempt was recorded; this caller holds its publish lease.
    NEW = "new"
    #: The attempt exists but its publish failed earlier; this caller now holds the lease.
    REPUBLISH = "republish"
    #: Another caller holds the attempt's lease and is publishing it right now.
    PUBLISHING = "publishing"
    #: The attempt was published (or has moved on): answer with it.
    EXISTING = "existing"
    #: The key's request id belongs to another principal: reveal nothing.
    FOREIGN = "foreign"
    #: The key was used with another message.
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Admission:
    kind: AdmissionKind
    request_id: uuid.UUID
    attempt: int
    #: When the attempt was accepted: the saga's deadlines count from here, and a re-publish
    #: carries it as ``occurred_at`` so the message is the same as the first publish.
    created_at: datetime


@dataclass(frozen=True)
class TimedOut:
    """A request the sweeper ended, with what its audit record needs."""

    request_id: uuid.UUID
    tenant_id: str
    trace_id: str | None
    stalled_at: str
    reason: str
    timed_out_at: datetime

    @property
    def details(self) -> dict[str, Any]:
        return {
            "status": RequestStatus.TIMED_OUT.value,
            "stalled_at": self.stalled_at,
            "reason": self.reason,
        }

    @property
    def result(self) -> dict[str, Any]:
        """What the caller reads on ``GET /v1/requests/{id}`` and at the end of the stream."""
        return {"kind": "timeout", "stalled_at": self.stalled_at, "reason": self.reason}


_PUBLIC_DETAIL_KEYS = frozenset(
    {
        "chunks",
        "cache_hit",
        "latency_ms",
        "kind",
        "citations",
        "model",
        "policy",
        "decision",
        "tool",
        "reason",
        "status",
        "index_version",
        "route",
        "verdict",
        "stalled_at",
    }
)


def public_details(details: dict[str, Any]) -> dict[str, Any]:
    """The timeline is shown to callers: keep only facts meant for them."""
    return {k: v for k, v in details.items() if k in _PUBLIC_DETAIL_KEYS}
