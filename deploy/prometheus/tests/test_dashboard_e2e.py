"""End to end: a real Prometheus scrapes a throw-away stack, and every dashboard panel has data.

The stack runs its Prometheus program (Debian's ``prometheus``, on a free port, scraping every
2 programs' ``/metrics`` each second, the alert rules loaded). The demo requests go through in
two rounds, with a scrape of every target in between: a histogram's series appears with its
first observation, so ``histogram_quantile`` over ``rate`` has a value only once a later
observation raised the counts that an earlier scrape saw. Both rounds also drive the events
that only some requests cause: a refund approved by a person (executions, decisions, the
executor's write tool), one left pending (the approval queue) and a poison message (a dead letter). Fallbacks and tool failures are
not driven; their panels answer 0 when nothing happened (``or on() vector(0)``).

Then every panel's queries are evaluated, with Grafana's variables replaced, until each has
returned a finite value once, or the deadline passes; the failure names every query that never
did, and every target Prometheus could not scrape, at once.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.demo import QUESTIONS
from devstack.prometheus import alert_names, dashboard_queries
from devstack.stack import LocalStack, StackConfig
from shared.auth import TokenService
from shared.settings import AuthSettings
from shared.testing import eventually

pytestmark = pytest.mark.e2e

#: Grafana's $__rate_interval for a 1 s scrape is a few seconds; a minute keeps the second
#: round's increase inside the window for the whole polling below.
RATE_WINDOW = "1m"
PANELS_DEADLINE_S = 90.0

#: (user, roles, level, message, approve the action it drafts). The second round asks other
#: questions (the first round's answers are cached now), repeats one (an answer cache hit),
#: requests another refund that is approved, and one left pending (the approval queue).
Ask = tuple[str, list[str], str, str, bool]
SECOND_ROUND: list[Ask] = [
    ("casey.customer", ["customer"], "none", "Can I return a gift card?", False),
    ("casey.customer", ["customer"], "none", "How many days do I have to return an item?", False),
    ("lee.l1", ["support"], "L1", "How do I escalate an abusive customer?", False),
    (
        "casey.customer",
        ["customer"],
        "none",
        "Please refund 1 EUR on my order HP-10024, the parcel was late.",
        True,
    ),
    (
        "casey.customer",
        ["customer"],
        "none",
        "Please refund 1 EUR on my order HP-10023, the box was dented.",
        False,
    ),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[LocalStack]:
    from psycopg import conninfo

    config = StackConfig.ephemeral(
        tmp_path_factory.mktemp("stack"), prometheus=True, prometheus_scrape_interval_s=1.0
    )
    config.database_url = conninfo.make_conninfo(
        postgres_server, dbname=f"support_e2e_{uuid.uuid4().hex[:8]}"
    )
    local = LocalStack(config)
    local.up(timeout=240)
    try:
        yield local
    finally:
        local.down()


@pytest.fixture
async def prometheus(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.prometheus_url, timeout=10) as client:
        yield client


def _token(user: str, roles: list[str], level: str) -> dict[str, str]:
    token = TokenService(AuthSettings()).mint(
        user_id=user, tenant_id="harborpine", roles=roles, level=level
    )
    return {"Authorization": f"Bearer {token}"}


async def _query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/query", params={"query": expr})
    assert response.status_code == 200, f"{expr}: {response.text}"
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


#: Panels on events this test drives answer 0 when nothing happened; here the real series must
#: be there (a labelled sample, not the bare ``vector(0)``).
DRIVEN = {"Dead letters, by topic and reason": "topic", "Pending approvals, by action": "action"}


def _has_data(panel: str, result: list[dict[str, Any]]) -> bool:
    label = DRIVEN.get(panel)
    return any(
        math.isfinite(float(sample["value"][1])) and (label is None or label in sample["metric"])
        for sample in result
    )


async def _round(stack: LocalStack, asks: list[Ask]) -> None:
    """Ask each question; approve the actions to approve as an L2 agent, wait until executed."""
    approver_headers = _token("kim.l2", ["support"], "L2")
    async with (
        httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30) as gateway,
        httpx.AsyncClient(base_url=stack.url("approver"), timeout=30) as approver,
    ):
        for user, roles, level, message, approve in asks:
            headers = _token(user, roles, level)
            response = await gateway.post(
                "/v1/chat", params={"wait": 20}, json={"message": message}, headers=headers
            )
            assert response.status_code in (200, 202), response.text
            body = response.json()
            if body["status"] != "pending_approval" or not approve:
                continue
            request_id = body["request_id"]
            page = await approver.get(
                "/v1/approvals", params={"request_id": request_id}, headers=approver_headers
            )
            assert page.status_code == 200, page.text
            (item,) = page.json()["items"]
            approved = await approver.post(
                f"/v1/approvals/{item['draft_id']}/approve",
                json={"reason": "dashboard end-to-end test"},
                headers=approver_headers,
            )
            assert approved.status_code == 200, approved.text

            async def settled(
                request_id: str = request_id, headers: dict[str, str] = headers
            ) -> str | None:
                status = (await gateway.get(f"/v1/requests/{request_id}", headers=headers)).json()
                return status["status"] if status["status"] in ("executed", "failed") else None

            assert await eventually(settled, timeout=30) == "executed"


async def _poison(stack: LocalStack) -> None:
    """A message the retriever cannot decode: dead-lettered to request.dlq, counted."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        topic = f"{stack.config.topic_prefix}request"
        await producer.send_and_wait(topic, b"{not json", key=uuid.uuid4().hex.encode())
    finally:
        await producer.stop()


