"""Intake: every draft from the ``draft`` topic, once.

Answers and refusals change nothing and are released by policy. A proposed action becomes a
pending approval with the requirement the policy sets, unless it is invalid, which is rejected
at once: an unknown tool, arguments that fail its schema, a read tool; an object the requester
may not act on or whose state forbids the effect (someone else's order, a refund above what is
left or in another currency: :mod:`approver.postgres.inspector`); or a request already past the
saga's answer deadline, whose caller has been told it timed out, so nothing may happen for it.
Either way the decision's events are enqueued in the transaction that records the draft, so a
redelivered draft finds it recorded and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from shared.contracts import (
    AuditOutcome,
    AuditRecorded,
    Decision,
    DraftDecided,
    DraftKind,
    DraftProduced,
    RiskLevel,
    derive_event_id,
    utcnow,
)
from shared.telemetry import current_trace_id
from shared.tools import ToolError, ToolRegistry

from ..domain import (
    SERVICE,
    Approval,
    ApprovalPolicy,
    ApprovalStatus,
    PolicyDecision,
    Subject,
    audit_event,
    decided_event,
)
from .ports import ActionInspector, Admission, ApprovalStore

__all__ = ["AUTO_POLICY", "INVALID_POLICY", "IntakePorts", "handle_draft"]

AUTO_POLICY = "answers-are-auto-approved"
INVALID_POLICY = "invalid-action-rejected"


@dataclass(frozen=True)
class IntakePorts:
    store: ApprovalStore
    policy: ApprovalPolicy
    registry: ToolRegistry
    pending_ttl: timedelta
    clock: Callable[[], datetime] = utcnow
    #: Checks the requester's relation to the object. None in unit tests over the in-memory
    #: store; the executor's locked check is the authoritative one either way.
    inspector: ActionInspector | None = None
    #: A request older than this (SagaSettings.answer_deadline_s) is refused, not admitted.
    answer_deadline: timedelta | None = None


async def handle_draft(draft: DraftProduced, ports: IntakePorts) -> None:
    if draft.kind is not DraftKind.ACTION or draft.action is None:
        await _release_answer(draft, ports)
        return
    action = draft.action
    # The consumer's span: the intake's audit steps belong to the saga's trace.
    trace_id = current_trace_id()
    problem, risk = _check_action(draft, ports.registry)
    if problem is None:
        problem = await _check_object(draft, ports) or _check_deadline(draft, ports)
    order = action.arguments.get("order_id")
    order_key = str(order) if ports.policy.is_banded(action.tool) and order else None

    def plan(earlier: Decimal | None) -> Admission:
        decision = ports.policy.requirement(
            action.tool, risk, action.arguments, earlier_eur=earlier
        )
        return (
            _invalid(draft, decision, problem, ports, trace_id)
            if problem
            else _pending(draft, decision, risk, ports, trace_id)
        )

    await ports.store.admit(draft, order_key, plan)


def _check_action(draft: DraftProduced, registry: ToolRegistry) -> tuple[str | None, RiskLevel]:
    """What is wrong with the proposed action, if anything, and its risk per the registry.

    The draft's own risk claim is not trusted: a critical tool stays critical.
    """
    assert draft.action is not None
    try:
        spec = registry.get(draft.action.tool)
        registry.validate(draft.action.tool, dict(draft.action.arguments))
    except ToolError as exc:
        return str(exc), draft.action.risk
    if spec.risk is RiskLevel.READ:
        return f"{spec.name} is a read tool: it runs in the agent, not as a draft", spec.risk
    return None, spec.risk


async def _check_object(draft: DraftProduced, ports: IntakePorts) -> str | None:
    """Whether the requester may act on the action's object, and its state allows it."""
    if ports.inspector is None or draft.action is None:
        return None
    subject = Subject(
        principal=draft.request.principal,
        tool=draft.action.tool,
        arguments=dict(draft.action.arguments),
    )
    (context,) = await ports.inspector.inspect([subject])
    return f"{context.problem_code}: {context.problem}" if context.problem else None


