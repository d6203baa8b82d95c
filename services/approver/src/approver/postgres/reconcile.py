"""Reconciliation of effects against approvals: what the executor's guarantees promise, checked.

Each rule is a query over the approvals and the tools' system of record; a violation is a
sentence naming the approval or order. Nothing here changes anything. Used by the property
test (random concurrent workflows), by ``make reliability`` after its faults, and by an
operator (``python -m approver.postgres.reconcile``) after an incident:

- every approved action ended: nothing stays ``approved`` (``--settle`` waits for that);
- an ``executed`` action has exactly one effect under its idempotency key, in its tenant,
  on an object its requester owns (customers) -- and no other action has any effect;
- a ``failed`` action says why;
- no order is refunded beyond its total, in another currency, or while not refundable.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from psycopg import AsyncConnection

from shared.db import open_pool
from shared.settings import DatabaseSettings
from shared.tools.guards import REFUNDABLE_ORDER_STATUSES

__all__ = ["effect_violations"]

#: Each effect table, with how to find the customer who owns the object it touched.
_EFFECTS = {
    "refunds": "(SELECT customer_id FROM tools.orders o WHERE o.tenant_id = e.tenant_id"
    " AND o.order_id = e.order_id)",
    "password_resets": "e.user_id",
    "tickets": "coalesce((SELECT customer_id FROM tools.orders o WHERE o.tenant_id = e.tenant_id"
    " AND o.order_id = e.order_id), e.customer_id)",
    "escalations": "(SELECT customer_id FROM tools.orders o WHERE o.tenant_id = e.tenant_id"
    " AND o.order_id = e.order_id)",
}


async def effect_violations(conn: AsyncConnection[Any], *, tenant: str | None = None) -> list[str]:
    """Every broken promise about effects, in ``tenant`` or everywhere."""
    problems = await _order_violations(conn, tenant)
    cur = await conn.execute(
        "SELECT draft_event_id, tenant_id, requester_id, tool, status, execution, arguments,"
        " draft -> 'request' -> 'principal' ->> 'level' AS level"
        " FROM approvals.drafts WHERE %(tenant)s::text IS NULL OR tenant_id = %(tenant)s",
        {"tenant": tenant},
    )
    approvals = {f"approval:{r['draft_event_id']}": r for r in await cur.fetchall()}
    effects = await _effects_by_key(conn, tenant)
    for key, found in effects.items():
        problems.extend(_effect_problems(key, found, approvals.get(key)))
    for key, approval in approvals.items():
        problems.extend(_approval_problems(key, approval, has_effect=key in effects))
    return problems


async def _order_violations(conn: AsyncConnection[Any], tenant: str | None) -> list[str]:
    """Orders refunded beyond their total, in another currency, or in a state that forbids it."""
    cur = await conn.execute(
        "SELECT o.tenant_id, o.order_id, o.status, o.total, o.currency,"
        " coalesce(sum(r.amount), 0) AS refunded,"
        " count(r.*) FILTER (WHERE r.currency <> o.currency) AS wrong_currency,"
        " count(r.*) AS refunds"
        " FROM tools.orders o LEFT JOIN tools.refunds r"
        " ON r.tenant_id = o.tenant_id AND r.order_id = o.order_id"
        " WHERE %(tenant)s::text IS NULL OR o.tenant_id = %(tenant)s"
        " GROUP BY o.tenant_id, o.order_id, o.status, o.total, o.currency",
        {"tenant": tenant},
    )
    problems: list[str] = []
    for row in await cur.fetchall():
        where = f"order {row['tenant_id']}/{row['order_id']}"
        if row["refunded"] > row["total"]:
            problems.append(f"{where} refunded {row['refunded']} of a {row['total']} total")
        if row["wrong_currency"]:
            problems.append(f"{where} has {row['wrong_currency']} refund(s) in another currency")
        if row["refunds"] and row["status"] not in REFUNDABLE_ORDER_STATUSES:
            problems.append(f"{where} is {row['status']} and was refunded")
    return problems


async def _effects_by_key(
    conn: AsyncConnection[Any], tenant: str | None
) -> dict[str, list[dict[str, Any]]]:
    """Every effect row of every tool table, by the idempotency key that made it."""
    effects: dict[str, list[dict[str, Any]]] = {}
    for table, owner in _EFFECTS.items():
        cur = await conn.execute(
            f"SELECT e.idempotency_key, e.tenant_id, e.effect_id, {owner} AS owner"  # noqa: S608 - fixed text
            f" FROM tools.{table} e"
            " WHERE %(tenant)s::text IS NULL OR e.tenant_id = %(tenant)s",
            {"tenant": tenant},
        )
        for row in await cur.fetchall():
            effects.setdefault(row["idempotency_key"], []).append({**row, "table": table})
    return effects


def _effect_problems(
    key: str, found: list[dict[str, Any]], approval: dict[str, Any] | None
) -> list[str]:
    """An effect without its approval, twice, before execution, or on someone else's object."""
    if approval is None:
        if key.startswith("approval:"):
            return [f"effect {found[0]['effect_id']} has no approval ({key})"]
        return []
    problems: list[str] = []
    if len(found) > 1:
        problems.append(f"{key} has {len(found)} effects")
    if approval["status"] != "executed":
        problems.append(f"{key} is {approval['status']} but has an effect")
    customer = approval["level"] in (None, "none")
    for effect in found:
        if effect["tenant_id"] != approval["tenant_id"]:
            problems.append(f"{key}: effect in tenant {effect['tenant_id']}")
        if customer and effect["owner"] not in (None, approval["requester_id"]):
            problems.append(
                f"{key}: {approval['tool']} by {approval['requester_id']} landed on an"
                f" object of {effect['owner']}"
            )
    return problems


def _approval_problems(key: str, approval: dict[str, Any], *, has_effect: bool) -> list[str]:
    """An approval left approved, executed without an effect, or failed without a reason."""
    problems: list[str] = []
    if approval["status"] == "approved":
        problems.append(f"{key} is still approved: not executed")
    if approval["status"] == "executed" and not has_effect and _in_schema(approval):
        problems.append(f"{key} is executed but has no effect")
    if approval["status"] == "failed" and not (approval["execution"] or {}).get("detail"):
        problems.append(f"{key} failed without a reason")
    return problems


def _in_schema(approval: dict[str, Any]) -> bool:
    """Whether the action's tool keeps its effects in the ``tools`` schema (the defaults)."""
    return str(approval["tool"]) in {"issue_refund", "reset_password", "create_ticket", "escalate"}


async def _main(tenant: str | None) -> int:
    pool = await open_pool(DatabaseSettings(), name="approver-reconcile")
    try:
        async with pool.connection() as conn:
            problems = await effect_violations(conn, tenant=tenant)
    finally:
        await pool.close()
    for problem in problems:
        print(f"VIOLATION {problem}")
    print(f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    # python -m approver.postgres.reconcile [tenant]   (DATABASE_URL); exit 1 on any violation
    sys.exit(asyncio.run(_main(sys.argv[1] if len(sys.argv) > 1 else None)))
