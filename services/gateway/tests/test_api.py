"""The gateway's HTTP API: authentication, validation, publishing, waiting, visibility.

The broker is FastStream's in-memory TestKafkaBroker; PostgreSQL is real (the status
projection and the LISTEN/NOTIFY wake-up are what is under test).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker

from gateway.app import build_service
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.contracts import (
    ChatRequested,
    ContextRetrieved,
    Decision,
    DraftDecided,
    DraftKind,
    DraftProduced,
    RetrievalStats,
    Topic,
)
from shared.service import Service
from shared.settings import (
    DEV_JWT_SECRET,
    AuthSettings,
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
)

pytestmark = pytest.mark.integration


class Harness:
    def __init__(self, service: Service, client: httpx.AsyncClient) -> None:
        self.service = service
        self.client = client
        self.published: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.tokens = TokenService(AuthSettings())

    def auth(
        self,
        user: str = "casey",
        level: str = "none",
        tenant: str = "harborpine",
        roles: tuple[str, ...] = ("customer",),
    ) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens.mint(user_id=user, tenant_id=tenant, roles=roles, level=level)}"
        }

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [body for t, body, _ in self.published if t == topic]


@pytest.fixture
async def gw(database_settings: DatabaseSettings) -> AsyncIterator[Harness]:
    settings = GatewaySettings(
        database=database_settings,
        kafka=KafkaSettings(),
        http=HttpSettings(max_body_bytes=8192),
        max_wait_s=5,
    )
    service = build_service(settings)
    app = service.http_app()
    harness: Harness

    def recorder(topic: str) -> Any:
        async def record(msg: KafkaMessage) -> None:
            harness.published.append((topic, json.loads(msg.body), dict(msg.headers)))

        return record

    for topic in ("request", "audit"):
        service.broker.subscriber(topic, group_id=f"probe-{topic}")(recorder(topic))

    async with TestKafkaBroker(service.broker), service.running():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            harness = Harness(service, client)
            yield harness


async def test_post_publishes_a_keyed_request_and_an_audit_step(gw: Harness) -> None:
    response = await gw.client.post(
        "/v1/chat", json={"message": "  Do you price match?  "}, headers=gw.auth()
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["settled"] is False
    request = ChatRequested.model_validate(gw.on("request")[0])
    assert str(request.request_id) == body["request_id"]
    assert request.message == "Do you price match?"
    assert request.principal.user_id == "casey"
    headers = next(h for t, _, h in gw.published if t == "request")
    assert headers["request_id"] == body["request_id"]
    assert headers["tenant_id"] == "harborpine"
    assert [a["action"] for a in gw.on("audit")] == ["request.accepted"]


async def test_idempotency_key_makes_a_retry_return_the_same_request(gw: Harness) -> None:
    headers = {**gw.auth(), "Idempotency-Key": "abc-1"}
    first = await gw.client.post("/v1/chat", json={"message": "hello there"}, headers=headers)
    second = await gw.client.post("/v1/chat", json={"message": "hello there"}, headers=headers)
    assert first.json()["request_id"] == second.json()["request_id"]
    assert len(gw.on("request")) == 1, "a retried POST does not start a second saga"
    other = await gw.client.post(
        "/v1/chat",
        json={"message": "hello there"},
        headers={**gw.auth(user="mallory"), "Idempotency-Key": "abc-1"},
    )
    assert other.json()["request_id"] != first.json()["request_id"], "keys are scoped to the user"


async def test_wait_returns_the_answer_when_the_decision_arrives(gw: Harness) -> None:
    async def decide_soon() -> None:
        while not gw.on("request"):
            await asyncio.sleep(0.01)
        chat = ChatRequested.model_validate(gw.on("request")[0])
        retrieved = ContextRetrieved(
            request_id=chat.request_id,
            tenant_id=chat.tenant_id,
            request=chat,
            stats=RetrievalStats(
                candidates=0, latency_ms=1, index_version="v", embedding_model="m"
            ),
        )
        draft = DraftProduced(
            request_id=chat.request_id,
            tenant_id=chat.tenant_id,
            request=chat,
            kind=DraftKind.ANSWER,
            answer="Yes, within 14 days. [1]",
            model="m",
            retrieved_event_id=retrieved.event_id,
        )
        decided = DraftDecided(
            request_id=chat.request_id,
            tenant_id=chat.tenant_id,
            draft=draft,
            decision=Decision.AUTO_APPROVED,
            policy="p",
        )
        await gw.service.bus.publish(Topic.APPROVED, decided)

    task = asyncio.create_task(decide_soon())
    started = time.monotonic()
    response = await gw.client.post(
        "/v1/chat", params={"wait": 5}, json={"message": "Do you price match?"}, headers=gw.auth()
    )
    await task
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "answered"
    assert response.json()["result"]["answer"].startswith("Yes")
    assert time.monotonic() - started < 4, "woken by the notification, not by the deadline"


async def test_wait_gives_up_at_the_deadline_with_202(gw: Harness) -> None:
    response = await gw.client.post(
        "/v1/chat", params={"wait": 0.5}, json={"message": "anything"}, headers=gw.auth()
    )
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"


async def test_requests_are_visible_to_their_owner_and_tenant_l2_staff_only(gw: Harness) -> None:
    posted = await gw.client.post(
        "/v1/chat", json={"message": "where is my order?"}, headers=gw.auth()
    )
    url = f"/v1/requests/{posted.json()['request_id']}"
    mine = await gw.client.get(url, headers=gw.auth())
    assert mine.status_code == 200
    assert mine.json()["timeline"] == [] or isinstance(mine.json()["timeline"], list)
    assert (await gw.client.get(url, headers=gw.auth(user="someone-else"))).status_code == 404
    assert (
        await gw.client.get(url, headers=gw.auth(user="lee", level="L1", roles=("support",)))
    ).status_code == 404
    assert (
        await gw.client.get(url, headers=gw.auth(user="kim", level="L2", roles=("support",)))
    ).status_code == 200
    other_tenant = gw.auth(user="kim", level="L2", tenant="tidewell", roles=("support",))
    assert (await gw.client.get(url, headers=other_tenant)).status_code == 404
    assert (
        await gw.client.get(f"/v1/requests/{uuid.uuid4()}", headers=gw.auth())
    ).status_code == 404


def _token(claims: dict[str, Any], key: str = DEV_JWT_SECRET, alg: str = "HS256") -> str:
    now = int(time.time())
    base = {
        "sub": "casey",
        "tenant": "harborpine",
        "roles": ["customer"],
        "level": "none",
        "iss": "support-platform",
        "aud": "support-platform",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode({**base, **claims}, key, algorithm=alg)


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, "missing bearer token"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid token"),
        (
            {
                "Authorization": f"Bearer {_token({}, key='another-key-of-sufficient-length-0123456789')}"
            },
            "invalid token",
        ),
        (
            {
                "Authorization": f"Bearer {_token({'exp': int(time.time()) - 3600, 'iat': int(time.time()) - 4000})}"
            },
            "expired",
        ),
        ({"Authorization": f"Bearer {_token({'aud': 'someone-else'})}"}, "invalid token"),
        ({"Authorization": f"Bearer {_token({'level': 'god'})}"}, "invalid token claims"),
        ({"Authorization": f"Bearer {_token({'exp': int(time.time()) + 10 * 86400})}"}, "lifetime"),
        (
            {"Authorization": "Bearer " + jwt.encode({"sub": "casey"}, "", algorithm="none")},
            "invalid token",
        ),
    ],
)
async def test_no_anonymous_expired_or_forged_access(
    gw: Harness, headers: dict[str, str], fragment: str
) -> None:
    response = await gw.client.post("/v1/chat", json={"message": "hi"}, headers=headers)
    assert response.status_code == 401
    assert fragment in response.json()["message"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert gw.on("request") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({"message": "hi\x00there"}, "message"),
        ({"message": "hi", "role": "admin"}, "role"),
        ({"text": "hi"}, "message"),
        ({"message": "hi", "channel": "carrier-pigeon"}, "channel"),
    ],
)
async def test_invalid_bodies_get_422_with_the_field(
    gw: Harness, body: dict[str, Any], field: str
) -> None:
    response = await gw.client.post("/v1/chat", json=body, headers=gw.auth())
    assert response.status_code == 422
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    assert gw.on("request") == []


async def test_malformed_json_oversized_and_wrong_wait_are_4xx(gw: Harness) -> None:
    headers = {**gw.auth(), "Content-Type": "application/json"}
    assert (await gw.client.post("/v1/chat", content=b"{nope", headers=headers)).status_code == 422
    big = json.dumps({"message": "x" * 20_000}).encode()
    too_big = await gw.client.post("/v1/chat", content=big, headers=headers)
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "payload_too_large"
    assert (
        await gw.client.post(
            "/v1/chat", params={"wait": -1}, json={"message": "hi"}, headers=gw.auth()
        )
    ).status_code == 422
    assert (await gw.client.get("/v1/requests/not-a-uuid", headers=gw.auth())).status_code == 422
    assert gw.on("request") == []


async def test_health_and_metrics(gw: Harness) -> None:
    health = await gw.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["checks"] == {"broker": True, "database": True}
    metrics = await gw.client.get("/metrics")
    assert metrics.status_code == 200
    assert "faststream" in metrics.text or "process_" in metrics.text
