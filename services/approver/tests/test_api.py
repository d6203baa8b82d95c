"""The approvals API over the in-memory store: decisions, and every kind of bad input.

Each refused decision answers a clear 4xx, is audited as ``approval.denied`` and changes
nothing. The broker is FastStream's in-memory TestKafkaBroker.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker

from approver.app import build_service
from approver.domain import ApprovalPolicy, ApprovalStatus, PolicySettings, RefusalCode
from approver.entrypoints.api import http_status
from approver.service_layer.intake import IntakePorts, handle_draft
from approver.settings import ApproverSettings
from approver.testing.fakes import InMemoryApprovalStore
from shared.contracts import DraftProduced
from shared.settings import KafkaSettings
from shared.tools import default_registry

from .conftest import DraftFactory

pytestmark = pytest.mark.unit


class Api:
    def __init__(self, client: httpx.AsyncClient, store: InMemoryApprovalStore) -> None:
        self.client = client
        self.store = store
        self.audits: list[dict[str, Any]] = []

    async def add(self, draft: DraftProduced) -> DraftProduced:
        ports = IntakePorts(
            self.store, ApprovalPolicy(PolicySettings()), default_registry(), timedelta(hours=1)
        )
        await handle_draft(draft, ports)
        return draft

    def denied(self) -> list[dict[str, Any]]:
        return [a for a in self.audits if a["action"] == "approval.denied"]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    store = InMemoryApprovalStore()
    service = build_service(ApproverSettings(kafka=KafkaSettings()), store=store)
    app = service.http_app()
    harness: Api

    async def record(msg: KafkaMessage) -> None:
        harness.audits.append(json.loads(msg.body))

    service.broker.subscriber("audit", group_id="probe")(record)
    async with TestKafkaBroker(service.broker), service.running():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a"
        ) as client:
            harness = Api(client, store)
            yield harness


def snapshot(store: InMemoryApprovalStore) -> tuple[Any, int]:
    return dict(store.approvals), len(store.outbox)


async def test_list_shows_my_tenants_pending_approvals_with_what_i_can_do(
    api: Api, make_draft: DraftFactory, bearer: Callable[..., dict[str, str]]
) -> None:
    small = await api.add(make_draft())
    big = await api.add(
        make_draft(arguments={"order_id": "HP-10031", "amount": "2450", "reason": "cancelled"})
    )
    await api.add(make_draft(tenant="tidewell"))
    listed = await api.client.get("/v1/approvals", headers=bearer("ann", "L1"))
    assert listed.status_code == 200
    items = {i["draft_id"]: i for i in listed.json()["items"]}
    assert set(items) == {str(small.event_id), str(big.event_id)}, "other tenants stay invisible"
    assert items[str(small.event_id)]["can_decide"] is True
    assert items[str(big.event_id)]["blocked_by"] == "insufficient_level"
    mine = await api.client.get(
        "/v1/approvals", params={"actionable": "true"}, headers=bearer("ann", "L1")
    )
    assert [i["draft_id"] for i in mine.json()["items"]] == [str(small.event_id)]
    tools = await api.client.get(
        "/v1/approvals", params={"tool": "create_ticket"}, headers=bearer("ann", "L1")
    )
    assert tools.json()["items"] == []
    customer = await api.client.get(
        "/v1/approvals", headers=bearer("casey", "none", roles=("customer",))
    )
    assert customer.status_code == 403


async def test_approve_then_a_second_decision_is_a_conflict(
    api: Api, make_draft: DraftFactory, bearer: Callable[..., dict[str, str]]
) -> None:
    draft = await api.add(make_draft())
    url = f"/v1/approvals/{draft.event_id}"
    done = await api.client.post(
        f"{url}/approve", json={"reason": "receipt ok"}, headers=bearer("ann", "L1")
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "approved"
    assert done.json()["signoffs"][0]["approver_id"] == "ann"
    before = snapshot(api.store)
    again = await api.client.post(
        f"{url}/reject", json={"reason": "changed my mind"}, headers=bearer("kim", "L2")
    )
    assert again.status_code == 409
    assert again.json() == {"error": "already_decided", "message": "this approval is approved"}
    assert snapshot(api.store) == before
    assert api.denied()[-1]["details"]["code"] == "already_decided"
    assert api.denied()[-1]["request_id"] == str(draft.request_id)


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        (("kim", "L1"), 403, "insufficient_level"),
        (("casey.customer", "L2"), 403, "self_approval"),
        (("kim", "L2", "tidewell"), 404, "not_found"),
        (("kim", "none"), 403, "not_an_approver"),
    ],
)
async def test_refusals_are_audited_and_change_nothing(
    api: Api,
    make_draft: DraftFactory,
    bearer: Callable[..., dict[str, str]],
    who: tuple[str, ...],
    status: int,
    code: str,
) -> None:
    draft = await api.add(
        make_draft(arguments={"order_id": "HP-10024", "amount": "300", "reason": "torn"})
    )
    before = snapshot(api.store)
    user, level, *tenant = who
    response = await api.client.post(
        f"/v1/approvals/{draft.event_id}/approve",
        headers=bearer(user, level, tenant=tenant[0] if tenant else "harborpine"),
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["message"]
    assert snapshot(api.store) == before
    denied = api.denied()[-1]
    assert (denied["actor"], denied["outcome"], denied["details"]["status"]) == (
        user,
        "denied",
        status,
    )


def test_every_refusal_code_answers_a_4xx() -> None:
    statuses = {code: http_status(code) for code in RefusalCode}
    assert all(400 <= s < 500 for s in statuses.values()), statuses
    assert statuses[RefusalCode.NOT_FOUND] == 404
    assert statuses[RefusalCode.SELF_APPROVAL] == 403
    assert statuses[RefusalCode.ALREADY_SIGNED] == 409


async def test_unknown_draft_is_404(api: Api, bearer: Callable[..., dict[str, str]]) -> None:
    import uuid

    missing = uuid.uuid4()
    response = await api.client.post(f"/v1/approvals/{missing}/approve", headers=bearer("kim"))
    assert response.status_code == 404
    assert (
        await api.client.get(f"/v1/approvals/{missing}", headers=bearer("kim"))
    ).status_code == 404
    assert api.denied()[-1]["details"]["draft_id"] == str(missing)
    assert (
        await api.client.post("/v1/approvals/not-a-uuid/approve", headers=bearer("kim"))
    ).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"reason": ""},  # a rejection needs a reason
        {"reason": "  "},
        {"reason": "x" * 1001},
        {"reason": "fine", "approver_id": "boss"},  # the approver comes from the token only
        "not json",
    ],
)
async def test_invalid_bodies_are_422_audited_and_change_nothing(
    api: Api, make_draft: DraftFactory, bearer: Callable[..., dict[str, str]], body: Any
) -> None:
    draft = await api.add(make_draft())
    before = snapshot(api.store)
    content = body if isinstance(body, str) else json.dumps(body)
    response = await api.client.post(
        f"/v1/approvals/{draft.event_id}/reject",
        content=content,
        headers={**bearer("kim"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert snapshot(api.store) == before
    assert api.denied()[-1]["details"]["code"] == "invalid_request"


async def test_forged_or_missing_tokens_are_401_audited_and_change_nothing(
    api: Api, make_draft: DraftFactory, tokens: Any
) -> None:
    draft = await api.add(make_draft())
    before = snapshot(api.store)
    claims = {
        "sub": "boss",
        "tenant": "harborpine",
        "roles": ["support"],
        "level": "manager",
        "iss": "support-platform",
        "aud": "support-platform",
        "iat": 1,
        "exp": 4_000_000_000,
    }
    forged = jwt.encode(claims, "not-the-platform-key-at-all-0123456789", algorithm="HS256")
    none_alg = jwt.encode(claims, None, algorithm="none")
    for headers in (
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {none_alg}"},
        {},
    ):
        response = await api.client.post(f"/v1/approvals/{draft.event_id}/approve", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(api.store) == before
    assert [d["actor"] for d in api.denied()] == ["unauthenticated"] * 3
    assert api.store.approvals[draft.event_id].status is ApprovalStatus.PENDING


async def test_inbox_page_is_served_with_a_strict_content_security_policy(api: Api) -> None:
    page = await api.client.get("/inbox")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/inbox/inbox.js"' in page.text
    script = await api.client.get("/inbox/inbox.js")
    assert "innerHTML" not in script.text, "values are written as text, never as HTML"
    assert script.headers["content-type"].startswith("text/javascript")


async def test_a_decision_is_its_own_trace_linked_to_the_sagas(
    api: Api, make_draft: DraftFactory, bearer: Callable[..., dict[str, str]]
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # installed by the first service built
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saga = provider.get_tracer("test").start_span("chat.request")
    with trace.use_span(saga, end_on_exit=True):
        draft = await api.add(make_draft())
    saga_ctx = saga.get_span_context()
    with provider.get_tracer("test").start_as_current_span("an unrelated http request"):
        done = await api.client.post(
            f"/v1/approvals/{draft.event_id}/approve",
            json={"reason": "receipt ok"},
            headers=bearer("ann", "L1"),
        )
    assert done.status_code == 200, done.text
    exporter.shutdown()
    [decision] = [s for s in exporter.get_finished_spans() if s.name == "approval.decide"]
    assert decision.parent is None, "a root span of its own"
    assert decision.context.trace_id != saga_ctx.trace_id
    [link] = decision.links
    assert (link.context.trace_id, link.context.span_id) == (saga_ctx.trace_id, saga_ctx.span_id)
    assert decision.attributes is not None
    assert decision.attributes["approval.decision"] == "approve"
    assert decision.attributes["request_id"] == str(draft.request_id)
