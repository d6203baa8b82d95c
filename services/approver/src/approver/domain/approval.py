"""Approvals, and the rules for deciding on one: pure functions, no I/O.

A draft of a write action becomes an :class:`Approval`. People sign it off through the API;
:func:`sign` says whether a sign-off is allowed and what it changes. The executor then runs
the approved action (``approver.postgres.executor``); the sweeper expires stale ones.

States::

    pending ──(enough approvals)──► approved ──(executor)──► executed | failed
       │ └────(one rejection)─────► rejected
       └──────(expires_at passed)─► expired
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from shared.contracts import (
    AuditOutcome,
    AuditRecorded,
    Decision,
    DraftDecided,
    DraftProduced,
    ExecutionResult,
    RiskLevel,
    Signoff,
    derive_event_id,
)
from shared.principal import Principal

from .policy import ApprovalPolicy
from .requirements import Requirement

__all__ = [
    "SERVICE",
    "Approval",
    "ApprovalStatus",
    "DecisionError",
    "RefusalCode",
    "Transition",
    "Verdict",
    "audit_event",
    "check_signer",
    "decided_event",
    "sign",
]

SERVICE = "approver"

Verdict = Literal["approve", "reject"]


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"
    FAILED = "failed"


@dataclass(frozen=True)
class Approval:
    draft_id: uuid.UUID
    request_id: uuid.UUID
    tenant_id: str
    requester_id: str
    tool: str
    arguments: dict[str, Any]
    risk: RiskLevel
    summary: str
    status: ApprovalStatus
    policy: str
    requires: Requirement
    signoffs: tuple[Signoff, ...]
    created_at: datetime
    expires_at: datetime
    idempotency_key: str
    draft: DraftProduced
    amount_eur: Decimal | None = None
    decided_at: datetime | None = None
    reason: str = ""
    execution: ExecutionResult | None = None
    #: ``traceparent``/``tracestate`` of the intake: later steps continue the saga's trace.
    trace: Mapping[str, str] = field(default_factory=dict)

    @property
    def approvals(self) -> tuple[Signoff, ...]:
        return tuple(
            s
            for s in self.signoffs
            if s.decision == "approve" and s.level.at_least(self.requires.level)
        )

    @property
    def remaining(self) -> int:
        return max(0, self.requires.count - len(self.approvals))

    def signed_by(self, user_id: str) -> bool:
        return any(s.approver_id == user_id for s in self.signoffs)


class RefusalCode(StrEnum):
    """Why a sign-off is refused, as a stable name (an entry point maps it to its protocol)."""

    #: No such approval in the signer's tenant (another tenant's id is no oracle).
    NOT_FOUND = "not_found"
    #: Who may decide: not staff with an approver role; their own request; level too low.
    NOT_AN_APPROVER = "not_an_approver"
    SELF_APPROVAL = "self_approval"
    INSUFFICIENT_LEVEL = "insufficient_level"
    #: Whether it can still be decided: decided already; past its expiry; signed by them.
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "expired"
    ALREADY_SIGNED = "already_signed"


class DecisionError(Exception):
    """A sign-off that is refused: ``code`` says why, ``message`` says it to a person."""

    def __init__(self, code: RefusalCode, message: str, approval: Approval | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: The approval refused on, when there is one (its request id goes in the audit).
        self.approval = approval


@dataclass(frozen=True)
class Transition:
    """What a sign-off changes: the new state and the events announcing it."""

    approval: Approval
    signoff: Signoff
    events: tuple[AuditRecorded | DraftDecided, ...]

    @property
    def final(self) -> bool:
        return self.approval.status is not ApprovalStatus.PENDING


def sign(
    approval: Approval,
    principal: Principal,
    verdict: Verdict,
    reason: str,
    *,
    policy: ApprovalPolicy,
    now: datetime,
    trace_id: str | None,
) -> Transition:
    """Check that ``principal`` may decide ``verdict`` on ``approval`` now, and apply it.

    ``trace_id`` is the decision's trace, recorded on its audit steps.
    """
    refuse = check_signer(approval, principal, policy=policy, now=now)
    if refuse is not None:
        raise refuse
    signoff = Signoff(
        approver_id=principal.user_id,
        level=principal.level,
        decision=verdict,
        reason=reason,
        at=now,
    )
    after = replace(approval, signoffs=(*approval.signoffs, signoff))
    events: list[AuditRecorded | DraftDecided] = [
        audit_event(
            after,
            "approval.signed",
            actor=principal.user_id,
            trace_id=trace_id,
            anchor=f"{approval.draft_id}:{principal.user_id}",
            details={
                "decision": verdict,
                "reason": reason,
                "level": principal.level.value,
                "at": now.isoformat(),
                "remaining": after.remaining,
            },
        )
    ]
    if verdict == "reject":
        after = replace(after, status=ApprovalStatus.REJECTED, decided_at=now, reason=reason)
        events += [
            decided_event(after, Decision.REJECTED, f"Rejected by {principal.user_id}: {reason}"),
            audit_event(after, "approval.rejected", actor=principal.user_id, trace_id=trace_id),
        ]
    elif after.remaining == 0:
        who = ", ".join(s.approver_id for s in after.approvals)
        after = replace(
            after,
            status=ApprovalStatus.APPROVED,
            decided_at=now,
            reason=f"Approved under {after.policy} by {who}.",
        )
        events.append(
            audit_event(after, "approval.approved", actor=principal.user_id, trace_id=trace_id)
        )
    return Transition(after, signoff, tuple(events))


def check_signer(
    approval: Approval, principal: Principal, *, policy: ApprovalPolicy, now: datetime
) -> DecisionError | None:
    """Why ``principal`` may not sign ``approval`` now, or None if they may.

    Who may decide comes first, then whether the draft can still be decided.
    """

    def refuse(code: RefusalCode, message: str) -> DecisionError:
        return DecisionError(code, message, approval)

    if principal.tenant_id != approval.tenant_id:
        return DecisionError(RefusalCode.NOT_FOUND, "no such approval")
    if not policy.is_approver(principal):
        return refuse(RefusalCode.NOT_AN_APPROVER, "only support staff can decide approvals")
    if principal.user_id == approval.requester_id:
        return refuse(RefusalCode.SELF_APPROVAL, "nobody can decide on their own request")
    if not principal.level.at_least(approval.requires.level):
        return refuse(
            RefusalCode.INSUFFICIENT_LEVEL,
            f"this approval needs staff level {approval.requires.level.value};"
            f" you are {principal.level.value}",
        )
    if approval.status is not ApprovalStatus.PENDING:
        return refuse(RefusalCode.ALREADY_DECIDED, f"this approval is {approval.status.value}")
    if now >= approval.expires_at:
        return refuse(RefusalCode.EXPIRED, "this approval has expired")
    if approval.signed_by(principal.user_id):
        return refuse(RefusalCode.ALREADY_SIGNED, "you have already signed this approval")
    return None


def decided_event(approval: Approval, decision: Decision, reason: str) -> DraftDecided:
    """The one DraftDecided of an action: its id derives from the draft, so it is unique."""
    return DraftDecided(
        event_id=derive_event_id(approval.draft_id, "decided"),
        request_id=approval.request_id,
        tenant_id=approval.tenant_id,
        draft=approval.draft,
        decision=decision,
        policy=approval.policy,
        signoffs=approval.signoffs,
        reason=reason,
        execution=approval.execution,
    )


def audit_event(
    approval: Approval,
    action: str,
    *,
    actor: str,
    trace_id: str | None,
    anchor: str | None = None,
    outcome: AuditOutcome = AuditOutcome.OK,
    details: dict[str, Any] | None = None,
) -> AuditRecorded:
    """An audit step about ``approval``; the same step always gets the same id.

    ``trace_id`` is the trace the step happened in (``shared.telemetry.current_trace_id()``
    at the caller), or None outside any.
    """
    facts: dict[str, Any] = {
        "draft_id": str(approval.draft_id),
        "tool": approval.tool,
        "status": approval.status.value,
        "policy": approval.policy,
        "required_level": approval.requires.level.value,
        "required_count": approval.requires.count,
        "approvers": [s.approver_id for s in approval.approvals],
    }
    if approval.reason:
        facts["reason"] = approval.reason
    if approval.execution is not None:
        facts["execution"] = approval.execution.model_dump(mode="json")
    facts.update(details or {})
    return AuditRecorded(
        event_id=derive_event_id(anchor or approval.draft_id, f"audit:{SERVICE}:{action}"),
        request_id=approval.request_id,
        tenant_id=approval.tenant_id,
        service=SERVICE,
        action=action,
        outcome=outcome,
        actor=actor,
        subject_event_id=approval.draft_id,
        trace_id=trace_id,
        details=facts,
    )
