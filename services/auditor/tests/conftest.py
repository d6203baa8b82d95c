"""Fixtures of the auditor's integration tests: a sandbox over the session's shared database.

Every test writes audit rows and gateway rows into the one migrated database of the session.
The sandbox remembers where the log ended when the test started and, afterwards, removes
everything the test added (bypassing the append-only trigger, as only a superuser can) and
points the chain head back at the last remaining row, so the next test starts from an intact
chain whatever this one broke.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from auditor.repository import PostgresAuditLog
from shared.contracts import AuditRecorded
from shared.db import Pool, open_pool
from shared.settings import DatabaseSettings

#: The columns a test may set on a gateway.requests row (0001 and 0005).
_REQUEST_COLUMNS = (
    "status",
    "updated_at",
    "message_sha256",
    "published_at",
    "timed_out_at",
    "timeout_audited_at",
)


@dataclass
class AuditSandbox:
    pool: Pool
    #: Database time when the test started: ``since`` for checks that must see only this test.
    started_at: datetime
    start_seq: int
    request_ids: set[uuid.UUID] = field(default_factory=set)

    @property
    def log(self) -> PostgresAuditLog:
        return PostgresAuditLog(self.pool)

    async def append(self, events: Sequence[AuditRecorded]) -> int:
        self.request_ids.update(e.request_id for e in events)
        return await self.log.append(events)

    async def request(self, request_id: uuid.UUID, **columns: Any) -> None:
        """A gateway.requests row (the gateway's record of a request)."""
        unknown = set(columns) - set(_REQUEST_COLUMNS)
        assert not unknown, f"not a column this fixture sets: {unknown}"
        self.request_ids.add(request_id)
        names = ["request_id", "tenant_id", "user_id", *columns]
        async with self.pool.connection() as conn:
            await conn.execute(
                f"INSERT INTO gateway.requests ({', '.join(names)})"
                f" VALUES ({', '.join(['%s'] * len(names))})",
                (request_id, "t", "u", *columns.values()),
            )

    async def project(self, events: Iterable[AuditRecorded]) -> None:
        """What the gateway's projection writes to its timeline for these audit events."""
        async with self.pool.connection() as conn:
            for e in events:
                self.request_ids.add(e.request_id)
                await conn.execute(
                    "INSERT INTO gateway.timeline (event_id, request_id, at, service, action,"
                    " outcome) VALUES (%s, %s, %s, %s, %s, %s)",
                    (e.event_id, e.request_id, e.occurred_at, e.service, e.action, e.outcome.value),
                )

    async def delete_logged(self, event_id: uuid.UUID) -> None:
        """Remove an audit row as an attacker with superuser rights could."""
        async with self.pool.connection() as conn:
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit.records WHERE event_id = %s", (event_id,))

    async def db_now(self, offset_s: float = 0.0) -> datetime:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT clock_timestamp() AS now")
            row = await cur.fetchone()
            assert row is not None
            now: datetime = row["now"]
            return now + timedelta(seconds=offset_s)

    async def logged(self, request_ids: Iterable[uuid.UUID]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, event_id, request_id, action FROM audit.records"
                " WHERE request_id = ANY(%s) ORDER BY seq",
                (list(request_ids),),
            )
            return list(await cur.fetchall())


@pytest.fixture
async def sandbox(database_settings: DatabaseSettings) -> AsyncIterator[AuditSandbox]:
    pool = await open_pool(database_settings, name="auditor-test")
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (SELECT last_seq FROM audit.chain_head) AS seq, clock_timestamp() AS now"
            )
            row = await cur.fetchone()
            assert row is not None
        box = AuditSandbox(pool, started_at=row["now"], start_seq=row["seq"])
        yield box
        async with pool.connection() as conn:
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM audit.records WHERE seq > %s", (box.start_seq,))
            await conn.execute(
                "UPDATE audit.chain_head SET"
                " last_seq = coalesce((SELECT max(seq) FROM audit.records), 0),"
                " last_hash = coalesce((SELECT hash FROM audit.records ORDER BY seq DESC LIMIT 1),"
                " repeat('0', 64))"
            )
            ids = list(box.request_ids)
            await conn.execute("DELETE FROM gateway.timeline WHERE request_id = ANY(%s)", (ids,))
            await conn.execute("DELETE FROM gateway.requests WHERE request_id = ANY(%s)", (ids,))
    finally:
        await pool.close()
