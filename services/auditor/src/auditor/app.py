"""Composition root of the auditor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from shared.contracts import AuditRecorded, Topic
from shared.service import Service

from .handlers import record_steps
from .repository import PostgresAuditLog
from .settings import AuditorSettings

__all__ = ["build", "build_service"]


def build_service(settings: AuditorSettings, **overrides: Any) -> Service:
    service = Service("auditor", settings, **overrides)
    db = service.use_database()

    async def on_audit(events: Sequence[AuditRecorded]) -> None:
        await record_steps(events, PostgresAuditLog(db.pool))

    service.bus.subscribe_batch(
        Topic.AUDIT, on_audit, group_id=settings.group_id, max_records=settings.batch_max_records
    )
    return service


def build(settings: AuditorSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory auditor.app:build``."""
    return build_service(settings or AuditorSettings()).http_app(title="Auditor")
