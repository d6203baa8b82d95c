"""Composition root of the approver: intake consumer, approvals API, inbox page, and the
background executor, outbox relay and sweeper."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI

from shared.auth import TokenService
from shared.auth.http import principal_dependency
from shared.contracts import DraftProduced, Topic, utcnow
from shared.service import Service
from shared.tools import ToolRegistry, default_registry

from .domain import ApprovalPolicy
from .entrypoints.api import build_router
from .entrypoints.background import Background
from .entrypoints.inbox import inbox_router
from .metrics import ApproverMetrics, PendingGauges, pending_in_postgres
from .postgres.inspector import PostgresActionInspector
from .postgres.store import PostgresApprovalStore
from .service_layer.intake import IntakePorts, handle_draft
from .service_layer.ports import ActionInspector, ApprovalStore
from .settings import ApproverSettings
from .testing.failpoints import Failpoints

__all__ = ["build", "build_service"]


def build_service(
    settings: ApproverSettings,
    *,
    store: ApprovalStore | None = None,
    inspector: ActionInspector | None = None,
    registry: ToolRegistry | None = None,
    clock: Callable[[], datetime] = utcnow,
    **overrides: Any,
) -> Service:
    """The approver; ``store`` replaces PostgreSQL (and the loops that need it) in unit tests,
    with ``inspector`` standing in for the object checks that read the tools' records."""
    service = Service("approver", settings, **overrides)
    failpoints = Failpoints(settings.failpoints)
    policy = ApprovalPolicy(settings.policy)
    tools = registry or default_registry()
    metrics = ApproverMetrics(service.telemetry.meter("approver"), tools)
    current_store: Callable[[], ApprovalStore]
    current_inspector: Callable[[], ActionInspector | None]
    if store is None:
        db = service.use_database()

        def current_store() -> ApprovalStore:
            return PostgresApprovalStore(db.pool, settings.kafka, failpoints)

        def current_inspector() -> ActionInspector | None:
            return PostgresActionInspector(db.pool, tools)

        background: list[Background] = []

        async def start_background() -> None:
            background.append(Background(settings, db.pool, tools, failpoints, metrics))
            await background[0].start()

        async def stop_background() -> None:
            if background:
                await background.pop().stop()

        # Registered after the pool's hooks: started once it is open, stopped before it closes.
        service.on_startup(start_background if settings.background else _elsewhere)
        service.on_shutdown(stop_background)
        pending = PendingGauges(
            service.telemetry.meter("approver"), pending_in_postgres(lambda: db.pool, tools), tools
        )
        service.on_startup(pending.start)
        service.on_shutdown(pending.stop)
    else:
        fixed = store

        def current_store() -> ApprovalStore:
            return fixed

        def current_inspector() -> ActionInspector | None:
            return inspector

    ttl = timedelta(seconds=settings.saga.approval_expiry_s)
    deadline = timedelta(seconds=settings.saga.answer_deadline_s)

    async def on_draft(draft: DraftProduced) -> None:
        ports = IntakePorts(
            current_store(),
            policy,
            tools,
            ttl,
            clock,
            inspector=current_inspector(),
            answer_deadline=deadline,
        )
        await handle_draft(draft, ports)
        failpoints.hit("intake.after_commit")

    service.bus.subscribe(Topic.DRAFT, on_draft, group_id=settings.group_id)
    service.include_router(
        build_router(
            store=current_store,
            policy=policy,
            authenticate=principal_dependency(TokenService(settings.auth)),
            bus=service.bus,
            clock=clock,
            inspector=current_inspector,
            metrics=metrics,
        )
    )
    service.include_router(inbox_router())
    return service


def build(settings: ApproverSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory approver.app:build``."""
    return build_service(settings or ApproverSettings()).http_app(
        title="Approver",
        description="Approvals of proposed actions: list, decide, and the inbox page at /inbox.",
    )


async def _elsewhere() -> None:
    """APPROVER_BACKGROUND=false: `python -m approver.worker` runs the loops instead."""
