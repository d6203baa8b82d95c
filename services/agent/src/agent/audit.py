"""Audit steps of one saga, published together at the end of the step.

Steps are collected while the agent works and published concurrently by :meth:`flush`, so a
request with six audited stages costs about one broker round trip, not six. Each record's id
is derived from the input event, the action and its occurrence number: a redelivered
``ContextRetrieved`` records the same steps with the same ids and the auditor keeps one row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.contracts import AuditOutcome
from shared.messaging import EventPublisher

__all__ = ["AuditTrail"]


@dataclass
class _Step:
    action: str
    outcome: AuditOutcome
    details: dict[str, Any]
    subject_event_id: uuid.UUID | None
    key: str


@dataclass
class AuditTrail:
    bus: EventPublisher
    request_id: uuid.UUID
    tenant_id: str
    actor: str
    anchor: str
    _steps: list[_Step] = field(default_factory=list)
    _seen: Counter[str] = field(default_factory=Counter)

    def record(
        self,
        action: str,
        *,
        outcome: AuditOutcome = AuditOutcome.OK,
        details: dict[str, Any] | None = None,
        subject_event_id: uuid.UUID | None = None,
    ) -> None:
        self._seen[action] += 1
        key = f"{self.anchor}:{action}:{self._seen[action]}"
        self._steps.append(_Step(action, outcome, details or {}, subject_event_id, key))

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self._steps]

    async def flush(self) -> None:
        steps, self._steps = self._steps, []
        await asyncio.gather(
            *(
                self.bus.audit(
                    request_id=self.request_id,
                    tenant_id=self.tenant_id,
                    action=s.action,
                    actor=self.actor,
                    subject_event_id=s.subject_event_id,
                    outcome=s.outcome,
                    details=s.details,
                    dedupe_key=s.key,
                )
                for s in steps
            )
        )
