"""The gateway's own tables: request status and timeline (schema ``gateway``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.contracts import AuditRecorded, DraftDecided
from shared.db import Pool
from shared.messaging import NIL_REQUEST_ID

from .status import (
    RANK,
    SETTLED,
    RequestStatus,
    result_of,
    status_of_audit,
    status_of_decision,
)

__all__ = ["PROGRESS_CHANNEL", "SETTLED_NOTICE", "RequestRepository"]

#: NOTIFY channel: payload is a request id whose status or timeline changed, followed by
#: ``settled`` when the change may have settled it (callers waiting for the result wake then).
PROGRESS_CHANNEL = "gateway_progress"
SETTLED_NOTICE = "settled"

_RANK_OF_EXISTING = (
    "CASE r.status " + " ".join(f"WHEN '{s.value}' THEN {n}" for s, n in RANK.items()) + " END"
)

_UPSERT_STATUS = f"""  -- built from the RANK constants only

INSERT INTO gateway.requests AS r (request_id, tenant_id, user_id, status, trace_id, result)
VALUES (%(request_id)s, %(tenant_id)s, %(user_id)s, %(status)s, %(trace_id)s, %(result)s)
ON CONFLICT (request_id) DO UPDATE SET
    status = EXCLUDED.status,
    result = COALESCE(EXCLUDED.result, r.result),
    trace_id = COALESCE(r.trace_id, EXCLUDED.trace_id),
    user_id = COALESCE(r.user_id, EXCLUDED.user_id),
    updated_at = now()
WHERE %(rank)s > {_RANK_OF_EXISTING}
"""  # noqa: S608


class RequestRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def create(
        self, *, request_id: uuid.UUID, tenant_id: str, user_id: str, trace_id: str | None
    ) -> bool:
        """Record an accepted request; False if it already exists (idempotent retry)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO gateway.requests (request_id, tenant_id, user_id, status, trace_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (request_id, tenant_id, user_id, RequestStatus.ACCEPTED.value, trace_id),
            )
            await conn.commit()
            return cur.rowcount == 1

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
                            Jsonb(_public_details(e.details)),
                        )
                        for e in steps
                    ],
                )
                if advances:
                    await cur.executemany(_UPSERT_STATUS, list(advances.values()))
            # Every request of the batch is notified (an SSE stream shows each step); the
            # ``settled`` mark lets ``?wait=`` callers, who re-read on each wake-up, sleep
            # through the steps that cannot have settled their request.
            await conn.execute(
                "SELECT pg_notify(%s, n) FROM unnest(%s::text[]) AS n",
                (PROGRESS_CHANNEL, sorted({_notice(e.request_id, advances) for e in steps})),
            )

    async def apply_decision(self, event: DraftDecided, trace_id: str | None) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await self._advance(
                conn,
                request_id=event.request_id,
                tenant_id=event.tenant_id,
                user_id=event.draft.request.principal.user_id,
                status=status_of_decision(event),
                trace_id=trace_id,
                result=result_of(event),
            )
            await conn.execute(
                "SELECT pg_notify(%s, %s)",
                (PROGRESS_CHANNEL, f"{event.request_id} {SETTLED_NOTICE}"),
            )

    @staticmethod
    async def _advance(conn: AsyncConnection[Any], **fields: Any) -> None:
        await conn.execute(_UPSERT_STATUS, _advance_params(**fields))

    async def get(self, request_id: uuid.UUID) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT request_id, tenant_id, user_id, status, trace_id, result, created_at,"
                " updated_at FROM gateway.requests WHERE request_id = %s",
                (request_id,),
            )
            return await cur.fetchone()

    async def timeline(
        self, request_id: uuid.UUID, after: datetime | None = None
    ) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id, at, service, action, outcome, details FROM gateway.timeline"
                " WHERE request_id = %s AND (%s::timestamptz IS NULL OR at >= %s)"
                " ORDER BY at, event_id",
                (request_id, after, after),
            )
            return list(await cur.fetchall())


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


_PUBLIC_DETAIL_KEYS = frozenset(
    {
        "chunks",
        "cache_hit",
        "latency_ms",
        "kind",
        "citations",
        "model",
        "policy",
        "decision",
        "tool",
        "reason",
        "status",
        "index_version",
        "route",
        "verdict",
    }
)


def _public_details(details: dict[str, Any]) -> dict[str, Any]:
    """The timeline is shown to callers: keep only facts meant for them."""
    return {k: v for k, v in details.items() if k in _PUBLIC_DETAIL_KEYS}
