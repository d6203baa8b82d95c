"""How an approval ends without a person: an approved action runs (executed or failed), a
pending one expires. Each is a new state and the events that announce it; the loops that
apply them in a row-locked transaction are :mod:`approver.postgres.executor` and
:mod:`approver.postgres.sweeper`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.contracts import AuditOutcome, AuditRecorded, Decision, DraftDecided, ExecutionResult

from .approval import SERVICE, Approval, ApprovalStatus, audit_event, decided_event

__all__ = ["execution_events", "expired", "expiry_events", "finished"]


def finished(approval: Approval, effect_id: str | None, detail: str) -> Approval:
    """The approval once run: executed with ``effect_id``, or failed when it is None."""
    succeeded = effect_id is not None
    execution = ExecutionResult(
        status="succeeded" if succeeded else "failed",
        idempotency_key=approval.idempotency_key,
        effect_id=effect_id or None,
        detail=detail,
    )
    status = ApprovalStatus.EXECUTED if succeeded else ApprovalStatus.FAILED
    return replace(
        approval,
        status=status,
        execution=execution,
        reason=f"{approval.reason} Execution {execution.status}: {detail}".strip(),
    )


def execution_events(done: Approval, *, trace_id: str | None) -> list[AuditRecorded | DraftDecided]:
    """The action's one DraftDecided (approved, with the execution) and its audit step."""
    ok = done.status is ApprovalStatus.EXECUTED
    return [
        decided_event(done, Decision.APPROVED, done.reason),
        audit_event(
            done,
            f"approval.{done.status.value}",
            actor=SERVICE,
            trace_id=trace_id,
            outcome=AuditOutcome.OK if ok else AuditOutcome.ERROR,
        ),
    ]


def expired(approval: Approval, now: datetime) -> Approval:
    """A pending approval past its ``expires_at``, expired at ``now``."""
    return replace(
        approval,
        status=ApprovalStatus.EXPIRED,
        decided_at=now,
        reason=f"Not decided by {approval.expires_at.isoformat()}; expired.",
    )


def expiry_events(
    approval: Approval, *, trace_id: str | None
) -> list[AuditRecorded | DraftDecided]:
    """The expired approval's one DraftDecided and its audit step."""
    return [
        decided_event(approval, Decision.EXPIRED, approval.reason),
        audit_event(approval, "approval.expired", actor=SERVICE, trace_id=trace_id),
    ]
