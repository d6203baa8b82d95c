"""Bad messages on every topic: dead-lettered with the reason, audited, nothing else lost.

All five services run in this process against the real broker and PostgreSQL. Malformed
JSON, an unknown schema_version and a missing field are published to each topic, each
followed by good traffic; every consumer must dead-letter the bad ones and keep going.
"""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

import psycopg
import pytest
from faststream.kafka import KafkaBroker

from agent.app import build_service as build_agent
from agent.settings import AgentSettings
from approver.app import build_service as build_approver
from approver.settings import ApproverSettings
from auditor.app import build_service as build_auditor
from auditor.settings import AuditorSettings
from devstack.pytest_plugin import TopicProbe
from gateway.app import build_service as build_gateway
from gateway.settings import GatewaySettings
from retriever.app import build_service as build_retriever
from retriever.settings import RetrieverSettings
from shared.contracts import ChatRequested, Topic
from shared.messaging import EventBus
from shared.principal import Principal, StaffLevel
from shared.settings import DatabaseSettings, KafkaSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration

BAD = {
    "malformed_json": b'{"schema_version": 1, "request_id": ',
    "unknown_schema_version": json.dumps(
        {"schema_version": 7, "request_id": str(uuid.uuid4()), "tenant_id": "t"}
    ).encode(),
    "invalid_fields": json.dumps({"schema_version": 1, "request_id": str(uuid.uuid4())}).encode(),
}

#: The audit steps of one answered question, one row each.
SAGA_STEPS = (
    "guardrail.input",
    "retrieval.completed",
    "agent.routed",
    "guardrail.citations",
    "guardrail.output",
    "draft.produced",
    "draft.auto_approved",
)

#: Consumer groups per topic: each dead-letters what it cannot handle.
CONSUMERS = {
    Topic.REQUEST: {"retriever"},
    Topic.RETRIEVED: {"agent"},
    Topic.DRAFT: {"approver"},
    Topic.APPROVED: {"gateway-replies"},
    Topic.AUDIT: {"auditor", "gateway-timeline"},
}


async def test_every_topic_dead_letters_bad_messages_and_keeps_going(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, probe: TopicProbe
) -> None:
    common: dict[str, Any] = {"kafka": kafka_settings, "database": database_settings}
    services = [
        build_gateway(GatewaySettings(**common)),
        build_retriever(RetrieverSettings(**common)),
        build_agent(AgentSettings(**common)),
        build_approver(ApproverSettings(**common)),
        build_auditor(AuditorSettings(**common)),
    ]
    principal = Principal(
        user_id="casey", tenant_id="harborpine", roles=("customer",), level=StaffLevel.NONE
    )
    async with AsyncExitStack() as stack:
        for service in services:
            await stack.enter_async_context(service.running())
        publisher = await stack.enter_async_context(
            KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
        )
        bus = EventBus(publisher, kafka_settings, service="test")
        for topic in Topic:
            for body in BAD.values():
                await publisher.publish(
                    body, kafka_settings.topic(topic), headers={"tenant_id": "harborpine"}
                )
        good = ChatRequested(
            request_id=uuid.uuid4(),
            tenant_id="harborpine",
            principal=principal,
            message="Do you match prices?",
        )
        await bus.publish(Topic.REQUEST, good)

        # The good request went all the way through every consumer after the bad messages.
        await probe.wait_for(
            lambda m: (
                m["topic"] == kafka_settings.topic("approved")
                and m["headers"].get("request_id") == str(good.request_id)
            ),
            timeout=60,
        )

        async def audited() -> list[str] | None:
            async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
                cur = await conn.execute(
                    "SELECT action FROM audit.records WHERE request_id = %s ORDER BY seq",
                    (good.request_id,),
                )
                rows = [r[0] for r in await cur.fetchall()]
            return rows if set(SAGA_STEPS) <= set(rows) else None

        # Each service publishes its steps concurrently: compare as a multiset, so a step
        # recorded twice (a lost idempotency key) fails as surely as a missing one.
        assert sorted(await eventually(audited, timeout=30) or []) == sorted(SAGA_STEPS)

        expected = sum(len(groups) for groups in CONSUMERS.values()) * len(BAD)

        async def all_dead_lettered() -> list[dict[str, Any]] | None:
            dead = [m for m in probe.messages if m["topic"].endswith(".dlq")]
            return dead if len(dead) >= expected else None

        dead = await eventually(all_dead_lettered, timeout=30)

    for topic, groups in CONSUMERS.items():
        on_topic = [m for m in dead if m["topic"] == kafka_settings.topic(f"{topic}.dlq")]
        for group in groups:
            reasons = sorted(
                m["headers"]["dlq_reason"]
                for m in on_topic
                if m["headers"]["dlq_consumer_group"] == group
            )
            assert reasons == sorted(BAD), f"{topic} / {group}: {reasons}"
        for message in on_topic:
            assert message["raw"] in BAD.values(), "the original bytes are kept for replay"
            assert message["headers"]["dlq_source_topic"] == kafka_settings.topic(topic)
    routed = [
        m["body"]
        for m in probe.on("audit")
        if m["body"] and m["body"].get("action") == "dlq.routed"
    ]
    assert len({r["event_id"] for r in routed}) == expected, "every dead letter is audited once"
