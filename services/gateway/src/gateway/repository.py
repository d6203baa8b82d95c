"""The gateway's own tables in PostgreSQL: request status and timeline (schema ``gateway``).

:class:`RequestRepository` is the PostgreSQL adapter of the :class:`gateway.store.RequestStore`
port; :class:`gateway.store.MemoryRequestStore` is the in-process one for unit tests, and both
pass one contract suite (``tests/test_request_store_contract.py``).

Besides the status projection, this is where a POST is admitted (one row per attempt of an
``Idempotency-Key``, with a short publish lease so exactly one caller publishes an attempt) and
where the deadline sweeper ends stalled requests (see ``deadlines.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.contracts import AuditRecorded, DraftDecided
from shared.db import Pool
from shared.messaging import NIL_REQUEST_ID

from .metrics import SagaMetrics, Settlement
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
from .store import SETTLED_NOTICE

__all__ = [
    "PROGRESS_CHANNEL",
    "SETTLED_NOTICE",
    "TIMEOUT_ACTION",
    "Admission",
    "AdmissionKind",
    "RequestRepository",
    "TimedOut",
    "timeout_audit_id",
]

#: NOTIFY channel: payload is a request id whose status or timeline changed, followed by
#: ``settled`` when the change may have settled it (callers waiting for the result wake then).
PROGRESS_CHANNEL = "gateway_progress"

_RANK_OF_EXISTING = (
    "CASE r.status " + " ".join(f"WHEN '{s.value}' THEN {n}" for s, n in RANK.items()) + " END"
)

#: Seconds since the request was accepted, by the database's clock (both ends on one clock).
_AGE_S = "extract(epoch FROM clock_timestamp() - r.created_at)::float8 AS age_s"

_UPSERT_STATUS = f"""  -- built from the RANK constants only

INSERT INTO gateway.requests AS r
    (request_id, tenant_id, user_id, status, trace_id, result, published_at)
VALUES (%(request_id)s, %(tenant_id)s, %(user_id)s, %(status)s, %(trace_id)s, %(result)s, now())
ON CONFLICT (request_id) DO UPDATE SET
    status = EXCLUDED.status,
    result = COALESCE(EXCLUDED.result, r.result),
    trace_id = COALESCE(r.trace_id, EXCLUDED.trace_id),
    user_id = COALESCE(r.user_id, EXCLUDED.user_id),
    -- A step of the saga is proof the request reached the broker (the gateway may have died
    -- or timed out between the publish and recording it).
    published_at = COALESCE(r.published_at, now()),
    updated_at = now()
WHERE %(rank)s > {_RANK_OF_EXISTING}
RETURNING r.request_id, r.status, {_AGE_S}
"""  # noqa: S608

#: A request row created by a status step (a request an upstream system published itself, or
#: a test): only when no row exists yet; the caller then knows it had no status before.
_INSERT_STATUS = f"""
INSERT INTO gateway.requests AS r
    (request_id, tenant_id, user_id, status, trace_id, result, published_at)
VALUES (%(request_id)s, %(tenant_id)s, %(user_id)s, %(status)s, %(trace_id)s, %(result)s, now())
ON CONFLICT (request_id) DO NOTHING
RETURNING r.request_id, r.status, {_AGE_S}
"""  # noqa: S608 - a constant expression only

#: The status of each row before a change, read under the lock the change needs anyway (in
#: request id order, so two transactions locking overlapping sets cannot deadlock).
_LOCK_STATUS = """
SELECT request_id, status FROM gateway.requests WHERE request_id = ANY(%s)
ORDER BY request_id FOR UPDATE
"""

_REQUEST_COLUMNS = (
    "request_id, tenant_id, user_id, status, trace_id, result, created_at, updated_at,"
    " idempotency_key, message_sha256, attempt, published_at, publish_claimed_until, stalled_at"
)

_CLAIM_PUBLISH = """
UPDATE gateway.requests SET publish_claimed_until = now() + make_interval(secs => %(claim_s)s)
WHERE request_id = %(request_id)s AND status = 'accepted' AND published_at IS NULL
  AND (publish_claimed_until IS NULL OR publish_claimed_until < now())
RETURNING request_id
"""

_INSERT_ATTEMPT = """
INSERT INTO gateway.requests (request_id, tenant_id, user_id, status, trace_id,
    idempotency_key, message_sha256, attempt, publish_claimed_until)
