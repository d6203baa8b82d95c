"""The gateway's store port, and an in-process store that keeps the same promises.

:class:`RequestStore` is what the API, the status projection and the deadline sweeper need
from storage. :class:`gateway.repository.RequestRepository` keeps it in PostgreSQL (the
deployed store: one row lock decides concurrent admissions, an advisory lock lets one replica
sweep, NOTIFY wakes every replica's waiters). :class:`MemoryRequestStore` keeps it in one
process, for unit tests of the API and the handlers: one asyncio lock stands in for the row
and advisory locks, and ``notify`` for NOTIFY. Both pass ``tests/test_request_store_contract.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.contracts import AuditRecorded, DraftDecided
from shared.messaging import NIL_REQUEST_ID

from .records import (
    TIMEOUT_ACTION,
    Admission,
    AdmissionKind,
    RequestRecord,
    Step,
    TimedOut,
    public_details,
    timeout_audit_id,
)
from .status import (
    ANSWER_DEADLINE,
    APPROVAL_DEADLINE,
    RANK,
    SETTLED,
    RequestStatus,
    result_of,
    stalled_step,
    status_of_audit,
    status_of_decision,
)

__all__ = ["SETTLED_NOTICE", "MemoryRequestStore", "RequestStore"]

#: The second word of a progress notice when the change may have settled the request.
SETTLED_NOTICE = "settled"


class RequestStore(Protocol):
    async def admit(
        self,
        *,
        tenant_id: str,
        user_id: str,
        trace_id: str | None,
        message_sha256: str,
        idempotency_key: str | None,
        attempt_id: Callable[[int], uuid.UUID],
        claim_s: float,
    ) -> Admission: ...

    async def mark_published(self, request_id: uuid.UUID) -> None: ...

    async def release_claim(self, request_id: uuid.UUID) -> None: ...

    async def time_out_due(
        self, *, lock_key: int, answer_deadline_s: float, approval_deadline_s: float, limit: int
    ) -> list[TimedOut] | None: ...

    async def audit_timeouts(
        self,
        *,
        lock_key: int,
        limit: int,
        publish: Callable[[list[TimedOut]], Awaitable[set[uuid.UUID]]],
    ) -> int | None: ...

    async def apply_audit(self, events: Sequence[AuditRecorded]) -> None: ...

    async def apply_decision(self, event: DraftDecided, trace_id: str | None) -> None: ...

    async def get(self, request_id: uuid.UUID) -> RequestRecord | None: ...

    async def timeline(
        self, request_id: uuid.UUID, after: datetime | None = None
    ) -> list[Step]: ...


@dataclasses.dataclass
class _Row:
    record: RequestRecord
    timed_out_at: datetime | None = None
    timeout_audited_at: datetime | None = None


class MemoryRequestStore:
    """The store in one process. ``notify(payload)`` hears what PostgreSQL would NOTIFY
    (``"<request id>"`` or ``"<request id> settled"``); ``clock`` lets tests move time."""

    def __init__(
        self,
        *,
        notify: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._rows: dict[uuid.UUID, _Row] = {}
        self._steps: dict[uuid.UUID, dict[uuid.UUID, Step]] = {}
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[str], None]] = [notify] if notify else []
        self._clock = clock or (lambda: datetime.now(UTC))

    def listen(self, listener: Callable[[str], None]) -> None:
        """Hear every progress notice from now on (a gateway's :class:`ProgressHub`)."""
        self._listeners.append(listener)

    def _notify(self, payload: str) -> None:
        for listener in self._listeners:
            listener(payload)

    # ------------------------------------------------------------------ admission
    async def admit(
        self,
        *,
        tenant_id: str,
        user_id: str,
        trace_id: str | None,
        message_sha256: str,
        idempotency_key: str | None,
        attempt_id: Callable[[int], uuid.UUID],
        claim_s: float,
    ) -> Admission:
        async with self._lock:
            now = self._clock()
            attempt = 1
            if idempotency_key is not None:
                attempts = [
                    r.record.attempt
                    for r in self._rows.values()
                    if (r.record.tenant_id, r.record.user_id, r.record.idempotency_key)
                    == (tenant_id, user_id, idempotency_key)
                ]
                attempt = max(attempts, default=1)
            while True:
                request_id = attempt_id(attempt)
                row = self._rows.get(request_id)
                if row is None:
                    self._rows[request_id] = _Row(
                        RequestRecord(
                            request_id=request_id,
                            tenant_id=tenant_id,
                            user_id=user_id,
                            status=RequestStatus.ACCEPTED,
                            trace_id=trace_id,
                            result=None,
                            created_at=now,
                            updated_at=now,
                            idempotency_key=idempotency_key,
                            message_sha256=message_sha256,
                            attempt=attempt,
                            publish_claimed_until=now + timedelta(seconds=claim_s),
                        )
                    )
                    return Admission(AdmissionKind.NEW, request_id, attempt, now)
                if idempotency_key is None:
                    raise RuntimeError(f"request id {request_id} is not fresh")
                found = row.record
                if found.tenant_id != tenant_id or found.user_id != user_id:
                    return Admission(AdmissionKind.FOREIGN, request_id, attempt, found.created_at)
                if found.message_sha256 is not None and found.message_sha256 != message_sha256:
                    return Admission(AdmissionKind.MISMATCH, request_id, attempt, found.created_at)
                if found.status is RequestStatus.TIMED_OUT:
                    attempt = found.attempt + 1
                    continue
                kind = AdmissionKind.EXISTING
                if found.status is RequestStatus.ACCEPTED and found.published_at is None:
                    claim = found.publish_claimed_until
                    if claim is None or claim < now:
                        self._put(row, publish_claimed_until=now + timedelta(seconds=claim_s))
                        kind = AdmissionKind.REPUBLISH
                    else:
                        kind = AdmissionKind.PUBLISHING
                return Admission(kind, request_id, found.attempt, found.created_at)

    async def mark_published(self, request_id: uuid.UUID) -> None:
        async with self._lock:
            row = self._rows.get(request_id)
            if row is not None:
                self._put(
                    row,
                    published_at=row.record.published_at or self._clock(),
                    publish_claimed_until=None,
                )

    async def release_claim(self, request_id: uuid.UUID) -> None:
        async with self._lock:
            row = self._rows.get(request_id)
            if row is not None and row.record.published_at is None:
                self._put(row, publish_claimed_until=None)

    # ------------------------------------------------------------------ deadlines
    async def time_out_due(
        self, *, lock_key: int, answer_deadline_s: float, approval_deadline_s: float, limit: int
    ) -> list[TimedOut] | None:
        async with self._lock:
            now = self._clock()
            due = sorted(
                (
                    r
                    for r in self._rows.values()
                    if self._is_due(r.record, now, answer_deadline_s, approval_deadline_s)
                ),
                key=lambda r: r.record.created_at,
            )[:limit]
            ended: list[TimedOut] = []
            for row in due:
                record = row.record
                stalled_at = stalled_step(record.status, published=record.published_at is not None)
                deadline_s = (
                    answer_deadline_s if record.status in ANSWER_DEADLINE else approval_deadline_s
                )
                item = TimedOut(
                    request_id=record.request_id,
                    tenant_id=record.tenant_id,
                    trace_id=record.trace_id,
                    stalled_at=stalled_at,
                    reason=f"no end within {deadline_s:g} s; the saga stalled at {stalled_at}",
                    timed_out_at=now,
                )
                self._put(
                    row,
                    status=RequestStatus.TIMED_OUT,
                    stalled_at=stalled_at,
                    result=item.result,
                    publish_claimed_until=None,
                )
                row.timed_out_at = now
                self._add_step(
                    record.request_id,
                    Step(
                        event_id=timeout_audit_id(record.request_id),
                        at=now,
                        service="gateway",
                        action=TIMEOUT_ACTION,
                        outcome="error",
                        details=public_details(item.details),
                    ),
                )
                ended.append(item)
            for item in ended:
                self._notify(f"{item.request_id} {SETTLED_NOTICE}")
            return ended

    @staticmethod
    def _is_due(record: RequestRecord, now: datetime, answer_s: float, approval_s: float) -> bool:
        age = now - record.created_at
        if record.status in ANSWER_DEADLINE:
            claim = record.publish_claimed_until
            # A publisher still within its lease is not overtaken by the sweeper.
            leased = record.published_at is None and claim is not None and claim >= now
            return age > timedelta(seconds=answer_s) and not leased
        return record.status in APPROVAL_DEADLINE and age > timedelta(seconds=approval_s)

    async def audit_timeouts(
        self,
        *,
        lock_key: int,
        limit: int,
        publish: Callable[[list[TimedOut]], Awaitable[set[uuid.UUID]]],
    ) -> int | None:
        async with self._lock:
            rows = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r.record.status is RequestStatus.TIMED_OUT and r.timeout_audited_at is None
                ),
                key=lambda r: r.timed_out_at or r.record.updated_at,
            )[:limit]
            pending = [
                TimedOut(
                    request_id=r.record.request_id,
                    tenant_id=r.record.tenant_id,
                    trace_id=r.record.trace_id,
                    stalled_at=r.record.stalled_at or "",
                    reason=str((r.record.result or {}).get("reason", "")),
                    timed_out_at=r.timed_out_at or r.record.updated_at,
                )
                for r in rows
            ]
            if not pending:
                return 0
            published = await publish(pending)
            now = self._clock()
            for request_id in published:
                self._rows[request_id].timeout_audited_at = now
            return len(published)

    # ------------------------------------------------------------------ projection
    async def apply_audit(self, events: Sequence[AuditRecorded]) -> None:
        steps = [e for e in events if e.request_id != NIL_REQUEST_ID]
        if not steps:
            return
        async with self._lock:
            settled: set[uuid.UUID] = set()
            for event in steps:
                self._add_step(
                    event.request_id,
                    Step(
                        event_id=event.event_id,
                        at=event.occurred_at,
                        service=event.service,
                        action=event.action,
                        outcome=event.outcome.value,
                        details=public_details(event.details),
                    ),
                )
                status = status_of_audit(event)
                if status is None:
                    continue
                user_id = None if event.actor == event.service else event.actor
                advanced = self._advance(
                    event.request_id, event.tenant_id, user_id, status, event.trace_id, None
                )
                if advanced and status in SETTLED:
                    settled.add(event.request_id)
            for request_id in sorted({e.request_id for e in steps}):
                mark = f" {SETTLED_NOTICE}" if request_id in settled else ""
                self._notify(f"{request_id}{mark}")

    async def apply_decision(self, event: DraftDecided, trace_id: str | None) -> None:
        async with self._lock:
            self._advance(
                event.request_id,
                event.tenant_id,
                event.draft.request.principal.user_id,
                status_of_decision(event),
                trace_id,
                result_of(event),
            )
            self._notify(f"{event.request_id} {SETTLED_NOTICE}")

    def _advance(
        self,
        request_id: uuid.UUID,
        tenant_id: str,
        user_id: str | None,
        status: RequestStatus,
        trace_id: str | None,
        result: dict[str, Any] | None,
    ) -> bool:
        """Move the request forward to ``status`` (never back); a step of the saga is proof
        the request reached the broker. True when the status changed."""
        now = self._clock()
        row = self._rows.get(request_id)
        if row is None:
            self._rows[request_id] = _Row(
                RequestRecord(
                    request_id=request_id,
                    tenant_id=tenant_id,
                    user_id=user_id,
                    status=status,
                    trace_id=trace_id,
                    result=result,
                    created_at=now,
                    updated_at=now,
                    published_at=now,
                )
            )
            return True
        record = row.record
        if RANK[status] <= RANK[record.status]:
            return False
        self._put(
            row,
            status=status,
            result=result if result is not None else record.result,
            trace_id=record.trace_id or trace_id,
            user_id=record.user_id or user_id,
            published_at=record.published_at or now,
        )
        return True

    # ------------------------------------------------------------------ reads
    async def get(self, request_id: uuid.UUID) -> RequestRecord | None:
        row = self._rows.get(request_id)
        return row.record if row is not None else None

    async def timeline(self, request_id: uuid.UUID, after: datetime | None = None) -> list[Step]:
        steps = self._steps.get(request_id, {}).values()
        return sorted(
            (s for s in steps if after is None or s.at >= after),
            key=lambda s: (s.at, str(s.event_id)),
        )

    # ------------------------------------------------------------------ helpers
    def _put(self, row: _Row, **changes: Any) -> None:
        row.record = dataclasses.replace(row.record, updated_at=self._clock(), **changes)

    def _add_step(self, request_id: uuid.UUID, step: Step) -> None:
        # Keyed by event id: a re-delivered step is one row, as ON CONFLICT DO NOTHING.
        self._steps.setdefault(request_id, {}).setdefault(step.event_id, step)
