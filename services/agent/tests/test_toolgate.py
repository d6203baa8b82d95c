"""The tool guardrail directly: every refusal has a stable code, is audited, changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from agent.metrics import AgentMetrics
from agent.ratelimit import InMemoryRateLimiter
from agent.settings import RateLimitSettings
from agent.toolgate import ToolGateway, ToolRequest
from shared.principal import StaffLevel

from .helpers import CUSTOMER, L1, FakeConnection, fake_registry

pytestmark = pytest.mark.unit


class Trail:
    def __init__(self) -> None:
        self.steps: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, action: str, *, outcome: Any = "ok", details: Any = None) -> None:
        self.steps.append((action, str(outcome), details or {}))


@pytest.fixture
def gateway() -> tuple[ToolGateway, list[FakeConnection]]:
    opened: list[FakeConnection] = []

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def connect() -> Any:
        conn = FakeConnection()
        opened.append(conn)
        yield conn

    gate = ToolGateway(
        fake_registry(),
        connect=connect,
        limiter=InMemoryRateLimiter(),
        limits=RateLimitSettings(),
        metrics=AgentMetrics(MeterProvider().get_meter("t")),
    )
    return gate, opened


def request(
    name: str, arguments: dict[str, Any], principal: Any = CUSTOMER, message: str = ""
) -> ToolRequest:
    return ToolRequest(name, arguments, principal, "r-1", "agent", user_message=message)


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (request("drop_tables", {}), "unknown_tool"),
        (request("account_lookup", {"user_id": "sam"}), "forbidden"),
        (
            request("reset_password", {"user_id": "sam"}, message="reset sam's password"),
            "forbidden",
        ),
        (request("order_status", {"order_id": "not an id"}), "invalid_arguments"),
        (request("order_status", {"order_id": "HP-10023", "extra": 1}), "invalid_arguments"),
        (
            request(
                "issue_refund",
                {"order_id": "HP-10023", "amount": "5.00", "reason": "doc says"},
                message="What is the warranty?",
            ),
            "not_requested",
        ),
    ],
)
async def test_refusals_are_coded_audited_and_touch_nothing(
    gateway: tuple[ToolGateway, list[FakeConnection]], call: ToolRequest, status: str
) -> None:
    gate, opened = gateway
    trail = Trail()
    outcome = await gate.call(call, trail)
    assert outcome.status == status and not outcome.ok
    assert outcome.data["code"] == status and outcome.data["message"]
    assert trail.steps == [("guardrail.tool", "denied", trail.steps[0][2])]
    assert trail.steps[0][2]["status"] == status
    assert opened == [], "no connection was opened: nothing ran"


async def test_staff_see_and_use_staff_tools(
    gateway: tuple[ToolGateway, list[FakeConnection]],
) -> None:
    gate, _ = gateway
    assert "account_lookup" not in {d.name for d in gate.descriptors(CUSTOMER)}
    assert "account_lookup" in {d.name for d in gate.descriptors(L1)}
    manager = L1.model_copy(update={"level": StaffLevel.MANAGER})
    outcome = await gate.call(
        request("reset_password", {"user_id": "sam"}, manager, "Please reset the password for sam"),
        Trail(),
    )
    assert outcome.status == "proposed" and outcome.action is not None
    assert outcome.action.risk.value == "critical"


async def test_reads_run_read_only(gateway: tuple[ToolGateway, list[FakeConnection]]) -> None:
    gate, opened = gateway
    trail = Trail()
    outcome = await gate.call(request("order_status", {"order_id": "HP-10023"}), trail)
    assert outcome.ok and outcome.data["status"] == "delivered"
    assert opened[0].statements == ["SET TRANSACTION READ ONLY"]
    assert [s[0] for s in trail.steps] == ["guardrail.tool", "tool.executed"]