VALUES (%(request_id)s, %(tenant_id)s, %(user_id)s, 'accepted', %(trace_id)s,
    %(idempotency_key)s, %(message_sha256)s, %(attempt)s,
    now() + make_interval(secs => %(claim_s)s))
ON CONFLICT DO NOTHING
RETURNING created_at
"""

#: An attempt's publish lease may not be taken over while it runs; an unpublished row with a
#: lease is also not timed out yet (its publisher is still within its bounded wait).
_DUE = f"""
SELECT request_id, tenant_id, user_id, status, trace_id, published_at IS NOT NULL AS published,
    extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s
FROM gateway.requests
WHERE (
        status IN ({", ".join(f"'{s.value}'" for s in sorted(ANSWER_DEADLINE))})
        AND created_at < now() - make_interval(secs => %(answer_s)s)
        AND (published_at IS NOT NULL OR publish_claimed_until IS NULL
             OR publish_claimed_until < now())
    ) OR (
        status IN ({", ".join(f"'{s.value}'" for s in sorted(APPROVAL_DEADLINE))})
        AND created_at < now() - make_interval(secs => %(approval_s)s)
    )
ORDER BY created_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - built from the status constants only

_MARK_TIMED_OUT = """
UPDATE gateway.requests
SET status = 'timed_out', stalled_at = %(stalled_at)s, result = %(result)s,
    timed_out_at = now(), publish_claimed_until = NULL, updated_at = now()
WHERE request_id = %(request_id)s
"""

#: Attempts walked in one admission before giving up (each step past the first needs a
#: concurrent timeout of the attempt just read, so more than a couple means something is off).
_MAX_ADMISSION_STEPS = 16


