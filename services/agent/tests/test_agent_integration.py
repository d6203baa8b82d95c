"""The agent on the real broker and PostgreSQL: a ContextRetrieved in, a draft and audit out,
a read tool run against the tools schema with the caller's identity."""

from __future__ import annotations

import psycopg
import pytest
from faststream.kafka import KafkaBroker

from agent.app import build_agent
from agent.settings import AgentSettings
from devstack.pytest_plugin import TopicProbe
from shared.contracts import Topic
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, KafkaSettings

from .helpers import CUSTOMER, kb_chunks, retrieved

pytestmark = pytest.mark.integration


async def test_an_order_question_is_answered_from_the_system_of_record(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, probe: TopicProbe
) -> None:
    async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
        await conn.execute(
            "INSERT INTO tools.orders (tenant_id, order_id, customer_id, status, total, currency)"
            " VALUES ('harborpine', 'HP-77002', 'casey', 'in transit', 64.50, 'EUR')"
            " ON CONFLICT DO NOTHING"
        )
        await conn.commit()
    agent = build_agent(AgentSettings(kafka=kafka_settings, database=database_settings))
    event = retrieved("Where is my order HP-77002?", kb_chunks("hp-order-tracking"), CUSTOMER)
    stranger = retrieved(
        "Where is my order HP-77002?",
        kb_chunks("hp-order-tracking"),
        CUSTOMER.model_copy(update={"user_id": "mallory"}),
    )
    async with agent.service.running():
        publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
        async with publisher:
            bus = EventBus(publisher, kafka_settings, service="test")
            await bus.publish(Topic.RETRIEVED, event)
            await bus.publish(Topic.RETRIEVED, stranger)
            await bus.publish(Topic.RETRIEVED, event)  # a redelivery changes nothing
            mine = await probe.wait_for(
                lambda m: (
                    m["topic"].endswith(".draft")
                    and m["headers"].get("request_id") == str(event.request_id)
                )
            )
            theirs = await probe.wait_for(
                lambda m: (
                    m["topic"].endswith(".draft")
                    and m["headers"].get("request_id") == str(stranger.request_id)
                )
            )
            await probe.wait_for(
                lambda m: (
                    m["topic"].endswith(".audit")
                    and m["body"]["request_id"] == str(stranger.request_id)
                    and m["body"]["action"] == "draft.produced"
                )
            )
    assert "in transit" in mine[0]["body"]["answer"]
    assert {m["body"]["event_id"] for m in mine} == {mine[0]["body"]["event_id"]}
    assert "in transit" not in theirs[0]["body"]["answer"], "no one reads another's order"
    steps = [
        m["body"] for m in probe.on("audit") if m["body"]["request_id"] == str(stranger.request_id)
    ]
    executed = [s for s in steps if s["action"] == "tool.executed"]
    assert executed[0]["outcome"] == "error" and executed[0]["details"]["code"] == "tool_error"
