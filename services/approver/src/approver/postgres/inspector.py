"""What an action touches, read from the tools' records; and whether it may run.

For every approval the inbox and the API show the business object behind the action: an
order's owner, total, currency and state, what was already refunded on it and what other
standing requests (pending or approved, not yet executed) ask for; for a password reset the
target account and whether it is the requester's own. Beside that, ``problem``: what the
executor's check would say if the action ran now, with the requester's identity (a refund on
someone else's order, above what is left, in another currency). Intake uses the same
inspection to reject an action that could never run, before anyone is asked to approve it.

The authoritative check stays in the executor's transaction, with the object locked
(:mod:`shared.tools.guards`); this is the same rule read without locks, so what approvers see
can be a moment old, never a different rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from shared.db import Pool
from shared.principal import Principal
from shared.tools import ToolContext, ToolError, ToolRegistry
from shared.tools.guards import AccountFacts, OrderFacts
from shared.tools.postgres import account_facts, order_facts

from ..domain import ActionContext, Subject

__all__ = ["PostgresActionInspector"]


class PostgresActionInspector:
    """Reads the tools' system of record and the approvals table on one read-only connection."""

    def __init__(self, pool: Pool, registry: ToolRegistry) -> None:
        self._pool = pool
        self._registry = registry

    async def inspect(self, subjects: Sequence[Subject]) -> list[ActionContext]:
        if not subjects:
            return []
        async with self._pool.connection() as conn:
            await conn.execute("SET TRANSACTION READ ONLY")
            contexts = [await self._one(conn, s) for s in subjects]
            await conn.rollback()
        return contexts

    async def _one(self, conn: AsyncConnection[Any], subject: Subject) -> ActionContext:
        ctx = ToolContext(principal=subject.principal, conn=conn)
        facts: dict[str, Any] = {}
        order_id = subject.arguments.get("order_id")
        user_id = subject.arguments.get("user_id")
        if isinstance(order_id, str):
            facts = _order_view(await order_facts(ctx, order_id), order_id, subject.principal)
            if subject.tool == "issue_refund":
                facts.update(await _standing_refunds(conn, subject, order_id))
        elif isinstance(user_id, str):
            facts = _account_view(await account_facts(ctx, user_id), user_id, subject.principal)
        problem: ToolError | None = None
        try:
            await self._registry.check(subject.tool, dict(subject.arguments), ctx)
        except ToolError as exc:
            problem = exc
        except TimeoutError:
            problem = ToolError("the check timed out")
        return ActionContext(
            **facts,
            problem=str(problem) if problem else None,
            problem_code=problem.code if problem else None,
        )


def _order_view(order: OrderFacts | None, order_id: str, requester: Principal) -> dict[str, Any]:
    if order is None:
        return {"object_type": "order", "object_id": order_id.upper()}
    return {
        "object_type": "order",
        "object_id": order.order_id,
        "owner_id": order.customer_id,
        "owned_by_requester": order.customer_id == requester.user_id,
        "object_status": order.status,
        "total": order.total,
        "currency": order.currency,
        "refunded": order.refunded,
        "refundable": order.refundable,
    }


def _account_view(
    account: AccountFacts | None, user_id: str, requester: Principal
) -> dict[str, Any]:
    return {
        "object_type": "account",
        "object_id": user_id,
        "owner_id": user_id if account else None,
        "owned_by_requester": user_id == requester.user_id,
        "object_status": account.status if account else None,
    }


async def _standing_refunds(
    conn: AsyncConnection[Any], subject: Subject, order_id: str
) -> dict[str, Any]:
    """Other pending or approved (not yet executed) refund requests on the same order."""
    cur = await conn.execute(
        "SELECT count(*) AS n,"
        " coalesce(sum((arguments ->> 'amount')::numeric), 0)::numeric(12, 2) AS total"
        " FROM approvals.drafts WHERE tenant_id = %s AND tool = 'issue_refund'"
        " AND upper(arguments ->> 'order_id') = %s AND status IN ('pending', 'approved')"
        " AND draft_event_id IS DISTINCT FROM %s",
        (subject.principal.tenant_id, order_id.upper(), subject.draft_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return {"requested": Decimal(row["total"]), "requested_count": row["n"]}
