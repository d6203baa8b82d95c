"""The write tools' checks on the real schema: ownership, invariants, and the row lock."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg.rows import dict_row

from shared.principal import Principal, StaffLevel
from shared.testing import eventually
from shared.tools import ToolContext, ToolError, ToolInvariantError, default_registry

pytestmark = pytest.mark.integration

REGISTRY = default_registry()


@pytest.fixture
def tenant(database_url: str) -> str:
    name = f"g{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO tools.orders (tenant_id, order_id, customer_id, status, total, currency)"
            " VALUES (%s, 'HP-101', 'casey', 'delivered', 89.90, 'EUR'),"
            " (%s, 'HP-202', 'sam', 'delivered', 50.00, 'EUR')",
            (name, name),
        )
        conn.execute(
            "INSERT INTO tools.accounts (tenant_id, user_id, display_name) VALUES"
            " (%s, 'casey', 'Casey'), (%s, 'sam', 'Sam')",
            (name, name),
        )
    return name


def _refund(order: str, amount: str, currency: str = "EUR") -> dict[str, str]:
    return {"order_id": order, "amount": amount, "currency": currency, "reason": "broken"}


async def _run(
    conn: psycopg.AsyncConnection, principal: Principal, tool: str, args: dict[str, str]
) -> object:
    ctx = ToolContext(principal, conn, request_id="r", idempotency_key=f"test:{uuid.uuid4()}")
    return await REGISTRY.run(tool, args, ctx)


async def test_a_second_refund_waits_for_the_first_and_then_sees_it(
    database_url: str, tenant: str
) -> None:
    """80 then 45 EUR on an 89.90 EUR order, in two overlapping transactions: the second
    blocks on the order's row lock until the first commits, then is refused. Without the
    lock both would read "nothing refunded yet" and both would be paid."""
    casey = Principal(user_id="casey", tenant_id=tenant, roles=("customer",))
    async with (
        await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as first,
        await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as second,
    ):
        await _run(first, casey, "issue_refund", _refund("HP-101", "80.00"))  # open, uncommitted
        cur = await second.execute("SELECT pg_backend_pid() AS pid")
        second_pid = (await cur.fetchone() or {})["pid"]
        later = asyncio.create_task(_run(second, casey, "issue_refund", _refund("HP-101", "45.00")))

        async def second_waits_for_a_lock() -> bool:
            # Seen from a third connection: the second transaction is blocked on a lock the
            # first one holds (polled with a deadline, not a fixed sleep).
            async with await psycopg.AsyncConnection.connect(database_url) as watcher:
                cur = await watcher.execute(
                    "SELECT %s = ANY(pg_blocking_pids(%s)) AND true",
                    (first.info.backend_pid, second_pid),
                )
                row = await cur.fetchone()
                return bool(row and row[0])

        await eventually(second_waits_for_a_lock, timeout=10)
        assert not later.done(), "the second refund must wait for the order's lock"
        await first.commit()
        with pytest.raises(ToolInvariantError, match=r"already refunded 80\.00, left 9\.90"):
            await asyncio.wait_for(later, 10)
        await second.rollback()
        cur = await second.execute(
            "SELECT sum(amount) FROM tools.refunds WHERE tenant_id = %s", (tenant,)
        )
        assert (await cur.fetchone()) == {"sum": Decimal("80.00")}


@pytest.mark.parametrize(
    ("who", "tool", "args", "error"),
    [
        ("casey", "issue_refund", _refund("HP-202", "10.00"), "order HP-202 not found"),
        ("casey", "issue_refund", _refund("HP-101", "10.00", "GBP"), "paid in EUR"),
        ("casey", "issue_refund", _refund("HP-101", "89.91"), "exceeds what is left"),
        ("casey", "reset_password", {"user_id": "sam"}, "only act on their own account"),
        (
            "casey",
            "create_ticket",
            {"subject": "late", "description": "where", "order_id": "HP-202"},
            "order HP-202 not found",
        ),
        ("casey", "escalate", {"reason": "angry", "order_id": "HP-202"}, "order HP-202 not found"),
    ],
)
async def test_a_customer_cannot_act_outside_their_objects_or_the_invariants(
    database_url: str, tenant: str, who: str, tool: str, args: dict[str, str], error: str
) -> None:
    principal = Principal(user_id=who, tenant_id=tenant, roles=("customer",))
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        with pytest.raises(ToolError, match=error):
            await _run(conn, principal, tool, args)
        with pytest.raises(ToolError, match=error):  # the pre-flight says the same
            await REGISTRY.check(tool, args, ToolContext(principal, conn))


async def test_staff_act_within_their_tenant_only(database_url: str, tenant: str) -> None:
    lee = Principal(user_id="lee", tenant_id=tenant, roles=("support",), level=StaffLevel.L1)
    outsider = lee.model_copy(update={"tenant_id": "elsewhere"})
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        result = await _run(conn, lee, "issue_refund", _refund("HP-202", "10.00"))
        assert getattr(result, "created", False)
        await _run(conn, lee, "reset_password", {"user_id": "sam"})
        with pytest.raises(ToolError, match="not found"):
            await _run(conn, outsider, "issue_refund", _refund("HP-202", "10.00"))
        with pytest.raises(ToolError, match="not found"):
            await _run(conn, outsider, "reset_password", {"user_id": "sam"})
        await conn.rollback()