async def _scraped_after(client: httpx.AsyncClient, moment: float) -> None:
    """Wait until Prometheus has scraped every target since ``moment`` (Unix time)."""

    async def all_scraped() -> bool:
        oldest = await _query(client, "min(timestamp(up))")
        return bool(oldest) and float(oldest[0]["value"][1]) > moment

    await eventually(all_scraped, timeout=30, every=0.25)


async def test_every_dashboard_panel_returns_data_from_a_real_prometheus(
    stack: LocalStack, prometheus: httpx.AsyncClient
) -> None:
    # Prometheus is up, has the alert rules, and scrapes the stack.
    rules = (await prometheus.get("/api/v1/rules")).json()["data"]["groups"]
    loaded = {rule["name"] for group in rules for rule in group["rules"]}
    assert alert_names() <= loaded

    first = [(user, roles, level, question, True) for _, user, roles, level, question in QUESTIONS]
    await _round(stack, first)
    await _poison(stack)
    await _scraped_after(prometheus, time.time())
    await _round(stack, SECOND_ROUND)
    await _poison(stack)
    await _scraped_after(prometheus, time.time())

    queries = [(q.panel, q.promql(rate_interval=RATE_WINDOW)) for q in dashboard_queries()]
    missing = dict.fromkeys(queries)
    deadline = asyncio.get_running_loop().time() + PANELS_DEADLINE_S
    while missing and asyncio.get_running_loop().time() < deadline:
        for key in list(missing):
            if _has_data(key[0], await _query(prometheus, key[1])):
                del missing[key]
        if missing:
            await asyncio.sleep(1.0)

    targets = (await prometheus.get("/api/v1/targets")).json()["data"]["activeTargets"]
    down = [
        f"{t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
        for t in targets
        if t["health"] != "up"
    ]
    report = [f"  {panel}: {expr}" for panel, expr in missing]
    assert not missing and not down, (
        f"{len(missing)} of {len(queries)} panel queries returned no data"
        f" within {PANELS_DEADLINE_S:.0f}s:\n"
        + "\n".join(report)
        + ("\ntargets not scraped:\n  " + "\n  ".join(down) if down else "")
    )
