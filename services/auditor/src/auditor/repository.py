"""PostgreSQL side of the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from shared.contracts import AuditRecorded
from shared.db import Pool

from .chain import (
    GENESIS,
    ChainReport,
    canonical_record,
    link,
    storable,
    storable_time,
    verify_rows,
)

__all__ = ["AuditLog", "PostgresAuditLog"]


class AuditLog(Protocol):
    async def append(self, events: Sequence[AuditRecorded]) -> int:
        """Append events not yet recorded, in order; return how many were new."""
        ...


_INSERT = """
INSERT INTO audit.records (event_id, request_id, tenant_id, service, action, outcome, actor,
    subject_event_id, trace_id, occurred_at, details, record, prev_hash, hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING seq
"""


class PostgresAuditLog:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def append(self, events: Sequence[AuditRecorded]) -> int:
        unique: dict[str, AuditRecorded] = {}
        for event in events:
            unique.setdefault(str(event.event_id), event)
        async with self._pool.connection() as conn, conn.transaction():
            # The head row lock serialises writers, so the chain stays linear even with
            # several auditor replicas.
            cur = await conn.execute(
                "SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1 FOR UPDATE"
            )
            head = await cur.fetchone()
            assert head is not None, "audit.chain_head is missing: run migrations"
            cur = await conn.execute(
                "SELECT event_id::text AS id FROM audit.records WHERE event_id = ANY(%s::uuid[])",
                (list(unique),),
            )
            seen = {row["id"] for row in await cur.fetchall()}
            prev_hash: str = head["last_hash"]
            rows = []
            for event_id, event in unique.items():
                if event_id in seen:
                    continue
                record = canonical_record(event)
                digest = link(prev_hash, record)
                # The columns are queryable copies of ``record``: ``storable`` keeps a NUL
                # character from making the step unstorable (see chain.storable).
                rows.append(
                    (
                        event.event_id,
                        event.request_id,
                        storable(event.tenant_id),
                        storable(event.service),
                        storable(event.action),
                        event.outcome.value,
                        storable(event.actor),
                        event.subject_event_id,
                        storable(event.trace_id),
                        storable_time(event.occurred_at),
                        Jsonb(storable(event.details)),
                        record,
                        prev_hash,
                        digest,
                    )
                )
                prev_hash = digest
            new = len(rows)
            last_seq: int = head["last_seq"]
            if rows:
                # One pipelined round trip for the whole batch; the last row's seq is the head.
                async with conn.cursor() as insert:
                    await insert.executemany(_INSERT, rows, returning=True)
                    while insert.nextset():
                        pass
                    row = await insert.fetchone()
                    assert row is not None
                    last_seq = row["seq"]
            if new:
                await conn.execute(
                    "UPDATE audit.chain_head SET last_seq = %s, last_hash = %s WHERE id = 1",
                    (last_seq, prev_hash),
                )
            return new

    async def verify(self, *, since: datetime | None = None) -> ChainReport:
        """Walk the chain: the whole log, or from the first row recorded at ``since``.

        A walk from ``since`` starts at the hash the row before it stores, so it checks that
        the recent rows link to each other and to the head, and stays proportional to what was
        recorded since; only a whole walk re-checks everything from the first row.
        """
        async with self._pool.connection() as conn, conn.transaction():
            # One snapshot for the head and the rows: an append commits both together, so a
            # walk while the auditor writes sees a consistent chain, not a head behind its rows.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur = await conn.execute(
                "SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1"
            )
            head = await cur.fetchone()
            assert head is not None
            first_seq, anchor = 1, GENESIS
            if since is not None:
                first_seq, anchor = await self._walk_start(conn, since)

            async def rows() -> AsyncIterator[Mapping[str, Any]]:
                async with conn.cursor(name="audit_verify") as stream:
                    await stream.execute(
                        "SELECT seq, event_id, request_id, tenant_id, service, action, outcome,"
                        " actor, subject_event_id, trace_id, occurred_at, details, record,"
                        " prev_hash, hash FROM audit.records WHERE seq >= %s ORDER BY seq",
                        (first_seq,),
                    )
                    async for row in stream:
                        yield row

            report = await verify_rows(rows(), head, anchor=anchor)
            if report.first_seq is None:
                report.first_seq = first_seq
            return report

    @staticmethod
    async def _walk_start(conn: AsyncConnection[DictRow], since: datetime) -> tuple[int, str]:
        """The first seq recorded at or after ``since``, and the hash of the row before it."""
        # records_recorded_idx makes this one index probe. ``recorded_at`` follows ``seq``
        # closely but not exactly (it is each writer's transaction start), which only moves
        # the start by a few rows.
        cur = await conn.execute(
            "SELECT seq FROM audit.records WHERE recorded_at >= %s ORDER BY recorded_at LIMIT 1",
            (since,),
        )
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute("SELECT coalesce(max(seq), 0) + 1 AS seq FROM audit.records")
            row = await cur.fetchone()
            assert row is not None
        first: int = row["seq"]
        cur = await conn.execute(
            "SELECT hash FROM audit.records WHERE seq < %s ORDER BY seq DESC LIMIT 1", (first,)
        )
        before = await cur.fetchone()
        return first, before["hash"] if before is not None else GENESIS

    async def for_request(self, request_id: str) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, service, action, outcome, actor, occurred_at, trace_id, details"
                " FROM audit.records WHERE request_id = %s ORDER BY seq",
                (request_id,),
            )
            return list(await cur.fetchall())
