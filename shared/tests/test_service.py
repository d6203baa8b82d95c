"""``/healthz`` answers from a cached view: fast, and still truthful when a dependency is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from shared.service import Service
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


class Dependency:
    def __init__(self) -> None:
        self.up = True
        self.hang = False
        self.calls = 0

    async def check(self) -> bool:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(30)
        if not self.up:
            raise ConnectionError("refused")
        return True


@pytest.fixture
async def running() -> AsyncIterator[tuple[Service, Dependency, httpx.AsyncClient]]:
    service = Service("svc", ServiceSettings(), health_interval_s=0.1, health_check_timeout_s=0.2)
    dependency = Dependency()
    service.add_health_check("store", dependency.check)
    app = service.http_app()
    async with (
        TestKafkaBroker(service.broker),
        service.running(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client,
    ):
        yield service, dependency, client


async def _status_becomes(client: httpx.AsyncClient, status: int) -> httpx.Response:
    deadline = time.monotonic() + 5
    while True:
        response = await client.get("/healthz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


async def test_healthz_reads_the_cached_view_without_running_checks(
    running: tuple[Service, Dependency, httpx.AsyncClient],
) -> None:
    _, dependency, client = running
    first = await client.get("/healthz")
    assert first.status_code == 200
    assert first.json()["checks"] == {"broker": True, "store": True}
    assert first.json()["age_s"] < 1
    calls = dependency.calls
    for _ in range(20):
        await client.get("/healthz")
    assert dependency.calls - calls <= 2, "probes do not run checks; the refresher does"


async def test_a_hanging_dependency_is_reported_down_and_healthz_stays_fast(
    running: tuple[Service, Dependency, httpx.AsyncClient],
) -> None:
    _, dependency, client = running
    dependency.hang = True
    down = await _status_becomes(client, 503)
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["checks"]["store"] is False
    started = time.monotonic()
    for _ in range(10):
        assert (await client.get("/healthz")).status_code == 503
    assert (time.monotonic() - started) / 10 < 0.1

    dependency.hang = False
    assert (await _status_becomes(client, 200)).status_code == 200, "recovers by itself"
    dependency.up = False
    assert (await _status_becomes(client, 503)).json()["checks"]["store"] is False


async def test_health_is_unavailable_outside_the_running_service() -> None:
    service = Service("svc", ServiceSettings(), health_interval_s=0.1)
    app = service.http_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        before = await client.get("/healthz")
        assert before.status_code == 503
        assert before.json()["age_s"] is None
        async with TestKafkaBroker(service.broker), service.running():
            assert (await client.get("/healthz")).status_code == 200
        after = await client.get("/healthz")
        assert after.status_code == 503
    assert service._health_task is None, "the refresher stops with the service"
