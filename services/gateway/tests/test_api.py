"""The gateway's HTTP API: authentication, validation, publishing, waiting, visibility.

The broker is FastStream's in-memory TestKafkaBroker. Every test runs twice: on the
in-process request store (a unit test) and on PostgreSQL (the row locks of concurrent
admissions and the LISTEN/NOTIFY wake-up are real there), so the two stores are held to the
same behaviour through the API as well as by ``test_request_store_contract.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from fastapi import FastAPI
from faststream.kafka import KafkaMessage, TestKafkaBroker

from gateway.api import request_id_for
from gateway.app import build_service
from gateway.records import RequestRecord
from gateway.repository import RequestRepository
from gateway.settings import GatewaySettings
from gateway.store import MemoryRequestStore, RequestStore
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
    derive_event_id,
)
from shared.db import open_pool
from shared.guardrails import redact
from shared.service import Service
from shared.settings import (
    DEV_JWT_SECRET,
    AuthSettings,
    DatabaseSettings,
    HttpSettings,
    KafkaSettings,
    SagaSettings,
    TelemetrySettings,
)
from shared.telemetry import setup
from shared.testing import LogLines


class Harness:
    def __init__(
        self, service: Service, app: FastAPI, client: httpx.AsyncClient, store: RequestStore
    ) -> None:
        self.service = service
        self.app = app
        self.client = client
        self.store = store
        self.uses_database = isinstance(store, RequestRepository)
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

    async def record(self, request_id: uuid.UUID | str) -> RequestRecord | None:
        return await self.store.get(uuid.UUID(str(request_id)))


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
async def gw(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    database = DatabaseSettings()
    if request.param == "postgres":
        database = request.getfixturevalue("database_settings")
    settings = GatewaySettings(
        database=database,
        kafka=KafkaSettings(),
        http=HttpSettings(max_body_bytes=8192),
        max_wait_s=5,
        publish_timeout_s=1.0,
        # The database is shared by the session: this fixture's sweeper must not end (or
        # audit) other tests' requests, and its audits would land among the ones asserted
        # here. Its first round is one interval after start-up. test_deadlines.py covers it.
        saga=SagaSettings(sweep_interval_s=1e6),
    )
    memory = MemoryRequestStore() if request.param == "memory" else None
    service = build_service(settings, store=memory)
    app = service.http_app()
    harness: Harness

    def recorder(topic: str) -> Any:
        async def record(msg: KafkaMessage) -> None:
            harness.published.append((topic, json.loads(msg.body), dict(msg.headers)))

        return record

    for topic in ("request", "audit"):
        service.broker.subscriber(topic, group_id=f"probe-{topic}")(recorder(topic))

    async with contextlib.AsyncExitStack() as stack:
        store: RequestStore
        if memory is not None:
            store = memory
        else:
            pool = await open_pool(database, name="test-gateway-api")
            stack.push_async_callback(pool.close)
            store = RequestRepository(pool)
        await stack.enter_async_context(TestKafkaBroker(service.broker))
        await stack.enter_async_context(service.running())
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        )
        harness = Harness(service, app, client, store)
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


async def test_the_lines_of_a_chat_request_name_its_saga_tenant_and_trace(gw: Harness) -> None:
    # JSON lines, as deployed (the fixture's service logs in the default text format).
    setup(TelemetrySettings(log_format="json"), "gateway", redact=redact)
    lines = LogLines()
    response = await gw.client.post(
        "/v1/chat",
        json={"message": "Refund to 4111 1111 1111 1111 please, mail jane.doe@example.com"},
        headers={**gw.auth(tenant="northwind"), "Idempotency-Key": f"log-{uuid.uuid4()}"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    [accepted] = lines.saying("chat request accepted")
    assert accepted["service"] == "gateway"
    assert accepted["request_id"] == body["request_id"], "the saga's id, not the HTTP request's"
    assert accepted["tenant_id"] == "northwind"
    assert accepted["trace_id"] == body["trace_id"]
    assert accepted["span_id"] is not None
    assert response.headers["x-request-id"] == body["request_id"], "a client can quote it"
    assert "jane.doe" not in json.dumps(lines.all()) and "4111" not in json.dumps(lines.all())


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
    expected = {"broker": True} | ({"database": True} if gw.uses_database else {})
    assert health.json()["checks"] == expected
    assert 0 <= health.json()["age_s"] < 5, "a cached view, refreshed in the background"
    metrics = await gw.client.get("/metrics")
    assert metrics.status_code == 200
    assert "faststream" in metrics.text or "process_" in metrics.text


# --------------------------------------------------------------------------- idempotency keys


async def test_the_same_key_with_another_message_is_refused_with_409(gw: Harness) -> None:
    headers = {**gw.auth(), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await gw.client.post("/v1/chat", json={"message": "refund order 1"}, headers=headers)
    assert first.status_code == 202
    for body in (
        {"message": "refund order 2"},
        {"message": "refund order 1", "channel": "web"},
        {"message": "refund order 1", "conversation_id": "c-9"},
    ):
        again = await gw.client.post("/v1/chat", json=body, headers=headers)
        assert again.status_code == 409, body
        assert again.json() == {
            "error": "conflict",
            "message": "this Idempotency-Key was already used with a different message;"
            " use a new key for a new request",
        }
    same = await gw.client.post("/v1/chat", json={"message": "  refund order 1 "}, headers=headers)
    assert same.status_code == 202, "surrounding blanks are not a different message"
    assert same.json()["request_id"] == first.json()["request_id"]
    assert len(gw.on("request")) == 1


async def test_concurrent_identical_posts_make_one_request_published_once(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_publish = gw.service.bus.publish

    async def slow_publish(topic: Topic, event: Any) -> None:
        # Slow enough that the other POSTs arrive while the first one is publishing.
        await asyncio.sleep(0.3)
        await real_publish(topic, event)

    monkeypatch.setattr(gw.service.bus, "publish", slow_publish)
    headers = {**gw.auth(), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    responses = await asyncio.gather(
        *(
            gw.client.post("/v1/chat", json={"message": "same question"}, headers=headers)
            for _ in range(8)
        )
    )
    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    ids = {r.json()["request_id"] for r in responses}
    assert len(ids) == 1
    assert len(gw.on("request")) == 1, "one caller publishes; the others wait for it"
    assert [a["action"] for a in gw.on("audit")] == ["request.accepted"]
    row = await gw.record(ids.pop())
    assert row is not None and row.published_at is not None
    assert row.publish_claimed_until is None


async def test_the_request_event_id_derives_from_the_request_id(gw: Harness) -> None:
    response = await gw.client.post("/v1/chat", json={"message": "hello"}, headers=gw.auth())
    request_id = uuid.UUID(response.json()["request_id"])
    [event] = gw.on("request")
    assert uuid.UUID(event["event_id"]) == derive_event_id(request_id, "chat.requested")
    [audit] = gw.on("audit")
    assert uuid.UUID(audit["subject_event_id"]) == derive_event_id(request_id, "chat.requested")


@pytest.mark.parametrize(
    "failure",
    [NodeNotReadyError("node 1 not ready"), KafkaConnectionError("refused"), "hang"],
    ids=["node-not-ready", "connection-error", "hang"],
)
async def test_a_failed_publish_answers_503_and_a_keyed_retry_publishes_the_same_attempt(
    gw: Harness,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception | str,
) -> None:
    real_publish = gw.service.bus.publish

    async def broken_publish(topic: Topic, event: Any) -> None:
        if failure == "hang":
            await asyncio.sleep(60)  # a broker that never answers
        assert isinstance(failure, Exception)
        raise failure

    monkeypatch.setattr(gw.service.bus, "publish", broken_publish)
    key = f"k-{uuid.uuid4()}"
    headers = {**gw.auth(), "Idempotency-Key": key}
    started = time.monotonic()
    refused = await gw.client.post("/v1/chat", json={"message": "is it raining"}, headers=headers)
    assert refused.status_code == 503, refused.text
    assert time.monotonic() - started < 2.5, "bounded by publish_timeout_s (1 s here)"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "unavailable"
    assert "Idempotency-Key" in refused.json()["message"]
    request_id = request_id_for("harborpine", "casey", key, 1)
    row = await gw.record(request_id)
    assert row is not None
    assert row.status == "accepted" and row.published_at is None
    assert row.publish_claimed_until is None, "the lease is released for the retry"

    monkeypatch.setattr(gw.service.bus, "publish", real_publish)
    retried = await gw.client.post("/v1/chat", json={"message": "is it raining"}, headers=headers)
    assert retried.status_code == 202, retried.text
    assert retried.json()["request_id"] == str(request_id), "the same attempt, not a new one"
    assert retried.json()["attempt"] == 1
    [event] = gw.on("request")
    assert uuid.UUID(event["event_id"]) == derive_event_id(request_id, "chat.requested")
    row = await gw.record(request_id)
    assert row is not None and row.published_at is not None
    again = await gw.client.post("/v1/chat", json={"message": "is it raining"}, headers=headers)
    assert again.json()["request_id"] == str(request_id)
    assert len(gw.on("request")) == 1, "published once the broker took it"


async def test_a_broker_blip_within_the_publish_timeout_costs_latency_not_a_503(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_publish = gw.service.bus.publish
    failures = [NodeNotReadyError("restarting"), KafkaConnectionError("reset")]

    async def flaky_publish(topic: Topic, event: Any) -> None:
        if failures:
            raise failures.pop(0)
        await real_publish(topic, event)

    monkeypatch.setattr(gw.service.bus, "publish", flaky_publish)
    response = await gw.client.post("/v1/chat", json={"message": "hi"}, headers=gw.auth())
    assert response.status_code == 202, response.text
    assert failures == []
    assert len(gw.on("request")) == 1
    assert [a["action"] for a in gw.on("audit")] == ["request.accepted"]


async def test_a_programming_error_while_publishing_is_not_disguised_as_503(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def buggy_publish(topic: Topic, event: Any) -> None:
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(gw.service.bus, "publish", buggy_publish)
    transport = httpx.ASGITransport(app=gw.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post("/v1/chat", json={"message": "hi"}, headers=gw.auth())
    assert response.status_code == 500
    assert response.json() == {"error": "internal", "message": "internal error"}


async def test_the_root_span_names_the_end_user_by_a_pseudonym_only(gw: Harness) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # installed by the first service built
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for user in ("casey", "casey", "sam"):
        response = await gw.client.post(
            "/v1/chat", json={"message": "hello there"}, headers=gw.auth(user=user)
        )
        assert response.status_code == 202
    exporter.shutdown()
    roots = [s for s in exporter.get_finished_spans() if s.name == "chat.request"]
    assert len(roots) == 3
    ids = [str((s.attributes or {})["enduser.id"]) for s in roots]
    assert ids[0] == ids[1] != ids[2], "stable per user, distinct between users"
    assert all(i and "casey" not in i and "sam" not in i for i in ids), "never the user id"
    assert all(len(i) >= 16 for i in ids)