def _check_deadline(draft: DraftProduced, ports: IntakePorts) -> str | None:
    if ports.answer_deadline is None:
        return None
    age = ports.clock() - draft.request.occurred_at
    if age <= ports.answer_deadline:
        return None
    return (
        f"saga_deadline_passed: the request is {age.total_seconds():.0f}s old, past its"
        f" {ports.answer_deadline.total_seconds():.0f}s deadline; it has been timed out"
    )


def _approval(
    draft: DraftProduced, decision: PolicyDecision, risk: RiskLevel, ports: IntakePorts
) -> Approval:
    assert draft.action is not None
    now = ports.clock()
    return Approval(
        draft_id=draft.event_id,
        request_id=draft.request_id,
        tenant_id=draft.tenant_id,
        requester_id=draft.request.principal.user_id,
        tool=draft.action.tool,
        arguments=dict(draft.action.arguments),
        risk=risk,
        summary=draft.action.summary,
        status=ApprovalStatus.PENDING,
        policy=decision.rule,
        requires=decision.requires,
        signoffs=(),
        created_at=now,
        expires_at=now + ports.pending_ttl,
        # One key per action: every execution of this approval meets the same effect.
        idempotency_key=f"approval:{draft.event_id}",
        draft=draft,
        amount_eur=decision.amount_eur,
    )


def _pending(
    draft: DraftProduced,
    decision: PolicyDecision,
    risk: RiskLevel,
    ports: IntakePorts,
    trace_id: str | None,
) -> Admission:
    approval = _approval(draft, decision, risk, ports)
    details: dict[str, object] = {"expires_at": approval.expires_at.isoformat()}
    if decision.cumulative_eur is not None:
        details["cumulative_eur"] = str(decision.cumulative_eur)
    if draft.action is not None and draft.action.risk is not risk:
        details["risk_claimed"] = draft.action.risk.value
    pending = audit_event(
        approval,
        "approval.pending",
        actor=approval.requester_id,
        trace_id=trace_id,
        outcome=AuditOutcome.PENDING,
        details=details,
    )
    return Admission(approval, (pending,))


def _invalid(
    draft: DraftProduced,
    decision: PolicyDecision,
    problem: str,
    ports: IntakePorts,
    trace_id: str | None,
) -> Admission:
    assert draft.action is not None
    approval = _approval(draft, decision, draft.action.risk, ports)
    approval = replace(
        approval,
        status=ApprovalStatus.REJECTED,
        policy=INVALID_POLICY,
        decided_at=approval.created_at,
        reason=f"The proposed action is invalid: {problem}",
    )
    return Admission(
        approval,
        (
            decided_event(approval, Decision.REJECTED, approval.reason),
            audit_event(
                approval,
                "approval.rejected",
                actor=SERVICE,
                trace_id=trace_id,
                outcome=AuditOutcome.DENIED,
            ),
        ),
    )


async def _release_answer(draft: DraftProduced, ports: IntakePorts) -> None:
    decided = DraftDecided(
        event_id=derive_event_id(draft.event_id, "decided"),
        request_id=draft.request_id,
        tenant_id=draft.tenant_id,
        draft=draft,
        decision=Decision.AUTO_APPROVED,
        policy=AUTO_POLICY,
        reason="A grounded answer or a refusal changes nothing; it is released by policy.",
    )
    audit = AuditRecorded(
        event_id=derive_event_id(str(decided.event_id), f"audit:{SERVICE}:draft.auto_approved"),
        request_id=draft.request_id,
        tenant_id=draft.tenant_id,
        service=SERVICE,
        action="draft.auto_approved",
        actor=draft.request.principal.user_id,
        subject_event_id=decided.event_id,
        trace_id=current_trace_id(),
        details={
            "decision": decided.decision.value,
            "policy": AUTO_POLICY,
            "kind": draft.kind.value,
        },
    )
    await ports.store.release([decided, audit])
