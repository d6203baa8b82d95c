"""Audit records survive an auditor crash: redelivered from the committed offset, kept once.

The auditor's consumer is stopped while its handler is in the middle of a batch, the records
fetched and (in one case) already stored, the offset not committed: what a SIGKILL or an OOM
kill leaves. A new auditor in the same consumer group must then store every record exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from faststream.kafka import KafkaBroker

from auditor.app import build_service
from auditor.repository import AuditLog, PostgresAuditLog
from auditor.settings import AuditorSettings
from shared.contracts import AuditRecorded, Topic
from shared.db import Pool
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, KafkaSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration


class _DiesMidBatch:
    """The first batch is fetched, optionally stored, and then the process hangs until killed."""

    def __init__(self, store_first: bool) -> None:
        self.store_first = store_first
        self.batch: list[uuid.UUID] = []
        self.dying = asyncio.Event()

    def __call__(self, pool: Pool) -> AuditLog:
        crash = self

        class Log:
            async def append(self, events: Sequence[AuditRecorded]) -> int:
                if crash.dying.is_set():  # pragma: no cover - only one batch gets this far
                    await asyncio.Event().wait()
                stored = await PostgresAuditLog(pool).append(events) if crash.store_first else 0
                crash.batch = [e.event_id for e in events]
                crash.dying.set()
                await asyncio.Event().wait()  # the offset is never committed
                return stored

        return Log()


class _Recording:
    """The restarted auditor, noting what it is given (redelivered records included)."""

    def __init__(self) -> None:
        self.seen: list[uuid.UUID] = []
        self.new = 0

    def __call__(self, pool: Pool) -> AuditLog:
        recording = self

        class Log:
            async def append(self, events: Sequence[AuditRecorded]) -> int:
                recording.seen += [e.event_id for e in events]
                new = await PostgresAuditLog(pool).append(events)
                recording.new += new
                return new

        return Log()


@pytest.mark.parametrize("store_first", [False, True], ids=["before-storing", "after-storing"])
async def test_records_survive_an_auditor_crash_mid_batch(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    sandbox,
    store_first: bool,
) -> None:
    settings = AuditorSettings(kafka=kafka_settings, database=database_settings)
    sagas = [uuid.uuid4() for _ in range(3)]  # keys on both partitions
    events = [
        AuditRecorded(request_id=r, tenant_id="t", service="s", action=f"step.{i}", actor="u")
        for r in sagas
        for i in range(4)
    ]
    sandbox.request_ids.update(sagas)
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with publisher:
        bus = EventBus(publisher, kafka_settings, service="test")
        for event in events:
            await bus.publish(Topic.AUDIT, event)

    crash = _DiesMidBatch(store_first)
    # A kill does not wait for the handler to finish: stop after 0.1 s, not the graceful 15 s.
    dies = KafkaBroker(
        kafka_settings.bootstrap_servers, enable_idempotence=False, graceful_timeout=0.1
    )
    first = build_service(settings, audit_log=crash, broker=dies)
    async with first.running():
        await asyncio.wait_for(crash.dying.wait(), timeout=30)
        stored_before_crash = len(await sandbox.logged(sagas))
    # Leaving ``running`` stops the broker: the handler is cancelled where it hangs and
    # nothing is committed, as when the process is killed.
    assert crash.batch, "the first auditor fetched a batch"
    assert stored_before_crash == (len(crash.batch) if store_first else 0)

    restarted = _Recording()
    second = build_service(settings, audit_log=restarted)
    async with second.running():

        async def all_logged() -> list[dict[str, object]] | None:
            rows = await sandbox.logged(sagas)
            # Done when the crashed batch came again (when the first auditor stored the whole
            # batch, the rows are all there long before that) and the handler returned.
            done = (
                len(rows) >= len(events)
                and set(crash.batch) <= set(restarted.seen)
                and restarted.new >= len(events) - stored_before_crash
            )
            return rows if done else None

        # Times out if the crashed batch is never delivered again (its offset was committed).
        rows = await eventually(all_logged, timeout=30)

    assert sorted(str(r["event_id"]) for r in rows) == sorted(str(e.event_id) for e in events)
    assert restarted.new == len(events) - stored_before_crash, "stored rows are kept once"
    report = await sandbox.log.verify(since=sandbox.started_at)
    assert report.ok, report.problems
