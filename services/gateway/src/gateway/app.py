"""Composition root of the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from shared.auth import TokenService
from shared.auth.http import principal_dependency
from shared.contracts import AuditRecorded, DraftDecided, Topic
from shared.service import Service
from shared.telemetry import current_trace_id

from .api import build_router
from .chats import ChatDesk
from .deadlines import DeadlineSweeper
from .metrics import SagaMetrics
from .progress import ProgressHub
from .repository import RequestRepository
from .settings import GatewaySettings
from .store import MemoryRequestStore, RequestStore

__all__ = ["build", "build_service"]


def build_service(
    settings: GatewaySettings, *, store: MemoryRequestStore | None = None, **overrides: Any
) -> Service:
    """``store``: keep requests in this in-process store instead of PostgreSQL (unit tests of
    the API and the projection; no database is opened then)."""
    service = Service("gateway", settings, **overrides)
    if store is None:
        db = service.use_database()
        progress = ProgressHub(settings.database.dsn)
        # Saga settlements are counted by the transaction that settled the row, so by
        # exactly one replica (the in-process store of unit tests counts none).
        saga_metrics = SagaMetrics(service.telemetry.meter("gateway"))

        def repository() -> RequestStore:
            return RequestRepository(db.pool, saga_metrics)

    else:
        in_process = store
        progress = ProgressHub(None)
        in_process.listen(progress.notify)

        def repository() -> RequestStore:
            return in_process

    service.on_startup(progress.start)
    service.on_shutdown(progress.stop)

    # The status projection: one consumer group shared by all replicas, so each step is
    # applied once; every replica hears the NOTIFY and wakes its own waiters.
    async def on_audit(events: Sequence[AuditRecorded]) -> None:
        await repository().apply_audit(events)

    async def on_decided(event: DraftDecided) -> None:
        await repository().apply_decision(event, current_trace_id())

    # Every replica runs a sweeper; an advisory lock lets one of them work at a time. It waits
    # for the service to be started (broker running) before its first round.
    sweeper = DeadlineSweeper(
        repository,
        service.bus,
        settings.saga,
        publish_timeout_s=settings.publish_timeout_s,
        ready=service.started,
        meter=service.telemetry.meter("gateway"),
    )
    service.on_startup(sweeper.start)
    service.on_shutdown(sweeper.stop)

    service.bus.subscribe_batch(Topic.AUDIT, on_audit, group_id=f"{settings.group_id}-timeline")
    service.bus.subscribe(Topic.APPROVED, on_decided, group_id=f"{settings.group_id}-replies")

    service.include_router(
        build_router(
            desk=ChatDesk(
                bus=service.bus,
                store=repository,
                progress=progress,
                publish_timeout_s=settings.publish_timeout_s,
                enduser_key=_enduser_key(settings),
            ),
            current_principal=principal_dependency(TokenService(settings.auth)),
            max_wait_s=settings.max_wait_s,
            sse_max_s=settings.sse_max_s,
        )
    )
    return service


def build(settings: GatewaySettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory gateway.app:build``."""
    return build_service(settings or GatewaySettings()).http_app(
        title="Support platform gateway",
        description="Ask questions, request actions, follow requests. Bearer JWT required.",
    )


def _enduser_key(settings: GatewaySettings) -> bytes:
    """The key of ``enduser.id``: the deployment's token secret, never exported itself."""
    auth = settings.auth
    secret = auth.jwt_secret or auth.jwt_private_key
    if secret is not None:
        return b"enduser.id\x1f" + secret.get_secret_value().encode()
    return b"enduser.id\x1f" + (auth.jwt_public_key or "").encode()
