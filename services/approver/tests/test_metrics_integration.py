"""The approver's /metrics on the real broker and PostgreSQL: pending approvals and the age of
the oldest, decisions and their latency, executions and write-tool timings, HTTP metrics,
consumer lag of the intake; and the executor worker's own /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker

from approver.app import build_service
from approver.metrics import ApproverMetrics
from approver.postgres.sweeper import Sweeper
from approver.settings import ApproverSettings, ExecutorSettings
from approver.testing.failpoints import Failpoints
from approver.worker import ops_app
from devstack.seed import seed_demo_data
from shared.contracts import Topic, utcnow
from shared.db import open_pool
from shared.messaging import EventBus
from shared.settings import DatabaseSettings, KafkaSettings, SagaSettings
from shared.telemetry import setup
from shared.testing import eventually, sample_value, scrape
from shared.tools import default_registry

from .conftest import DraftFactory

pytestmark = pytest.mark.integration


@pytest.fixture
async def running(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> AsyncIterator[tuple[httpx.AsyncClient, EventBus]]:
    seed_demo_data(database_settings.dsn)
    settings = ApproverSettings(
        kafka=kafka_settings,
        database=database_settings,
        saga=SagaSettings(approval_expiry_s=600),
        sweep_interval_s=0.5,
    )
    service = build_service(settings)
    app = service.http_app()
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with service.running(), publisher:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approver"
        ) as client:
            yield client, EventBus(publisher, kafka_settings, service="test")


async def test_every_approver_metric_is_on_metrics_with_its_labels(
    running: tuple[httpx.AsyncClient, EventBus],
    make_draft: DraftFactory,
    bearer: Callable[..., dict[str, str]],
) -> None:
    client, bus = running
    decided = make_draft("create_ticket", {"subject": "broken stove", "description": "it broke"})
    waiting = make_draft("create_ticket", {"subject": "bent pot", "description": "it bent"})
    await bus.publish(Topic.DRAFT, decided)
    await bus.publish(Topic.DRAFT, waiting)
    kim = bearer("kim", "L2")

    async def stored() -> bool:
        response = await client.get(f"/v1/approvals/{decided.event_id}", headers=kim)
        return response.status_code == 200

    await eventually(stored)
    approved = await client.post(f"/v1/approvals/{decided.event_id}/approve", headers=kim)
    assert approved.status_code == 200, approved.text

    async def complete() -> str | None:
        text = (await client.get("/metrics")).text
        ready = (
            sample_value(text, "approver_executions_total", result="executed") == 1
            and sample_value(text, "approver_approvals_pending", action="create_ticket") >= 1
            and sample_value(text, "platform_kafka_consumer_lag", topic="draft", group="approver")
            == 0
            and scrape(text).get("platform_kafka_consumer_lag")
        )
        return text if ready else None

    # The gauges refresh every 5 s.
    text = await eventually(complete, timeout=30)
    samples = scrape(text)
    assert sample_value(text, "approver_decisions_total", outcome="approved") == 1
    assert sample_value(text, "approver_decision_latency_seconds_count") == 1
    assert sample_value(text, "approver_approvals_oldest_pending_age_seconds") > 0
    assert {s["action"] for s in samples["approver_approvals_pending"]} >= {
        "create_ticket",
        "issue_refund",
    }, "every write action reports, 0 when none waits"
    assert (
        sample_value(
            text, "platform_tool_duration_seconds_count", tool="create_ticket", outcome="ok"
        )
        == 1
    )
    routes = {
        (s["http_route"], s["http_request_method"], s["http_response_status_code"])
        for s in samples["http_server_request_duration_seconds_count"]
    }
    assert ("/v1/approvals/{draft_id}/approve", "POST", "200") in routes
    assert str(decided.event_id) not in text and "kim" not in text


async def test_the_sweeper_counts_each_expiry_once(
    database_settings: DatabaseSettings,
    kafka_settings: KafkaSettings,
    make_draft: DraftFactory,
) -> None:
    """Expiries are decisions too, with their latency; a second sweep finds nothing to count."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from approver.domain import ApprovalPolicy
    from approver.postgres.store import PostgresApprovalStore
    from approver.service_layer.intake import IntakePorts, handle_draft

    settings = ApproverSettings(kafka=kafka_settings, database=database_settings)
    pool = await open_pool(database_settings, name="sweeper-metrics")
    reader = InMemoryMetricReader()
    metrics = ApproverMetrics(
        MeterProvider(metric_readers=[reader]).get_meter("t"), default_registry()
    )
    try:
        store = PostgresApprovalStore(pool, kafka_settings, Failpoints(settings.failpoints))
        draft = make_draft("create_ticket", {"subject": "s", "description": "d"})
        ports = IntakePorts(
            store,
            ApprovalPolicy(settings.policy),
            default_registry(),
            timedelta(seconds=1),
            utcnow,
            answer_deadline=timedelta(seconds=60),
        )
        await handle_draft(draft, ports)
        sweeper = Sweeper(
            pool,
            kafka_settings,
            Failpoints(settings.failpoints),
            interval_s=1,
            outbox_retention=timedelta(hours=1),
            metrics=metrics,
        )
        later = utcnow() + timedelta(days=3650)  # past every pending approval's deadline
        expired = await sweeper.expire_due(later)
        assert expired >= 1
        assert await sweeper.expire_due(later) == 0
    finally:
        await pool.close()
    points: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = list(metric.data.data_points)
    (decisions,) = points["approver.decisions"]
    assert dict(decisions.attributes) == {"outcome": "expired"}
    assert decisions.value == expired
    (latency,) = points["approver.decision.latency"]
    assert latency.count == expired and latency.sum > 0


async def test_the_executor_worker_serves_metrics_and_healthz(
    database_settings: DatabaseSettings,
) -> None:
    settings = ApproverSettings(database=database_settings, executor=ExecutorSettings())
    telemetry = setup(settings.telemetry, "approver-worker")
    pool = await open_pool(database_settings, name="worker-metrics")
    metrics = ApproverMetrics(telemetry.meter("approver"), default_registry())
    metrics.executed(succeeded=False)
    metrics.tools.record("issue_refund", "failed", 0.01)
    loops = {"running": True}
    app = ops_app(telemetry, pool, lambda: loops["running"])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://worker"
        ) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
            text = (await client.get("/metrics")).text
            assert sample_value(text, "approver_executions_total", result="failed") == 1
            assert (
                sample_value(
                    text,
                    "platform_tool_duration_seconds_count",
                    tool="issue_refund",
                    outcome="failed",
                )
                == 1
            )
            loops["running"] = False
            stopped = await client.get("/healthz")
            assert stopped.status_code == 503
            assert stopped.json()["checks"] == {"database": True, "loops": False}
    finally:
        await pool.close()
