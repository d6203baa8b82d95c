"""The production shape on one machine: nginx in front of three gateway replicas, the executor
as its own program, Redis of the stack's own; one replica SIGKILLed under load.

One ephemeral stack (random ports, its own supervisord, nginx and redis-server) for the module.
Clients behave as the README tells them to: each request carries an ``Idempotency-Key`` and
is retried with it on 502/503 or a broken connection, so a request cut off by the kill is
answered by another replica as the same request, never as a second one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import psutil
import psycopg
import pytest

from devstack import redis
from devstack.ports import free_port
from devstack.stack import LocalStack, StackConfig
from evals.reliability.load import Ask, LoadGenerator
from shared.auth import TokenService
from shared.settings import AuthSettings

pytestmark = pytest.mark.e2e

QUESTIONS = [
    "How many days do I have to return an item?",
    "How long does standard shipping take?",
    "Can I pick up my order in a store?",
    "How do I care for my tent after a trip?",
    "What does the warranty cover?",
    "How do gift cards work?",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[LocalStack]:
    from psycopg import conninfo

    config = StackConfig.ephemeral(
        tmp_path_factory.mktemp("edge"), gateways=3, nginx=True, private_redis=True
    )
    config.database_url = conninfo.make_conninfo(
        postgres_server, dbname=f"support_edge_{uuid.uuid4().hex[:8]}"
    )
    local = LocalStack(config)
    local.up(timeout=300)
    try:
        yield local
    finally:
        local.down()
        assert local.supervisor.orphans() == [], "down leaves nothing running"


def _token(user: str) -> str:
    token: str = TokenService(AuthSettings()).mint(
        user_id=user, tenant_id="harborpine", roles=["customer"], level="none", ttl_s=3600
    )
    return token


def test_the_shape_runs_supervised(stack: LocalStack) -> None:
    programs = stack.programs()
    for name in ("gateway-1", "gateway-2", "gateway-3", "executor", "nginx", "redis"):
        assert programs[name].state == "RUNNING", name
    assert stack.state.own_redis and redis.answers(stack.state.redis_url)
    assert stack.env()["REDIS_URL"] == stack.state.redis_url
    assert httpx.get(f"{stack.edge_url}/nginx-health", timeout=5).text == "ok\n"
    assert httpx.get(f"{stack.edge_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{stack.approver_edge_url}/healthz", timeout=5).status_code == 200
    # /mcp reaches the agent's MCP server, which wants a token (401, not nginx's 404).
    mcp = httpx.post(f"{stack.edge_url}/mcp", json={}, timeout=5)
    assert mcp.status_code == 401, mcp.text


def test_nginx_refuses_a_body_over_the_limit_before_any_gateway(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.edge_url}/v1/chat",
        content=b"x" * (65 * 1024),
        headers={"Authorization": f"Bearer {_token('big.body')}"},
        timeout=10,
    )
    assert response.status_code == 413
    assert "nginx" in response.text  # answered by the edge, not by a replica


def test_redis_answers_only_where_a_server_listens() -> None:
    assert not redis.answers(f"redis://127.0.0.1:{free_port()}/0")
    assert not redis.answers("http://127.0.0.1:6379")


async def test_every_request_ends_while_a_gateway_replica_is_killed(stack: LocalStack) -> None:
    load = LoadGenerator([stack.edge_url], wait_s=10.0, submit_deadline_s=90.0)
    tokens = [_token(f"edge-{i}") for i in range(10)]

    def ask(i: int) -> Ask:
        return Ask(tokens[i % len(tokens)], f"{QUESTIONS[i % len(QUESTIONS)]} ({i})")

    restarts = stack.restarts("gateway-2")
    killed_pid: list[int] = []

    async def kill_soon() -> None:
        # With the agent stopped no saga settles, so every POST (?wait=10) is held open on
        # its replica: the kill cuts the ones gateway-2 holds, after nginx has sent them, and
        # nginx does not resend a POST. Those clients see 502 and retry with their key.
        stack.stop("agent")
        await asyncio.sleep(3.0)
        killed_pid.append(stack.kill("gateway-2"))
        await asyncio.sleep(2.0)
        stack.start("agent")

    try:
        killer = asyncio.create_task(kill_soon())
        outcomes = await load.run(ask, rate=4.0, duration_s=12.0, phase="kill")
        await killer
        await load.settle(outcomes, deadline_s=120.0)
    finally:
        await load.close()

    assert len(outcomes) >= 40
    not_ended = [(o.key, o.status, o.errors) for o in outcomes if not o.terminal]
    assert not not_ended, f"requests without an end: {not_ended}"
    assert all(o.accepted for o in outcomes)

    # The replica came back by itself, and the kill happened while the load ran.
    stack.wait_running("gateway-2", new_pid_than=killed_pid[0], timeout=60)
    assert stack.restarts("gateway-2") == restarts + 1

    # Each key is one request, however many attempts it took.
    keys = [o.key for o in outcomes]
    with psycopg.connect(stack.state.database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, count(DISTINCT request_id) FROM gateway.requests"
            " WHERE idempotency_key = ANY(%s) GROUP BY idempotency_key",
            (keys,),
        ).fetchall()
    assert len(rows) == len(keys)
    assert all(count == 1 for _, count in rows), "a retried key became a second request"

    # nginx spread the load over the three replicas (its access log names each upstream).
    log = (stack.config.state_dir / "nginx" / "access.log").read_text()
    for port in stack.config.gateway_ports():
        assert f"upstream=127.0.0.1:{port}" in log, f"no request reached 127.0.0.1:{port}"
    retried = [o for o in outcomes if o.attempts > 1]
    assert retried, "the kill cut no request in flight: nothing was tested"
    # What a cut request looks like through nginx: a 502 (or the connection itself failing).
    assert all(set(o.errors) <= {"502", "503", "RemoteProtocolError", "ReadError"} for o in retried)
    print(
        f"\n{len(outcomes)} requests through nginx, {len(retried)} cut by the kill and retried"
        f" with their key ({sorted({e for o in retried for e in o.errors})}), all ended"
    )


def test_the_executor_runs_apart_from_the_approver_api(stack: LocalStack) -> None:
    """The approver API runs with APPROVER_BACKGROUND=false; the executor program is the
    approver's worker entry point, and comes back by itself when it dies."""
    approver = psutil.Process(stack.pid("approver"))
    assert approver.environ().get("APPROVER_BACKGROUND") == "false"
    before = stack.pid("executor")
    assert psutil.Process(before).cmdline()[-2:] == ["-m", "approver.worker"]
    assert "APPROVER_BACKGROUND" not in psutil.Process(before).environ()
    stack.kill("executor")
    assert stack.wait_running("executor", new_pid_than=before, timeout=60) != before
    assert stack.pid("approver") == approver.pid, "the API was left alone"
    assert httpx.get(f"{stack.url('approver')}/healthz", timeout=5).status_code == 200


