"""Request status: how audit steps and decisions move a request along.

The projection is monotonic: a status only moves forward (``RANK``), because audit events of
different services can arrive in any order relative to each other. ``timed_out`` (set by the
deadline sweeper, see ``deadlines.py``) is terminal like ``answered``: a step or decision that
arrives after the deadline cannot move the request back.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from shared.contracts import AuditRecorded, Decision, DraftDecided, DraftKind

__all__ = [
    "ANSWER_DEADLINE",
    "APPROVAL_DEADLINE",
    "RANK",
    "SETTLED",
    "UNPUBLISHED_STEP",
    "RequestStatus",
    "result_of",
    "stalled_step",
    "status_of_audit",
    "status_of_decision",
]


class RequestStatus(StrEnum):
    ACCEPTED = "accepted"
    RETRIEVED = "retrieved"
    DRAFTED = "drafted"
    PENDING_APPROVAL = "pending_approval"
    ANSWERED = "answered"
    REFUSED = "refused"
    EXECUTED = "executed"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


RANK: dict[RequestStatus, int] = {
    RequestStatus.ACCEPTED: 0,
    RequestStatus.RETRIEVED: 1,
    RequestStatus.DRAFTED: 2,
    RequestStatus.PENDING_APPROVAL: 3,
    RequestStatus.APPROVED: 4,
    RequestStatus.ANSWERED: 5,
    RequestStatus.REFUSED: 5,
    RequestStatus.EXECUTED: 5,
    RequestStatus.REJECTED: 5,
    RequestStatus.EXPIRED: 5,
    RequestStatus.FAILED: 5,
    RequestStatus.TIMED_OUT: 5,
}

#: A caller waiting on a request stops waiting at these: either it is final, or it now
#: depends on a human.
SETTLED = frozenset(s for s, r in RANK.items() if r >= RANK[RequestStatus.PENDING_APPROVAL])

_AUDIT_STATUS = {
    "request.accepted": RequestStatus.ACCEPTED,
    "retrieval.completed": RequestStatus.RETRIEVED,
    "draft.produced": RequestStatus.DRAFTED,
    "approval.pending": RequestStatus.PENDING_APPROVAL,
    "dlq.routed": RequestStatus.FAILED,
}


#: Open statuses under the answer deadline (``saga.answer_deadline_s`` from creation): the
#: saga is still in machines' hands.
ANSWER_DEADLINE = frozenset(
    {RequestStatus.ACCEPTED, RequestStatus.RETRIEVED, RequestStatus.DRAFTED}
)
#: Open statuses under the approval deadline (``approval_expiry_s + settle_grace_s``): the
#: approver expires a pending approval itself; this is the backstop if its outcome never comes.
APPROVAL_DEADLINE = frozenset({RequestStatus.PENDING_APPROVAL, RequestStatus.APPROVED})

#: The step a request waits for in each open status: where it stalled if its deadline passes.
_NEXT_STEP = {
    RequestStatus.ACCEPTED: "retriever",
    RequestStatus.RETRIEVED: "agent",
    RequestStatus.DRAFTED: "approver",
    RequestStatus.PENDING_APPROVAL: "approver (awaiting decision)",
    RequestStatus.APPROVED: "executor",
}
#: An accepted request the gateway never managed to publish (broker down, no retry came).
UNPUBLISHED_STEP = "gateway (publish)"


def stalled_step(status: RequestStatus, *, published: bool) -> str:
    """Where a request in ``status`` is stuck: the step that should have moved it next."""
    if status is RequestStatus.ACCEPTED and not published:
        return UNPUBLISHED_STEP
    try:
        return _NEXT_STEP[status]
    except KeyError:
        raise ValueError(f"a {status.value} request is not waiting for any step") from None


def status_of_audit(event: AuditRecorded) -> RequestStatus | None:
    return _AUDIT_STATUS.get(event.action)


def status_of_decision(event: DraftDecided) -> RequestStatus:
    if event.decision is Decision.AUTO_APPROVED:
        return (
            RequestStatus.REFUSED
            if event.draft.kind is DraftKind.REFUSAL
            else RequestStatus.ANSWERED
        )
    if event.decision is Decision.APPROVED:
        execution = event.execution
        if execution is None:
            return RequestStatus.APPROVED
        return RequestStatus.EXECUTED if execution.status == "succeeded" else RequestStatus.FAILED
    if event.decision is Decision.REJECTED:
        return RequestStatus.REJECTED
    return RequestStatus.EXPIRED


def result_of(event: DraftDecided) -> dict[str, Any]:
    """What the caller gets back: the answer with its citations, or the action's outcome."""
    draft = event.draft
    return {
        "kind": draft.kind.value,
        "answer": draft.answer,
        "citations": [c.model_dump(mode="json") for c in draft.citations],
        "action": draft.action.model_dump(mode="json") if draft.action else None,
        "decision": event.decision.value,
        "reason": event.reason,
        "execution": event.execution.model_dump(mode="json") if event.execution else None,
        "model": draft.model,
    }
