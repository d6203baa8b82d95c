"""The approval workflow on the real broker and PostgreSQL: intake from the topic, decisions
over HTTP, execution, one DraftDecided per action on the topic, expiry, relay recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from approver.app import build_service
from approver.postgres.relay import OutboxRelay
from approver.postgres.store import enqueue_all
from approver.settings import ApproverSettings, RelaySettings
from approver.testing.failpoints import Failpoints
from devstack.pytest_plugin import TopicProbe
from devstack.seed import seed_demo_data
from shared.contracts import AuditRecorded, DraftProduced, RiskLevel, Topic, utcnow
from shared.db import open_pool
from shared.messaging import EventBus
from shared.service import Service
from shared.settings import DatabaseSettings, KafkaSettings, SagaSettings
from shared.testing import eventually

from .conftest import DraftFactory

pytestmark = pytest.mark.integration


class Running:
    def __init__(self, service: Service, client: httpx.AsyncClient, bus: EventBus) -> None:
        self.service = service
        self.client = client
        self.bus = bus


@pytest.fixture
async def approver(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> AsyncIterator[Running]:
    seed_demo_data(database_settings.dsn)
    settings = ApproverSettings(
        kafka=kafka_settings,
        database=database_settings,
        saga=SagaSettings(approval_expiry_s=1.8),  # the expiry test waits for it
        sweep_interval_s=0.2,
    )
    service = build_service(settings)
    app = service.http_app()
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with service.running(), publisher:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approver"
        ) as client:
            yield Running(service, client, EventBus(publisher, kafka_settings, service="test"))


def decided_for(probe: TopicProbe, request_id: uuid.UUID) -> list[dict[str, Any]]:
    return [m for m in probe.on("approved") if m["headers"].get("request_id") == str(request_id)]


async def pending(
    client: httpx.AsyncClient, headers: dict[str, str], draft: DraftProduced
) -> dict[str, Any]:
    async def stored() -> dict[str, Any] | None:
        response = await client.get(f"/v1/approvals/{draft.event_id}", headers=headers)
        return response.json() if response.status_code == 200 else None

    return await eventually(stored)


async def test_a_600_eur_refund_needs_two_l2_and_executes_exactly_once(
    approver: Running,
    probe: TopicProbe,
    make_draft: DraftFactory,
    bearer: Callable[..., dict[str, str]],
    database_settings: DatabaseSettings,
) -> None:
    draft = make_draft(
        arguments={"order_id": "HP-10024", "amount": "600.00", "reason": "tent torn"}
    )
    await approver.bus.publish(Topic.DRAFT, draft)
    await approver.bus.publish(Topic.DRAFT, draft)  # a duplicate delivery
    kim, lee, ann = bearer("kim", "L2"), bearer("lee", "L2"), bearer("ann", "L1")
    view = await pending(approver.client, kim, draft)
    assert (view["status"], view["required_level"], view["required_count"]) == ("pending", "L2", 2)
    assert view["policy"] == "refund-up-to-2000-eur"

    url = f"/v1/approvals/{draft.event_id}"
    first = await approver.client.post(
        f"{url}/approve", json={"reason": "receipt checked"}, headers=kim
    )
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["remaining"]) == ("pending", 1)
    assert (await approver.client.post(f"{url}/approve", json={}, headers=kim)).status_code == 409
    assert (await approver.client.post(f"{url}/approve", json={}, headers=ann)).status_code == 403
    second = await approver.client.post(f"{url}/approve", headers=lee)
    assert second.json()["status"] == "approved", second.text

    found = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("approved")
            and m["headers"].get("request_id") == str(draft.request_id)
        )
    )
    body = found[0]["body"]
    assert body["decision"] == "approved"
    assert body["execution"]["status"] == "succeeded", body["execution"]
    assert [s["approver_id"] for s in body["signoffs"]] == ["kim", "lee"]

    async def executed() -> dict[str, Any] | None:
        got = (await approver.client.get(url, headers=kim)).json()
        return got if got["status"] == "executed" else None

    assert (await eventually(executed))["execution"]["effect_id"].startswith("R-")
    async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM tools.refunds WHERE idempotency_key = %s",
            (f"approval:{draft.event_id}",),
        )
        assert (await cur.fetchone()) == (1,)
    audits = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["headers"].get("request_id") == str(draft.request_id)
            and m["body"]["action"] == "approval.executed"
        )
    )
    assert audits[0]["body"]["details"]["approvers"] == ["kim", "lee"]
    actions = {
        m["body"]["action"]
        for m in probe.on("audit")
        if m["headers"].get("request_id") == str(draft.request_id)
    }
    assert {
        "approval.pending",
        "approval.signed",
        "approval.approved",
        "approval.denied",
    } <= actions
    await asyncio.sleep(0.5)  # give a duplicate the time to show up, if there were one
    assert len(decided_for(probe, draft.request_id)) == 1


async def test_stale_approvals_expire_with_a_decision(
    approver: Running,
    probe: TopicProbe,
    make_draft: DraftFactory,
    bearer: Callable[..., dict[str, str]],
) -> None:
    draft = make_draft("create_ticket", {"subject": "broken stove", "description": "it broke"})
    await approver.bus.publish(Topic.DRAFT, draft)
    found = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("approved")
            and m["headers"].get("request_id") == str(draft.request_id)
        ),
        timeout=15,
    )
    assert found[0]["body"]["decision"] == "expired"
    late = await approver.client.post(
        f"/v1/approvals/{draft.event_id}/approve", headers=bearer("kim", "L1")
    )
    assert late.status_code == 409
    assert late.json()["error"] == "already_decided"


async def test_the_relay_marks_what_a_crashed_relay_published_instead_of_resending(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    probe: TopicProbe,
    make_draft: DraftFactory,
) -> None:
    """The crash window between the broker's acknowledgement and the mark, made by hand."""
    pool = await open_pool(database_settings, name="relay-test")
    relay = OutboxRelay(
        database_settings.dsn,
        pool,
        kafka_settings,
        RelaySettings(poll_interval_s=0.1),
        Failpoints(),
    )
    draft = make_draft()
    events = [
        AuditRecorded(
            request_id=draft.request_id,
            tenant_id="harborpine",
            service="approver",
            action=f"step.{i}",
            actor="x",
        )
        for i in range(3)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    task: asyncio.Task[None] | None = None
    try:
        async with pool.connection() as conn, conn.transaction():
            await enqueue_all(conn, kafka_settings, events)
        topic = kafka_settings.topic(Topic.AUDIT)
        await relay._ensure_checkpoints(producer, {topic})
        # The "previous relay" sends two of the three and dies before marking them.
        for event in events[:2]:
            await producer.send_and_wait(
                topic, event.to_bytes(), key=str(draft.request_id).encode()
            )
        task = asyncio.create_task(relay.run())
        await asyncio.wait_for(relay.active.wait(), 20)

        async def all_marked() -> bool:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) AS n FROM approvals.outbox WHERE event_id = ANY(%s)"
                    " AND published_at IS NOT NULL",
                    ([e.event_id for e in events],),
                )
                row = await cur.fetchone()
                return bool(row and row["n"] == 3)

        await eventually(all_marked)
        await probe.wait_for(lambda m: m["body"] and m["body"].get("action") == "step.2")
        await asyncio.sleep(0.3)
        sent = [
            m["body"]["action"]
            for m in probe.on("audit")
            if m["body"]["request_id"] == str(draft.request_id)
        ]
        assert sorted(sent) == ["step.0", "step.1", "step.2"], (
            "each event exactly once on the topic"
        )
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
        await pool.close()


