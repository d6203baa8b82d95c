"""The tool registry over MCP: a real MCP client over HTTP, bearer tokens, real PostgreSQL
and broker. Same guardrails and audit as the agent loop; writes become drafts, not effects."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agent.app import build_agent
from agent.settings import AgentSettings, RateLimitSettings
from devstack.pytest_plugin import TopicProbe
from shared.auth import TokenService
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings

from .fake_openai import serve

pytestmark = pytest.mark.integration

TOKENS = TokenService(AuthSettings())


@pytest.fixture
async def agent_url(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> AsyncIterator[str]:
    async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
        await conn.execute(
            "INSERT INTO tools.orders (tenant_id, order_id, customer_id, status, total, currency)"
            " VALUES ('harborpine', 'HP-77001', 'casey', 'shipped', 120.00, 'EUR')"
            " ON CONFLICT DO NOTHING"
        )
        await conn.commit()
    settings = AgentSettings(
        kafka=kafka_settings,
        database=database_settings,
        rate_limit=RateLimitSettings(read_burst=5, read_per_minute=1),
    )
    async with serve(build_agent(settings).http_app()) as url:
        yield url


def token(user: str = "casey", level: str = "none", tenant: str = "harborpine") -> str:
    return TOKENS.mint(user_id=user, tenant_id=tenant, roles=["customer"], level=level)


async def _session(url: str, bearer: str) -> Any:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http))


async def test_a_client_lists_and_calls_tools_under_the_callers_rules(
    agent_url: str, probe: TopicProbe, database_settings: DatabaseSettings
) -> None:
    async with await _session(agent_url, token()) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert "order_status" in listed and "issue_refund" in listed
        assert "account_lookup" not in listed, "a customer is not shown staff tools"

        read = await client.call_tool("order_status", {"order_id": "HP-77001"})
        assert not read.is_error
        assert read.structured_content["status"] == "ok"
        assert read.structured_content["result"]["status"] == "shipped"

        write = await client.call_tool(
            "issue_refund",
            {"order_id": "HP-77001", "amount": "20.00", "currency": "EUR", "reason": "scratched"},
        )
        assert not write.is_error
        assert write.structured_content["status"] == "proposed"
        assert write.structured_content["result"] == {"approval": "pending"}
        request_id = write.structured_content["request_id"]

        bad = await client.call_tool("issue_refund", {"order_id": "HP-77001", "amount": "-5"})
        assert bad.is_error and bad.structured_content["status"] == "invalid_arguments"
        unknown = await client.call_tool("drop_tables", {})
        assert unknown.is_error and unknown.structured_content["status"] == "unknown_tool"
        forbidden = await client.call_tool("account_lookup", {"user_id": "sam"})
        assert forbidden.is_error and forbidden.structured_content["status"] == "forbidden"

    drafts = await probe.wait_for(
        lambda m: m["topic"].endswith("draft") and m["headers"].get("request_id") == request_id
    )
    body = drafts[0]["body"]
    assert body["kind"] == "action" and body["action"]["tool"] == "issue_refund"
    assert body["request"]["channel"] == "mcp"
    async with await psycopg.AsyncConnection.connect(database_settings.dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM tools.refunds WHERE order_id = 'HP-77001'")
        assert (await cur.fetchone())[0] == 0, "a write over MCP is a draft, never an effect"
    audited = await probe.wait_for(
        lambda m: (
            m["topic"].endswith("audit")
            and m["body"]["action"] == "guardrail.tool"
            and m["body"]["outcome"] == "denied"
            and m["body"]["details"]["status"] == "unknown_tool"
        )
    )
    assert audited[0]["body"]["actor"] == "casey"


async def test_requests_without_a_valid_token_are_refused(agent_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(base_url=agent_url) as http:
        missing = await http.post("/mcp", json=body)
        forged = await http.post("/mcp", json=body, headers={"Authorization": "Bearer not.a.token"})
        health = await http.get("/healthz")
    assert missing.status_code == 401 and forged.status_code == 401
    assert health.status_code == 200, "the service's own routes still answer"


async def test_read_calls_are_rate_limited_per_tenant_across_clients(agent_url: str) -> None:
    statuses = []
    tenant = f"t{uuid.uuid4().hex[:6]}"
    for user in ("a", "b", "c"):  # three clients of one tenant share one bucket
        async with await _session(agent_url, token(user=user, tenant=tenant)) as client:
            for _ in range(2):
                result = await client.call_tool("order_status", {"order_id": "HP-77001"})
                statuses.append(result.structured_content["status"])
    assert statuses.count("rate_limited") == 1, statuses
    assert statuses[-1] == "rate_limited"
