"""The object an action touches, as the people deciding on it must see it.

:class:`Subject` is an action about to be decided; :class:`ActionContext` is what an
inspector (:class:`~approver.service_layer.ports.ActionInspector`) found about its object:
the order's owner, total and refunds, the account, other standing requests, and what the
executor's check would say now. The inspection itself reads the tools' records
(:mod:`approver.postgres.inspector`).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.principal import Principal

from .approval import Approval

__all__ = ["ActionContext", "Subject"]


class Subject(BaseModel):
    """An action about to be decided: who asks for which tool with which arguments."""

    model_config = ConfigDict(frozen=True)

    draft_id: uuid.UUID | None = None
    principal: Principal
    tool: str
    arguments: dict[str, Any]

    @classmethod
    def of(cls, approval: Approval) -> Subject:
        return cls(
            draft_id=approval.draft_id,
            principal=approval.draft.request.principal,
            tool=approval.tool,
            arguments=approval.arguments,
        )


class ActionContext(BaseModel):
    """The object behind an action, and whether the action could run on it now."""

    model_config = ConfigDict(frozen=True)

    object_type: Literal["order", "account"] | None = Field(
        default=None, description="What the action touches (none for a plain ticket)."
    )
    object_id: str | None = None
    owner_id: str | None = Field(default=None, description="The order's customer.")
    owned_by_requester: bool | None = Field(
        default=None, description="Whether the requester owns the object (orders, accounts)."
    )
    object_status: str | None = None
    total: Decimal | None = Field(default=None, description="Order total, in its currency.")
    currency: str | None = None
    refunded: Decimal | None = Field(default=None, description="Refunds already issued.")
    refundable: Decimal | None = Field(default=None, description="Total minus refunded.")
    requested: Decimal | None = Field(
        default=None,
        description="Other standing (pending or approved) refund requests on the same order.",
    )
    requested_count: int = Field(default=0, description="How many such requests.")
    problem: str | None = Field(
        default=None, description="Why the executor would refuse this action now, if it would."
    )
    problem_code: str | None = Field(default=None, description="Stable code of the problem.")
