"""An in-memory :class:`~approver.service_layer.ports.ApprovalStore` for unit tests.

It passes the same contract tests as the PostgreSQL store (``tests/test_store_contract.py``),
so unit tests built on it see the behaviour production has.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from shared.contracts import DraftProduced

from ..domain import Approval, ApprovalStatus, DecisionError, RefusalCode, Transition
from ..postgres.outbox import trace_headers
from ..service_layer.ports import ApprovalQuery, Decider, OutboxEvent, Planner

__all__ = ["InMemoryApprovalStore"]

_STANDING = (ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.EXECUTED)


class InMemoryApprovalStore:
    def __init__(self) -> None:
        self.approvals: dict[uuid.UUID, Approval] = {}
        #: Every event enqueued, in order; the outbox of this fake.
        self.outbox: list[OutboxEvent] = []
        self._lock = asyncio.Lock()

    async def admit(self, draft: DraftProduced, order_key: str | None, plan: Planner) -> bool:
        async with self._lock:
            if draft.event_id in self.approvals:
                return False
            earlier = self._earlier(draft, order_key) if order_key else Decimal(0)
            admission = plan(earlier)
            # As PostgresApprovalStore does: the intake's trace, for later steps to continue.
            approval = admission.approval
            if not approval.trace:
                approval = replace(approval, trace=trace_headers())
            self.approvals[draft.event_id] = approval
            self._enqueue(admission.events)
            return True

    async def release(self, events: Sequence[OutboxEvent]) -> None:
        async with self._lock:
            self._enqueue(events)

    async def get(self, tenant_id: str, draft_id: uuid.UUID) -> Approval | None:
        found = self.approvals.get(draft_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    async def list(self, tenant_id: str, query: ApprovalQuery) -> list[Approval]:
        found = sorted(
            (
                a
                for a in self.approvals.values()
                if a.tenant_id == tenant_id
                and (query.status is None or a.status is query.status)
                and (query.tool is None or a.tool == query.tool)
                and (query.request_id is None or a.request_id == query.request_id)
            ),
            key=lambda a: (a.created_at, str(a.draft_id)),
        )
        return found[query.offset : query.offset + query.limit]

    async def decide(self, tenant_id: str, draft_id: uuid.UUID, apply: Decider) -> Transition:
        async with self._lock:
            current = await self.get(tenant_id, draft_id)
            if current is None:
                raise DecisionError(RefusalCode.NOT_FOUND, "no such approval")
            transition = apply(current)
            if any(s.approver_id == transition.signoff.approver_id for s in current.signoffs):
                # The primary key of approvals.signoffs: one sign-off per person and draft.
                raise RuntimeError("duplicate sign-off")
            self.approvals[draft_id] = replace(transition.approval)
            self._enqueue(transition.events)
            return transition

    def _enqueue(self, events: Sequence[OutboxEvent]) -> None:
        known = {e.event_id for e in self.outbox}
        self.outbox.extend(e for e in events if e.event_id not in known)

    def _earlier(self, draft: DraftProduced, order_key: str) -> Decimal | None:
        assert draft.action is not None
        amounts = [
            a.amount_eur
            for a in self.approvals.values()
            if a.tenant_id == draft.tenant_id
            and a.tool == draft.action.tool
            and str(a.arguments.get("order_id", "")).upper() == order_key.upper()
            and a.status in _STANDING
        ]
        if any(a is None for a in amounts):
            return None
        return sum((a for a in amounts if a is not None), Decimal(0))
