"""The approvals HTTP API: list, get, approve, reject.

The approver's identity comes only from the verified bearer token; a body that names an
approver is refused (422). Every refused decision (401, 403, 404, 409, 422) is audited as
``approval.denied`` and changes nothing; every accepted one is audited with the sign-off
in the transaction that records it. The decision itself is the service layer's
(:func:`~approver.service_layer.decisions.decide`); this module maps HTTP onto it and its
refusal codes onto statuses (:func:`http_status`).
"""

# No ``from __future__ import annotations``: FastAPI must resolve the dependencies declared
# inside build_router (``Depends(api.staff)``) from the live annotations.
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal, assert_never

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.contracts import AuditOutcome
from shared.http_api import error_responses
from shared.messaging import NIL_REQUEST_ID, EventPublisher
from shared.principal import Principal

from ..domain import (
    ActionContext,
    Approval,
    ApprovalPolicy,
    ApprovalStatus,
    DecisionError,
    RefusalCode,
    Subject,
    Verdict,
)
from ..metrics import ApproverMetrics, Outcome
from ..service_layer.decisions import decide
from ..service_layer.ports import ActionInspector, ApprovalQuery, ApprovalStore
from .schemas import (
    ApprovalList,
    ApprovalView,
    ApproveBody,
    InvalidBody,
    RejectBody,
    body_schema,
    parse_body,
)

__all__ = ["build_router", "http_status"]

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="JWT minted by `platform-token mint`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

#: Deepest page offset served; filter by status, tool or request instead of paging further.
MAX_OFFSET = 100_000

StatusFilter = Literal["pending", "approved", "executed", "failed", "rejected", "expired", "all"]


def http_status(code: RefusalCode) -> int:
    """404: not the caller's to see; 403: not theirs to decide; 409: not decidable now.

    Exhaustive (mypy checks it), so a new refusal cannot fall through to a 500.
    """
    match code:
        case RefusalCode.NOT_FOUND:
            return 404
        case (
            RefusalCode.NOT_AN_APPROVER | RefusalCode.SELF_APPROVAL | RefusalCode.INSUFFICIENT_LEVEL
        ):
            return 403
        case RefusalCode.ALREADY_DECIDED | RefusalCode.EXPIRED | RefusalCode.ALREADY_SIGNED:
            return 409
        case _:
            assert_never(code)