@pytest.mark.parametrize(
    ("tool", "arguments", "reason"),
    [
        # casey.customer on sam.customer's order: reads as absent, nothing about sam.
        (
            "issue_refund",
            {"order_id": "HP-10031", "amount": "50.00", "currency": "EUR", "reason": "broken"},
            "forbidden: order HP-10031 not found",
        ),
        (
            "issue_refund",
            {"order_id": "HP-10023", "amount": "120.00", "currency": "EUR", "reason": "broken"},
            "invariant_violated: refund of 120.00 EUR exceeds what is left",
        ),
        (
            "issue_refund",
            {"order_id": "HP-10023", "amount": "20.00", "currency": "GBP", "reason": "broken"},
            "invariant_violated: order HP-10023 was paid in EUR",
        ),
        (
            "reset_password",
            {"user_id": "sam.customer"},
            "forbidden: a customer can only act on their own account",
        ),
        (
            "create_ticket",
            {"subject": "late", "description": "where is it", "order_id": "HP-10031"},
            "forbidden: order HP-10031 not found",
        ),
    ],
)
async def test_intake_rejects_an_action_its_requester_may_not_have(
    approver: Running,
    probe: TopicProbe,
    make_draft: DraftFactory,
    tool: str,
    arguments: dict[str, Any],
    reason: str,
) -> None:
    risk = RiskLevel.CRITICAL if tool == "reset_password" else RiskLevel.WRITE
    draft = make_draft(tool, arguments, risk=risk)
    await approver.bus.publish(Topic.DRAFT, draft)
    [decided] = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("approved") and m["body"]["request_id"] == str(draft.request_id)
        )
    )
    assert decided["body"]["decision"] == "rejected"
    assert decided["body"]["policy"] == "invalid-action-rejected"
    assert reason in decided["body"]["reason"], decided["body"]["reason"]
    assert "sam" not in decided["body"]["reason"]


async def test_an_action_arriving_after_the_saga_deadline_is_refused(
    approver: Running, probe: TopicProbe, make_draft: DraftFactory
) -> None:
    """Its caller has been told the request timed out: nothing may be done for it now."""
    draft = make_draft()
    late = draft.request.model_copy(update={"occurred_at": utcnow() - timedelta(hours=1)})
    draft = draft.model_copy(update={"request": late})
    await approver.bus.publish(Topic.DRAFT, draft)
    [decided] = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("approved") and m["body"]["request_id"] == str(draft.request_id)
        )
    )
    assert decided["body"]["decision"] == "rejected"
    assert "saga_deadline_passed" in decided["body"]["reason"]
