"""The executor: runs approved actions, each exactly once in effect.

One transaction per action: lock the approved row (``SKIP LOCKED``, so replicas share the
queue), run the tool on that same connection under the action's idempotency key, set the
status to executed or failed, and enqueue the one DraftDecided and the audit step. A crash
anywhere before the commit rolls the effect back with the rest, and the action is still
approved for the next run; after the commit the outbox relay publishes the events.

Tools that call a company's own systems instead of the ``tools`` schema cannot join the
transaction; for them the idempotency key is what makes the retried call find the first
effect (``ToolResult.created`` is False), and the result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg
from opentelemetry import context, propagate, trace

from shared.db import Pool
from shared.messaging import is_transient
from shared.settings import KafkaSettings
from shared.telemetry import current_trace_id
from shared.tools import (
    ToolArgumentError,
    ToolContext,
    ToolError,
    ToolInvariantError,
    ToolNotFound,
    ToolPermissionError,
    ToolRegistry,
)
from shared.tools.metrics import ToolOutcome
from shared.tools.registry import TransientToolError

from ..domain import Approval, ApprovalStatus, execution_events, finished
from ..metrics import ApproverMetrics
from ..settings import ExecutorSettings
from ..testing.failpoints import Failpoints
from .store import enqueue_all, lock_approvals, save_state

__all__ = ["Executor"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("approver.executor")


class Executor:
    def __init__(
        self,
        pool: Pool,
        registry: ToolRegistry,
        kafka: KafkaSettings,
        settings: ExecutorSettings,
        failpoints: Failpoints,
        *,
        metrics: ApproverMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pool = pool
        self._registry = registry
        self._kafka = kafka
        self._settings = settings
        self._failpoints = failpoints
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                while await self.execute_next():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("executor pass failed; retrying")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self._settings.poll_interval_s)

    async def execute_next(self) -> bool:
        """Execute one approved action; False when none is waiting."""
        async with self._pool.connection() as conn:
            try:
                async with conn.transaction():
                    claimed = await lock_approvals(
                        conn, "status = 'approved' ORDER BY decided_at", (), limit=1
                    )
                    if not claimed:
                        return False
                    approval = claimed[0]
                    done = await self._execute(conn, approval)
                    await save_state(conn, done)
                    await enqueue_all(
                        conn,
                        self._kafka,
                        execution_events(done, trace_id=current_trace_id()),
                        trace=done.trace,
                    )
                    self._failpoints.hit("execute.before_commit")
            except _RetryLater as retry:
                await self._count_attempt(retry.approval, retry.cause)
                return True
        if self._metrics is not None:  # committed: the result is counted once
            self._metrics.executed(succeeded=done.status is ApprovalStatus.EXECUTED)
        self._failpoints.hit("execute.after_commit")
        return True

    async def _execute(self, conn: psycopg.AsyncConnection[Any], approval: Approval) -> Approval:
        principal = approval.draft.request.principal
        token = context.attach(propagate.extract(dict(approval.trace)))
        try:
            with tracer.start_as_current_span(
                f"execute_tool {approval.tool}",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": approval.tool,
                    "gen_ai.tool.call.id": approval.idempotency_key,
                    "request_id": str(approval.request_id),
                },
            ):
                started = time.perf_counter()
                try:
                    # A savepoint: a tool that fails part-way leaves nothing behind.
                    async with conn.transaction():
                        result = await self._registry.run(
                            approval.tool,
                            dict(approval.arguments),
                            ToolContext(
                                principal=principal,
                                conn=conn,
                                request_id=str(approval.request_id),
                                idempotency_key=approval.idempotency_key,
                            ),
                        )
                        self._failpoints.hit("execute.after_effect")
                except (TransientToolError, TimeoutError) as exc:
                    self._timed(approval.tool, "failed", started)
                    raise _RetryLater(approval, exc) from exc
                except ToolError as exc:
                    refused = isinstance(exc, _REFUSALS)
                    self._timed(approval.tool, "refused" if refused else "failed", started)
                    return finished(approval, None, f"{exc.code}: {exc}")
                except Exception as exc:
                    self._timed(approval.tool, "failed", started)
                    if is_transient(exc):
                        raise
                    raise _RetryLater(approval, exc) from exc
                self._timed(approval.tool, "ok", started)
        finally:
            context.detach(token)
        again = "" if result.created else " (found done under the same key: not repeated)"
        return finished(approval, result.effect_id or "", f"{approval.tool} done{again}")

    def _timed(self, tool: str, outcome: ToolOutcome, started: float) -> None:
        if self._metrics is not None:
            self._metrics.tools.record(tool, outcome, time.perf_counter() - started)

    async def _count_attempt(self, approval: Approval, cause: BaseException) -> None:
        """Count a failed run; fail the action once it has used up its attempts."""
        log.warning("execution of %s failed: %r", approval.draft_id, cause)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE approvals.drafts SET execution_attempts = execution_attempts + 1"
                " WHERE draft_event_id = %s AND status = 'approved' RETURNING execution_attempts",
                (approval.draft_id,),
            )
            row = await cur.fetchone()
            if row is None or row["execution_attempts"] < self._settings.max_attempts:
                return
            done = finished(
                approval,
                None,
                f"gave up after {row['execution_attempts']} attempts: {cause!r}"[:500],
            )
            await save_state(conn, done)
            await enqueue_all(
                conn,
                self._kafka,
                execution_events(done, trace_id=current_trace_id()),
                trace=done.trace,
            )
        if self._metrics is not None:
            self._metrics.executed(succeeded=False)


#: Errors by which a tool refuses to act (the caller may not, the arguments or the object's
#: state forbid it), as opposed to failing while it acts.
_REFUSALS = (ToolPermissionError, ToolArgumentError, ToolInvariantError, ToolNotFound)


class _RetryLater(Exception):
    def __init__(self, approval: Approval, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.approval = approval
        self.cause = cause
