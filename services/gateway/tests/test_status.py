"""How audit steps and decisions map to request statuses."""

from __future__ import annotations

import uuid

import pytest

from gateway.status import (
    ANSWER_DEADLINE,
    APPROVAL_DEADLINE,
    RANK,
    SETTLED,
    RequestStatus,
    stalled_step,
    status_of_audit,
    status_of_decision,
)
from shared.contracts import (
    AuditRecorded,
    ChatRequested,
    Decision,
    DraftKind,
)

from .builders import decided

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kind", "decision", "ok", "status"),
    [
        (DraftKind.ANSWER, Decision.AUTO_APPROVED, None, RequestStatus.ANSWERED),
        (DraftKind.REFUSAL, Decision.AUTO_APPROVED, None, RequestStatus.REFUSED),
        (DraftKind.ACTION, Decision.APPROVED, True, RequestStatus.EXECUTED),
        (DraftKind.ACTION, Decision.APPROVED, False, RequestStatus.FAILED),
        (DraftKind.ACTION, Decision.APPROVED, None, RequestStatus.APPROVED),
        (DraftKind.ACTION, Decision.REJECTED, None, RequestStatus.REJECTED),
        (DraftKind.ACTION, Decision.EXPIRED, None, RequestStatus.EXPIRED),
    ],
)
def test_decisions(
    chat: ChatRequested, kind: DraftKind, decision: Decision, ok: bool | None, status: RequestStatus
) -> None:
    assert status_of_decision(decided(chat, kind, decision, executed=ok)) is status
    assert status in SETTLED


def test_audit_steps() -> None:
    def audit(action: str) -> AuditRecorded:
        return AuditRecorded(
            request_id=uuid.uuid4(), tenant_id="t", service="s", action=action, actor="u"
        )

    assert status_of_audit(audit("retrieval.completed")) is RequestStatus.RETRIEVED
    assert status_of_audit(audit("approval.pending")) is RequestStatus.PENDING_APPROVAL
    assert status_of_audit(audit("tool.called")) is None
    assert RequestStatus.PENDING_APPROVAL in SETTLED
    assert RequestStatus.DRAFTED not in SETTLED


def test_timed_out_is_terminal_like_an_answer() -> None:
    assert RequestStatus.TIMED_OUT in SETTLED
    assert RANK[RequestStatus.TIMED_OUT] == RANK[RequestStatus.ANSWERED]
    assert all(RANK[RequestStatus.TIMED_OUT] >= rank for rank in RANK.values()), (
        "no later step or decision outranks a timeout"
    )


@pytest.mark.parametrize(
    ("status", "published", "step"),
    [
        (RequestStatus.ACCEPTED, False, "gateway (publish)"),
        (RequestStatus.ACCEPTED, True, "retriever"),
        (RequestStatus.RETRIEVED, True, "agent"),
        (RequestStatus.DRAFTED, True, "approver"),
        (RequestStatus.PENDING_APPROVAL, True, "approver (awaiting decision)"),
        (RequestStatus.APPROVED, True, "executor"),
    ],
)
def test_where_a_request_stalled(status: RequestStatus, published: bool, step: str) -> None:
    assert stalled_step(status, published=published) == step
    assert status in ANSWER_DEADLINE | APPROVAL_DEADLINE


def test_terminal_requests_are_under_no_deadline() -> None:
    assert not (ANSWER_DEADLINE | APPROVAL_DEADLINE) & (SETTLED - APPROVAL_DEADLINE)
    with pytest.raises(ValueError, match="not waiting"):
        stalled_step(RequestStatus.ANSWERED, published=True)
