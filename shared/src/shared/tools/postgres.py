"""Default tool implementations over the platform's own system of record (schema ``tools``).

Reads are scoped to the caller's tenant, and customers see only their own orders, tickets
and account. Every write tool has a pre-flight ``check_*`` (who may act on the object, and
whether its state allows the effect; see :mod:`shared.tools.guards`), run when the action is
drafted and shown to approvers; the write itself locks the object's row and checks again in
the executor's transaction before it inserts the effect under a unique idempotency key, so
executing the same approved action twice finds the first effect instead of making a second.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Literal

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import RiskLevel
from shared.principal import StaffLevel

from .guards import (
    AccountFacts,
    GuardError,
    OrderFacts,
    account_problem,
    as_tool_error,
    is_staff,
    order_access_problem,
    refund_problem,
)
from .registry import (
    RetryPolicy,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolResult,
    ToolSpec,
)

__all__ = ["account_facts", "default_registry", "order_facts"]

_ORDER_ID = r"^[A-Z]{2,4}-?\d{3,12}$"
_READ_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.05, max_backoff_s=0.5)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class OrderStatusArgs(_Args):
    order_id: str = Field(pattern=_ORDER_ID, description="Order number, e.g. HP-10023.")


class TicketStatusArgs(_Args):
    ticket_id: str = Field(min_length=3, max_length=40, description="Ticket id, e.g. T-1042.")


class AccountLookupArgs(_Args):
    user_id: str = Field(min_length=1, max_length=128, description="Customer's user id.")


class CreateTicketArgs(_Args):
    subject: str = Field(min_length=3, max_length=200)
    description: str = Field(min_length=3, max_length=4000)
    order_id: str | None = Field(default=None, pattern=_ORDER_ID)
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"


class IssueRefundArgs(_Args):
    order_id: str = Field(pattern=_ORDER_ID)
    amount: Decimal = Field(gt=0, le=Decimal("100000"), decimal_places=2)
    currency: Literal["EUR", "USD", "GBP"] = "EUR"
    reason: str = Field(min_length=3, max_length=1000)


class ResetPasswordArgs(_Args):
    user_id: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="requested by the account holder", max_length=1000)


class EscalateArgs(_Args):
    reason: str = Field(min_length=3, max_length=1000)
    order_id: str | None = Field(default=None, pattern=_ORDER_ID)


async def _one(ctx: ToolContext, query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    cur = await ctx.conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        return None
    return dict(row) if not isinstance(row, dict) else row


# ----------------------------------------------------------------------------- read tools
async def order_status(ctx: ToolContext, args: OrderStatusArgs) -> ToolResult:
    row = await _one(
        ctx,
        "SELECT order_id, customer_id, status, total, currency, placed_at, items FROM tools.orders"
        " WHERE tenant_id = %s AND order_id = %s",
        (ctx.principal.tenant_id, args.order_id.upper()),
    )
    if row is None or (not is_staff(ctx.principal) and row["customer_id"] != ctx.principal.user_id):
        raise ToolError(f"order {args.order_id} not found")  # same answer: no id oracle
    return ToolResult(
        {
            "order_id": row["order_id"],
            "status": row["status"],
            "total": str(row["total"]),
            "currency": row["currency"],
            "placed_at": row["placed_at"].isoformat(),
            "items": row["items"],
        }
    )


async def ticket_status(ctx: ToolContext, args: TicketStatusArgs) -> ToolResult:
    row = await _one(
        ctx,
        "SELECT effect_id AS ticket_id, customer_id, subject, status, priority, created_at"
        " FROM tools.tickets WHERE tenant_id = %s AND effect_id = %s",
        (ctx.principal.tenant_id, args.ticket_id),
    )
    if row is None or (not is_staff(ctx.principal) and row["customer_id"] != ctx.principal.user_id):
        raise ToolError(f"ticket {args.ticket_id} not found")
    return ToolResult(
        {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in row.items()
            if k != "customer_id"
        }
    )


async def account_lookup(ctx: ToolContext, args: AccountLookupArgs) -> ToolResult:
    row = await _one(
        ctx,
        "SELECT user_id, display_name, status, tier, created_at FROM tools.accounts"
        " WHERE tenant_id = %s AND user_id = %s",
        (ctx.principal.tenant_id, args.user_id),
    )
    if row is None:
        raise ToolError(f"account {args.user_id} not found")
    # E-mail and phone stay in the system of record: the agent never needs them.
    return ToolResult(
        {
            "user_id": row["user_id"],
            "display_name": row["display_name"],
            "status": row["status"],
            "tier": row["tier"],
            "created_at": row["created_at"].isoformat(),
        }
    )


# ----------------------------------------------------------------------------- objects
_ORDER = (
    "SELECT order_id, customer_id, status, total, currency FROM tools.orders"
    " WHERE tenant_id = %s AND order_id = %s"
)
_ORDER_LOCKED = _ORDER + " FOR UPDATE"
_ACCOUNT = "SELECT user_id, status FROM tools.accounts WHERE tenant_id = %s AND user_id = %s"
_ACCOUNT_LOCKED = _ACCOUNT + " FOR SHARE"


async def order_facts(ctx: ToolContext, order_id: str, *, lock: bool = False) -> OrderFacts | None:
    """The order in the caller's tenant with what was already refunded on it, or None.

    ``lock`` takes the order's row lock (``FOR UPDATE``) for the rest of the transaction: the
    refunds summed here cannot change until it ends, which is what keeps concurrent refunds
    on one order within its total.
    """
    row = await _one(
        ctx,
        _ORDER_LOCKED if lock else _ORDER,
        (ctx.principal.tenant_id, order_id.upper()),
    )
    if row is None:
        return None
    refunded = await _one(
        ctx,
        "SELECT coalesce(sum(amount), 0)::numeric(12, 2) AS refunded FROM tools.refunds"
        " WHERE tenant_id = %s AND order_id = %s AND status = 'issued'",
        (ctx.principal.tenant_id, row["order_id"]),
    )
    assert refunded is not None
    return OrderFacts(
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        status=row["status"],
        total=row["total"],
        currency=row["currency"],
        refunded=refunded["refunded"],
    )


async def account_facts(
    ctx: ToolContext, user_id: str, *, lock: bool = False
) -> AccountFacts | None:
    row = await _one(
        ctx,
        _ACCOUNT_LOCKED if lock else _ACCOUNT,
        (ctx.principal.tenant_id, user_id),
    )
    return None if row is None else AccountFacts(user_id=row["user_id"], status=row["status"])


# ----------------------------------------------------------------------------- write tools
async def _insert_once(
    ctx: ToolContext, table: str, prefix: str, columns: dict[str, Any]
) -> ToolResult:
    assert ctx.idempotency_key, "write tools run with an idempotency key"
    effect_id = f"{prefix}-{uuid.uuid5(uuid.NAMESPACE_URL, ctx.idempotency_key).hex[:10]}"
    names = ["tenant_id", "effect_id", "idempotency_key", "request_id", *columns]
    values = [
        ctx.principal.tenant_id,
        effect_id,
        ctx.idempotency_key,
        ctx.request_id,
        *columns.values(),
    ]
    placeholders = ", ".join(["%s"] * len(names))
    cur = await ctx.conn.execute(
        f"INSERT INTO tools.{table} ({', '.join(names)}) VALUES ({placeholders})"  # noqa: S608 - fixed names
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING effect_id",
        values,
    )
    created = await cur.fetchone() is not None
    if not created:
        existing = await _one(
            ctx,
            f"SELECT effect_id FROM tools.{table} WHERE idempotency_key = %s",  # noqa: S608
            (ctx.idempotency_key,),
        )
        assert existing is not None
        effect_id = existing["effect_id"]
    return ToolResult(
        {"effect_id": effect_id, **_jsonable(columns)}, effect_id=effect_id, created=created
    )


async def _done_before(ctx: ToolContext, table: str) -> ToolResult | None:
    """The effect an earlier run under this idempotency key made, if any.

    Looked up before the checks: a re-run must find its own effect, not be refused because
    that effect now counts against the invariant (a refund against what is left to refund).
    """
    row = await _one(
        ctx,
        f"SELECT effect_id FROM tools.{table} WHERE idempotency_key = %s",  # noqa: S608
        (ctx.idempotency_key,),
    )
    if row is None:
        return None
    return ToolResult({"effect_id": row["effect_id"]}, effect_id=row["effect_id"], created=False)


def _jsonable(columns: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (str(v) if isinstance(v, Decimal) else v.obj if isinstance(v, Jsonb) else v)
        for k, v in columns.items()
    }


async def _check_order_access(
    ctx: ToolContext, order_id: str | None, *, lock: bool
) -> OrderFacts | None:
    if order_id is None:
        return None
    order = await order_facts(ctx, order_id, lock=lock)
    try:
        order_access_problem(ctx.principal, order, order_id)
    except GuardError as exc:
        raise as_tool_error(exc) from None
    return order


async def check_ticket(ctx: ToolContext, args: CreateTicketArgs) -> OrderFacts | None:
    return await _check_order_access(ctx, args.order_id, lock=False)


async def create_ticket(ctx: ToolContext, args: CreateTicketArgs) -> ToolResult:
    # The order's row lock: it cannot change hands while the ticket about it is written.
    await _check_order_access(ctx, args.order_id, lock=True)
    return await _insert_once(
        ctx,
        "tickets",
        "T",
        {
            "customer_id": ctx.principal.user_id,
            "subject": args.subject,
            "description": args.description,
            "order_id": args.order_id.upper() if args.order_id else None,
            "priority": args.priority,
            "status": "open",
        },
    )


def _refund_allowed(
    ctx: ToolContext, order: OrderFacts | None, args: IssueRefundArgs
) -> OrderFacts:
    try:
        refund_problem(
            ctx.principal,
            order,
            order_id=args.order_id,
            amount=args.amount,
            currency=args.currency,
        )
    except GuardError as exc:
        raise as_tool_error(exc) from None
    assert order is not None
    return order


async def check_refund(ctx: ToolContext, args: IssueRefundArgs) -> OrderFacts:
    return _refund_allowed(ctx, await order_facts(ctx, args.order_id), args)


async def issue_refund(ctx: ToolContext, args: IssueRefundArgs) -> ToolResult:
    # The order's row lock first: from here to the commit no other refund on this order can
    # be checked or written, so "refunded + this <= total" still holds when this commits.
    order = await order_facts(ctx, args.order_id, lock=True)
    if order is not None and (earlier := await _done_before(ctx, "refunds")) is not None:
        return earlier
    order = _refund_allowed(ctx, order, args)
    return await _insert_once(
        ctx,
        "refunds",
        "R",
        {
            "order_id": order.order_id,
            "amount": args.amount,
            "currency": order.currency,
            "reason": args.reason,
            "status": "issued",
        },
    )


async def _checked_account(ctx: ToolContext, user_id: str, *, lock: bool) -> AccountFacts:
    account = await account_facts(ctx, user_id, lock=lock)
    try:
        account_problem(ctx.principal, account, user_id)
    except GuardError as exc:
        raise as_tool_error(exc) from None
    assert account is not None
    return account


async def check_reset(ctx: ToolContext, args: ResetPasswordArgs) -> AccountFacts:
    return await _checked_account(ctx, args.user_id, lock=False)


async def reset_password(ctx: ToolContext, args: ResetPasswordArgs) -> ToolResult:
    await _checked_account(ctx, args.user_id, lock=True)
    return await _insert_once(
        ctx, "password_resets", "PR", {"user_id": args.user_id, "reason": args.reason}
    )


async def check_escalation(ctx: ToolContext, args: EscalateArgs) -> OrderFacts | None:
    return await _check_order_access(ctx, args.order_id, lock=False)


async def escalate(ctx: ToolContext, args: EscalateArgs) -> ToolResult:
    await _check_order_access(ctx, args.order_id, lock=True)
    return await _insert_once(
        ctx,
        "escalations",
        "E",
        {"reason": args.reason, "order_id": args.order_id.upper() if args.order_id else None},
    )


def default_registry() -> ToolRegistry:
    return ToolRegistry(
        [
            ToolSpec(
                "order_status",
                "Status, items and total of an order.",
                OrderStatusArgs,
                RiskLevel.READ,
                order_status,
                retry=_READ_RETRY,
                timeout_s=2.0,
            ),
            ToolSpec(
                "ticket_status",
                "Status of a support ticket.",
                TicketStatusArgs,
                RiskLevel.READ,
                ticket_status,
                retry=_READ_RETRY,
                timeout_s=2.0,
            ),
            ToolSpec(
                "account_lookup",
                "Account status and tier of a customer (staff only).",
                AccountLookupArgs,
                RiskLevel.READ,
                account_lookup,
                min_level=StaffLevel.L1,
                retry=_READ_RETRY,
                timeout_s=2.0,
            ),
            ToolSpec(
                "create_ticket",
                "Open a support ticket.",
                CreateTicketArgs,
                RiskLevel.WRITE,
                create_ticket,
                check=check_ticket,
            ),
            ToolSpec(
                "issue_refund",
                "Refund (part of) an order to the original payment method.",
                IssueRefundArgs,
                RiskLevel.WRITE,
                issue_refund,
                check=check_refund,
            ),
            ToolSpec(
                "escalate",
                "Hand the case to a senior colleague.",
                EscalateArgs,
                RiskLevel.WRITE,
                escalate,
                check=check_escalation,
            ),
            ToolSpec(
                "reset_password",
                "Send the account holder a password-reset link.",
                ResetPasswordArgs,
                RiskLevel.CRITICAL,
                reset_password,
                check=check_reset,
            ),
        ]
    )
