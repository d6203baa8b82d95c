"""A line the retriever writes while handling a request names the saga and hides personal data.

The service is built through its composition root on FastStream's TestKafkaBroker, with JSON
log lines; the embedder fails the way a remote one does, with an error that quotes its input,
so the question's e-mail address and card number reach a log line that must not show them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from retriever.app import build_service
from retriever.documents import discover, load_many
from retriever.embedding import EmbeddingUnavailable, HashingEmbedder, Vectors
from retriever.engine import build_engine
from retriever.index.memory import MemoryChunkIndex
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.contracts import ChatRequested, GuardrailVerdict, Topic
from shared.guardrails import redact
from shared.messaging import EventBus
from shared.principal import Principal
from shared.service import Service
from shared.settings import KafkaSettings, TelemetrySettings
from shared.telemetry import setup
from shared.testing import LogLines

pytestmark = pytest.mark.unit

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
CUSTOMER = Principal(user_id="casey", tenant_id="northwind", roles=("customer",))
IDS = ("service", "request_id", "tenant_id", "trace_id", "span_id")


class QuotingOutage(HashingEmbedder):
    """Indexes like the hashing embedder; every query fails with an error quoting it."""

    def embed_query(self, text: str) -> Vectors:
        raise EmbeddingUnavailable(f"embedding service answered 503 for {text!r}")


class AllowAll:
    def screen(self, text: str) -> GuardrailVerdict:
        return GuardrailVerdict(stage="input", blocked=False, score=0.0, detector="allow-test")


class Harness:
    def __init__(self, service: Service, spans: InMemorySpanExporter) -> None:
        self.service = service
        self.spans = spans
        self.audit: list[dict[str, Any]] = []
        self.lines = LogLines()

    async def ask(self, message: str, principal: Principal) -> ChatRequested:
        event = ChatRequested(
            request_id=uuid.uuid4(),
            tenant_id=principal.tenant_id,
            principal=principal,
            message=message,
        )
        bus = EventBus(self.service.broker, self.service.settings.kafka, service="test")
        await bus.publish(Topic.REQUEST, event)
        return event


@pytest.fixture
async def harness(knowledge_base: Path) -> AsyncIterator[Harness]:
    settings = RetrieverSettings(
        kafka=KafkaSettings(),
        embedding=EmbeddingSettings(cache=False),
        telemetry=TelemetrySettings(log_format="json"),
    )
    spans = InMemorySpanExporter()
    telemetry = setup(settings.telemetry, "retriever", redact=redact, span_exporter=spans)
    engine = build_engine(settings, embedder=QuotingOutage(), index=MemoryChunkIndex())
    engine.ingestor.ingest(load_many(discover(knowledge_base), max_bytes=10**7))
    service = build_service(settings, engine=engine, screen=AllowAll(), telemetry=telemetry)
    h = Harness(service, spans)

    @service.broker.subscriber(settings.kafka.topic("audit"), group_id="probe-audit")
    async def record(msg: KafkaMessage) -> None:
        h.audit.append(json.loads(msg.body))

    async with TestKafkaBroker(service.broker), service.running():
        yield h


async def test_a_line_written_while_handling_a_request_names_it_and_is_redacted(
    harness: Harness,
) -> None:
    event = await harness.ask(
        f"I was charged twice on {CARD}; how do I get a refund? Reply to {EMAIL}", CUSTOMER
    )

    [skipped] = harness.lines.saying("dense stage skipped")
    [handled] = harness.lines.saying("handled ChatRequested from request")
    assert EMAIL not in skipped["message"] and "4111" not in skipped["message"]
    assert "<EMAIL_ADDRESS>" in skipped["message"] and "<CREDIT_CARD>" in skipped["message"]
    assert EMAIL not in json.dumps(harness.lines.all()), "nowhere in any line"

    [completed] = [
        a
        for a in harness.audit
        if a["action"] == "retrieval.completed" and a["request_id"] == str(event.request_id)
    ]
    for line in (skipped, handled):
        assert line["service"] == "retriever"
        assert line["request_id"] == str(event.request_id)
        assert line["tenant_id"] == "northwind"
        assert line["trace_id"] == completed["trace_id"] is not None

    harness.service.telemetry.tracer_provider.force_flush()
    by_id = {format(s.context.span_id, "016x"): s for s in harness.spans.get_finished_spans()}
    assert by_id[handled["span_id"]].name.endswith("process"), "the message's own span"
    # The retrieval span comes from the process-wide provider (the first one a test process
    # installed), so it is checked by its id only: a span inside the message's, not that one.
    assert len(skipped["span_id"]) == 16 and skipped["span_id"] != handled["span_id"]


async def test_lines_outside_any_request_carry_the_service_and_no_ids(harness: Harness) -> None:
    [started] = [line for line in harness.lines.all() if line["message"] == "retriever started"]
    assert started["service"] == "retriever"
    assert [started[k] for k in IDS[1:]] == [None, None, None, None]
