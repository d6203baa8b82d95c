"""The approvals HTTP API: list, get, approve, reject.

The approver's identity comes only from the verified bearer token; a body that names an
approver is refused (422). Every refused decision (401, 403, 404, 409, 422) is audited as
``approval.denied`` and changes nothing; every accepted one is audited with the sign-off
in the transaction that records it.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the dependencies declared
# inside build_router (``Depends(staff)``) from the live annotations.
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts import AuditOutcome, ExecutionResult, RiskLevel, Signoff
from shared.http_api import CleanText, error_responses
from shared.messaging import NIL_REQUEST_ID, EventBus
from shared.principal import Principal, StaffLevel

from .decision_span import decision_span, link_to_saga
from .domain import Approval, ApprovalStatus, DecisionError, Verdict, check_signer, sign
from .metrics import ApproverMetrics, Outcome
from .objects import ActionContext, ActionInspector, Subject
from .policy import ApprovalPolicy
from .store import ApprovalQuery, ApprovalStore

__all__ = ["ApprovalView", "ApproveBody", "RejectBody", "build_router"]

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="JWT minted by `platform-token mint`")
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
            blocked_by=refusal.code if refusal else None,
            context=context,
        )


class ApprovalList(BaseModel):
    items: list[ApprovalView]
    limit: int
    offset: int


#: Deepest page offset served; filter by status, tool or request instead of paging further.
MAX_OFFSET = 100_000

StatusFilter = Literal["pending", "approved", "executed", "failed", "rejected", "expired", "all"]


def build_router(
    *,
    store: Callable[[], ApprovalStore],
    policy: ApprovalPolicy,
    authenticate: Callable[..., Awaitable[Principal]],
    bus: EventBus,
    clock: Callable[[], datetime],
    inspector: Callable[[], ActionInspector | None] = lambda: None,
    metrics: ApproverMetrics | None = None,
) -> APIRouter:
    """``authenticate`` is ``shared.auth.http.principal_dependency(tokens)``."""
    router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

    async def views(approvals: list[Approval], caller: Principal) -> list[ApprovalView]:
        """Each approval with the facts of its object, read in one go."""
        now = clock()
        found = inspector()
        contexts: list[ActionContext | None] = (
            list(await found.inspect([Subject.of(a) for a in approvals]))
            if found is not None
            else [None] * len(approvals)
        )
        return [
            ApprovalView.of(a, caller, policy, now, c)
            for a, c in zip(approvals, contexts, strict=True)
        ]

    async def staff(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        principal = await authenticate(credentials)
        if not policy.is_approver(principal):
            raise HTTPException(403, {"message": "the approval inbox is for support staff"})
        return principal

    async def audit_denied(
        request_id: uuid.UUID,
        tenant_id: str,
        actor: str,
        draft_id: uuid.UUID,
        verdict: Verdict,
        status: int,
        code: str,
    ) -> None:
        try:
            await bus.audit(
                request_id=request_id,
                tenant_id=tenant_id,
                action="approval.denied",
                actor=actor,
                subject_event_id=draft_id,
                outcome=AuditOutcome.DENIED,
                details={
                    "draft_id": str(draft_id),
                    "decision": verdict,
                    "status": status,
                    "code": code,
                },
                dedupe_key=str(uuid.uuid4()),  # every attempt is its own record
            )
        except Exception:
            log.warning("could not audit a refused decision on %s", draft_id, exc_info=True)

    async def decide(
        draft_id: uuid.UUID,
        verdict: Verdict,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None,
    ) -> ApprovalView:
        try:
            principal = await authenticate(credentials)
        except HTTPException as exc:
            await audit_denied(
                NIL_REQUEST_ID,
                "unknown",
                "unauthenticated",
                draft_id,
                verdict,
                401,
                "unauthenticated",
            )
            raise exc from None
        body: ApproveBody | RejectBody
        try:
            if verdict == "approve":
                body = await _body(request, ApproveBody)
            else:
                body = await _body(request, RejectBody)
        except _InvalidBody as exc:
            known = await store().get(principal.tenant_id, draft_id)
            await audit_denied(
                known.request_id if known else NIL_REQUEST_ID,
                principal.tenant_id,
                principal.user_id,
                draft_id,
                verdict,
                422,
                "invalid_request",
            )
            raise HTTPException(
                422, {"error": "invalid_request", "message": exc.message, "errors": exc.errors}
            ) from None
        now = clock()
        try:
            with decision_span(verdict, str(draft_id)) as span:
                transition = await store().decide(
                    principal.tenant_id,
                    draft_id,
                    lambda approval: sign(
                        approval, principal, verdict, body.reason, policy=policy, now=now
                    ),
                )
                link_to_saga(span, transition.approval.trace)
                span.set_attribute("request_id", str(transition.approval.request_id))
            decided = transition.approval
            if metrics is not None and transition.final and decided.decided_at is not None:
                outcome: Outcome = (
                    "rejected" if decided.status is ApprovalStatus.REJECTED else "approved"
                )
                metrics.decided(outcome, decided.created_at, decided.decided_at)
        except DecisionError as exc:
            await audit_denied(
                exc.approval.request_id if exc.approval else NIL_REQUEST_ID,
                principal.tenant_id,
                principal.user_id,
                draft_id,
                verdict,
                exc.status,
                exc.code,
            )
            raise HTTPException(exc.status, {"error": exc.code, "message": exc.message}) from None
        (view,) = await views([transition.approval], principal)
        return view

    @router.get(
        "",
        summary="Approvals of my tenant (pending by default)",
        responses=error_responses(401, 403, 422, 503),
    )
    async def list_approvals(
        principal: Annotated[Principal, Depends(staff)],
        status: StatusFilter = "pending",
        tool: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
        request_id: uuid.UUID | None = None,
        actionable: Annotated[
            bool, Query(description="Only those I may approve or reject now.")
        ] = False,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        # Bounded: a deep offset is a full scan, and a huge one overflowed bigint (a 500).
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> ApprovalList:
        query = ApprovalQuery(
            status=None if status == "all" else ApprovalStatus(status),
            tool=tool,
            request_id=request_id,
            limit=limit,
            offset=offset,
        )
        items = await views(await store().list(principal.tenant_id, query), principal)
        if actionable:
            items = [v for v in items if v.can_decide]
        return ApprovalList(items=items, limit=limit, offset=offset)

    @router.get(
        "/{draft_id}",
        summary="One approval with its sign-offs",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    async def get_approval(
        draft_id: uuid.UUID, principal: Annotated[Principal, Depends(staff)]
    ) -> ApprovalView:
        approval = await store().get(principal.tenant_id, draft_id)
        if approval is None:
            raise HTTPException(404, {"message": "no such approval"})
        (view,) = await views([approval], principal)
        return view

    @router.post(
        "/{draft_id}/approve",
        summary="Approve (counts once per person; the last needed approval executes it)",
        openapi_extra=_body_schema(ApproveBody),
        responses=_ERRORS,
    )
    async def approve(
        draft_id: uuid.UUID,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApprovalView:
        return await decide(draft_id, "approve", request, credentials)

    @router.post(
        "/{draft_id}/reject",
        summary="Reject with a reason (one rejection decides)",
        openapi_extra=_body_schema(RejectBody),
        responses=_ERRORS,
    )
    async def reject(
        draft_id: uuid.UUID,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApprovalView:
        return await decide(draft_id, "reject", request, credentials)

    return router


_ERRORS = error_responses(
    401,
    403,
    404,
    409,
    413,
    422,
    503,
    s403="Not an approver of this action (level, self-approval, role)",
    s404="No such approval in your tenant",
    s409="Already decided, expired, or already signed by you",
)


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": model is RejectBody,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class _InvalidBody(Exception):
    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


async def _body(request: Request, model: type[B]) -> B:
    """Parse the body here rather than in FastAPI, so a bad one is audited like any refusal."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise _InvalidBody("the body is not JSON", []) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        raise _InvalidBody("request validation failed", errors) from None
