"""Every accepted request reaches an end: saga deadlines against a real broker and database.

Two gateway replicas share one database and one broker, as in production. No retriever,
agent or approver runs, so every saga stalls and the deadline sweeper has to end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError
from psycopg.rows import dict_row

from devstack.pytest_plugin import TopicProbe
from gateway.api import request_id_for
from gateway.app import build_service
from gateway.deadlines import SWEEP_LOCK_KEY, DeadlineSweeper
from gateway.repository import RequestRepository
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.contracts import (
    AuditRecorded,
    ChatRequested,
    Topic,
    derive_event_id,
)
from shared.db import Pool, open_pool
from shared.principal import Principal
from shared.service import Service
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings, SagaSettings
from shared.testing import eventually, sample_value

from .builders import decided

pytestmark = pytest.mark.integration

ANSWER_DEADLINE_S = 2.0
APPROVAL_EXPIRY_S = 1.5
SETTLE_GRACE_S = 1.5  # approval deadline 3 s: later than the answer deadline, on purpose


@dataclass
class Replica:
    service: Service
    client: httpx.AsyncClient


@dataclass
class Cluster:
    replicas: list[Replica]
    pool: Pool
    settings: GatewaySettings
    tokens: TokenService

    def auth(self, user: str) -> dict[str, str]:
        token = self.tokens.mint(
            user_id=user, tenant_id="harborpine", roles=("customer",), level="none"
        )
        return {"Authorization": f"Bearer {token}"}

    async def row(self, request_id: uuid.UUID | str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM gateway.requests WHERE request_id = %s", (request_id,)
            )
            return await cur.fetchone()

    async def timeline_actions(self, request_id: uuid.UUID | str) -> list[str]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT action FROM gateway.timeline WHERE request_id = %s ORDER BY at",
                (request_id,),
            )
            return [r["action"] for r in await cur.fetchall()]


@pytest.fixture
async def cluster(
    database_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[Cluster]:
    settings = GatewaySettings(
        database=database_settings,
        # A group join waits about half the session timeout on Tansu: two replicas with two
        # consumer groups each start in a few seconds instead of fifteen.
        kafka=kafka_settings.model_copy(
            update={"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}
        ),
        # A group of this test's own: on Tansu, a group that two members left stays stuck in
        # rebalancing for the next members, which would hang the next test's start-up.
        group_id=f"gateway-{uuid.uuid4().hex[:8]}",
        max_wait_s=15,
        saga=SagaSettings(
            answer_deadline_s=ANSWER_DEADLINE_S,
            approval_expiry_s=APPROVAL_EXPIRY_S,
            settle_grace_s=SETTLE_GRACE_S,
            sweep_interval_s=0.2,
        ),
    )
    services = [build_service(settings) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for service in services:
            app = service.http_app()
            await stack.enter_async_context(service.running())
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30
                )
            )
            replicas.append(Replica(service, client))
        pool = await open_pool(database_settings, name="test-deadlines")
        stack.push_async_callback(pool.close)
        yield Cluster(replicas, pool, settings, TokenService(AuthSettings()))


def _events(stream: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, data) pairs of a server-sent-events body."""
    out = []
    for block in stream.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in fields and "data" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


async def _no_more_than_one(
    probe: TopicProbe, bus_of: Service, request_id: str, action: str
) -> int:
    """How many audit records ``action`` of ``request_id`` are on the topic, counted once a
    marker published after them to the same partition (same key) has been read: Kafka keeps
    a partition in order, so nothing published before the marker can still be on its way."""
    marker = uuid.uuid4()
    await bus_of.bus.audit(
        request_id=uuid.UUID(request_id),
        tenant_id="harborpine",
        action="test.marker",
        actor="test",
        dedupe_key=str(marker),
    )
    await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["body"]["event_id"]
            == str(derive_event_id(str(marker), "audit:gateway:test.marker"))
        )
    )
    return sum(
        1
        for m in probe.on("audit")
        if m["body"]["request_id"] == request_id and m["body"]["action"] == action
    )


