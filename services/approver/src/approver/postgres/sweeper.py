"""The sweeper: expires stale approvals and forgets long-published outbox rows.

An approval still pending at its ``expires_at`` is expired in one transaction with its
DraftDecided (expired) and audit step; replicas skip each other's locked rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from shared.contracts import utcnow
from shared.db import Pool
from shared.settings import KafkaSettings
from shared.telemetry import current_trace_id

from ..domain import expired, expiry_events
from ..metrics import ApproverMetrics
from ..testing.failpoints import Failpoints
from .store import enqueue_all, lock_approvals, save_state

__all__ = ["Sweeper"]

log = logging.getLogger(__name__)

_BATCH = 100


class Sweeper:
    def __init__(
        self,
        pool: Pool,
        kafka: KafkaSettings,
        failpoints: Failpoints,
        *,
        interval_s: float,
        outbox_retention: timedelta,
        metrics: ApproverMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pool = pool
        self._kafka = kafka
        self._failpoints = failpoints
        self._interval_s = interval_s
        self._retention = outbox_retention

    async def run(self) -> None:
        while True:
            try:
                await self.expire_due(utcnow())
                await self.prune_outbox(utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sweep failed; trying again next round")
            await asyncio.sleep(self._interval_s)

    async def expire_due(self, now: datetime) -> int:
        """Expire every approval pending past its deadline; returns how many."""
        total = 0
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                due = await lock_approvals(
                    conn,
                    "status = 'pending' AND expires_at <= %s ORDER BY expires_at",
                    (now,),
                    limit=_BATCH,
                )
                for approval in due:
                    done = expired(approval, now)
                    await save_state(conn, done)
                    events = expiry_events(done, trace_id=current_trace_id())
                    await enqueue_all(conn, self._kafka, events, trace=done.trace)
                if due:
                    self._failpoints.hit("sweep.before_commit")
            if self._metrics is not None:  # committed: each expiry is counted once
                for approval in due:
                    self._metrics.decided("expired", approval.created_at, now)
            total += len(due)
            if len(due) < _BATCH:
                return total

    async def prune_outbox(self, now: datetime) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM approvals.outbox WHERE published_at < %s", (now - self._retention,)
            )
            return cur.rowcount
