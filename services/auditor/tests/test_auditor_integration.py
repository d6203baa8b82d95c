"""The auditor against a real broker and a real PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from faststream.kafka import KafkaBroker

from auditor.app import build_service
from auditor.repository import PostgresAuditLog
from auditor.settings import AuditorSettings
from devstack.pytest_plugin import TopicProbe
from shared.contracts import AuditRecorded, Topic
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, KafkaSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration


async def _rows(url: str, request_id: uuid.UUID) -> list[tuple[str, str]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT action, prev_hash FROM audit.records WHERE request_id = %s ORDER BY seq",
            (request_id,),
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_records_are_chained_idempotent_and_verifiable(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    probe: TopicProbe,
    sandbox,
) -> None:
    settings = AuditorSettings(kafka=kafka_settings, database=database_settings)
    service = build_service(settings)
    request_id = uuid.uuid4()
    events = [
        AuditRecorded(
            request_id=request_id, tenant_id="t", service="s", action=f"step.{i}", actor="u"
        )
        for i in range(5)
    ]
    async with service.running():
        publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
        async with publisher:
            bus = EventBus(publisher, kafka_settings, service="test")
            for event in [*events, events[1], events[3]]:  # two redeliveries
                await bus.publish(Topic.AUDIT, event)
            await publisher.publish(b"{broken", kafka_settings.topic("audit"))

            async def five_rows() -> list[tuple[str, str]] | None:
                rows = await _rows(database_settings.dsn, request_id)
                return rows if len(rows) >= 5 else None

            rows = await eventually(five_rows)
            dead = await probe.wait_for(lambda m: m["topic"].endswith("audit.dlq"))
    assert [a for a, _ in rows] == [f"step.{i}" for i in range(5)], "one row per event, in order"
    assert dead[0]["headers"]["dlq_reason"] == "malformed_json"

    log = PostgresAuditLog(sandbox.pool)
    report = await log.verify()  # the whole chain, from the first row ever
    assert report.ok, report.problems
    assert report.whole_log
    # An attacker with database access edits a row (bypassing the append-only trigger).
    async with sandbox.pool.connection() as conn:
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE audit.records SET actor = 'mallory', record = replace(record, '\"actor\":\"u\"',"
            " '\"actor\":\"mallory\"') WHERE request_id = %s AND action = 'step.2'",
            (request_id,),
        )
    broken = await log.verify(since=sandbox.started_at)
    assert not broken.ok
    assert any("altered" in p for p in broken.problems)
    # The sandbox removes this test's rows (and the auditor's dlq.routed row) afterwards.


async def test_application_cannot_update_or_delete(
    database_settings: DatabaseSettings, sandbox
) -> None:
    # The trigger fires per row: give it one, whatever earlier tests left in the table.
    await sandbox.append(
        [AuditRecorded(request_id=uuid.uuid4(), tenant_id="t", service="s", action="a", actor="u")]
    )
    async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            await conn.execute("DELETE FROM audit.records WHERE true")
        await conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            await conn.execute("UPDATE audit.records SET actor = 'mallory'")
