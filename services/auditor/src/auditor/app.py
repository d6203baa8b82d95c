"""Composition root of the auditor.

The auditor consumes ``audit`` in batches and appends each batch in one transaction. Its
offsets are committed only after that transaction commits, so a crash at any point loses
nothing: the records after the committed offset come again, and those already stored are
dropped by ``event_id``. A record that cannot be stored at all is dead-lettered on its own
(``EventBus.subscribe_batch``), never with the rest of its batch; ``auditor verify`` then
reports its saga incomplete until it is replayed from ``audit.dlq``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI

from shared.contracts import AuditRecorded, Topic
from shared.db import Pool
from shared.service import Service

from .handlers import record_steps
from .repository import AuditLog, PostgresAuditLog
from .settings import AuditorSettings

__all__ = ["build", "build_service"]


def build_service(
    settings: AuditorSettings,
    *,
    audit_log: Callable[[Pool], AuditLog] = PostgresAuditLog,
    **overrides: Any,
) -> Service:
    """``audit_log`` builds the log over the service's pool (fault tests wrap it)."""
    service = Service("auditor", settings, **overrides)
    db = service.use_database()

    async def on_audit(events: Sequence[AuditRecorded]) -> None:
        await record_steps(events, audit_log(db.pool))

    service.bus.subscribe_batch(
        Topic.AUDIT, on_audit, group_id=settings.group_id, max_records=settings.batch_max_records
    )
    return service


def build(settings: AuditorSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory auditor.app:build``."""
    return build_service(settings or AuditorSettings()).http_app(title="Auditor")
