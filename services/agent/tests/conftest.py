"""Fixtures of the agent's tests: the agent built through its composition root with fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker

from agent.app import AgentService, build_agent
from agent.ratelimit import InMemoryRateLimiter
from agent.settings import AgentSettings, RateLimitSettings
from shared.contracts import ContextRetrieved, DraftProduced, Topic
from shared.settings import KafkaSettings

from .helpers import fake_connect, fake_registry


@dataclass
class Harness:
    agent: AgentService
    broker: Any
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def ask(self, event: ContextRetrieved) -> DraftProduced:
        await self.broker.publish(
            event.to_bytes(),
            topic=Topic.RETRIEVED.value,
            key=str(event.request_id).encode(),
            headers={"schema": "ContextRetrieved", "request_id": str(event.request_id)},
        )
        drafts = [
            b
            for t, b in self.published
            if t == "draft" and b["request_id"] == str(event.request_id)
        ]
        assert len(drafts) == 1, self.published
        return DraftProduced.model_validate(drafts[0])

    def audit(self, request_id: Any) -> list[dict[str, Any]]:
        return [b for t, b in self.published if t == "audit" and b["request_id"] == str(request_id)]

    def actions(self, request_id: Any) -> list[str]:
        return [a["action"] for a in self.audit(request_id)]


def unit_settings(**overrides: Any) -> AgentSettings:
    return AgentSettings(kafka=KafkaSettings(), **overrides)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    agent = build_agent(
        unit_settings(rate_limit=RateLimitSettings(propose_burst=3, propose_per_minute=1)),
        registry=fake_registry(),
        limiter=InMemoryRateLimiter(),
        connect=fake_connect,
    )
    published: list[tuple[str, dict[str, Any]]] = []

    def recorder(topic: str) -> Any:
        async def record(msg: KafkaMessage) -> None:
            published.append((topic, json.loads(msg.body)))

        return record

    for topic in ("draft", "audit"):
        agent.service.broker.subscriber(topic, group_id=f"probe-{topic}")(recorder(topic))
    async with TestKafkaBroker(agent.service.broker) as broker:
        yield Harness(agent, broker, published)
