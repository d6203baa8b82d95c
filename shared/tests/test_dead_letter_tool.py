"""``platform-dlq``: list what was dead-lettered and replay it after the fix, each once."""

from __future__ import annotations

import uuid

import pytest
from faststream.kafka import KafkaBroker

from devstack.pytest_plugin import TopicProbe
from shared.contracts import ChatRequested, Topic
from shared.messaging import EventBus
from shared.messaging.dead_letters import list_dead_letters, replay
from shared.principal import Principal
from shared.settings import DatabaseSettings, KafkaSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration


async def test_a_message_refused_by_a_bug_is_listed_then_replayed_once_after_the_fix(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, probe: TopicProbe
) -> None:
    principal = Principal(user_id="u", tenant_id="harborpine", roles=("customer",))
    chats = [
        ChatRequested(
            request_id=uuid.uuid4(), tenant_id="harborpine", principal=principal, message=m
        )
        for m in ("hello", "trigger the bug", "goodbye")
    ]
    fixed = False
    handled: list[str] = []

    async def handle(event: ChatRequested) -> None:
        if event.message == "trigger the bug" and not fixed:
            raise ValueError("a handler bug")
        handled.append(event.message)

    broker = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    bus = EventBus(broker, kafka_settings, service="consumer", max_attempts=1)
    bus.subscribe(Topic.REQUEST, handle, group_id="dlq-tool-test")
    async with broker:
        await broker.start()
        for chat in chats:
            await bus.publish(Topic.REQUEST, chat)
        await probe.wait_for(lambda m: m["topic"] == kafka_settings.topic("request.dlq"))

        async def both_good_handled() -> bool:
            return {"hello", "goodbye"} <= set(handled)

        await eventually(both_good_handled)

        letters = await list_dead_letters(kafka_settings, database_settings)
        assert len(letters) == 1
        [letter] = letters
        assert letter.dlq_topic == kafka_settings.topic("request.dlq")
        assert letter.source_topic == kafka_settings.topic("request")
        assert (letter.reason, letter.service, letter.replayed) == (
            "handler_failed",
            "consumer",
            False,
        )
        assert "a handler bug" in letter.detail
        assert letter.key == str(chats[1].request_id)
        assert letter.event_id == str(chats[1].event_id)

        fixed = True  # the fix is deployed
        replayed, skipped = await replay(
            kafka_settings, database_settings, refs=[letter.ref], actor="test"
        )
        assert ([d.ref for d in replayed], skipped) == ([letter.ref], [])

        async def replay_handled() -> bool:
            return "trigger the bug" in handled

        await eventually(replay_handled)
        # Replaying the same selection again publishes nothing.
        again, skipped = await replay(kafka_settings, database_settings, everything=True)
        assert again == [] and [d.ref for d in skipped] == [letter.ref]
        assert (await list_dead_letters(kafka_settings, database_settings))[0].replayed

    on_request = [m for m in probe.on("request") if m["body"]["message"] == "trigger the bug"]
    assert len(on_request) == 2, "the original and exactly one replay"
    assert on_request[1]["headers"]["dlq_replayed_from"] == letter.ref
    assert "dlq_reason" not in on_request[1]["headers"]
    assert handled.count("trigger the bug") == 1
