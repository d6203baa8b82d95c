"""Log lines name the service, request, tenant, trace and span they were written for.

The HTTP path goes through ``Service.http_app`` (its middleware and the bearer-token
dependency) with an ASGI client; the message path through ``EventBus.subscribe`` on
FastStream's TestKafkaBroker. Services' own tests check the same through their composition
roots (``services/retriever/tests/test_log_lines.py``, the gateway's ``test_api.py``).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from faststream.kafka import TestKafkaBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import log_context
from shared.auth import TokenService
from shared.auth.http import principal_dependency
from shared.contracts import ChatRequested, Topic
from shared.guardrails import redact
from shared.principal import Principal
from shared.service import Service
from shared.settings import AuthSettings, ServiceSettings, TelemetrySettings
from shared.telemetry import RateLimitFilter, setup
from shared.testing import LogLines

pytestmark = pytest.mark.unit

log = logging.getLogger("shared.tests.log_context")

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def test_a_line_outside_any_request_carries_the_service_and_null_ids() -> None:
    setup(TelemetrySettings(log_format="json"), "svc", redact=redact)
    lines = LogLines()
    log.warning("starting up")
    [line] = lines.saying("starting up")
    assert line["service"] == "svc" and line["level"] == "WARNING"
    assert line["logger"] == "shared.tests.log_context"
    assert {k: line[k] for k in ("request_id", "tenant_id", "trace_id", "span_id")} == {
        "request_id": None,
        "tenant_id": None,
        "trace_id": None,
        "span_id": None,
    }


def test_bind_outside_a_scope_does_not_stick_to_later_lines() -> None:
    log_context.bind(request_id=uuid.uuid4(), tenant_id="harborpine")
    assert log_context.current() is None


def test_text_lines_append_the_ids_that_are_set() -> None:
    setup(TelemetrySettings(log_format="text"), "svc", redact=redact)
    [handler] = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    handler.setStream(buffer := io.StringIO())
    request_id = uuid.uuid4()
    log.warning("before")
    with log_context.scope(service="gateway", request_id=request_id, tenant_id="harborpine"):
        log.warning("inside, mail %s", EMAIL)
    before, inside = [line for line in buffer.getvalue().splitlines() if "log_context:" in line]
    assert before.endswith("WARNING svc shared.tests.log_context: before")
    assert " WARNING gateway shared.tests.log_context: inside, mail <EMAIL_ADDRESS>" in inside
    assert inside.endswith(f"[request_id={request_id} tenant_id=harborpine]")


def test_the_same_line_for_many_sagas_is_no_flood_but_repeats_within_one_are() -> None:
    f = RateLimitFilter(5.0)

    def record() -> logging.LogRecord:
        return logging.LogRecord("bus", logging.INFO, __file__, 1, "handled %s", ("x",), None)

    first, second = uuid.uuid4(), uuid.uuid4()
    with log_context.scope(request_id=first):
        assert f.filter(record())
        assert not f.filter(record()), "a retry loop within one saga is still bounded"
    with log_context.scope(request_id=second):
        assert f.filter(record())


class Harness:
    def __init__(
        self,
        service: Service,
        client: httpx.AsyncClient,
        spans: InMemorySpanExporter,
        app: FastAPI,
    ) -> None:
        self.app = app
        self.service = service
        self.client = client
        self.spans = spans
        self.lines = LogLines()
        self.tokens = TokenService(AuthSettings())

    def bearer(self, tenant: str) -> dict[str, str]:
        token = self.tokens.mint(
            user_id="casey", tenant_id=tenant, roles=("customer",), level="none"
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    settings = ServiceSettings(telemetry=TelemetrySettings(log_format="json"))
    spans = InMemorySpanExporter()
    service = Service(
        "svc",
        settings,
        telemetry=setup(settings.telemetry, "svc", redact=redact, span_exporter=spans),
    )
    tracer = service.telemetry.tracer("test")
    router = APIRouter()
    authenticate = principal_dependency(TokenService(settings.auth))

    @router.get("/hello")
    async def hello(caller: Principal = Depends(authenticate)) -> dict[str, str]:  # noqa: B008
        with tracer.start_as_current_span("hello") as span:
            log.info("hello from %s, mail %s, card %s", caller.user_id, EMAIL, CARD)
            ctx = span.get_span_context()
            return {
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
            }

    @router.get("/boom")
    async def boom(caller: Principal = Depends(authenticate)) -> None:  # noqa: B008
        raise RuntimeError(f"cannot reach {EMAIL}")

    async def on_request(event: ChatRequested) -> None:
        log.info("asked: %s", event.message)

    service.include_router(router)
    service.bus.subscribe(Topic.REQUEST, on_request, group_id="svc")
    app = service.http_app()
    async with (
        TestKafkaBroker(service.broker),
        service.running(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        yield Harness(service, client, spans, app)


async def test_a_line_inside_an_http_request_names_it_and_is_redacted(
    harness: Harness,
) -> None:
    response = await harness.client.get("/hello", headers=harness.bearer("harborpine"))
    assert response.status_code == 200, response.text
    [line] = harness.lines.saying("hello from")

    assert line["message"] == "hello from casey, mail <EMAIL_ADDRESS>, card <CREDIT_CARD>"
    assert line["service"] == "svc"
    assert line["tenant_id"] == "harborpine", "bound when the bearer token was verified"
    assert line["request_id"] == response.headers["x-request-id"]
    assert uuid.UUID(line["request_id"]).version == 4, "a fresh id when the caller sent none"
    assert (line["trace_id"], line["span_id"]) == (
        response.json()["trace_id"],
        response.json()["span_id"],
    )


async def test_the_callers_request_id_is_kept_when_it_is_a_uuid_and_replaced_otherwise(
    harness: Harness,
) -> None:
    given = uuid.uuid4()
    kept = await harness.client.get(
        "/hello", headers={**harness.bearer("harborpine"), "X-Request-ID": given.hex}
    )
    assert kept.headers["x-request-id"] == str(given), "nginx's $request_id has no dashes"
    forged = await harness.client.get(
        "/hello",
        headers={**harness.bearer("harborpine"), "X-Request-ID": "x\nforged line"},
    )
    assert uuid.UUID(forged.headers["x-request-id"]) != given
    first, second = harness.lines.saying("hello from")
    assert first["request_id"] == str(given)
    assert second["request_id"] == forged.headers["x-request-id"]


async def test_the_500_line_names_the_request_and_the_answer_carries_its_id(
    harness: Harness,
) -> None:
    # Starlette's 500 handler runs outside every other middleware, after the scope was left.
    transport = httpx.ASGITransport(app=harness.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get("/boom", headers=harness.bearer("harborpine"))
    assert response.status_code == 500
    [line] = harness.lines.saying("unhandled error")
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["tenant_id"] == "harborpine" and line["service"] == "svc"
    assert "RuntimeError: cannot reach <EMAIL_ADDRESS>" in line["exc_info"]
    assert EMAIL not in json.dumps(line)


async def test_a_line_inside_a_handled_message_names_the_saga_and_is_redacted(
    harness: Harness,
) -> None:
    tracer = harness.service.telemetry.tracer("test")
    event = ChatRequested(
        request_id=uuid.uuid4(),
        tenant_id="northwind",
        principal=Principal(user_id="casey", tenant_id="northwind", roles=("customer",)),
        message=f"refund to card {CARD}, write to {EMAIL}",
    )
    with tracer.start_as_current_span("upstream") as upstream:
        await harness.service.bus.publish(Topic.REQUEST, event)
    [asked] = harness.lines.saying("asked:")
    [handled] = harness.lines.saying("handled ChatRequested from request")

    assert asked["message"] == "asked: refund to card <CREDIT_CARD>, write to <EMAIL_ADDRESS>"
    for line in (asked, handled):
        assert line["service"] == "svc"
        assert line["request_id"] == str(event.request_id)
        assert line["tenant_id"] == "northwind"
        assert line["trace_id"] == format(upstream.get_span_context().trace_id, "032x")
    harness.service.telemetry.tracer_provider.force_flush()
    [consumer] = [
        s
        for s in harness.spans.get_finished_spans()
        if s.context.trace_id == upstream.get_span_context().trace_id
        and s.kind is SpanKind.CONSUMER
    ]
    assert asked["span_id"] == handled["span_id"] == format(consumer.context.span_id, "016x")