async def test_an_approved_refund_is_executed_by_the_executor_program(stack: LocalStack) -> None:
    """Asked through nginx, approved through nginx's approver port, executed by the executor
    program: the approver API itself runs no executor (APPROVER_BACKGROUND=false)."""
    customer = {"Authorization": f"Bearer {_token('casey.customer')}"}
    approver = {
        "Authorization": "Bearer "
        + TokenService(AuthSettings()).mint(
            user_id="lee.l1", tenant_id="harborpine", roles=["support"], level="L1", ttl_s=600
        )
    }
    async with httpx.AsyncClient(timeout=30) as client:
        asked = await client.post(
            f"{stack.edge_url}/v1/chat",
            params={"wait": 20},
            json={"message": "Please refund 1 EUR on my order HP-10024, the parcel was late."},
            headers={**customer, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert asked.status_code == 200, asked.text
        assert asked.json()["status"] == "pending_approval", asked.json()
        request_id = asked.json()["request_id"]

        page = await client.get(
            f"{stack.approver_edge_url}/v1/approvals",
            params={"actionable": "true"},
            headers=approver,
        )
        [item] = [i for i in page.json()["items"] if i.get("request_id") == request_id]
        decided = await client.post(
            f"{stack.approver_edge_url}/v1/approvals/{item['draft_id']}/approve",
            json={"reason": "edge test"},
            headers=approver,
        )
        assert decided.status_code == 200, decided.text

        deadline = asyncio.get_running_loop().time() + 60
        status = ""
        while status != "executed":
            assert asyncio.get_running_loop().time() < deadline, f"still {status}"
            await asyncio.sleep(0.5)
            view = await client.get(f"{stack.edge_url}/v1/requests/{request_id}", headers=customer)
            status = view.json()["status"]
    with psycopg.connect(stack.state.database_url) as conn:
        [(count,)] = conn.execute(
            "SELECT count(*) FROM tools.refunds WHERE request_id = %s", (request_id,)
        ).fetchall()
    assert count == 1, "one effect for the approved action"
