"""PostgreSQL side of the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from shared.contracts import AuditRecorded
from shared.db import Pool

from .chain import ChainReport, canonical_record, link, verify_rows

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
                rows.append(
                    (
                        event.event_id,
                        event.request_id,
                        event.tenant_id,
                        event.service,
                        event.action,
                        event.outcome.value,
                        event.actor,
                        event.subject_event_id,
                        event.trace_id,
                        event.occurred_at,
                        Jsonb(event.details),
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

    async def verify(self) -> ChainReport:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1"
            )
            head = await cur.fetchone()
            assert head is not None

            async def rows() -> AsyncIterator[Mapping[str, Any]]:
                async with conn.cursor(name="audit_verify") as stream:
                    await stream.execute(
                        "SELECT seq, event_id, request_id, tenant_id, service, action, outcome,"
                        " actor, record, prev_hash, hash FROM audit.records ORDER BY seq"
                    )
                    async for row in stream:
                        yield row

            async with conn.transaction():
                return await verify_rows(rows(), head)

    async def for_request(self, request_id: str) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, service, action, outcome, actor, occurred_at, trace_id, details"
                " FROM audit.records WHERE request_id = %s ORDER BY seq",
                (request_id,),
            )
            return list(await cur.fetchall())
