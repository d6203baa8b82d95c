"""What a service's handlers and entry points need from the message bus: publishing.

Handlers are typed against this protocol, not the concrete :class:`~shared.messaging.EventBus`,
so a unit test may hand them any publisher (a recording fake) and the dependency is stated
as narrowly as it is used. Subscribing and dead-lettering stay with the composition root.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from shared.contracts import AuditOutcome, AuditRecorded, Event, Topic

__all__ = ["EventPublisher"]


class EventPublisher(Protocol):
    #: The publishing service's name, as it appears in its audit records.
    service: str

    async def publish(self, topic: Topic, event: Event) -> None: ...

    async def audit(
        self,
        *,
        request_id: uuid.UUID,
        tenant_id: str,
        action: str,
        actor: str,
        subject_event_id: uuid.UUID | None = None,
        outcome: AuditOutcome = AuditOutcome.OK,
        details: dict[str, Any] | None = None,
        dedupe_key: str | None = None,
    ) -> AuditRecorded: ...
