"""Composition root of the approver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from shared.contracts import DraftProduced, Topic
from shared.service import Service

from .handlers import ApproverPorts, handle_draft
from .repository import ApprovalRepository
from .settings import ApproverSettings

__all__ = ["build", "build_service"]


def build_service(settings: ApproverSettings, **overrides: Any) -> Service:
    service = Service("approver", settings, **overrides)
    db = service.use_database()
    ttl = timedelta(hours=settings.pending_ttl_hours)

    async def on_draft(draft: DraftProduced) -> None:
        await handle_draft(draft, ApproverPorts(service.bus, ApprovalRepository(db.pool), ttl))

    service.bus.subscribe(Topic.DRAFT, on_draft, group_id=settings.group_id)
    return service


def build(settings: ApproverSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory approver.app:build``."""
    return build_service(settings or ApproverSettings()).http_app(title="Approver")
