"""A broker outage: bounded 503s, a health probe that stays fast, bounded logs, and recovery
without a restart once the broker is back.

The gateway runs against a private Tansu broker that the test stops and starts again on the
same port (memory storage: the restarted broker has lost everything, as the local stack's
broker does after a restart).
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.broker import create_topics, start_tansu
from devstack.ports import free_port
from devstack.pytest_plugin import TopicProbe
from gateway.api import request_id_for
from gateway.app import build_service
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.contracts import (
    ChatRequested,
    Topic,
    derive_event_id,
)
from shared.service import Service
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings, SagaSettings
from shared.telemetry import RateLimitFilter
from shared.testing import eventually

from .builders import decided

pytestmark = pytest.mark.integration


class PrivateBroker:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_tansu(self.port, self.log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class _Counter(logging.Filter):
    """Counts what a handler lets through (added after its other filters)."""

    def __init__(self) -> None:
        super().__init__()
        self.passed: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.passed.append(record)
        return True


@pytest.fixture
async def gateway(
    broker: PrivateBroker, database_settings: DatabaseSettings
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    kafka = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        enable_idempotence=False,
        fetch_max_wait_ms=10,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        partitions=2,
    )
    await create_topics(broker.bootstrap, prefix=kafka.topic_prefix, partitions=2)
    settings = GatewaySettings(
        database=database_settings,
        kafka=kafka,
        group_id=f"gateway-{uuid.uuid4().hex[:8]}",
        # No sweeping: this test is about the broker, and the database is shared by the
        # session (the first round is one interval after start-up).
        saga=SagaSettings(sweep_interval_s=1e6),
    )
    assert settings.publish_timeout_s == 5.0, "the production default is what is tested"
    service = build_service(settings)
    app = service.http_app()
    async with (
        service.running(),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
        ) as client,
    ):
        yield service, client


def _auth(user: str) -> dict[str, str]:
    token = TokenService(AuthSettings()).mint(
        user_id=user, tenant_id="harborpine", roles=("customer",), level="none"
    )
    return {"Authorization": f"Bearer {token}"}


async def test_broker_outage_answers_503_fast_and_everything_resumes_without_restart(
    broker: PrivateBroker, gateway: tuple[Service, httpx.AsyncClient]
) -> None:
    service, client = gateway
    user = f"casey-{uuid.uuid4().hex[:6]}"
    handler = next(h for h in logging.getLogger().handlers if _has_rate_limit(h))
    counter = _Counter()
    handler.addFilter(counter)
    try:
        ok = await client.post("/v1/chat", json={"message": "warm up"}, headers=_auth(user))
        assert ok.status_code == 202, ok.text
        assert (await client.get("/healthz")).status_code == 200

        broker.stop()
        outage_started = time.monotonic()
        key = f"k-{uuid.uuid4()}"
        headers = {**_auth(user), "Idempotency-Key": key}
        body = {"message": "Is the broker down?"}

        started = time.monotonic()
        refused = await client.post("/v1/chat", json=body, headers=headers)
        elapsed = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert elapsed < 6.5, f"a publish waits at most publish_timeout_s, took {elapsed:.1f} s"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"] == "unavailable"
        request_id = request_id_for("harborpine", user, key, 1)

        async def unhealthy() -> httpx.Response | None:
            response = await client.get("/healthz")
            return response if response.status_code == 503 else None

        await eventually(unhealthy, timeout=10)
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            health = await client.get("/healthz")
            latencies.append(time.monotonic() - started)
            assert health.status_code == 503
            assert health.json()["checks"]["broker"] is False
            assert health.json()["checks"]["database"] is True
        assert max(latencies) < 0.1, f"/healthz took up to {max(latencies) * 1000:.0f} ms"

        # Let the outage last a while so reconnect loops have time to log.
        second = await client.post("/v1/chat", json={"message": "still down?"}, headers=_auth(user))
        assert second.status_code == 503
        outage_s = time.monotonic() - outage_started
        kafka_lines = [r for r in counter.passed if r.name.startswith("aiokafka")]
        assert len(kafka_lines) / outage_s < 5, (
            f"{len(kafka_lines)} aiokafka lines in {outage_s:.0f} s reached the log"
        )

        broker.start()
        await create_topics(
            broker.bootstrap, prefix=service.settings.kafka.topic_prefix, partitions=2
        )
        probe = TopicProbe(service.settings.kafka, [t.value for t in Topic])
        await probe.start()
        try:

            async def retried() -> httpx.Response | None:
                response = await client.post("/v1/chat", json=body, headers=headers)
                return response if response.status_code == 202 else None

            accepted = await eventually(retried, timeout=90, every=0.5)
            assert accepted.json()["request_id"] == str(request_id), "the same attempt"
            published = await probe.wait_for(
                lambda m: (
                    m["topic"].endswith("request") and m["body"]["request_id"] == str(request_id)
                ),
                timeout=30,
            )
            # Possibly twice (aiokafka may still deliver the first, timed-out send): always
            # with the one event id consumers deduplicate on.
            assert {m["body"]["event_id"] for m in published} == {
                str(derive_event_id(request_id, "chat.requested"))
            }

            async def healthy() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await eventually(healthy, timeout=60)
            for n in range(5):
                fresh = await client.post(
                    "/v1/chat", json={"message": f"and now? {n}"}, headers=_auth(user)
                )
                assert fresh.status_code == 202, fresh.text

            # The consumers came back too: a decision published now reaches the projection.
            chat = ChatRequested.model_validate(published[0]["body"])
            await service.bus.publish(Topic.APPROVED, decided(chat, answer="Back online."))

            async def answered() -> dict[str, Any] | None:
                view = await client.get(f"/v1/requests/{request_id}", headers=_auth(user))
                return view.json() if view.json()["status"] == "answered" else None

            view = await eventually(answered, timeout=90)
            assert view["result"]["answer"] == "Back online."
        finally:
            await probe.stop()
    finally:
        handler.removeFilter(counter)


def _has_rate_limit(handler: logging.Handler) -> bool:
    return any(isinstance(f, RateLimitFilter) for f in handler.filters)