class RequestRepository:
    def __init__(self, pool: Pool, metrics: SagaMetrics | None = None) -> None:
        self._pool = pool
        self._metrics = metrics

    def _observe(self, settled: list[Settlement], accepted: int = 0) -> None:
        """Called after the transaction that made these changes committed."""
        if self._metrics is not None:
            self._metrics.accepted(accepted)
            self._metrics.settled(settled)

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
        """Decide what a POST is: a new attempt, a retry of one, or a refusal.

        Without a key, ``attempt_id(1)`` must be a fresh id. With one, ``attempt_id(n)`` is the
        deterministic id of the key's n-th attempt: concurrent identical POSTs insert the same
        primary key, so one insert wins and the others (waiting on its row lock) read its row.
        No lock is held while the caller publishes: the publish lease (``claim_s``) says who
        publishes, and lapses by itself if that caller dies.
        """
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "user_id": user_id,
            "trace_id": trace_id,
            "idempotency_key": idempotency_key,
            "message_sha256": message_sha256,
            "claim_s": claim_s,
        }
        async with self._pool.connection() as conn:
            attempt = 1
            if idempotency_key is not None:
                async with conn.transaction():
                    cur = await conn.execute(
                        "SELECT max(attempt) AS attempt FROM gateway.requests"
                        " WHERE tenant_id = %s AND user_id = %s AND idempotency_key = %s",
                        (tenant_id, user_id, idempotency_key),
                    )
                    latest = await cur.fetchone()
                attempt = (latest or {}).get("attempt") or 1
            for _ in range(_MAX_ADMISSION_STEPS):
                request_id = attempt_id(attempt)
                async with conn.transaction():
                    cur = await conn.execute(
                        _INSERT_ATTEMPT, {**params, "request_id": request_id, "attempt": attempt}
                    )
                    inserted = await cur.fetchone()
                if inserted is not None:
                    self._observe([], accepted=1)
                    return Admission(AdmissionKind.NEW, request_id, attempt, inserted["created_at"])
                if idempotency_key is None:
                    raise RuntimeError(f"request id {request_id} is not fresh")
                async with conn.transaction():
                    cur = await conn.execute(
                        f"SELECT {_REQUEST_COLUMNS} FROM gateway.requests"  # noqa: S608
                        " WHERE request_id = %s",
                        (request_id,),
                    )
                    row = await cur.fetchone()
                if row is None:
                    # Rows are never deleted, and attempt n of a key always has id
                    # attempt_id(n): a conflict without a row is a broken invariant.
                    raise RuntimeError(f"request {request_id} conflicted but cannot be read")
                if row["tenant_id"] != tenant_id or row["user_id"] != user_id:
                    return Admission(AdmissionKind.FOREIGN, request_id, attempt, row["created_at"])
                if row["message_sha256"] is not None and row["message_sha256"] != message_sha256:
                    return Admission(AdmissionKind.MISMATCH, request_id, attempt, row["created_at"])
                if row["status"] == RequestStatus.TIMED_OUT.value:
                    # The earlier attempt ended without an answer: the retry starts afresh.
                    attempt = int(row["attempt"]) + 1
                    continue
                kind = AdmissionKind.EXISTING
                if row["status"] == RequestStatus.ACCEPTED.value and row["published_at"] is None:
                    kind = (
                        AdmissionKind.REPUBLISH
                        if await self._claim(conn, request_id, claim_s)
                        else AdmissionKind.PUBLISHING
                    )
                return Admission(kind, request_id, int(row["attempt"]), row["created_at"])
        raise RuntimeError(f"no attempt of idempotency key could be admitted in {attempt} steps")

    @staticmethod
    async def _claim(conn: AsyncConnection[Any], request_id: uuid.UUID, claim_s: float) -> bool:
        async with conn.transaction():
            cur = await conn.execute(_CLAIM_PUBLISH, {"request_id": request_id, "claim_s": claim_s})
            return await cur.fetchone() is not None

    async def mark_published(self, request_id: uuid.UUID) -> None:
        """The broker took the request and its audit step: release the lease for good."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE gateway.requests SET published_at = COALESCE(published_at, now()),"
                " publish_claimed_until = NULL WHERE request_id = %s",
                (request_id,),
            )

    async def release_claim(self, request_id: uuid.UUID) -> None:
        """The publish failed: let the next retry with the key publish at once."""
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE gateway.requests SET publish_claimed_until = NULL"
                " WHERE request_id = %s AND published_at IS NULL",
                (request_id,),
            )

    # ------------------------------------------------------------------ deadlines
    async def time_out_due(
        self,
        *,
        lock_key: int,
        answer_deadline_s: float,
        approval_deadline_s: float,
        limit: int,
    ) -> list[TimedOut] | None:
        """End the requests whose deadline passed; None when another replica is sweeping.

        One transaction: the status change, its timeline row and the wake-up of waiters commit
        together. ``pg_try_advisory_xact_lock`` makes one replica sweep at a time (the others
        skip this round rather than queue); ``SKIP LOCKED`` passes over rows the projection is
        updating right now, they are looked at again next round.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s) AS locked, now() AS now", (lock_key,)
            )
            locked = await cur.fetchone()
            if locked is None or not locked["locked"]:
                return None
            cur = await conn.execute(
                _DUE,
                {"answer_s": answer_deadline_s, "approval_s": approval_deadline_s, "limit": limit},
            )
            ended: list[TimedOut] = []
            settled: list[Settlement] = []
            for row in await cur.fetchall():
                status = RequestStatus(row["status"])
                if status not in SETTLED:
                    # A request waiting on a human settled when it went pending; its timeout
                    # is not a second settlement.
                    settled.append(Settlement(RequestStatus.TIMED_OUT, float(row["age_s"])))
                stalled_at = stalled_step(status, published=row["published"])
                deadline_s = answer_deadline_s if status in ANSWER_DEADLINE else approval_deadline_s
                ended.append(
                    TimedOut(
                        request_id=row["request_id"],
                        tenant_id=row["tenant_id"],
                        trace_id=row["trace_id"],
                        stalled_at=stalled_at,
                        reason=f"no end within {deadline_s:g} s; the saga stalled at {stalled_at}",
                        # now() of this transaction: what the rows below record as well.
                        timed_out_at=locked["now"],
                    )
                )
            if not ended:
                return []
            async with conn.cursor() as batch:
                # The rows are locked by this transaction (FOR UPDATE above), so nothing moved
                # them since they were read.
                await batch.executemany(
                    _MARK_TIMED_OUT,
                    [
                        {
                            "request_id": t.request_id,
                            "stalled_at": t.stalled_at,
                            "result": Jsonb(t.result),
                        }
                        for t in ended
                    ],
                )
                await batch.executemany(
                    "INSERT INTO gateway.timeline (event_id, request_id, at, service, action,"
                    " outcome, details) VALUES (%s, %s, %s, 'gateway', %s, 'error', %s)"
                    " ON CONFLICT DO NOTHING",
                    [
                        (
                            timeout_audit_id(t.request_id),
                            t.request_id,
                            t.timed_out_at,
                            TIMEOUT_ACTION,
                            Jsonb(public_details(t.details)),
                        )
                        for t in ended
                    ],
                )
            # Waiters (``?wait=``, event streams) on any replica wake and read the end.
            await conn.execute(
                "SELECT pg_notify(%s, n) FROM unnest(%s::text[]) AS n",
                (PROGRESS_CHANNEL, [f"{t.request_id} {SETTLED_NOTICE}" for t in ended]),
            )
        self._observe(settled)
        return ended

    async def audit_timeouts(
        self,
        *,
        lock_key: int,
        limit: int,
        publish: Callable[[list[TimedOut]], Awaitable[set[uuid.UUID]]],
    ) -> int | None:
        """Publish the audit records of timeouts not yet audited; mark those the broker took.

        Runs after the timeouts committed (an audit never describes a change that rolled back)
        and again every round until the broker takes them, so an outage delays the records but
        cannot lose them. The advisory lock keeps two replicas from publishing the same records
        at once (a crash between publish and mark re-publishes the same event ids, which the
        auditor keeps once). None when another replica holds the lock.
        """
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS locked", (lock_key,))
            locked = await cur.fetchone()
            if locked is None or not locked["locked"]:
                return None
            cur = await conn.execute(
                "SELECT request_id, tenant_id, trace_id, stalled_at, result,"
                " timed_out_at FROM gateway.requests"
                " WHERE status = 'timed_out' AND timeout_audited_at IS NULL"
                " ORDER BY timed_out_at LIMIT %s",
                (limit,),
            )
            pending = [
                TimedOut(
                    request_id=row["request_id"],
                    tenant_id=row["tenant_id"],
                    trace_id=row["trace_id"],
                    stalled_at=row["stalled_at"],
                    reason=str((row["result"] or {}).get("reason", "")),
                    timed_out_at=row["timed_out_at"],
                )
                for row in await cur.fetchall()
            ]
            if not pending:
                return 0
            published = await publish(pending)
            if published:
                await conn.execute(
                    "UPDATE gateway.requests SET timeout_audited_at = now()"
                    " WHERE request_id = ANY(%s)",
                    (list(published),),
                )
            return len(published)

    async def apply_audit(self, events: Sequence[AuditRecorded]) -> None:
        """Append a batch of steps to the timeline and move each request's status forward.

        A batch costs a fixed number of round trips (pipelined), not one per step: the
        projection consumes every audit record of every saga, so this is a hot path."""
        steps = [e for e in events if e.request_id != NIL_REQUEST_ID]
        if not steps:
            return
        advances: dict[uuid.UUID, dict[str, Any]] = {}
        for event in steps:
            status = status_of_audit(event)
            if status is None:
                continue
            current = advances.get(event.request_id)
            user_id = None if event.actor == event.service else event.actor
            if current is None or RANK[status] > current["rank"]:
                advances[event.request_id] = _advance_params(
                    request_id=event.request_id,
                    tenant_id=event.tenant_id,
                    user_id=user_id or (current or {}).get("user_id"),
                    status=status,
                    trace_id=event.trace_id,
                    result=None,
                )
            elif user_id and current["user_id"] is None:
                current["user_id"] = user_id
        async with self._pool.connection() as conn, conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO gateway.timeline (event_id, request_id, at, service, action,"
                    " outcome, details) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    [
                        (
                            e.event_id,
                            e.request_id,
                            e.occurred_at,
                            e.service,
                            e.action,
                            e.outcome.value,
                            Jsonb(public_details(e.details)),
                        )
                        for e in steps
                    ],
                )
            settled, created = await _advance_all(conn, list(advances.values()))
            # Every request of the batch is notified (an SSE stream shows each step); the
            # ``settled`` mark lets ``?wait=`` callers, who re-read on each wake-up, sleep
            # through the steps that cannot have settled their request.
            await conn.execute(
                "SELECT pg_notify(%s, n) FROM unnest(%s::text[]) AS n",
                (PROGRESS_CHANNEL, sorted({_notice(e.request_id, advances) for e in steps})),
            )
        self._observe(settled, accepted=created)

    async def apply_decision(self, event: DraftDecided, trace_id: str | None) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            settled, created = await _advance_all(
                conn,
                [
                    _advance_params(
                        request_id=event.request_id,
                        tenant_id=event.tenant_id,
                        user_id=event.draft.request.principal.user_id,
                        status=status_of_decision(event),
                        trace_id=trace_id,
                        result=result_of(event),
                    )
                ],
            )
            await conn.execute(
                "SELECT pg_notify(%s, %s)",
                (PROGRESS_CHANNEL, f"{event.request_id} {SETTLED_NOTICE}"),
            )
        self._observe(settled, accepted=created)

    async def get(self, request_id: uuid.UUID) -> RequestRecord | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM gateway.requests"  # noqa: S608
                " WHERE request_id = %s",
                (request_id,),
            )
            row = await cur.fetchone()
            return RequestRecord.from_row(row) if row is not None else None

    async def timeline(self, request_id: uuid.UUID, after: datetime | None = None) -> list[Step]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id, at, service, action, outcome, details FROM gateway.timeline"
                " WHERE request_id = %s AND (%s::timestamptz IS NULL OR at >= %s)"
                " ORDER BY at, event_id",
                (request_id, after, after),
            )
            return [Step.from_row(row) for row in await cur.fetchall()]


