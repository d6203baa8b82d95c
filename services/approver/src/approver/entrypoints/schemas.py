"""What the approvals API reads and answers: request bodies and approval views.

Bodies are parsed here rather than by FastAPI (:func:`parse_body`), so that a bad one is
refused and audited like any other refused decision.
"""

# No ``from __future__ import annotations``: FastAPI and pydantic read these annotations live.
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts import ExecutionResult, RiskLevel, Signoff
from shared.http_api import CleanText
from shared.principal import Principal, StaffLevel

from ..domain import ActionContext, Approval, ApprovalPolicy, ApprovalStatus, check_signer

__all__ = [
    "ApprovalList",
    "ApprovalView",
    "ApproveBody",
    "InvalidBody",
    "RejectBody",
    "body_schema",
    "parse_body",
]

B = TypeVar("B", bound=BaseModel)


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: CleanText = Field(default="", max_length=1000, description="Why (optional).")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: CleanText = Field(min_length=3, max_length=1000, description="Why (required).")


class ApprovalView(BaseModel):
    """An approval as its deciders see it."""

    draft_id: uuid.UUID
    request_id: uuid.UUID
    requester_id: str
    tool: str
    arguments: dict[str, Any]
    risk: RiskLevel
    summary: str
    status: ApprovalStatus
    policy: str = Field(description="Rule that set the requirement.")
    required_level: StaffLevel
    required_count: int
    remaining: int = Field(description="Approvals still needed.")
    amount_eur: Decimal | None
    signoffs: list[Signoff]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    reason: str
    execution: ExecutionResult | None
    can_decide: bool = Field(description="Whether the caller may approve or reject it now.")
    blocked_by: str | None = Field(description="Why not, as a stable code, when they may not.")
    context: ActionContext | None = Field(
        default=None,
        description="The object the action touches (owner, total, refunded, other requests)"
        " and what the executor's check would say now.",
    )

    @classmethod
    def of(
        cls,
        approval: Approval,
        caller: Principal,
        policy: ApprovalPolicy,
        now: datetime,
        context: ActionContext | None = None,
    ) -> "ApprovalView":
        refusal = check_signer(approval, caller, policy=policy, now=now)
        return cls(
            draft_id=approval.draft_id,
            request_id=approval.request_id,
            requester_id=approval.requester_id,
            tool=approval.tool,
            arguments=approval.arguments,
            risk=approval.risk,
            summary=approval.summary,
            status=approval.status,
            policy=approval.policy,
            required_level=approval.requires.level,
            required_count=approval.requires.count,
            remaining=approval.remaining,
            amount_eur=approval.amount_eur,
            signoffs=list(approval.signoffs),
            created_at=approval.created_at,
            expires_at=approval.expires_at,
            decided_at=approval.decided_at,
            reason=approval.reason,
            execution=approval.execution,
            can_decide=refusal is None,
            blocked_by=refusal.code.value if refusal else None,
            context=context,
        )


class ApprovalList(BaseModel):
    items: list[ApprovalView]
    limit: int
    offset: int


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a body FastAPI does not parse itself."""
    return {
        "requestBody": {
            "required": model is RejectBody,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class InvalidBody(Exception):
    """A body that is not JSON or fails its model; ``errors`` name each bad field."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


async def parse_body(request: Request, model: type[B]) -> B:
    """The request's body as ``model``, or :class:`InvalidBody` (empty means ``{}``)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise InvalidBody("the body is not JSON", []) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        raise InvalidBody("request validation failed", errors) from None
