"""Every accepted request reaches an end: the saga deadline sweeper.

A saga can stall anywhere: a service crashed, the broker lost what was in flight (the local
broker keeps messages in memory only), a publish never happened. Each gateway replica runs
this sweeper; every ``saga.sweep_interval_s`` it

1. ends, in one transaction, the requests whose deadline passed: status ``timed_out``, where
   they stalled, a result, a timeline row and the ``settled`` wake-up for waiting callers.
   ``pg_try_advisory_xact_lock`` inside that transaction makes exactly one replica do it at a
   time, the others skip the round;
2. after that commit, publishes the ``request.timed_out`` audit record of every timeout the
   broker has not taken yet and marks those it took. A broker outage only delays the records:
   the next round tries again, and the same event ids keep one audit row per timeout.

Deadlines count from the request's creation: ``saga.answer_deadline_s`` while machines work on
it (accepted, retrieved, drafted); ``saga.approval_expiry_s + saga.settle_grace_s`` once it
waits on a human or the executor (the approver expires a pending approval itself at
``approval_expiry_s``; this is the backstop when its outcome never arrives).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import metrics

from shared.contracts import AuditOutcome, AuditRecorded, Topic
from shared.messaging import EventPublisher
from shared.settings import SagaSettings

from .records import TIMEOUT_ACTION, TimedOut, timeout_audit_id
from .store import RequestStore

__all__ = ["SWEEP_LOCK_KEY", "DeadlineSweeper", "SweepResult", "timeout_audit"]

log = logging.getLogger(__name__)

#: The advisory lock of the sweep: a fixed 64-bit key derived from a name, so it cannot
#: collide with another component's lock by accident (advisory locks are per database).
SWEEP_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"gateway.deadline-sweep").digest()[:8], "big", signed=True
)


@dataclass
class SweepResult:
    """What one round did; None fields mean another replica held the lock."""

    timed_out: list[uuid.UUID] | None = field(default_factory=list)
    audited: int | None = 0


def timeout_audit(item: TimedOut) -> AuditRecorded:
    """The audit record of a timeout. Built from the row, so a retry rebuilds the same record:
    same event id, same time (when the request was timed out, not when the broker took it) and
    the saga's own trace id, which ties it to the rest of the request's audit trail."""
    return AuditRecorded(
        event_id=timeout_audit_id(item.request_id),
        request_id=item.request_id,
        tenant_id=item.tenant_id,
        occurred_at=item.timed_out_at,
        service="gateway",
        action=TIMEOUT_ACTION,
        outcome=AuditOutcome.ERROR,
        actor="gateway",
        trace_id=item.trace_id,
        details=item.details,
    )


class DeadlineSweeper:
    def __init__(
        self,
        repository: Callable[[], RequestStore],
        bus: EventPublisher,
        saga: SagaSettings,
        *,
        publish_timeout_s: float,
        ready: asyncio.Event | None = None,
        batch_size: int = 200,
        meter: metrics.Meter | None = None,
    ) -> None:
        self._repository = repository
        self._bus = bus
        self._saga = saga
        self._publish_timeout_s = publish_timeout_s
        # The service sets this once its broker runs: a round before that could not publish.
        self._ready = ready
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        # Alert on a rise of timeouts by where they stalled: one label value per saga step.
        self._timeouts = (meter or metrics.get_meter("gateway")).create_counter(
            "gateway.requests.timed_out",
            unit="{request}",
            description="Requests ended by the saga deadline, by the step where they stalled.",
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-deadline-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = self._saga.sweep_interval_s
        while True:
            await asyncio.sleep(delay)
            delay = self._saga.sweep_interval_s
            if self._ready is not None:
                # Not before the broker runs, and not while the service shuts down.
                await self._ready.wait()
            try:
                result = await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database or broker is down: the next round retries; the log line is
                # rate-limited by the telemetry filter.
                log.warning("deadline sweep failed: %r", exc)
                continue
            if result.timed_out:
                log.warning(
                    "timed out %d stalled request(s): %s",
                    len(result.timed_out),
                    ", ".join(str(r) for r in result.timed_out[:10]),
                )
                if len(result.timed_out) >= self._batch_size:
                    delay = 0  # a full batch: more are due, go again at once

    async def sweep(self) -> SweepResult:
        """One round: time out what is due, then publish the audits still owed."""
        saga = self._saga
        repository = self._repository()
        timed_out = await repository.time_out_due(
            lock_key=SWEEP_LOCK_KEY,
            answer_deadline_s=saga.answer_deadline_s,
            approval_deadline_s=saga.approval_expiry_s + saga.settle_grace_s,
            limit=self._batch_size,
        )
        for item in timed_out or ():
            self._timeouts.add(1, {"stalled_at": item.stalled_at})
        audited = await repository.audit_timeouts(
            lock_key=SWEEP_LOCK_KEY, limit=self._batch_size, publish=self._publish
        )
        return SweepResult(
            timed_out=None if timed_out is None else [t.request_id for t in timed_out],
            audited=audited,
        )

    async def _publish(self, items: list[TimedOut]) -> set[uuid.UUID]:
        """Publish the records concurrently within the publish timeout; the ids the broker took."""
        taken: set[uuid.UUID] = set()

        async def one(item: TimedOut) -> None:
            await self._bus.publish(Topic.AUDIT, timeout_audit(item))
            taken.add(item.request_id)

        try:
            async with asyncio.timeout(self._publish_timeout_s):
                outcomes = await asyncio.gather(
                    *(one(item) for item in items), return_exceptions=True
                )
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                log.warning(
                    "%d timeout audit record(s) not published, retried next round: %r",
                    len(failures),
                    failures[0],
                )
        except TimeoutError:
            log.warning(
                "broker did not take %d timeout audit record(s) within %.1f s; retried next round",
                len(items) - len(taken),
                self._publish_timeout_s,
            )
        return taken
