"""The port through which intake and the HTTP API keep approvals: :class:`ApprovalStore`.

Two adapters pass the same contract tests (``tests/test_store_contract.py``): PostgreSQL
(``approver.repository``) and an in-memory fake for unit tests (``approver.fakes``).
Every method that changes an approval enqueues the events announcing the change in the same
transaction (the outbox), so a change is never committed without its events or vice versa.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeAlias

from shared.contracts import AuditRecorded, DraftDecided, DraftProduced, Topic

from .domain import Approval, ApprovalStatus, Transition

__all__ = ["Admission", "ApprovalQuery", "ApprovalStore", "OutboxEvent", "topic_of"]

OutboxEvent: TypeAlias = AuditRecorded | DraftDecided


def topic_of(event: OutboxEvent) -> Topic:
    return Topic.APPROVED if isinstance(event, DraftDecided) else Topic.AUDIT


@dataclass(frozen=True)
class Admission:
    """A new approval and the events that announce it."""

    approval: Approval
    events: tuple[OutboxEvent, ...]


@dataclass(frozen=True)
class ApprovalQuery:
    status: ApprovalStatus | None = ApprovalStatus.PENDING
    tool: str | None = None
    request_id: uuid.UUID | None = None
    limit: int = 50
    offset: int = 0


#: Builds the admission from the EUR total of earlier standing actions on the same order
#: (None when one of them has no EUR amount, so the strictest rule must apply).
Planner = Callable[[Decimal | None], Admission]
#: Applies a sign-off to the locked approval, or raises DecisionError.
Decider = Callable[[Approval], Transition]


class ApprovalStore(Protocol):
    async def admit(self, draft: DraftProduced, order_key: str | None, plan: Planner) -> bool:
        """Store the approval ``plan`` builds, with its events; False if the draft is known.

        ``order_key`` groups actions whose amounts add up (same tenant, tool and order); the
        earlier total is read and the new row written under one lock per key, so two drafts
        on one order cannot both see the other as absent.
        """
        ...

    async def release(self, events: Sequence[OutboxEvent]) -> None:
        """Enqueue events that change no approval (answers released by policy)."""
        ...

    async def get(self, tenant_id: str, draft_id: uuid.UUID) -> Approval | None: ...

    async def list(self, tenant_id: str, query: ApprovalQuery) -> list[Approval]: ...

    async def decide(self, tenant_id: str, draft_id: uuid.UUID, apply: Decider) -> Transition:
        """Lock the approval, apply the sign-off and commit it with its events, or nothing.

        Raises :class:`~approver.domain.DecisionError` (404 when there is no such approval in
        the tenant; whatever ``apply`` raises otherwise) and then changes nothing.
        """
        ...
