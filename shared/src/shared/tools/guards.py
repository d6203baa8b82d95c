"""Who may act on which business object, and the invariants an effect must keep.

These rules decide whether a write tool may run for a principal. They are pure functions
over the facts of the object the action touches (:class:`OrderFacts`, :class:`AccountFacts`),
so the same rule answers in three places with the same words:

- when the agent drafts the action (read-only, no locks: a wrong request is refused at once);
- when an approver looks at it (the facts and any problem are shown beside the action);
- inside the executor's transaction, with the object's row locked ``FOR UPDATE``, right before
  the effect is written. Only this last check is authoritative: the object may have changed
  since the draft (another refund issued, the order cancelled), and a lock is what makes
  "the sum of refunds never exceeds the total" hold when two executors run at once.

Ownership: a customer acts only on their own orders and their own account; staff (L1 and up)
act within their tenant. Tenancy itself is enforced by every query (``tenant_id = %s``), so an
object of another tenant is simply not found. "Not found" and "not yours" read the same to a
customer, so order ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.principal import Principal, StaffLevel

from .registry import ToolError, ToolInvariantError, ToolPermissionError

__all__ = [
    "REFUNDABLE_ORDER_STATUSES",
    "AccountFacts",
    "GuardError",
    "OrderFacts",
    "account_problem",
    "as_tool_error",
    "is_staff",
    "order_access_problem",
    "refund_problem",
]

#: Orders in these states can be refunded. A cancelled order was never charged (or was
#: already reversed), a fully refunded one has nothing left, and one still awaiting payment
#: has nothing to give back.
REFUNDABLE_ORDER_STATUSES = frozenset({"processing", "shipped", "delivered", "active"})


class GuardError(Exception):
    """An action that must not run as asked; ``code`` is stable, the message is for people.

    ``code`` is one of ``not_found``, ``not_owner``, ``invariant``: the first two are about who
    asks, the last about the object's state.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def as_tool_error(exc: GuardError) -> ToolError:
    """The registry's error for a refused guard, so callers see one set of stable codes."""
    if exc.code == "invariant":
        return ToolInvariantError(str(exc))
    if exc.code == "not_owner":
        return ToolPermissionError(str(exc))
    return ToolError(str(exc))


@dataclass(frozen=True)
class OrderFacts:
    """An order as the rules and the approvers see it."""

    order_id: str
    customer_id: str
    status: str
    total: Decimal
    currency: str
    #: Sum of the refunds already issued on this order, in its currency.
    refunded: Decimal = Decimal(0)

    @property
    def refundable(self) -> Decimal:
        return max(Decimal(0), self.total - self.refunded)


@dataclass(frozen=True)
class AccountFacts:
    user_id: str
    status: str


def is_staff(principal: Principal) -> bool:
    return principal.level.at_least(StaffLevel.L1)


def order_access_problem(principal: Principal, order: OrderFacts | None, order_id: str) -> None:
    """Raise unless ``principal`` may act on ``order`` (None: not in the caller's tenant)."""
    if order is None:
        raise GuardError("not_found", f"order {order_id} not found")
    if not is_staff(principal) and order.customer_id != principal.user_id:
        # Same words as a missing order: a customer learns nothing about others' orders.
        raise GuardError("not_owner", f"order {order_id} not found")


def refund_problem(
    principal: Principal,
    order: OrderFacts | None,
    *,
    order_id: str,
    amount: Decimal,
    currency: str,
) -> None:
    """Raise unless a refund of ``amount`` ``currency`` on ``order`` may be issued now."""
    order_access_problem(principal, order, order_id)
    assert order is not None
    if order.status not in REFUNDABLE_ORDER_STATUSES:
        raise GuardError(
            "invariant", f"order {order.order_id} is {order.status}: it cannot be refunded"
        )
    if currency.upper() != order.currency.upper():
        raise GuardError(
            "invariant",
            f"order {order.order_id} was paid in {order.currency}: a refund in {currency}"
            " is not possible",
        )
    if amount > order.refundable:
        raise GuardError(
            "invariant",
            f"refund of {amount} {order.currency} exceeds what is left to refund on order"
            f" {order.order_id}: total {order.total}, already refunded {order.refunded},"
            f" left {order.refundable}",
        )


def account_problem(principal: Principal, account: AccountFacts | None, user_id: str) -> None:
    """Raise unless ``principal`` may act on the account ``user_id`` (a password reset)."""
    if not is_staff(principal) and user_id != principal.user_id:
        # Customers act on their own account only, whatever the model or message says.
        raise GuardError("not_owner", "a customer can only act on their own account")
    if account is None:
        raise GuardError("not_found", f"account {user_id} not found")
    if account.status != "active":
        raise GuardError("invariant", f"account {user_id} is {account.status}")
