"""Consumer lag against the real broker: messages waiting behind a busy handler show as lag on
the service's /metrics, and the lag goes back to 0 once they are handled and committed."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from faststream.kafka import KafkaBroker

from shared.contracts import ChatRequested, Topic
from shared.messaging import EventBus
from shared.principal import Principal
from shared.service import Service
from shared.settings import KafkaSettings, ServiceSettings
from shared.testing import eventually, sample_value

pytestmark = pytest.mark.integration


async def test_messages_behind_a_busy_handler_are_lag_until_committed(
    kafka_settings: KafkaSettings,
) -> None:
    service = Service("lagged", ServiceSettings(kafka=kafka_settings))
    release = asyncio.Event()
    handled: list[uuid.UUID] = []

    async def slow(event: ChatRequested) -> None:
        await release.wait()
        handled.append(event.event_id)

    service.bus.subscribe(Topic.REQUEST, slow, group_id="lag-test")
    app = service.http_app()
    request_id = uuid.uuid4()  # one key: one partition
    principal = Principal(user_id="u", tenant_id="t", roles=("customer",))
    events = [
        ChatRequested(request_id=request_id, tenant_id="t", principal=principal, message=f"q{i}")
        for i in range(3)
    ]
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with service.running(), publisher:
        sender = EventBus(publisher, kafka_settings, service="test")
        for event in events:
            await sender.publish(Topic.REQUEST, event)

        async def lag() -> int | None:
            figures = await service.consumer_lag.refresh()
            return figures.get(("request", "lag-test"))

        # The first message is in the handler, none committed: all three are behind.
        assert await eventually(lambda: _equals(lag, 3), timeout=30)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://svc"
        ) as client:
            text = (await client.get("/metrics")).text
            assert (
                sample_value(text, "platform_kafka_consumer_lag", topic="request", group="lag-test")
                == 3
            )
            release.set()
            await eventually(lambda: _equals(lag, 0), timeout=30)
            text = (await client.get("/metrics")).text
            assert (
                sample_value(text, "platform_kafka_consumer_lag", topic="request", group="lag-test")
                == 0
            )
    assert len(handled) == 3


async def _equals(probe: object, expected: int) -> bool:
    value = await probe()  # type: ignore[operator]
    return bool(value == expected)
