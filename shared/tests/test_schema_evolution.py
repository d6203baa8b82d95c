"""Schema evolution through the consumer path, as docs/architecture.md promises.

A breaking change bumps ``schema_version`` and registers an upcaster; a consumer on the new
version still reads what old producers publish (upcast on read), and an additive change needs
no upcaster at all (unknown fields are ignored). Here ``ChatRequested`` v2 renames
``message`` to ``text``: the v1 bytes published by an old gateway reach a v2 handler as v2.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import Field

from shared import contracts
from shared.contracts import Topic, codec, register_upcaster
from shared.messaging import EventBus, make_broker
from shared.principal import Principal
from shared.settings import KafkaSettings, TelemetrySettings
from shared.telemetry import setup

pytestmark = pytest.mark.unit


class ChatRequestedV2(contracts.ChatRequested):
    """Version 2 of the request: ``message`` is now ``text`` (a breaking rename)."""

    SCHEMA_VERSION: ClassVar[int] = 2

    schema_version: int = Field(default=2, ge=1)
    text: str = Field(min_length=1, description="The user's question, as typed.")
    message: str = Field(default="", description="Gone in v2; kept empty.")

    @classmethod
    def schema_name(cls) -> str:
        return "ChatRequested"  # the same event, a newer shape: producers' headers still match


@pytest.fixture
def v2_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process is a consumer built against v2: its topic map and upcasters say so."""
    monkeypatch.setattr(codec, "_UPCASTERS", {})
    monkeypatch.setitem(codec.EVENT_OF_TOPIC, Topic.REQUEST, ChatRequestedV2)


def _v1_bytes(principal: Principal, **extra: Any) -> bytes:
    """What an old producer publishes: the v1 model's own JSON."""
    event = contracts.ChatRequested(
        request_id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        principal=principal,
        message="How many days do I have to return a jacket?",
    )
    return json.dumps({**json.loads(event.to_bytes()), **extra}).encode()


async def _consume(raw: bytes) -> tuple[list[ChatRequestedV2], list[dict[str, str]]]:
    telemetry = setup(TelemetrySettings(), "svc", span_exporter=InMemorySpanExporter())
    settings = KafkaSettings()
    broker = make_broker(settings, telemetry, client_id="svc")
    bus = EventBus(broker, settings, service="svc", max_attempts=1)
    seen: list[ChatRequestedV2] = []
    dead: list[dict[str, str]] = []

    async def handle(event: ChatRequestedV2) -> None:
        seen.append(event)

    bus.subscribe(Topic.REQUEST, handle, group_id="g")

    @broker.subscriber("request.dlq")
    async def on_dlq(msg: KafkaMessage) -> None:
        dead.append({k: str(v) for k, v in msg.headers.items()})

    async with TestKafkaBroker(broker):
        await broker.publish(raw, "request", headers={"schema": "ChatRequested"})
    return seen, dead


@pytest.mark.usefixtures("v2_consumer")
async def test_v1_bytes_are_upcast_to_v2_on_the_consumer_path(principal: Principal) -> None:
    @register_upcaster(ChatRequestedV2, from_version=1)
    def message_becomes_text(data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data["text"] = data.pop("message")
        return data

    seen, dead = await _consume(_v1_bytes(principal))
    assert dead == []
    assert len(seen) == 1
    event = seen[0]
    assert isinstance(event, ChatRequestedV2)
    assert event.schema_version == 2
    assert event.text == "How many days do I have to return a jacket?"
    assert event.principal == principal


@pytest.mark.usefixtures("v2_consumer")
async def test_v1_bytes_without_an_upcaster_are_dead_lettered_not_guessed(
    principal: Principal,
) -> None:
    seen, dead = await _consume(_v1_bytes(principal))
    assert seen == []
    assert [d["dlq_reason"] for d in dead] == ["unknown_schema_version"]
    assert "no upcaster for ChatRequested v1" in dead[0]["dlq_detail"]


async def test_an_additive_change_needs_no_upcaster(principal: Principal) -> None:
    """A newer producer adds a field: today's v1 consumer ignores it and handles the message."""
    telemetry = setup(TelemetrySettings(), "svc", span_exporter=InMemorySpanExporter())
    settings = KafkaSettings()
    broker = make_broker(settings, telemetry, client_id="svc")
    bus = EventBus(broker, settings, service="svc", max_attempts=1)
    seen: list[contracts.ChatRequested] = []

    async def handle(event: contracts.ChatRequested) -> None:
        seen.append(event)

    bus.subscribe(Topic.REQUEST, handle, group_id="g")
    async with TestKafkaBroker(broker):
        await broker.publish(_v1_bytes(principal, locale="de-DE"), "request")
    assert [e.message for e in seen] == ["How many days do I have to return a jacket?"]
