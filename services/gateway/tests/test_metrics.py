"""The gateway's /metrics: saga accepted / settled / duration, HTTP server metrics, dead letters.

TestKafkaBroker in memory, PostgreSQL real: whether a change settled a request is decided by
the row's status before and after it, under the row's lock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from gateway.app import build_service
from gateway.metrics import SagaMetrics
from gateway.repository import RequestRepository
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.contracts import (
    AuditRecorded,
    ChatRequested,
    Decision,
    DraftKind,
    Topic,
)
from shared.db import open_pool
from shared.principal import Principal
from shared.service import Service
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings, SagaSettings
from shared.testing import eventually, sample_value, scrape

from .builders import decided

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(
    database_settings: DatabaseSettings,
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    settings = GatewaySettings(
        database=database_settings,
        kafka=KafkaSettings(),
        saga=SagaSettings(sweep_interval_s=1e6),  # the shared database: sweep nothing here
    )
    service = build_service(settings)
    app = service.http_app()
    async with TestKafkaBroker(service.broker), service.running():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            yield service, client


def _auth() -> dict[str, str]:
    token = TokenService(AuthSettings()).mint(
        user_id="casey", tenant_id="harborpine", roles=("customer",), level="none"
    )
    return {"Authorization": f"Bearer {token}"}


async def _metrics(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_a_settled_request_is_counted_once_with_its_duration_and_http_metrics(
    gateway: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = gateway
    posted = await client.post("/v1/chat", json={"message": "Do you price match?"}, headers=_auth())
    assert posted.status_code == 202, posted.text
    request_id = posted.json()["request_id"]
    chat = ChatRequested(
        request_id=uuid.UUID(request_id),
        tenant_id="harborpine",
        principal=Principal(user_id="casey", tenant_id="harborpine", roles=("customer",)),
        message="Do you price match?",
    )
    answer = decided(chat)
    await service.bus.publish(Topic.APPROVED, answer)
    await service.bus.publish(Topic.APPROVED, answer)  # a redelivery settles nothing twice

    async def answered() -> bool:
        got = await client.get(f"/v1/requests/{request_id}", headers=_auth())
        return got.json()["status"] == "answered"

    await eventually(answered, timeout=5)
    text = await _metrics(client)
    assert sample_value(text, "platform_saga_accepted_total") == 1
    assert sample_value(text, "platform_saga_requests_total", outcome="answered") == 1
    assert sample_value(text, "platform_saga_duration_seconds_count", outcome="answered") == 1
    buckets = scrape(text)["platform_saga_duration_seconds_bucket"]
    assert {float(b["le"]) for b in buckets} >= {0.05, 30.0, 120.0, float("inf")}

    samples = scrape(text)
    http = samples["http_server_request_duration_seconds_count"]
    routes = {
        (s["http_route"], s["http_request_method"], s["http_response_status_code"]) for s in http
    }
    assert ("/v1/chat", "POST", "202") in routes
    assert ("/v1/requests/{request_id}", "GET", "200") in routes, "the template, not the id"
    assert not any(request_id in str(s) for s in http), "no request id in any label"
    assert not any(s["http_route"] in ("/metrics", "/healthz") for s in http)


async def test_a_dead_lettered_message_is_counted_by_topic_and_reason(
    gateway: tuple[Service, httpx.AsyncClient],
) -> None:
    service, client = gateway
    await service.broker.publish(b"{not json", topic=service.settings.kafka.topic(Topic.APPROVED))
    await service.broker.publish(b"[1]", topic=service.settings.kafka.topic(Topic.APPROVED))

    async def counted() -> bool:
        text = await _metrics(client)
        return (
            sample_value(
                text, "platform_dead_letters_total", topic="approved", reason="malformed_json"
            )
            == 2
        )

    await eventually(counted, timeout=5)


async def test_two_replicas_settling_the_same_request_observe_it_once(
    database_settings: DatabaseSettings, chat: ChatRequested
) -> None:
    """The decision consumer of one replica and the audit projection of another race to move
    the same row; only the transaction that moved it into a settled status observes."""
    pool = await open_pool(database_settings, name="metrics-test")
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    replicas = [
        RequestRepository(pool, SagaMetrics(MeterProvider(metric_readers=[r]).get_meter("g")))
        for r in readers
    ]
    try:
        pending = AuditRecorded(
            request_id=chat.request_id,
            tenant_id=chat.tenant_id,
            service="approver",
            action="approval.pending",
            actor="u-1",
        )
        accepted = AuditRecorded(
            request_id=chat.request_id,
            tenant_id=chat.tenant_id,
            service="gateway",
            action="request.accepted",
            actor="u-1",
        )
        # An upstream request: its first step creates the row (accepted once).
        await replicas[0].apply_audit([accepted])
        await replicas[1].apply_audit([accepted])
        await asyncio.gather(
            replicas[0].apply_audit([pending]),
            replicas[1].apply_audit([pending]),
            replicas[0].apply_decision(decided(chat, DraftKind.ACTION, Decision.REJECTED), None),
        )
        # Later moves of a settled row are not a second settlement.
        await replicas[1].apply_decision(
            decided(chat, DraftKind.ACTION, Decision.APPROVED, executed=True), None
        )
    finally:
        await pool.close()

    def totals(name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for reader in readers:
            data = reader.get_metrics_data()
            for rm in data.resource_metrics if data else ():
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name != name:
                            continue
                        for point in metric.data.data_points:
                            attrs: dict[str, Any] = dict(point.attributes or {})
                            key = str(attrs.get("outcome", ""))
                            value = getattr(point, "value", None)
                            if value is None:
                                value = point.count  # type: ignore[union-attr]
                            out[key] = out.get(key, 0) + value
        return out

    settled = totals("platform.saga.requests")
    assert sum(settled.values()) == 1, settled
    assert set(settled) <= {"pending_approval", "refused"}
    assert totals("platform.saga.duration") == settled
    assert totals("platform.saga.accepted") == {"": 1}