def build_router(
    *,
    store: Callable[[], ApprovalStore],
    policy: ApprovalPolicy,
    authenticate: Callable[..., Awaitable[Principal]],
    bus: EventPublisher,
    clock: Callable[[], datetime],
    inspector: Callable[[], ActionInspector | None] = lambda: None,
    metrics: ApproverMetrics | None = None,
) -> APIRouter:
    """``authenticate`` is ``shared.auth.http.principal_dependency(tokens)``."""
    api = _Approvals(store, policy, authenticate, bus, clock, inspector, metrics)
    router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

    @router.get(
        "",
        summary="Approvals of my tenant (pending by default)",
        responses=error_responses(401, 403, 422, 503),
    )
    async def list_approvals(
        principal: Annotated[Principal, Depends(api.staff)],
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
        return await api.listing(principal, query, actionable=actionable)

    @router.get(
        "/{draft_id}",
        summary="One approval with its sign-offs",
        responses=error_responses(401, 403, 404, 422, 503),
    )
    async def get_approval(
        draft_id: uuid.UUID, principal: Annotated[Principal, Depends(api.staff)]
    ) -> ApprovalView:
        return await api.one(principal, draft_id)

    @router.post(
        "/{draft_id}/approve",
        summary="Approve (counts once per person; the last needed approval executes it)",
        openapi_extra=body_schema(ApproveBody),
        responses=_ERRORS,
    )
    async def approve(
        draft_id: uuid.UUID, request: Request, credentials: Credentials
    ) -> ApprovalView:
        return await api.decide(draft_id, "approve", request, credentials)

    @router.post(
        "/{draft_id}/reject",
        summary="Reject with a reason (one rejection decides)",
        openapi_extra=body_schema(RejectBody),
        responses=_ERRORS,
    )
    async def reject(
        draft_id: uuid.UUID, request: Request, credentials: Credentials
    ) -> ApprovalView:
        return await api.decide(draft_id, "reject", request, credentials)

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


class _Approvals:
    """What the routes do, over the ports the router was built with."""

    def __init__(
        self,
        store: Callable[[], ApprovalStore],
        policy: ApprovalPolicy,
        authenticate: Callable[..., Awaitable[Principal]],
        bus: EventPublisher,
        clock: Callable[[], datetime],
        inspector: Callable[[], ActionInspector | None],
        metrics: ApproverMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._policy = policy
        self._authenticate = authenticate
        self._bus = bus
        self._clock = clock
        self._inspector = inspector

    async def staff(self, credentials: Credentials) -> Principal:
        """The dependency of the read routes: a verified token of support staff."""
        principal = await self._authenticate(credentials)
        if not self._policy.is_approver(principal):
            raise HTTPException(403, {"message": "the approval inbox is for support staff"})
        return principal

    async def listing(
        self, caller: Principal, query: ApprovalQuery, *, actionable: bool
    ) -> ApprovalList:
        items = await self._views(await self._store().list(caller.tenant_id, query), caller)
        if actionable:
            items = [v for v in items if v.can_decide]
        return ApprovalList(items=items, limit=query.limit, offset=query.offset)

    async def one(self, caller: Principal, draft_id: uuid.UUID) -> ApprovalView:
        approval = await self._store().get(caller.tenant_id, draft_id)
        if approval is None:
            raise HTTPException(404, {"message": "no such approval"})
        (view,) = await self._views([approval], caller)
        return view

    async def decide(
        self,
        draft_id: uuid.UUID,
        verdict: Verdict,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None,
    ) -> ApprovalView:
        """Who signs, with which reason, then the decision; each refusal audited and a 4xx."""
        principal = await self._signer(draft_id, verdict, credentials)
        reason = await self._reason(draft_id, verdict, request, principal)
        try:
            transition = await decide(
                self._store(), self._policy, principal, draft_id, verdict, reason, now=self._clock()
            )
        except DecisionError as exc:
            status = http_status(exc.code)
            request_id = exc.approval.request_id if exc.approval else NIL_REQUEST_ID
            await self._denied(request_id, principal, draft_id, verdict, status, exc.code.value)
            raise HTTPException(status, {"error": exc.code.value, "message": exc.message}) from None
        decided = transition.approval
        if self._metrics is not None and transition.final and decided.decided_at is not None:
            outcome: Outcome = (
                "rejected" if decided.status is ApprovalStatus.REJECTED else "approved"
            )
            self._metrics.decided(outcome, decided.created_at, decided.decided_at)
        (view,) = await self._views([decided], principal)
        return view

    async def _signer(
        self,
        draft_id: uuid.UUID,
        verdict: Verdict,
        credentials: HTTPAuthorizationCredentials | None,
    ) -> Principal:
        try:
            return await self._authenticate(credentials)
        except HTTPException as exc:
            await self._denied(NIL_REQUEST_ID, None, draft_id, verdict, 401, "unauthenticated")
            raise exc from None

    async def _reason(
        self, draft_id: uuid.UUID, verdict: Verdict, request: Request, principal: Principal
    ) -> str:
        try:
            if verdict == "approve":
                return (await parse_body(request, ApproveBody)).reason
            return (await parse_body(request, RejectBody)).reason
        except InvalidBody as exc:
            known = await self._store().get(principal.tenant_id, draft_id)
            request_id = known.request_id if known else NIL_REQUEST_ID
            await self._denied(request_id, principal, draft_id, verdict, 422, "invalid_request")
            raise HTTPException(
                422, {"error": "invalid_request", "message": exc.message, "errors": exc.errors}
            ) from None

    async def _views(self, approvals: list[Approval], caller: Principal) -> list[ApprovalView]:
        """Each approval with the facts of its object, read in one go."""
        now = self._clock()
        found = self._inspector()
        contexts: list[ActionContext | None] = (
            list(await found.inspect([Subject.of(a) for a in approvals]))
            if found is not None
            else [None] * len(approvals)
        )
        return [
            ApprovalView.of(a, caller, self._policy, now, c)
            for a, c in zip(approvals, contexts, strict=True)
        ]

    async def _denied(
        self,
        request_id: uuid.UUID,
        caller: Principal | None,
        draft_id: uuid.UUID,
        verdict: Verdict,
        status: int,
        code: str,
    ) -> None:
        """Audit a refused decision (``caller`` None: no valid token); never fails the request."""
        try:
            await self._bus.audit(
                request_id=request_id,
                tenant_id=caller.tenant_id if caller else "unknown",
                action="approval.denied",
                actor=caller.user_id if caller else "unauthenticated",
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
