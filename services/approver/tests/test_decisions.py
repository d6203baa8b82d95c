"""Who may decide an approval, and what a decision changes: the pure domain rules, and the
service's decide() that commits them through a store (here the in-memory one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from approver.domain import (
    Approval,
    ApprovalPolicy,
    ApprovalStatus,
    DecisionError,
    PolicySettings,
    RefusalCode,
    Requirement,
    execution_events,
    expired,
    expiry_events,
    finished,
    sign,
)
from approver.service_layer.decisions import decide
from approver.service_layer.intake import IntakePorts, handle_draft
from approver.testing.fakes import InMemoryApprovalStore
from shared.contracts import Decision, DraftDecided, RiskLevel, utcnow
from shared.principal import Principal, StaffLevel
from shared.tools import default_registry

from .conftest import DraftFactory

pytestmark = pytest.mark.unit

POLICY = ApprovalPolicy(PolicySettings())
NOW = utcnow()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def approval(make_draft: DraftFactory) -> Approval:
    draft = make_draft(arguments={"order_id": "HP-1", "amount": "600", "reason": "x"})
    return Approval(
        draft_id=draft.event_id,
        request_id=draft.request_id,
        tenant_id="harborpine",
        requester_id="casey.customer",
        tool="issue_refund",
        arguments=dict(draft.action.arguments) if draft.action else {},
        risk=RiskLevel.WRITE,
        summary="refund",
        status=ApprovalStatus.PENDING,
        policy="refund-up-to-2000-eur",
        requires=Requirement(level=StaffLevel.L2, count=2),
        signoffs=(),
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        idempotency_key=f"approval:{draft.event_id}",
        draft=draft,
        amount_eur=Decimal(600),
    )


def refused(approval: Approval, who: Principal, verdict: str = "approve") -> DecisionError:
    with pytest.raises(DecisionError) as caught:
        sign(approval, who, verdict, "because", policy=POLICY, now=NOW, trace_id=None)  # type: ignore[arg-type]
    return caught.value


def test_two_l2_approvals_by_different_people_approve(
    approval: Approval, staff: Callable[..., Principal]
) -> None:
    first = sign(approval, staff("kim"), "approve", "", policy=POLICY, now=NOW, trace_id=TRACE)
    assert first.approval.status is ApprovalStatus.PENDING
    assert first.approval.remaining == 1
    assert [e.action for e in first.events] == ["approval.signed"]  # type: ignore[union-attr]
    assert first.events[0].trace_id == TRACE, "the trace the caller passed in"  # type: ignore[union-attr]
    assert refused(first.approval, staff("kim")).code == "already_signed", "one person counts once"
    second = sign(
        first.approval,
        staff("mo", "manager"),
        "approve",
        "ok",
        policy=POLICY,
        now=NOW,
        trace_id=None,
    )
    assert second.approval.status is ApprovalStatus.APPROVED, "a manager counts as an L2"
    assert second.approval.decided_at == NOW
    assert [e.action for e in second.events] == [  # type: ignore[union-attr]
        "approval.signed",
        "approval.approved",
    ]
    signed = second.events[0]
    assert signed.actor == "mo" and signed.details["reason"] == "ok"  # type: ignore[union-attr]
    assert signed.details["at"] == NOW.isoformat()  # type: ignore[union-attr]


def test_one_rejection_decides_and_publishes_the_decision(
    approval: Approval, staff: Callable[..., Principal]
) -> None:
    done = sign(
        approval, staff("kim"), "reject", "not eligible", policy=POLICY, now=NOW, trace_id=TRACE
    )
    assert done.approval.status is ApprovalStatus.REJECTED
    decided = [e for e in done.events if isinstance(e, DraftDecided)]
    assert len(decided) == 1
    assert decided[0].decision is Decision.REJECTED
    assert decided[0].signoffs[0].reason == "not eligible"
    assert "not eligible" in decided[0].reason
    audits = [e for e in done.events if not isinstance(e, DraftDecided)]
    assert [a.trace_id for a in audits] == [TRACE, TRACE]


@pytest.mark.parametrize(
    ("who", "code"),
    [
        (("kim", "L1"), RefusalCode.INSUFFICIENT_LEVEL),
        (("casey.customer", "L2"), RefusalCode.SELF_APPROVAL),
        (("kim", "none"), RefusalCode.NOT_AN_APPROVER),
        (("kim", "L2", "tidewell"), RefusalCode.NOT_FOUND),
    ],
)
def test_who_may_not_decide(
    approval: Approval,
    staff: Callable[..., Principal],
    who: tuple[str, ...],
    code: RefusalCode,
) -> None:
    error = refused(approval, staff(*who))
    assert error.code is code
    assert error.message


def test_decided_and_expired_approvals_cannot_be_decided_again(
    approval: Approval, staff: Callable[..., Principal]
) -> None:
    decided = replace(approval, status=ApprovalStatus.EXECUTED)
    assert refused(decided, staff("kim")).code is RefusalCode.ALREADY_DECIDED
    late = replace(approval, expires_at=NOW - timedelta(seconds=1))
    assert refused(late, staff("kim"), "reject").code is RefusalCode.EXPIRED


def test_roles_matter_not_just_the_level(approval: Approval) -> None:
    hr = Principal(user_id="h", tenant_id="harborpine", roles=("hr",), level=StaffLevel.MANAGER)
    assert refused(approval, hr).code is RefusalCode.NOT_AN_APPROVER


async def test_decide_commits_each_signoff_with_its_events(
    make_draft: DraftFactory, staff: Callable[..., Principal]
) -> None:
    store = InMemoryApprovalStore()
    draft = make_draft(arguments={"order_id": "HP-10024", "amount": "600", "reason": "torn"})
    await handle_draft(draft, IntakePorts(store, POLICY, default_registry(), timedelta(hours=1)))
    first = await decide(store, POLICY, staff("kim"), draft.event_id, "approve", "ok", now=NOW)
    assert first.approval.remaining == 1 and not first.final
    second = await decide(store, POLICY, staff("lee"), draft.event_id, "approve", "ok", now=NOW)
    assert second.final and second.approval.status is ApprovalStatus.APPROVED
    stored = store.approvals[draft.event_id]
    assert [s.approver_id for s in stored.signoffs] == ["kim", "lee"]
    assert [getattr(e, "action", "decided") for e in store.outbox] == [
        "approval.pending",
        "approval.signed",
        "approval.signed",
        "approval.approved",
    ]


async def test_decide_refuses_with_a_code_and_changes_nothing(
    make_draft: DraftFactory, staff: Callable[..., Principal]
) -> None:
    store = InMemoryApprovalStore()
    draft = make_draft()
    await handle_draft(draft, IntakePorts(store, POLICY, default_registry(), timedelta(hours=1)))
    before = (dict(store.approvals), list(store.outbox))
    with pytest.raises(DecisionError) as own:
        await decide(store, POLICY, staff("casey.customer"), draft.event_id, "approve", "", now=NOW)
    assert own.value.code is RefusalCode.SELF_APPROVAL
    assert own.value.approval is not None and own.value.approval.request_id == draft.request_id
    with pytest.raises(DecisionError) as missing:
        await decide(store, POLICY, staff("kim"), uuid.uuid4(), "reject", "no such", now=NOW)
    assert missing.value.code is RefusalCode.NOT_FOUND and missing.value.approval is None
    assert (dict(store.approvals), list(store.outbox)) == before


def test_an_action_ends_executed_or_failed_with_one_decision(approval: Approval) -> None:
    done = finished(approval, "RF-1", "issue_refund done")
    assert done.status is ApprovalStatus.EXECUTED and done.execution is not None
    assert (done.execution.status, done.execution.effect_id) == ("succeeded", "RF-1")
    decided, audit = execution_events(done, trace_id=TRACE)
    assert isinstance(decided, DraftDecided) and decided.decision is Decision.APPROVED
    assert (audit.action, audit.trace_id) == ("approval.executed", TRACE)  # type: ignore[union-attr]
    failed = finished(approval, None, "out_of_stock: no")
    assert failed.status is ApprovalStatus.FAILED and "failed: out_of_stock" in failed.reason
    assert execution_events(failed, trace_id=None)[1].outcome.value == "error"  # type: ignore[union-attr]


def test_a_stale_approval_expires_with_one_decision(approval: Approval) -> None:
    late = expired(approval, NOW)
    assert (late.status, late.decided_at) == (ApprovalStatus.EXPIRED, NOW)
    decided, audit = expiry_events(late, trace_id=None)
    assert isinstance(decided, DraftDecided) and decided.decision is Decision.EXPIRED
    assert audit.action == "approval.expired"  # type: ignore[union-attr]
