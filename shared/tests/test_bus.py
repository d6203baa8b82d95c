"""The event bus through FastStream's in-memory TestKafkaBroker."""

from __future__ import annotations

import json
import uuid

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.contracts import AuditRecorded, ChatRequested, Topic
from shared.messaging import EventBus, make_broker
from shared.settings import KafkaSettings, TelemetrySettings
from shared.telemetry import setup

pytestmark = pytest.mark.unit


def _bus(service: str = "svc") -> tuple[KafkaBroker, EventBus]:
    telemetry = setup(TelemetrySettings(), service, span_exporter=InMemorySpanExporter())
    settings = KafkaSettings()
    broker = make_broker(settings, telemetry, client_id=service)
    return broker, EventBus(broker, settings, service=service, max_attempts=2)


async def test_valid_message_reaches_handler(chat: ChatRequested) -> None:
    broker, bus = _bus()
    seen: list[ChatRequested] = []

    async def handle(event: ChatRequested) -> None:
        seen.append(event)

    bus.subscribe(Topic.REQUEST, handle, group_id="g")
    async with TestKafkaBroker(broker):
        await bus.publish(Topic.REQUEST, chat)
    assert seen == [chat]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"request_id": "x"}', "missing_schema_version"),
        (b'{"schema_version": 99, "request_id": "x"}', "unknown_schema_version"),
        (b'{"schema_version": 1, "tenant_id": "t"}', "invalid_fields"),
    ],
)
async def test_bad_message_goes_to_dlq_and_is_audited(body: bytes, reason: str) -> None:
    broker, bus = _bus()
    handled: list[object] = []
    dead: list[tuple[bytes, dict[str, str]]] = []
    audits: list[dict[str, object]] = []

    async def handle(event: ChatRequested) -> None:
        handled.append(event)

    bus.subscribe(Topic.REQUEST, handle, group_id="g")

    @broker.subscriber("request.dlq")
    async def on_dlq(msg: KafkaMessage) -> None:
        dead.append((msg.body, dict(msg.headers)))

    @broker.subscriber("audit")
    async def on_audit(msg: KafkaMessage) -> None:
        audits.append(json.loads(msg.body))

    async with TestKafkaBroker(broker):
        await broker.publish(body, "request", headers={"request_id": str(uuid.uuid4())})
    assert handled == []
    assert len(dead) == 1
    assert dead[0][0] == body, "the original bytes are kept for replay"
    assert dead[0][1]["dlq_reason"] == reason
    assert dead[0][1]["dlq_source_topic"] == "request"
    assert len(audits) == 1
    record = AuditRecorded.model_validate(audits[0])
    assert record.action == "dlq.routed"
    assert record.details["reason"] == reason


async def test_handler_bug_is_dead_lettered_after_retries(chat: ChatRequested) -> None:
    broker, bus = _bus()
    calls = 0
    reasons: list[str] = []

    async def handle(event: ChatRequested) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    bus.subscribe(Topic.REQUEST, handle, group_id="g")

    @broker.subscriber("request.dlq")
    async def on_dlq(msg: KafkaMessage) -> None:
        reasons.append(str(msg.headers["dlq_reason"]))

    async with TestKafkaBroker(broker):
        await bus.publish(Topic.REQUEST, chat)
    assert calls == 2
    assert reasons == ["handler_failed"]


async def test_headers_and_key(chat: ChatRequested) -> None:
    broker, bus = _bus()
    got: list[KafkaMessage] = []

    @broker.subscriber("request")
    async def raw(msg: KafkaMessage) -> None:
        got.append(msg)

    async with TestKafkaBroker(broker):
        await bus.publish(Topic.REQUEST, chat)
    msg = got[0]
    assert msg.headers["request_id"] == str(chat.request_id)
    assert msg.headers["tenant_id"] == "harborpine"
    assert msg.headers["schema"] == "ChatRequested"
    assert msg.raw_message.key == str(chat.request_id).encode()
    assert json.loads(msg.body)["event_id"] == str(chat.event_id)
