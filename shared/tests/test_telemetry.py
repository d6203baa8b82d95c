"""Repeated log records are let through at a bounded rate."""

from __future__ import annotations

import logging

import pytest

from shared.settings import TelemetrySettings
from shared.telemetry import RateLimitFilter, setup

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(
    msg: object, *args: object, name: str = "aiokafka", level: int = logging.ERROR
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args or None, None)


def _passed(f: RateLimitFilter, record: logging.LogRecord) -> str | None:
    return record.getMessage() if f.filter(record) else None


def test_first_passes_repeats_are_dropped_then_one_passes_with_the_count() -> None:
    clock = Clock()
    f = RateLimitFilter(5.0, clock=clock)
    template = "Unable connect to node with id %s: %s"
    assert (
        _passed(f, _record(template, 1, "refused")) == "Unable connect to node with id 1: refused"
    )
    for attempt in range(300):  # a reconnect loop, arguments changing
        clock.now += 0.01
        assert _passed(f, _record(template, attempt, "refused")) is None
    clock.now += 2.5  # past 5 s after the first one
    assert (
        _passed(f, _record(template, 7, "refused"))
        == "Unable connect to node with id 7: refused (suppressed 300 similar)"
    )
    clock.now += 1.0
    assert _passed(f, _record(template, 8, "refused")) is None, "a new interval has begun"
    clock.now += 5.0
    assert _passed(f, _record(template, 9, "refused")) == (
        "Unable connect to node with id 9: refused (suppressed 1 similar)"
    )
    clock.now += 5.0
    assert _passed(f, _record(template, 10, "x")) == "Unable connect to node with id 10: x", (
        "nothing was dropped in between, so no suffix"
    )


def test_logger_level_and_template_each_make_a_record_different() -> None:
    clock = Clock()
    f = RateLimitFilter(5.0, clock=clock)
    assert f.filter(_record("connection lost: %s", "a"))
    assert f.filter(_record("connection lost: %s", "a", name="faststream"))
    assert f.filter(_record("connection lost: %s", "a", level=logging.WARNING))
    assert f.filter(_record("metadata stale: %s", "a"))
    assert not f.filter(_record("connection lost: %s", "b"))
    assert not f.filter(_record("metadata stale: %s", "b"))


def test_messages_without_a_template_are_keyed_by_type_and_the_table_is_bounded() -> None:
    clock = Clock()
    f = RateLimitFilter(5.0, max_keys=3, clock=clock)
    assert f.filter(_record(ValueError("one")))
    assert not f.filter(_record(ValueError("two")))
    for n in range(10):  # f-string messages: every one is a new key
        assert f.filter(_record(f"request {n} failed"))
    assert len(f._seen) == 3
    assert f.filter(_record(ValueError("three"))), "forgotten keys start afresh"


def test_setup_installs_the_filter_before_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    setup(TelemetrySettings(), "svc", redact=lambda s: s.replace("secret", "***"))
    [handler] = logging.getLogger().handlers
    assert isinstance(handler.filters[0], RateLimitFilter)
    log = logging.getLogger("shared.tests.flood")
    for n in range(50):
        log.warning("broker unreachable (secret %s)", n)
    lines = [line for line in capsys.readouterr().err.splitlines() if "broker unreachable" in line]
    assert lines == [lines[0]]
    assert "secret" not in lines[0] and "(*** 0)" in lines[0]


def test_spans_leave_redacted_attributes_events_and_status_and_the_original_is_untouched() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from shared.guardrails import redact
    from shared.telemetry import _RedactingExporter

    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_RedactingExporter(sink, redact)))
    held = InMemorySpanExporter()  # what the process itself keeps, unredacted
    provider.add_span_processor(SimpleSpanProcessor(held))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "chat.request", attributes={"q": "mail casey@example.com"}
    ) as span:
        span.set_attribute("chunks", 3)
        span.add_event("exception", {"exception.message": "bad card 4111 1111 1111 1111"})
        span.set_status(Status(StatusCode.ERROR, "failed for casey@example.com"))
    [out] = sink.get_finished_spans()
    text = repr((out.attributes, [e.attributes for e in out.events], out.status.description))
    assert "casey@example.com" not in text and "4111 1111 1111 1111" not in text
    assert out.attributes is not None and out.attributes["chunks"] == 3
    assert out.name == "chat.request" and out.context == span.get_span_context()
    assert [e.name for e in out.events] == ["exception"]
    assert out.status.status_code is StatusCode.ERROR
    [kept] = held.get_finished_spans()
    assert kept.attributes is not None and "casey@example.com" in str(kept.attributes["q"])