async def _advance_all(
    conn: AsyncConnection[Any], advances: list[dict[str, Any]]
) -> tuple[list[Settlement], int]:
    """Move each request's status forward; the requests this settled, and how many rows it
    created. Runs inside the caller's transaction, in a fixed number of round trips.

    Whether a change *settled* a request needs its status before the change: the rows are
    locked and read first, so no other transaction (another replica's projection or decision
    consumer, the deadline sweeper) can move them in between. A row that does not exist yet is
    inserted only if still absent; one another transaction inserted in the meantime is then
    locked and read like the others, so every transition is seen by exactly one process.
    """
    if not advances:
        return [], 0
    ids = [a["request_id"] for a in advances]
    cur = await conn.execute(_LOCK_STATUS, (ids,))
    before = {row["request_id"]: RequestStatus(row["status"]) for row in await cur.fetchall()}
    settled: list[Settlement] = []
    created = 0
    missing = [a for a in advances if a["request_id"] not in before]
    if missing:
        async with conn.cursor() as batch:
            await batch.executemany(_INSERT_STATUS, missing, returning=True)
            inserted = [row async for row in _returned(batch)]
        created = len(inserted)
        for row in inserted:
            status = RequestStatus(row["status"])
            if status in SETTLED:
                settled.append(Settlement(status, float(row["age_s"])))
        fresh = {row["request_id"] for row in inserted}
        raced = [a["request_id"] for a in missing if a["request_id"] not in fresh]
        if raced:
            cur = await conn.execute(_LOCK_STATUS, (raced,))
            before.update(
                {row["request_id"]: RequestStatus(row["status"]) for row in await cur.fetchall()}
            )
        advances = [a for a in advances if a["request_id"] not in fresh]
    if advances:
        async with conn.cursor() as batch:
            await batch.executemany(_UPSERT_STATUS, advances, returning=True)
            async for row in _returned(batch):
                status = RequestStatus(row["status"])
                previous = before.get(row["request_id"])
                if status in SETTLED and (previous is None or previous not in SETTLED):
                    settled.append(Settlement(status, float(row["age_s"])))
    return settled, created


async def _returned(cursor: Any) -> Any:
    """Every row an ``executemany(..., returning=True)`` returned (none for a skipped one)."""
    async for result in cursor.results():
        for row in await result.fetchall():
            yield row


def _advance_params(
    *,
    request_id: uuid.UUID,
    tenant_id: str,
    user_id: str | None,
    status: RequestStatus,
    trace_id: str | None,
    result: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "status": status.value,
        "trace_id": trace_id,
        "result": Jsonb(result) if result is not None else None,
        "rank": RANK[status],
    }


def _notice(request_id: uuid.UUID, advances: dict[uuid.UUID, dict[str, Any]]) -> str:
    """NOTIFY payload: the request id, then ``settled`` when this batch may have settled it."""
    advance = advances.get(request_id)
    settled = advance is not None and advance["status"] in SETTLED
    return f"{request_id} {SETTLED_NOTICE}" if settled else str(request_id)
