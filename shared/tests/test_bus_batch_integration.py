"""Batch consumption against a real broker: one poisonous record costs only itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from faststream.kafka import KafkaBroker

from devstack.pytest_plugin import TopicProbe
from shared.contracts import AuditRecorded, Topic
from shared.messaging import EventBus
from shared.settings import KafkaSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration


async def test_a_poisonous_record_is_dead_lettered_alone_and_the_batch_is_kept(
    kafka_settings: KafkaSettings, probe: TopicProbe
) -> None:
    request_id = uuid.uuid4()  # one key: one partition, so the records arrive as one batch
    events = [
        AuditRecorded(
            request_id=request_id,
            tenant_id="t",
            service="s",
            action="poison" if i == 3 else f"step.{i}",
            actor="u",
        )
        for i in range(7)
    ]
    poison = events[3]

    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with publisher:
        sender = EventBus(publisher, kafka_settings, service="test")
        for event in events:
            await sender.publish(Topic.AUDIT, event)

    calls: list[list[uuid.UUID]] = []
    handled: list[uuid.UUID] = []
    published = {e.event_id for e in events}

    def steps(ids: list[uuid.UUID]) -> list[uuid.UUID]:
        # The consumer also receives the dlq.routed record it publishes on the same topic.
        return [i for i in ids if i in published]

    async def handle(batch: Sequence[AuditRecorded]) -> None:
        calls.append([e.event_id for e in batch])
        if any(e.action == "poison" for e in batch):
            raise ValueError(f"cannot store {poison.event_id}")
        handled.extend(e.event_id for e in batch)

    broker = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    bus = EventBus(broker, kafka_settings, service="consumer", max_attempts=2)
    bus.subscribe_batch(Topic.AUDIT, handle, group_id="batch-test", max_records=100)
    await broker.start()
    try:
        dead = await probe.wait_for(lambda m: m["topic"] == kafka_settings.topic("audit.dlq"))

        async def rest_handled() -> bool:
            return len(steps(handled)) >= len(events) - 1

        await eventually(rest_handled)
        await asyncio.sleep(0.5)  # anything dead-lettered twice, or handled again, shows now
    finally:
        await broker.stop()

    assert calls[0] == [e.event_id for e in events], "the handler got the records as one batch"
    assert sorted(map(str, steps(handled))) == sorted(
        str(e.event_id) for e in events if e is not poison
    )
    assert len(steps(handled)) == len(events) - 1, "each good record handled once"
    dead = probe.on("audit.dlq")
    assert len(dead) == 1
    assert dead[0]["body"]["event_id"] == str(poison.event_id)
    assert dead[0]["headers"]["dlq_reason"] == "handler_failed"
    assert str(poison.event_id) in dead[0]["headers"]["dlq_detail"]
    routed = [m for m in probe.on("audit") if (m["body"] or {}).get("action") == "dlq.routed"]
    assert len(routed) == 1
    assert routed[0]["body"]["request_id"] == str(request_id)
    assert routed[0]["body"]["details"]["reason"] == "handler_failed"