async def test_a_stalled_request_times_out_once_across_two_replicas(
    cluster: Cluster, probe: TopicProbe
) -> None:
    first, second = cluster.replicas
    user = f"casey-{uuid.uuid4().hex[:6]}"
    key = f"k-{uuid.uuid4()}"
    headers = {**cluster.auth(user), "Idempotency-Key": key}
    body = {"message": "Where is my parcel?"}
    posted = await first.client.post("/v1/chat", json=body, headers=headers)
    assert posted.status_code == 202, posted.text
    request_id = posted.json()["request_id"]
    created = time.monotonic()

    # Both watchers are on the other replica: the timeout must wake them through NOTIFY.
    stream = asyncio.create_task(
        second.client.get(f"/v1/requests/{request_id}/events", headers=cluster.auth(user))
    )
    waited = await second.client.post("/v1/chat", params={"wait": 15}, json=body, headers=headers)
    assert waited.status_code == 200, waited.text
    view = waited.json()
    assert view["request_id"] == request_id, "a retry before the deadline is the same request"
    assert view["status"] == "timed_out"
    assert view["settled"] is True
    assert view["stalled_at"] == "retriever"
    assert view["result"]["kind"] == "timeout"
    assert view["result"]["stalled_at"] == "retriever"
    assert "2 s" in view["result"]["reason"]
    assert ANSWER_DEADLINE_S - 0.5 <= time.monotonic() - created < ANSWER_DEADLINE_S + 8

    events = _events((await asyncio.wait_for(stream, 20)).text)
    assert events[-1][0] == "result"
    assert events[-1][1]["status"] == "timed_out"
    assert events[-1][1]["stalled_at"] == "retriever"
    steps = [data["action"] for name, data in events if name == "step"]
    assert steps.count("request.timed_out") == 1
    [timeout_step] = [d for n, d in events if n == "step" and d["action"] == "request.timed_out"]
    assert timeout_step["service"] == "gateway" and timeout_step["outcome"] == "error"
    assert timeout_step["details"]["stalled_at"] == "retriever"

    got = await first.client.get(f"/v1/requests/{request_id}", headers=cluster.auth(user))
    assert got.status_code == 200
    assert got.json()["status"] == "timed_out"
    assert got.json()["stalled_at"] == "retriever"
    assert got.json()["result"] == view["result"]

    # Audited once, by whichever replica held the sweep lock.
    [audit] = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["body"]["request_id"] == request_id
            and m["body"]["action"] == "request.timed_out"
        )
    )
    record = AuditRecorded.model_validate(audit["body"])
    assert record.service == "gateway"
    assert record.outcome.value == "error"
    assert record.details["stalled_at"] == "retriever"
    assert record.details["status"] == "timed_out"
    assert record.trace_id == view["trace_id"], "the record belongs to the saga's trace"
    assert audit["key"] == request_id.encode()

    async def audited() -> bool:
        row = await cluster.row(request_id)
        return row is not None and row["timeout_audited_at"] is not None

    await eventually(audited, timeout=10)
    # More rounds from both replicas at once over the ended request change nothing.
    await asyncio.gather(*(_sweeper_round(cluster, r.service) for r in cluster.replicas))
    assert await _no_more_than_one(probe, first.service, request_id, "request.timed_out") == 1
    assert (await cluster.timeline_actions(request_id)).count("request.timed_out") == 1

    # Operators see timeouts by the step that stalled (whichever replica swept).
    exposition = "".join([(await r.client.get("/metrics")).text for r in cluster.replicas])
    assert re.search(
        r'^gateway_requests_timed_out_total\{[^}]*stalled_at="retriever"[^}]*\} [1-9]',
        exposition,
        re.MULTILINE,
    ), exposition

    # A retry with the key now starts a new attempt, published afresh.
    retried = await second.client.post("/v1/chat", json=body, headers=headers)
    assert retried.status_code == 202, retried.text
    new_id = retried.json()["request_id"]
    assert new_id == str(request_id_for("harborpine", user, key, 2))
    assert new_id != request_id
    assert retried.json()["attempt"] == 2
    assert retried.json()["status"] == "accepted"
    [published] = await probe.wait_for(
        lambda m: m["topic"].endswith("request") and m["body"]["request_id"] == new_id
    )
    chat = ChatRequested.model_validate(published["body"])
    assert chat.event_id == derive_event_id(uuid.UUID(new_id), "chat.requested")
    assert chat.message == body["message"]
    old = await cluster.row(request_id)
    assert old is not None and old["status"] == "timed_out", "the old attempt stays ended"

    # The same key with another message is refused, whatever the attempt.
    refused = await first.client.post(
        "/v1/chat", json={"message": "Refund my parcel"}, headers=headers
    )
    assert refused.status_code == 409
    assert "different message" in refused.json()["message"]


async def _sweeper_round(cluster: Cluster, service: Service) -> None:
    """Run sweep rounds the way a replica's background task does, on demand."""
    pool = cluster.pool
    sweeper = DeadlineSweeper(
        lambda: RequestRepository(pool),
        service.bus,
        cluster.settings.saga,
        publish_timeout_s=cluster.settings.publish_timeout_s,
    )
    for _ in range(3):
        await sweeper.sweep()


