"""The approver's background loops: executor, outbox relay, sweeper, and their wake-ups.

Started after the database pool is open and stopped before it closes, by the service
(``approver.app``) and by the stand-alone worker (``approver.worker``) alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from shared.db import Pool
from shared.tools import ToolRegistry

from ..metrics import ApproverMetrics
from ..postgres.executor import Executor
from ..postgres.relay import OutboxRelay
from ..postgres.store import EXECUTOR_CHANNEL
from ..postgres.sweeper import Sweeper
from ..postgres.wakeup import Listener
from ..settings import ApproverSettings
from ..testing.failpoints import Failpoints

__all__ = ["Background"]


class Background:
    def __init__(
        self,
        settings: ApproverSettings,
        pool: Pool,
        registry: ToolRegistry,
        failpoints: Failpoints,
        metrics: ApproverMetrics | None = None,
    ) -> None:
        dsn = settings.database.dsn
        self.executor = Executor(
            pool, registry, settings.kafka, settings.executor, failpoints, metrics=metrics
        )
        self.relay = OutboxRelay(dsn, pool, settings.kafka, settings.relay, failpoints)
        self.sweeper = Sweeper(
            pool,
            settings.kafka,
            failpoints,
            interval_s=settings.sweep_interval_s,
            outbox_retention=timedelta(hours=settings.relay.retention_hours),
            metrics=metrics,
        )
        self._listener = Listener(dsn, {EXECUTOR_CHANNEL: self.executor.wake})
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listener.run(), name="approver-wakeup"),
            asyncio.create_task(self.executor.run(), name="approver-executor"),
            asyncio.create_task(self.relay.run(), name="approver-relay"),
            asyncio.create_task(self.sweeper.run(), name="approver-sweeper"),
        ]

    def running(self) -> bool:
        """Every loop is still running (none crashed out of its own retry loop)."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