async def test_an_unpublished_request_without_a_key_times_out_at_the_gateway(
    cluster: Cluster, probe: TopicProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = cluster.replicas
    real_publish = first.service.bus.publish

    async def broker_refuses_requests(topic: Topic, event: Any) -> None:
        if topic is Topic.REQUEST:
            raise KafkaConnectionError("connection refused")
        await real_publish(topic, event)

    monkeypatch.setattr(first.service.bus, "publish", broker_refuses_requests)
    user = f"casey-{uuid.uuid4().hex[:6]}"
    refused = await first.client.post(
        "/v1/chat", json={"message": "Is my refund through?"}, headers=cluster.auth(user)
    )
    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    monkeypatch.setattr(first.service.bus, "publish", real_publish)

    async def ended() -> dict[str, Any] | None:
        async with cluster.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT * FROM gateway.requests WHERE user_id = %s AND status = 'timed_out'",
                (user,),
            )
            return await cur.fetchone()

    row = await eventually(ended, timeout=ANSWER_DEADLINE_S + 10)
    assert row["published_at"] is None
    assert row["stalled_at"] == "gateway (publish)"
    assert row["result"]["stalled_at"] == "gateway (publish)"
    request_id = str(row["request_id"])
    [audit] = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["body"]["request_id"] == request_id
            and m["body"]["action"] == "request.timed_out"
        )
    )
    assert audit["body"]["details"]["stalled_at"] == "gateway (publish)"
    assert not [m for m in probe.on("request") if m["body"]["request_id"] == request_id]
    # The replica whose sweep ended it counted it (the shared test database may hold other
    # tests' stalled requests, which these sweepers end too: at least one, then).
    timed_out = 0.0
    for replica in cluster.replicas:
        text = (await replica.client.get("/metrics")).text
        timed_out += sample_value(text, "platform_saga_requests_total", outcome="timed_out")
        timed_out_s = sample_value(text, "platform_saga_duration_seconds_sum", outcome="timed_out")
        count = sample_value(text, "platform_saga_duration_seconds_count", outcome="timed_out")
        if count:
            assert timed_out_s / count >= ANSWER_DEADLINE_S, "timed out at the deadline, not before"
    assert timed_out >= 1


async def test_a_pending_approval_times_out_at_its_own_deadline_and_stays_timed_out(
    cluster: Cluster, probe: TopicProbe
) -> None:
    first, _ = cluster.replicas
    user = f"casey-{uuid.uuid4().hex[:6]}"
    posted = await first.client.post(
        "/v1/chat", json={"message": "Refund 20 EUR on HP-1"}, headers=cluster.auth(user)
    )
    request_id = uuid.UUID(posted.json()["request_id"])
    created = time.monotonic()
    repository = RequestRepository(cluster.pool)

    def step(action: str, service: str) -> AuditRecorded:
        return AuditRecorded(
            request_id=request_id,
            tenant_id="harborpine",
            service=service,
            action=action,
            actor=service,
        )

    # What the approver's audit step does through the projection, applied at once so the
    # request is waiting for a human long before the answer deadline.
    await repository.apply_audit([step("approval.pending", "approver")])
    row = await cluster.row(request_id)
    assert row is not None and row["status"] == "pending_approval"

    async def timed_out() -> dict[str, Any] | None:
        row = await cluster.row(request_id)
        return row if row is not None and row["status"] == "timed_out" else None

    row = await eventually(timed_out, timeout=APPROVAL_EXPIRY_S + SETTLE_GRACE_S + 10)
    elapsed = time.monotonic() - created
    assert elapsed >= APPROVAL_EXPIRY_S + SETTLE_GRACE_S - 0.3, (
        f"ended after {elapsed:.1f} s: the approval deadline applies, not the answer deadline"
    )
    assert row["stalled_at"] == "approver (awaiting decision)"
    await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["body"]["request_id"] == str(request_id)
            and m["body"]["action"] == "request.timed_out"
            and m["body"]["details"]["stalled_at"] == "approver (awaiting decision)"
        )
    )

    # Steps and decisions that arrive after the deadline do not move it back.
    chat = ChatRequested(
        request_id=request_id,
        tenant_id="harborpine",
        principal=Principal(user_id=user, tenant_id="harborpine", roles=("customer",)),
        message="Refund 20 EUR on HP-1",
    )
    await repository.apply_decision(decided(chat, answer="Too late."), None)
    await repository.apply_audit([step("retrieval.completed", "retriever")])
    after = await cluster.row(request_id)
    assert after is not None
    assert after["status"] == "timed_out"
    assert after["result"]["kind"] == "timeout"
    assert after["stalled_at"] == "approver (awaiting decision)"


async def test_only_the_replica_holding_the_sweep_lock_sweeps(
    cluster: Cluster, database_settings: DatabaseSettings
) -> None:
    first, _ = cluster.replicas
    sweeper = DeadlineSweeper(
        lambda: RequestRepository(cluster.pool),
        first.service.bus,
        cluster.settings.saga,
        publish_timeout_s=1.0,
    )
    async with (
        await psycopg.AsyncConnection.connect(database_settings.dsn, row_factory=dict_row) as other,
        other.transaction(),
    ):
        await other.execute("SELECT pg_advisory_xact_lock(%s)", (SWEEP_LOCK_KEY,))
        held = await sweeper.sweep()
    assert held.timed_out is None and held.audited is None, "skipped while another sweeps"

    # Once released, this sweeper gets its turn (the replicas' own sweepers compete for it).
    async def swept() -> bool:
        result = await sweeper.sweep()
        return result.timed_out is not None and result.audited is not None

    await eventually(swept, timeout=10)
